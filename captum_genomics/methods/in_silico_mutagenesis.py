"""``InSilicoMutagenesis``: in-silico saturation mutagenesis, exact and fast.

Orchestration only: the edits, the naive and fast paths and the scores live
in :mod:`captum_genomics.ism` (:func:`~captum_genomics.ism.edit_changes`,
:func:`~captum_genomics.ism.ism_scores`).
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Literal, Sequence

from torch import Tensor

from captum_genomics._utils.batching import as_forward_args
from captum_genomics._utils.captum import PerturbationAttribution, log_usage
from captum_genomics._utils.checks import (
    check_eval_mode,
    check_one_hot,
    check_positive_int,
    check_tensor,
)
from captum_genomics._utils.devices import module_device, module_dtype
from captum_genomics._utils.targets import validate_target
from captum_genomics.ism.mutagenesis import FastPathReport, edit_changes
from captum_genomics.ism.scores import ism_scores

__all__ = ["InSilicoMutagenesis", "FastPathFallbackWarning"]


class FastPathFallbackWarning(UserWarning):
    """``fast=True`` was asked for but the model runs on the naive path (the reason is given)."""


def _check_fast(fast: Any, name: str = "fast") -> bool | str:
    if fast is True or fast is False or fast == "auto":
        return fast
    raise ValueError(f"`{name}` must be True, False or 'auto', got {fast!r}.")


def _check_bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"`{name}` must be a bool, got {value!r} ({type(value).__name__}).")
    return value


def _check_window(start: Any, end: Any, length: int) -> tuple[int, int]:
    for value, name in ((start, "start"), (end, "end")):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise TypeError(f"`{name}` must be None or an int, got {value!r} "
                            f"({type(value).__name__}).")
    lo = 0 if start is None else start
    hi = length if end is None else end
    if lo < 0 or lo >= length:
        raise ValueError(f"`start` must be in 0..{length - 1} (the sequences have length "
                         f"{length}), got {start}. Negative positions are not counted from "
                         "the end.")
    if hi > length or hi <= lo:
        raise ValueError(f"`end` must be in {lo + 1}..{length} (after `start`={lo}, at most the "
                         f"length {length}), got {end}. Unlike tangermeme, end=-1 does not mean "
                         "the last position: pass None for the whole sequence.")
    return lo, hi


class InSilicoMutagenesis(PerturbationAttribution):
    r"""In-silico saturation mutagenesis (ISM) of one-hot sequence models.

    For every position ``l`` of the edited window and every base ``a``, the
    change of the target output when the base at ``l`` is replaced by ``a``:
    ``f(x with x[:, l] = e_a) - f(x)``. The edit that re-applies the observed
    base is never run (its change is 0 by definition), so a position costs
    ``A - 1`` forward passes (``A`` at an ``N``).

    The edited sequences are computed with fastISM (Nair, Shrikumar,
    Schreiber & Kundaje 2022, Bioinformatics 38(9):2397) when the model allows
    it: the model is traced with ``torch.fx`` (milliseconds, no warm-up), the
    activations of each unedited sequence are computed once, and for each edit
    only the changed window of every position-local layer (convolutions,
    elementwise activations, pooling, batch norm and dropout in eval mode,
    residual sums, cropping) is recomputed, as a *change* added to the
    reference; the first layer that mixes positions (flatten, attention, a
    mean over the length...) gets the full activation. The result equals the
    naive loop up to floating-point rounding (checked to 1e-5 in float32 and
    1e-10 in float64 in ``tests/test_ism.py``); a model that cannot be traced,
    or whose first layer is not position-local, runs on the naive path, which
    is exact by construction. See ``docs/ism.md``.

    What differs from tangermeme's ``saturation_mutagenesis``: Captum's
    ``target``/``additional_forward_args`` conventions and several targets
    from the same forward passes; the output has the shape of the input
    (zero outside the edited window); changes are not centered unless
    ``centered=True``; the fast path has no capture step and no timed naive
    first batch.

    Parameters
    ----------
    forward_func : nn.Module or callable
        The model: ``(B, A, L)`` one-hot (plus ``additional_forward_args``)
        to an output indexed by ``target``. Dropout and batch-norm layers
        must be in eval mode. Only an ``nn.Module`` can use the fast path.
    fast : bool or "auto"
        ``"auto"`` (default): the fast path when the model supports it, the
        job is larger than one batch and the estimated gain is at least
        1.5x; ``True``: the fast path whenever the model supports it (a
        :class:`FastPathFallbackWarning`, once per instance, says why not);
        ``False``: always full forward passes.

    Attributes
    ----------
    fast_path : FastPathReport or None
        After a call: whether the fast path ran (``fast_path.used``) and why
        or why not (``fast_path.note``).
    """

    def __init__(self, forward_func: Callable, fast: bool | Literal["auto"] = "auto"):
        super().__init__(forward_func)
        self.fast = _check_fast(fast)
        self.fast_path: FastPathReport | None = None
        self._warned = False

    @property
    def fast_path_used(self) -> bool | None:
        """Whether the last call ran on the fast path (None before a call)."""
        return None if self.fast_path is None else self.fast_path.used

    @property
    def multiplies_by_inputs(self) -> bool:
        return False

    @log_usage()
    def attribute(
        self,
        inputs: Tensor,
        target: Any = None,
        additional_forward_args: Any = None,
        start: int | None = None,
        end: int | None = None,
        centered: bool = False,
        hypothetical: bool = False,
        batch_size: int = 64,
        show_progress: bool = False,
        targets: Sequence[Any] | None = None,
        fast: bool | Literal["auto"] | None = None,
    ) -> Tensor | list[Tensor]:
        r"""The change of the target output for every single-base edit.

        Parameters
        ----------
        inputs : Tensor ``(N, A, L)``
            One-hot sequences, float, in the model's dtype (channel-first,
            ACGT order for DNA); all-zero columns are ``N``.
        target : int, tuple, Tensor ``(N,)``, list of length N, or None
            Captum's ``target``: which output to explain. An ``int`` selects
            ``output[:, target]``, a tuple indexes the non-batch axes, a
            tensor or list gives one target per example, None requires an
            output ``(B,)`` or ``(B, 1)``. Default None.
        additional_forward_args : Any
            Extra model arguments (Captum's convention). A tensor whose first
            axis has size ``N`` is indexed per edited sequence; other values
            are passed unchanged.
        start, end : int or None
            Edit positions ``start <= l < end``, ``0 <= start < end <= L``.
            Default None: the whole sequence. Unlike tangermeme, a negative
            ``end`` is an error, not a count from the end.
        centered : bool
            Subtract, at every edited position, the mean over the ``A`` bases
            (the observed base's 0 included): tangermeme's
            ``saturation_mutagenesis`` convention. Default False.
        hypothetical : bool
            With ``centered=True``: return the centered values of all bases
            (True) or their projection on the observed base (False, default,
            tangermeme's default; an ``N`` position gets 0). Without
            ``centered`` it has no effect: the changes of all bases are
            returned, the observed base's being 0.
        batch_size : int
            Edited sequences per forward pass, which bounds memory. The fast
            path holds windows instead of full activations for its local
            layers: when a step's activations per edit are at least ``k``
            times smaller, it runs ``k * batch_size`` edits per step
            (``k <= 4``, :data:`~captum_genomics.ism.fast.MAX_STEP_FACTOR`), so
            that no step holds more activations than a naive batch of
            ``batch_size``. Default 64.
        show_progress : bool
            Show a tqdm progress bar over edits. Default False.
        targets : sequence of targets, optional
            Several targets from the same forward passes; each entry is a
            ``target`` as above. Returns a list with one result per target.
        fast : bool, "auto" or None
            Override the instance's ``fast`` for this call. Default None.

        Returns
        -------
        Tensor ``(N, A, L)`` or list of them (with ``targets``)
            On the inputs' device and dtype. Uncentered: entry ``[i, a, l]``
            is ``f(x_i edited to base a at l) - f(x_i)`` for the selected
            output, 0 at the observed base and outside ``[start, end)``. At an
            ``N`` position (an all-zero column) there is no observed base:
            all ``A`` bases are edits and all entries are changes.

        Raises
        ------
        TypeError
            ``inputs`` not a floating-point tensor (or a tuple), a dtype other
            than the model's, a non-int ``start``/``end``, a non-bool flag.
        ValueError
            ``inputs`` not ``(N, A, L)`` one-hot (values 0/1, at most one 1
            per column) or with ``N = 0``; ``start``/``end`` outside
            ``0 <= start < end <= L``; ``batch_size < 1``; a target out of
            range; both ``target`` and ``targets``; a model in training mode.
        """
        fast = self.fast if fast is None else _check_fast(fast)
        x = self._validate_inputs(inputs)
        n, a, length = x.shape
        lo, hi = _check_window(start, end, length)
        centered = _check_bool(centered, "centered")
        hypothetical = _check_bool(hypothetical, "hypothetical")
        show_progress = _check_bool(show_progress, "show_progress")
        check_positive_int(batch_size, "batch_size")
        if targets is not None and target is not None:
            raise ValueError("Pass either `target` or `targets`, not both.")
        if isinstance(targets, (str, Tensor)) or (targets is not None and not isinstance(
                targets, Sequence)):
            raise TypeError("`targets` must be a sequence of targets (e.g. a list), got "
                            f"{type(targets).__name__}.")
        target_list = list(targets) if targets is not None else [target]
        if not target_list:
            raise ValueError("`targets` must hold at least one target, got an empty sequence.")
        for t in target_list:
            validate_target(t, n, "targets" if targets is not None else "target")
        check_eval_mode(self.forward_func, "forward_func")
        extra = as_forward_args(additional_forward_args, n)
        dtype = module_dtype(self.forward_func, x.dtype)
        if x.dtype != dtype:
            raise TypeError(
                f"`inputs` has dtype {x.dtype} but the model's parameters are {dtype}; pass "
                f"`inputs.to({dtype})` or convert the model (e.g. `model.to({x.dtype})`)."
            )
        device = module_device(self.forward_func, x.device)
        changes, report = edit_changes(
            self.forward_func, x.detach().to(device), target_list, extra, lo, hi, batch_size,
            fast, show_progress)
        self.fast_path = report
        if fast is True and not report.used and not self._warned:
            self._warned = True
            warnings.warn(f"InSilicoMutagenesis(fast=True) runs on the naive path: "
                          f"{report.note}.", FastPathFallbackWarning, stacklevel=3)
        x_dev = x.detach().to(device)
        results = [ism_scores(c, x_dev, lo, hi, centered, hypothetical).to(x.device)
                   for c in changes]
        return results if targets is not None else results[0]

    @staticmethod
    def _validate_inputs(inputs: Any) -> Tensor:
        if isinstance(inputs, (tuple, list)):
            raise TypeError("`inputs` must be one tensor (N, A, L) of one-hot sequences; ISM of "
                            f"models with several inputs is not supported (got a "
                            f"{type(inputs).__name__} of {len(inputs)}).")
        x = check_tensor(inputs, "inputs")
        if not x.is_floating_point():
            raise TypeError(f"`inputs` must be a floating-point tensor (one-hot float32 or "
                            f"float64), got dtype {x.dtype}.")
        if x.ndim != 3:
            raise ValueError(f"`inputs` must have shape (N, A, L), got {tuple(x.shape)}.")
        if x.shape[0] == 0 or x.shape[2] == 0:
            raise ValueError(f"`inputs` is empty (shape {tuple(x.shape)}); need N >= 1 "
                             "sequences of length L >= 1.")
        if x.shape[1] < 2:
            raise ValueError(f"`inputs` must have an alphabet axis of at least 2 channels "
                             f"(axis 1), got shape {tuple(x.shape)}.")
        check_one_hot(x, "inputs", dim=1)
        return x
