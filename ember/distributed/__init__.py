"""Tensor parallelism's plumbing: which rank this process is (parallel_state), the collectives
the model layers call (communication), and the checks a configuration must pass (validation)."""
