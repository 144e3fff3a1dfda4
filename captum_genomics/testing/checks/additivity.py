"""Additivity: attributions sum to ``f(x) - mean_k f(r_k)`` (DeepLIFT's summation-to-delta)."""

from __future__ import annotations

import warnings
from typing import Any, Callable

import torch
from torch import Tensor

from captum_genomics._utils.batching import index_examples
from captum_genomics._utils.captum import format_additional_forward_args
from captum_genomics._utils.devices import module_device
from captum_genomics._utils.targets import make_selector
from captum_genomics.testing.checks.report import CheckReport, _as_tuple, _explicit, _generate_references, _model_of, _passes

__all__ = ["check_additivity", "reference_outputs"]


def _select(output: Tensor, target: Any, n: int, k: int = 1) -> Tensor:
    return make_selector(target, torch.arange(n).repeat_interleave(k), n)(output)


def reference_outputs(model: Callable, inputs: Tensor | tuple[Tensor, ...],
                      references: Tensor | tuple[Tensor, ...], target: Any = None,
                      additional_forward_args: Any = None) -> tuple[Tensor, Tensor]:
    """Plain forward passes of the inputs and of every reference (no DeepLIFT).

    Parameters
    ----------
    model
        The model (``nn.Module`` or callable).
    inputs : Tensor ``(N, A, L)`` or tuple of ``(N, *shape_j)``
    references : Tensor ``(N, K, A, L)`` or tuple of ``(N, K, *shape_j)``
    target
        Captum ``target`` (int, tuple, per-example tensor/list or None).
    additional_forward_args
        Extra model arguments; a tensor whose first axis has size ``N`` is
        indexed per example (per pair for the references).

    Returns
    -------
    f_x : Tensor ``(N,)``
        The selected output on each input, in float64.
    f_r : Tensor ``(N, K)``
        The selected output on each reference, in float64.
    """
    xs, rs = _as_tuple(inputs), _as_tuple(references)
    n, k = xs[0].shape[0], rs[0].shape[1]
    device = module_device(model, xs[0].device)
    extra = format_additional_forward_args(additional_forward_args)
    ex = torch.arange(n).repeat_interleave(k)

    with torch.no_grad():
        fx = _select(model(*(x.to(device) for x in xs),
                           *index_examples(extra, torch.arange(n), n, device)), target, n)
        fr = _select(model(*(r.reshape(n * k, *r.shape[2:]).to(device) for r in rs),
                           *index_examples(extra, ex, n, device)), target, n, k)
    return fx.double().cpu(), fr.double().cpu().reshape(n, k)


def check_additivity(
    explainer,
    inputs: Tensor | tuple[Tensor, ...],
    references: Any = None,
    target: Any = None,
    atol: float = 1e-10,
    n_references: int = 4,
    random_state: int | None = 0,
    additional_forward_args: Any = None,
    **attribute_kwargs,
) -> CheckReport:
    """DeepLIFT's summation-to-delta, per pair and for the averaged attributions.

    Two errors are measured and both must be ``<= atol``:

    * ``pair_delta``: ``max |delta|`` over the ``(N, K)`` convergence deltas
      the method returns, ``sum(m * (x - r)) - (f(x) - f(r))`` per
      example-reference pair;
    * ``sum_vs_output``: ``max_i |sum(attributions_i) - mean_k (f(x_i) -
      f(r_ik))|`` with ``f`` evaluated by plain forward passes of the model,
      independently of the method.

    The second needs the references, so generated ones (``references`` not a
    tensor) are produced first with the package's generators and passed
    explicitly. For one-hot inputs with ``N`` (all-zero) columns the second
    error is only zero if the references are all-zero there too: the
    contribution ``m * (x - r)`` of such a column is ``-sum(m * r)``, which
    projection onto the observed (absent) base drops.

    Parameters
    ----------
    explainer
        A Captum-style attribution object (e.g. ``ShuffleDeepLiftShap(model)``)
        whose ``attribute`` takes ``references`` and
        ``return_convergence_delta``. Use a float64 model for ``atol=1e-10``.
    inputs : Tensor ``(N, A, L)`` or tuple of ``(N, *shape_j)``
    references : Tensor ``(N, K, A, L)``, tuple, or a generator spec
        As in ``ShuffleDeepLiftShap.attribute``. Default None (dinucleotide
        shuffles, generated here with ``n_references`` and ``random_state``).
    target
        Captum ``target``. Default None.
    atol : float
        Bound on both errors. Default ``1e-10`` (float64).
    n_references, random_state
        Used when the references are generated. Defaults 4 and 0.
    additional_forward_args
        Extra model arguments, passed to the method and to the plain forwards.
    **attribute_kwargs
        Passed to ``attribute`` (e.g. ``batch_size``).

    Returns
    -------
    CheckReport
        ``details``: ``pair_delta``, ``sum_vs_output``, ``max_abs_output_difference``.
    """
    xs = _as_tuple(inputs)
    refs = references if _explicit(references) else _generate_references(
        xs, references, n_references, random_state)
    refs_t = _as_tuple(refs)
    model = _model_of(explainer)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        attr, delta = explainer.attribute(
            inputs, references=refs if isinstance(inputs, (tuple, list)) else refs_t[0],
            target=target, additional_forward_args=additional_forward_args,
            return_convergence_delta=True, **attribute_kwargs)
    fx, fr = reference_outputs(model, inputs, refs_t, target, additional_forward_args)
    n = xs[0].shape[0]
    total = sum(a.detach().double().cpu().reshape(n, -1).sum(1) for a in _as_tuple(attr))
    expected = (fx[:, None] - fr).mean(1)
    pair = float(delta.detach().abs().max()) if delta.numel() else 0.0
    summed = float((total - expected).abs().max())
    error = max(pair, summed)
    return CheckReport(
        "additivity", _passes(error, atol), error, atol,
        {"pair_delta": pair, "sum_vs_output": summed,
         "max_abs_output_difference": float((fx[:, None] - fr).abs().max())},
    )
