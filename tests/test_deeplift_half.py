"""``ShuffleDeepLiftShap(dtype=...)``: autocast half precision, results in the inputs' dtype."""

import pytest
import torch

from captum_genomics import ShuffleDeepLiftShap
from captum_genomics.seq.io import random_one_hot


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv1d(4, 16, 9, padding=4), torch.nn.ReLU(), torch.nn.MaxPool1d(2),
        torch.nn.Conv1d(16, 8, 5, padding=2), torch.nn.GELU(), torch.nn.Flatten(),
        torch.nn.Linear(8 * 32, 2)).eval()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_is_close_to_float32_and_returns_float32(dtype):
    model = _model()
    x = random_one_hot(3, 64, torch.Generator().manual_seed(1)).float()
    explainer = ShuffleDeepLiftShap(model)
    full, d_full = explainer.attribute(x, n_references=4, random_state=0, target=1,
                                       return_convergence_delta=True)
    half, d_half = explainer.attribute(x, n_references=4, random_state=0, target=1,
                                       return_convergence_delta=True, dtype=dtype)
    assert half.dtype == torch.float32 and d_half.dtype == torch.float32
    assert not torch.is_autocast_enabled("cpu")
    # half precision keeps 8 (bf16) or 11 (fp16) significant bits of the activations: the
    # maps point the same way, and the deltas stay a small fraction of f(x) - f(r)
    cosine = torch.nn.functional.cosine_similarity(half.flatten(), full.flatten(), dim=0)
    assert cosine > (0.99 if dtype == torch.bfloat16 else 0.999)
    with torch.no_grad():
        fx = model(x)[:, 1]
    spread = float(fx.abs().max())
    assert d_full.abs().max() < 1e-5 * max(spread, 1.0)
    assert d_half.abs().max() < (0.05 if dtype == torch.bfloat16 else 0.01) * max(spread, 1.0)


def test_bad_dtype_is_refused():
    x = random_one_hot(1, 64, torch.Generator().manual_seed(1)).float()
    with pytest.raises(ValueError, match="`dtype`.*bfloat16.*float64"):
        ShuffleDeepLiftShap(_model()).attribute(x, n_references=2, target=0,
                                                dtype=torch.float64)
