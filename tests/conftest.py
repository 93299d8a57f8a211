import pytest
import torch

from agrpo.model.tiny import init_tiny
from agrpo.model.tokenizer import CharTokenizer


SNAKEMAKE_FILES = {"test_cli.py", "test_config.py", "test_paper_smoke.py", "test_regression.py", "test_reliability.py"}


@pytest.fixture(autouse=True)
def _one_snakemake_test_at_a_time(request):
    """The tests of files that start Snakemake hold ``helpers.snakemake_lock`` (pytest-xdist runs two workers)."""
    if request.node.path.name not in SNAKEMAKE_FILES:
        yield
        return
    from helpers import snakemake_lock

    with snakemake_lock():
        yield


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
    """One uninterrupted run of the reduced tiny pipeline, shared by the regression and the kill test:
    (directory, CompletedProcess)."""
    from helpers import reduced_pipeline

    from helpers import snakemake_lock

    tmp = tmp_path_factory.mktemp("reduced")
    with snakemake_lock():
        return tmp, reduced_pipeline(tmp)
