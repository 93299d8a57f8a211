import pytest
import torch

from agrpo.model.tiny import init_tiny
from agrpo.model.tokenizer import CharTokenizer


SNAKEMAKE_FILES = {"test_cli.py", "test_config.py", "test_paper_smoke.py", "test_regression.py", "test_reliability.py"}


def pytest_collection_modifyitems(items):
    """Under pytest-xdist (``--dist loadgroup``), the tests of files that start Snakemake share one worker, in
    order: their pipelines write the same logs/<profile>/ files and take Snakemake's locks in the checkout."""
    for item in items:
        if item.path.name in SNAKEMAKE_FILES:
            item.add_marker(pytest.mark.xdist_group("snakemake"))


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

    tmp = tmp_path_factory.mktemp("reduced")
    return tmp, reduced_pipeline(tmp)
