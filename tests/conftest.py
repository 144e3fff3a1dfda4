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


@pytest.fixture(autouse=True, scope="session")
def _poison_lazy_tiles():
    """The DeepLIFT engine's lazy tiles hold NaN in their unwritten rows throughout the
    tests, so a read of one anywhere shows up as a failure
    (captum_genomics.deeplift.rules.base.PairCursor.poison_pending)."""
    from captum_genomics.deeplift.rules.base import PairCursor

    PairCursor.poison_pending = True
    yield
    PairCursor.poison_pending = False


@pytest.fixture(scope="module")
def one_thread():
    """Run a module's tests on one torch thread (restored afterwards).

    Tiny models: thread start-up costs more than it saves on a shared machine.
    """
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
