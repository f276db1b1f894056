import os

import pytest
import torch

# Without a GPU the Triton kernels run in Triton's interpreter. It must be on before any
# kernel module (so any ember import) loads, hence here, in the root conftest.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
# The test models are tiny: one thread per process avoids oversubscribing the 2 cores when a
# test also runs a server subprocess.
torch.set_num_threads(1)
# A small fixed KV space keeps many CPU engines in one test process cheap.
os.environ.setdefault("EMBER_CPU_KVCACHE_SPACE", "0.25")

from tests.tiny_models import FAMILIES, build_tiny_checkpoint  # noqa: E402


@pytest.fixture(scope="session", params=FAMILIES)
def tiny_model(request, tmp_path_factory) -> str:
    """A tiny random checkpoint of each model family, in HF format."""
    return build_tiny_checkpoint(str(tmp_path_factory.mktemp(request.param)), request.param)


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> str:
    return build_tiny_checkpoint(str(tmp_path_factory.mktemp("llama")), "llama")
