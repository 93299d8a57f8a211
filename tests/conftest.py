import pytest
import torch

from agrpo.model.tiny import init_tiny
from agrpo.model.tokenizer import CharTokenizer


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
