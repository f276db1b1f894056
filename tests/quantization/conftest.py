import pytest
import torch

from tests.tiny_models import build_tiny_checkpoint


@pytest.fixture(scope="package", autouse=True)
def one_torch_thread():
    """Tiny models run fastest on one thread (and leave the other core to the test runner)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def dense_checkpoint(tmp_path_factory):
    """family -> a tiny random dense checkpoint of it, built once."""
    built = {}

    def get(family: str) -> str:
        if family not in built:
            built[family] = build_tiny_checkpoint(str(tmp_path_factory.mktemp(f"dense-{family}")), family)
        return built[family]
    return get
