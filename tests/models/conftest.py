import pytest
import torch

from tests.models.qwen_v1_checkpoint import build_qwen_v1_checkpoint


@pytest.fixture(scope="package", autouse=True)
def one_torch_thread():
    """These tests run many tiny matmuls; with several OpenMP threads on a busy 2-core machine
    each one waits on the others (measured: 60x slower), so run them on one thread."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def qwen_v1_dir(tmp_path_factory) -> str:
    return build_qwen_v1_checkpoint(str(tmp_path_factory.mktemp("qwen_v1")))
