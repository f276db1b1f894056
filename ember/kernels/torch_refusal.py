"""What a torch op raises when this build or device does not run it: TORCH_CHECK raises
RuntimeError, TORCH_CHECK_VALUE ValueError, TORCH_CHECK_NOT_IMPLEMENTED NotImplementedError.
The start-up probes of optional fast paths (cuBLAS's scaled-GEMM recipes, cuDNN attention)
catch these and only these, and log why the path stays off."""

TORCH_REFUSAL = (RuntimeError, ValueError, NotImplementedError)


def first_line(error: BaseException) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__
