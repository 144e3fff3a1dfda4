"""The same method on a GPU: additivity, agreement with CPU results, determinism.

Runs on ``cpu`` and ``cuda``; the ``cuda`` half skips cleanly when
``torch.cuda.is_available()`` is False. Tolerances: CUDA results agree with
the CPU ones to ``1e-10`` in float64 and ``1e-5`` in float32 (cuDNN and
cuBLAS sum in other orders, and may use TF32 unless it is disabled, which
these tests do). Determinism on CUDA is checked with deterministic
algorithms switched on (``torch.use_deterministic_algorithms``,
``cudnn.deterministic``): otherwise atomic adds (``scatter_add_`` in the
max-pool rule, some cuDNN backward kernels) may reorder sums between calls.
"""

from __future__ import annotations

import contextlib

import pytest
import torch

from captum_genomics import ShuffleDeepLiftShap
from captum_genomics.testing.checks import check_additivity, check_determinism
from captum_genomics.testing.models import needs_generated_references, random_one_hot

pytestmark = pytest.mark.cuda

AGREE = {torch.float64: 1e-10, torch.float32: 1e-5}
ADDITIVE = {torch.float64: 1e-10, torch.float32: 1e-4}
GPU_CASES = ["conv_relu_maxpool", "maxpool_overlapping", "residual", "global_max", "layernorm",
             "softmax", "glu", "attention", "act_gelu"]


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="CUDA is not available"))])
def device(request) -> torch.device:
    return torch.device(request.param)


@pytest.fixture(params=[torch.float64, torch.float32], ids=["float64", "float32"])
def dtype(request) -> torch.dtype:
    return request.param


@contextlib.contextmanager
def _exact_kernels():
    """Deterministic algorithms and no TF32, restored afterwards."""
    saved = (torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
             torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2:4]
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[4:]


def _on(case, device, dtype, n=3, k=3, seed=0):
    import copy

    model = copy.deepcopy(case.model).to(device=device, dtype=dtype)
    g = torch.Generator().manual_seed(seed)
    x = random_one_hot(n, case.length, g, dtype)
    refs = random_one_hot(n * k, case.length, g, dtype).reshape(n, k, 4, case.length)
    return model, x.to(device), refs.to(device)


@pytest.mark.cases(names=GPU_CASES)
def test_additivity_on_device(case, device, dtype, measured):
    model, x, refs = _on(case, device, dtype)
    with _exact_kernels():
        report = check_additivity(ShuffleDeepLiftShap(model), x, refs, target=case.target,
                                  atol=ADDITIVE[dtype])
    measured(f"additivity on {device.type} ({str(dtype)[6:]})", case.name, report.max_error)
    assert report.passed, f"{case.name} on {device}: {report}"


@pytest.mark.cases(names=GPU_CASES)
@pytest.mark.parametrize("mode", [{}, {"hypothetical": True}, {"return_multipliers": True}],
                         ids=["contributions", "hypothetical", "multipliers"])
def test_device_agrees_with_cpu(case, device, dtype, mode, measured):
    model, x, refs = _on(case, device, dtype)
    cpu_model, cpu_x, cpu_refs = _on(case, torch.device("cpu"), dtype)
    with _exact_kernels():
        got = ShuffleDeepLiftShap(model).attribute(x, references=refs, target=case.target,
                                                   **mode)
    want = ShuffleDeepLiftShap(cpu_model).attribute(cpu_x, references=cpu_refs,
                                                    target=case.target, **mode)
    assert got.device == x.device and got.dtype == dtype
    error = float((got.cpu() - want).abs().max())
    measured(f"|{device.type} - cpu| ({str(dtype)[6:]})", case.name, error)
    assert error <= AGREE[dtype] * max(1.0, float(want.abs().max())), (case.name, error)


@pytest.mark.cases(names=GPU_CASES)
def test_determinism_on_device(case, device, dtype):
    model, x, refs = _on(case, device, dtype)
    with _exact_kernels():
        report = check_determinism(ShuffleDeepLiftShap(model), x, refs, target=case.target)
    assert report.passed, f"{case.name} on {device}: {report}"


@needs_generated_references
@pytest.mark.cases(names=GPU_CASES[:3])
def test_generated_references_on_device(case, device, measured):
    """Same seed, same references and results on the device as on the CPU."""
    model, x, _ = _on(case, device, torch.float64)
    cpu_model, cpu_x, _ = _on(case, torch.device("cpu"), torch.float64)
    with _exact_kernels():
        report = check_determinism(ShuffleDeepLiftShap(model), x, None, target=case.target,
                                   n_references=3)
        got = ShuffleDeepLiftShap(model).attribute(x, target=case.target, n_references=3,
                                                   random_state=7)
    assert report.passed, f"{case.name} on {device}: {report}"
    want = ShuffleDeepLiftShap(cpu_model).attribute(cpu_x, target=case.target, n_references=3,
                                                    random_state=7)
    error = float((got.cpu() - want).abs().max())
    measured(f"|{device.type} - cpu| generated references", case.name, error)
    assert error <= AGREE[torch.float64] * max(1.0, float(want.abs().max()))
