import pytest
import torch
import torch.nn.functional as F


def random_one_hot(n: int, length: int, generator: torch.Generator | None = None,
                   dtype=torch.float64) -> torch.Tensor:
    idx = torch.randint(0, 4, (n, length), generator=generator)
    return F.one_hot(idx, 4).permute(0, 2, 1).to(dtype)


@pytest.fixture
def one_hot():
    return random_one_hot


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
