"""Batch invariance and determinism of ShuffleDeepLiftShap.

An example's attributions must not depend on which other examples share its
batch, on ``batch_size``, or on anything but its own seed. The check is
bitwise (``torch.equal``) on every model whose CPU kernels allow it (float64
convolutions, piecewise-linear activations, pools, linear heads: the
``bitwise`` flag of the catalog models). Transcendental activations (ELU,
SELU, CELU, SiLU, Mish, Softplus, Sigmoid, and not guaranteed for GELU,
Tanh, LayerNorm, softmax) make bitwise equality impossible on CPU: PyTorch
computes the tail of a tensor in scalar code and the rest vectorized, and the
two differ in the last bit, so a row's values depend on the batch's total
size. There the bound is ``INVARIANCE_TOL[dtype] * (1 + max|attr|)``
(``1e-12`` in float64); the worst difference measured is printed at the end
of the run.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from captum_genomics import ShuffleDeepLiftShap
from captum_genomics.testing.checks import check_batch_invariance, check_determinism
from captum_genomics.testing.architectures import architectures, build_arch
from captum_genomics.testing.models import (
    INVARIANCE_TOL,
    STRATEGIES,
    batches,
    bounded,
    needs_generated_references,
)


def _tolerance(bitwise: bool | None, dtype) -> dict:
    tol = 0.0 if bitwise else INVARIANCE_TOL[dtype]
    return {"atol": tol, "rtol": tol}


def _record(measured, check, name, report):
    measured(f"{check}, max |diff|", name, report.max_error)
    if not report.details["exact"]:
        measured(f"{check}, max |diff| where not bitwise", name, report.max_error)


@bounded(3)
@given(data=st.data())
def test_batch_invariance_explicit_references(case, strategy, data, max_n, max_k, measured):
    batch = data.draw(batches(case.length, max_n=max_n, max_k=max_k, dtype=case.dtype))
    report = check_batch_invariance(ShuffleDeepLiftShap(case.model), batch.inputs,
                                    batch.references, target=case.target,
                                    **_tolerance(case.bitwise, case.dtype), **strategy)
    _record(measured, "batch invariance (explicit refs)", case.name, report)
    assert report.passed, f"{case.name} (bitwise expected: {case.bitwise}): {report}"


@bounded(2)
@given(data=st.data())
def test_batch_invariance_hypothetical_and_multipliers(case, data, max_n, max_k):
    batch = data.draw(batches(case.length, max_n=max_n, max_k=max_k, dtype=case.dtype))
    explainer = ShuffleDeepLiftShap(case.model)
    strategy = data.draw(st.sampled_from(STRATEGIES))
    for kw in ({"hypothetical": True}, {"return_multipliers": True}):
        report = check_batch_invariance(explainer, batch.inputs, batch.references,
                                        target=case.target,
                                        **_tolerance(case.bitwise, case.dtype), **kw, **strategy)
        assert report.passed, f"{case.name} {kw}: {report}"


@needs_generated_references
@bounded(2)
@given(data=st.data())
def test_batch_invariance_generated_references(case, strategy, data, max_n, max_k, measured):
    batch = data.draw(batches(case.length, max_n=max_n, max_k=1, dtype=case.dtype))
    report = check_batch_invariance(ShuffleDeepLiftShap(case.model), batch.inputs, None,
                                    target=case.target, n_references=max_k,
                                    random_state=batch.seed,
                                    **_tolerance(case.bitwise, case.dtype), **strategy)
    _record(measured, "batch invariance (generated refs)", case.name, report)
    assert report.passed, f"{case.name} (bitwise expected: {case.bitwise}): {report}"


@needs_generated_references
@bounded(3)
@given(data=st.data())
def test_determinism(case, data, max_n, max_k):
    batch = data.draw(batches(case.length, max_n=max_n, max_k=1, dtype=case.dtype))
    report = check_determinism(ShuffleDeepLiftShap(case.model), batch.inputs, None,
                               target=case.target, random_state=batch.seed,
                               other_random_state=batch.seed + 1, n_references=max_k)
    assert report.passed, f"{case.name}: {report}"


@bounded(3)
@given(data=st.data())
def test_repeated_calls_identical(case, data, max_n, max_k):
    batch = data.draw(batches(case.length, max_n=max_n, max_k=max_k, dtype=case.dtype))
    report = check_determinism(ShuffleDeepLiftShap(case.model), batch.inputs,
                               batch.references, target=case.target)
    assert report.passed, f"{case.name}: {report}"


@pytest.mark.builtin
@bounded(10)
@given(spec=architectures(), data=st.data())
def test_batch_invariance_random_architectures(spec, data, measured):
    model = build_arch(spec)
    batch = data.draw(batches(spec.length))
    report = check_batch_invariance(ShuffleDeepLiftShap(model), batch.inputs, batch.references,
                                    target=data.draw(st.integers(0, 2)),
                                    **_tolerance(spec.bitwise, batch.inputs.dtype),
                                    **data.draw(st.sampled_from(STRATEGIES)))
    _record(measured, "batch invariance (explicit refs)", "random architectures", report)
    assert report.passed, f"{spec} (bitwise expected: {spec.bitwise}): {report}"


@pytest.mark.builtin
def test_cpu_kernels_that_are_not_batch_invariant(measured):
    """Documents the kernels that make bitwise batch invariance impossible (no assertion of it).

    A row's result can depend on how many rows share the call: transcendental
    elementwise functions compute the tail of a tensor in scalar code, and a
    float64 GEMM takes another kernel for rows beyond a multiple of 4 (MKL on
    AVX2). Other CPUs or BLAS builds may happen to agree bitwise; the suite
    only bounds the differences (``INVARIANCE_TOL``).
    """
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 66, generator=g, dtype=torch.float64)
    for name, fn in (("softplus", F.softplus), ("elu", F.elu), ("sigmoid", torch.sigmoid)):
        alone = torch.cat([fn(x[i:i + 1]) for i in range(len(x))])
        error = float((alone - fn(x)).abs().max())
        measured(f"CPU kernel row-vs-batch |diff|: {name} (documented)", "kernel", error)
        assert error <= 4 * torch.finfo(torch.float64).eps
    w = torch.randn(64, 100, generator=g, dtype=torch.float64)
    a = torch.randn(8, 100, generator=g, dtype=torch.float64)
    worst = max(float((a[:m] @ w.T - (a @ w.T)[:m]).abs().max()) for m in range(1, 9))
    measured("CPU kernel row-vs-batch |diff|: matmul (documented)", "kernel", worst)
    assert worst <= 1e-13
