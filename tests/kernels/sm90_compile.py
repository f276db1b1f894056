"""Compiling Triton kernels for Hopper (sm_90) without a GPU, as the sm90 tests do: in a child
process, since the kernel tests' conftest switches Triton's interpreter on for this one."""
import json
import os
import subprocess
import sys


def compile_in_child(code: str) -> dict:
    """Run `code`, which compiles what it wants and prints its results as one JSON line last,
    with the interpreter off; returns that JSON (the child's error fails the test)."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
