import pytest
import torch

from agrpo.model.tiny import init_tiny
from agrpo.model.tokenizer import CharTokenizer


# the modules that take minutes start first (pyproject.toml: --no-loadscope-reorder keeps this order), so the short
# tests fill the time beside them instead of one of them starting last; xdist hands the first two to the two
# workers and then one more each, so the two that take the "tiny" lock (regression, reliability) share a worker
FIRST = ("test_paper_smoke.py", "test_regression.py", "test_learnability.py", "test_reliability.py")


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: FIRST.index(item.path.name) if item.path.name in FIRST else len(FIRST))


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(1)


@pytest.fixture
def tokenizer():
    return CharTokenizer()


@pytest.fixture
def tiny_model(tokenizer):
    torch.manual_seed(0)
    return init_tiny(tokenizer, d_model=32, n_layers=2, n_heads=2, d_ff=64)


@pytest.fixture(scope="session")
def reduced_run(tmp_path_factory):
    """One uninterrupted run of the reduced tiny pipeline, shared by the regression tests:
    (directory, CompletedProcess)."""
    from helpers import reduced_pipeline, snakemake_lock

    tmp = tmp_path_factory.mktemp("reduced")
    with snakemake_lock("tiny"):
        return tmp, reduced_pipeline(tmp)
