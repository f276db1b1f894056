"""Optional triton import shared by the kernel modules.

When triton is missing, ``triton.jit`` becomes a no-op decorator and
``tl.constexpr`` a placeholder, so the modules still import and their torch
references stay usable; calling a Triton entry point then raises.
"""

from __future__ import annotations

try:
    import triton
    import triton.language as tl

    HAS_TRITON = True
except ImportError:  # CPU-only install without triton
    HAS_TRITON = False

    class _TritonStub:
        @staticmethod
        def jit(fn=None, **_kwargs):
            return fn if fn is not None else (lambda f: f)

        @staticmethod
        def next_power_of_2(n: int) -> int:
            return 1 << max(int(n) - 1, 0).bit_length()

        @staticmethod
        def cdiv(a: int, b: int) -> int:
            return -(-a // b)

    class _TlStub:
        constexpr = object  # only used as a parameter annotation

    triton = _TritonStub()
    tl = _TlStub()


def require_triton() -> None:
    if not HAS_TRITON:
        raise RuntimeError("triton is not installed; use the *_ref torch implementations")
