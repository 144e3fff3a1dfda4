"""Cascading model-parameter randomisation: the sanity check of attribution methods.

Adebayo et al. 2018, "Sanity checks for saliency maps" (NeurIPS): re-initialise
the model's layers one at a time from the top (output) layer downward,
cumulatively, and compare each attribution map with the map of the trained
model. A method whose maps barely change once every layer is random does not
depend on what the model learnt (e.g. it mostly reflects the input) and is
flagged.

- :func:`randomizable_layers`: the module names that can be re-initialised.
- :func:`cascading_randomization`: the randomised copies, top layer first.
- :func:`randomization_spearman`: per-step, per-example Spearman of the
  observed-base scores against the trained model's (Adebayo et al. report the
  Spearman rank correlation, with and without absolute values; here the signed
  observed-base score of :func:`~captum_genomics.comparison.metrics.observed_scores`).
- :func:`flag_insensitive`: the verdict from that table.

Re-initialisation calls each module's own ``reset_parameters()`` (PyTorch's
default initialiser for that layer) on a deep copy, inside
``torch.random.fork_rng`` seeded with ``(random_state, step)``: results are
deterministic, and neither the user's model nor the global RNG state changes.
"""

from __future__ import annotations

import copy
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from captum_genomics._utils.checks import (
    check_finite,
    check_one_hot,
    check_random_state,
    check_shape,
    check_tensor,
)
from captum_genomics.comparison.metrics import _spearman_rows, observed_scores

__all__ = [
    "randomizable_layers",
    "cascading_randomization",
    "randomization_spearman",
    "flag_insensitive",
]


def _check_model(model) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be a torch.nn.Module, got {type(model).__name__}.")
    return model


def randomizable_layers(model: nn.Module) -> list[str]:
    """Names of the modules that own parameters and have a ``reset_parameters`` method.

    Parameters
    ----------
    model : torch.nn.Module
        The model; not modified.

    Returns
    -------
    list of str
        Module names as in ``model.named_modules()``, in registration order
        (for a sequential model: input side first, i.e. bottom to top). Only
        modules with parameters of their own (``parameters(recurse=False)``)
        count, so a container is never listed, only its leaves. A model that is
        itself such a module (e.g. a bare ``nn.Conv1d``) is listed as ``""``.
        Modules whose initialiser is private (``nn.MultiheadAttention``) or
        absent (custom ``nn.Parameter`` s) are not listed; batch-norm layers
        are (their ``reset_parameters`` restores weight 1, bias 0 and the
        running statistics).

    Raises
    ------
    TypeError
        If ``model`` is not a ``torch.nn.Module``.
    """
    _check_model(model)
    names = []
    for name, module in model.named_modules():
        has_own = next(module.parameters(recurse=False), None) is not None
        if has_own and callable(getattr(module, "reset_parameters", None)):
            names.append(name)
    return names


def _check_layers(model: nn.Module, layers) -> list[str]:
    available = randomizable_layers(model)
    if layers is None:
        if not available:
            raise ValueError(
                "`model` has no layer to randomise: no submodule owns parameters and "
                "defines `reset_parameters()`."
            )
        return available
    if isinstance(layers, str) or not isinstance(layers, Sequence):
        raise TypeError(
            f"`layers` must be a list of module names (bottom to top) or None, "
            f"got {type(layers).__name__}."
        )
    layers = list(layers)
    if not layers:
        raise ValueError("`layers` must name at least one module, got an empty list.")
    unknown = [name for name in layers if name not in available]
    if unknown:
        raise ValueError(
            f"`layers` must name modules from `randomizable_layers(model)` "
            f"({available}); got unknown or non-randomisable {unknown}."
        )
    if len(set(layers)) != len(layers):
        raise ValueError(f"`layers` must not repeat a module name, got {layers}.")
    return layers


def _step_seed(random_state: int, step: int) -> int:
    """A 64-bit seed from ``(random_state, step)`` (numpy ``SeedSequence``)."""
    state = np.random.SeedSequence([random_state, step]).generate_state(1, dtype=np.uint64)
    return int(state[0])


def _cuda_devices(model: nn.Module) -> list[int]:
    return sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})


def cascading_randomization(
    model: nn.Module,
    layers: Sequence[str] | None = None,
    random_state: int | None = 0,
) -> Iterator[tuple[int, str, nn.Module]]:
    """Copies of ``model`` with its top layers re-initialised, cumulatively, top first.

    Adebayo et al. 2018, cascading randomisation: step ``k`` (1 to
    ``len(layers)``) has the top ``k`` layers re-initialised, i.e.
    ``layers[-k:]``; step ``len(layers)`` has every listed layer random. The
    trained model (step 0) is not yielded.

    Re-initialisation: ``module.reset_parameters()`` of ``layers[-k]`` at step
    ``k``, inside ``torch.random.fork_rng`` (CPU and the model's CUDA devices)
    seeded from ``(random_state, k)``, so the global RNG state is unchanged and
    the same ``random_state`` gives the same copies.

    Parameters
    ----------
    model : torch.nn.Module
        The trained model; never modified (each copy is a ``copy.deepcopy``).
    layers : list of str, optional
        Module names in bottom-to-top order, each from
        :func:`randomizable_layers`; randomised from the last entry to the
        first. Default None: all of :func:`randomizable_layers` ``(model)``.
    random_state : int or None
        Seed of the re-initialisations. Default 0. None: fresh entropy (not
        reproducible).

    Returns
    -------
    iterator of (step, layer_name, randomized_copy)
        ``step`` int from 1, ``layer_name`` the module re-initialised at this
        step, ``randomized_copy`` an independent ``nn.Module`` in eval mode on
        the model's device(s).

    Raises
    ------
    TypeError
        If ``model`` is not a module, ``layers`` not a list of names or
        ``random_state`` not an int.
    ValueError
        If a name in ``layers`` is unknown, not randomisable or repeated, or the
        model has no randomisable layer. Raised at the call, before iterating.
    """
    _check_model(model)
    layers = _check_layers(model, layers)
    random_state = check_random_state(random_state, "random_state")
    if random_state is None:
        random_state = int(np.random.SeedSequence().generate_state(1, dtype=np.uint64)[0])
    return _cascade(model, layers, random_state)


def _cascade(model: nn.Module, layers: list[str], random_state: int):
    work = copy.deepcopy(model)
    modules = dict(work.named_modules())
    devices = _cuda_devices(work)
    for step, name in enumerate(reversed(layers), start=1):
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(_step_seed(random_state, step))
            with torch.no_grad():
                modules[name].reset_parameters()
        yield step, name, copy.deepcopy(work).eval()


def _attribute(attribute, model, inputs: Tensor, step: int) -> np.ndarray:
    attr = attribute(model, inputs.clone())
    where = f"attribute(model, inputs) output at step {step}"
    if not isinstance(attr, Tensor):
        raise TypeError(
            f"`attribute(model, inputs)` at step {step} must return a torch.Tensor, "
            f"got {type(attr).__name__}."
        )
    check_shape(attr, where, tuple(inputs.shape))
    attr = attr.detach().to("cpu", torch.float64)
    check_finite(attr, where)
    return observed_scores(attr, inputs.detach().cpu()).numpy()


def randomization_spearman(
    attribute: Callable[[nn.Module, Tensor], Tensor],
    model: nn.Module,
    inputs: Tensor,
    layers: Sequence[str] | None = None,
    random_state: int | None = 0,
    show_progress: bool = False,
):
    """Per-example Spearman of observed-base scores, each randomisation step vs step 0.

    Adebayo et al. 2018's cascading randomisation test. For each step of
    :func:`cascading_randomization` (and step 0, the trained model), the
    attribution ``attribute(model_k, inputs)`` is reduced to the observed-base
    score (:func:`~captum_genomics.comparison.metrics.observed_scores`, ``(N,
    L)``) and compared with step 0 per example by ``scipy.stats.spearmanr``.

    Parameters
    ----------
    attribute : callable
        ``attribute(model, inputs) -> Tensor (N, 4, L)``, e.g.
        ``lambda m, x: Saliency(m).attribute(x, target=0)``. It receives a deep
        copy in eval mode (also at step 0) and a clone of ``inputs``.
    model : torch.nn.Module
        The trained model; never modified.
    inputs : Tensor, float, shape=(N, 4, L)
        One-hot sequences, on the model's device; not modified.
    layers : list of str, optional
        As in :func:`cascading_randomization`. Default None: all randomisable.
    random_state : int or None
        Seed of the re-initialisations. Default 0.
    show_progress : bool
        A tqdm bar over the steps. Default False.

    Returns
    -------
    pandas.DataFrame
        Columns ``step`` (int64, 0 = trained model), ``layer`` (str, the layer
        re-initialised at that step, ``""`` at step 0), ``example`` (int64),
        ``spearman`` (float64). Step 0 rows are 1.0. A step whose scores for an
        example equal step 0's exactly gets 1.0 (identical maps); otherwise a
        constant score vector gives NaN.

    Raises
    ------
    TypeError
        If ``attribute`` is not callable, ``inputs`` not a tensor, or
        ``attribute`` returns something other than a tensor.
    ValueError
        If ``inputs`` is not one-hot ``(N, 4, L)``, ``attribute`` returns the
        wrong shape or NaN/Inf, or ``layers`` is invalid (see
        :func:`cascading_randomization`).
    """
    import pandas as pd

    if not callable(attribute):
        raise TypeError(
            f"`attribute` must be a callable attribute(model, inputs) -> Tensor (N, 4, L), "
            f"got {type(attribute).__name__}."
        )
    check_tensor(inputs, "inputs")
    check_shape(inputs, "inputs", (None, 4, None))
    check_one_hot(inputs, "inputs", dim=1)
    steps = cascading_randomization(model, layers=layers, random_state=random_state)
    n_steps = len(_check_layers(model, layers))
    n = inputs.shape[0]

    base = _attribute(attribute, copy.deepcopy(model).eval(), inputs, 0)
    rows_step = [np.zeros(n, dtype=np.int64)]
    rows_layer = [[""] * n]
    rows_rho = [np.ones(n)]
    if show_progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, total=n_steps, desc="randomisation", unit="step")
    for step, name, randomized in steps:
        scores = _attribute(attribute, randomized, inputs, step)
        rho = _spearman_rows(scores, base)
        rho[(scores == base).all(axis=1)] = 1.0
        rows_step.append(np.full(n, step, dtype=np.int64))
        rows_layer.append([name] * n)
        rows_rho.append(rho)
    return pd.DataFrame({
        "step": np.concatenate(rows_step),
        "layer": [name for block in rows_layer for name in block],
        "example": np.tile(np.arange(n, dtype=np.int64), len(rows_step)),
        "spearman": np.concatenate(rows_rho).astype(np.float64),
    })


def flag_insensitive(frame, threshold: float = 0.5) -> bool:
    """Whether a method fails the randomisation sanity check.

    True when the median Spearman over examples at the last step (every
    listed layer random) is still above ``threshold``: the maps do not depend
    on the model's parameters (Adebayo et al. 2018). NaN values (a constant map
    at that step) are skipped; if all are NaN the method is not flagged (its
    map changed to a constant).

    Parameters
    ----------
    frame : pandas.DataFrame
        From :func:`randomization_spearman`, for one method (columns ``step``,
        ``spearman``; other columns ignored).
    threshold : float
        Median Spearman above which the method is flagged. Default 0.5.

    Returns
    -------
    bool

    Raises
    ------
    TypeError
        If ``frame`` is not a DataFrame or ``threshold`` not a real number.
    ValueError
        If ``frame`` lacks a column, has no randomised step (step > 0), or
        ``threshold`` is not finite.
    """
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"`frame` must be a pandas.DataFrame, got {type(frame).__name__}.")
    missing = [c for c in ("step", "spearman") if c not in frame.columns]
    if missing:
        raise ValueError(
            f"`frame` must have columns 'step' and 'spearman' (from randomization_spearman), "
            f"missing {missing}; got columns {list(frame.columns)}."
        )
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating,
                                                                 np.integer)):
        raise TypeError(f"`threshold` must be a real number, got {type(threshold).__name__}.")
    if not np.isfinite(threshold):
        raise ValueError(f"`threshold` must be finite, got {threshold!r}.")
    if "method" in frame.columns and frame["method"].nunique() > 1:
        raise ValueError(
            f"`frame` must hold one method, got {frame['method'].nunique()} "
            f"({sorted(map(str, frame['method'].unique()))}); filter it first."
        )
    last = frame["step"].max() if len(frame) else 0
    if not last > 0:
        raise ValueError("`frame` has no randomised step (step > 0); expected steps 0..K, K >= 1.")
    values = frame.loc[frame["step"] == last, "spearman"].astype(float).dropna()
    return bool(len(values) and values.median() > threshold)
