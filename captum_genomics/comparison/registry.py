"""The methods a comparison study can run, by name, and the user's own.

Every entry turns ``(model, inputs, target, context)`` into an attribution map
``(N, 4, L)`` (float32, CPU). Reference-based methods share one set of
per-example dinucleotide shuffles (``context.references``), so ours and the
peers explain the same example-reference pairs.

Built-in names (the map each returns):

- ``deeplift_shap``: :class:`~captum_genomics.ShuffleDeepLiftShap`,
  hypothetical contributions (its value at the observed base is the
  contribution).
- ``saliency``: the signed gradient (Simonyan et al. 2014; Captum
  ``Saliency(abs=False)``), all four bases.
- ``grad_x_input``: gradient times input (Shrikumar et al. 2016; Captum
  ``InputXGradient``).
- ``ig_zero``, ``ig_shuffle``: Captum ``IntegratedGradients`` (Sundararajan
  et al. 2017) from the all-zero reference, and averaged over the shuffled
  references.
- ``gradient_shap``: Captum ``GradientShap`` with the shuffled references as
  its baseline distribution.
- ``ism``: :class:`~captum_genomics.InSilicoMutagenesis`, centred (mean over
  the four bases subtracted; tangermeme's convention), all four bases.
- ``<gradient method>_corrected``: the same method on the gradient-corrected
  model (Majdandzic et al. 2023; :mod:`captum_genomics.gradients`).
- peers, when installed: ``tangermeme_deep_lift_shap`` (tangermeme 1.6
  ``deep_lift_shap``, hypothetical contributions) and ``captum_deeplift_shap``
  (Captum ``DeepLiftShap``, each example against its own references).
"""

from __future__ import annotations

import copy
import importlib.util
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor, nn

__all__ = [
    "MethodSpec",
    "MethodRun",
    "StudyContext",
    "builtin_methods",
    "default_method_names",
    "resolve_methods",
    "GRADIENT_METHODS",
]


@dataclass
class StudyContext:
    """What every method of one study shares.

    Attributes
    ----------
    references : Tensor ``(N, K, 4, L)``
        Per-example references (dinucleotide shuffles by default).
    batch_size : int
        Examples (or example-reference pairs) per model call.
    ig_steps : int
        Integration steps of Integrated Gradients.
    random_state : int
        Seeds GradientShap's draws (through a forked RNG).
    """

    references: Tensor
    batch_size: int = 64
    ig_steps: int = 32
    random_state: int = 0


@dataclass
class MethodRun:
    """One method's output on a set of examples.

    Attributes
    ----------
    attributions : Tensor ``(N, 4, L)`` float32 CPU
    off_simplex_angle : Tensor ``(N,)`` or None
        Degrees: the mean angle between the gradient and the simplex plane
        that the correction removed (corrected methods only).
    """

    attributions: Tensor
    off_simplex_angle: Tensor | None = None


@dataclass(frozen=True)
class MethodSpec:
    """A method of a study.

    Attributes
    ----------
    name : str
        The name in tables and figures.
    run : callable ``(model, inputs, target, context) -> Tensor | MethodRun``
    kind : str
        ``"ours"``, ``"gradient"``, ``"perturbation"``, ``"peer"`` or ``"user"``.
    baseline : str
        What the method explains the difference from, so what its
        completeness is measured against: ``"shuffle"`` (the mean over
        ``context.references``), ``"zero"`` (the all-zero input) or ``""``
        (completeness undefined).
    randomizable : bool
        Whether the cascading-randomisation check can rebuild the method on a
        randomised copy of the model.
    hypothetical : bool
        True when the map gives, at every base, what that base would
        contribute (hypothetical contributions, gradients, ISM): a position's
        score is then its value at the observed base. False (contribution
        maps such as ``(x - r) * g``, whose reference side sits at the other
        bases): a position's score is the sum over its four bases.
    """

    name: str
    run: Callable[..., Any]
    kind: str
    baseline: str = ""
    randomizable: bool = True
    hypothetical: bool = False


GRADIENT_METHODS = ("saliency", "grad_x_input", "ig_zero", "ig_shuffle", "gradient_shap")


def _target_kw(target):
    return {} if target is None else {"target": target}


def _deeplift_shap(model, x, target, ctx: StudyContext):
    from captum_genomics.methods import ShuffleDeepLiftShap

    return ShuffleDeepLiftShap(model).attribute(
        x, references=ctx.references.to(x.dtype), target=target, hypothetical=True,
        batch_size=ctx.batch_size, warning_threshold=float("inf"))


def _saliency(model, x, target, ctx):
    from captum.attr import Saliency

    return Saliency(model).attribute(x, abs=False, **_target_kw(target))


def _grad_x_input(model, x, target, ctx):
    from captum.attr import InputXGradient

    return InputXGradient(model).attribute(x, **_target_kw(target))


def _ig_zero(model, x, target, ctx):
    from captum.attr import IntegratedGradients

    return IntegratedGradients(model).attribute(
        x, baselines=torch.zeros_like(x), n_steps=ctx.ig_steps,
        internal_batch_size=ctx.batch_size * ctx.ig_steps, **_target_kw(target))


def _repeat_target(target, k: int):
    if isinstance(target, Tensor) and target.dim() > 0 and target.numel() > 1:
        return target.repeat_interleave(k)
    if isinstance(target, list):
        return [t for t in target for _ in range(k)]
    return target


def _ig_shuffle(model, x, target, ctx):
    """IG from each shuffled reference, averaged: one Captum call over the (N*K) pairs."""
    from captum.attr import IntegratedGradients

    refs = ctx.references.to(x.dtype)
    n, k = refs.shape[:2]
    attr = IntegratedGradients(model).attribute(
        x.repeat_interleave(k, 0), baselines=refs.reshape(n * k, *refs.shape[2:]),
        n_steps=ctx.ig_steps, internal_batch_size=ctx.batch_size * ctx.ig_steps,
        **_target_kw(_repeat_target(target, k)))
    return attr.reshape(n, k, *x.shape[1:]).mean(1)


def _gradient_shap(model, x, target, ctx):
    from captum.attr import GradientShap

    refs = ctx.references.to(x.dtype)
    pool = refs.reshape(-1, *refs.shape[2:])
    # Captum draws the baselines with numpy's global RNG and the interpolation points with
    # torch's: seed both, and give the caller's states back
    state = np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(ctx.random_state)
            np.random.seed(ctx.random_state % 2**32)
            return GradientShap(model).attribute(x, baselines=pool, n_samples=refs.shape[1],
                                                 stdevs=0.0, **_target_kw(target))
    finally:
        np.random.set_state(state)


def _ism(model, x, target, ctx):
    from captum_genomics.methods import InSilicoMutagenesis

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return InSilicoMutagenesis(model).attribute(
            x, target=target, centered=True, hypothetical=True, batch_size=ctx.batch_size * 4)


def _tangermeme(model, x, target, ctx):
    from tangermeme.deep_lift_shap import deep_lift_shap

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return deep_lift_shap(model, x, target=0 if target is None else target,
                              references=ctx.references.to(x.dtype), hypothetical=True,
                              batch_size=ctx.batch_size, warning_threshold=float("inf"),
                              device="cpu")


def _captum_deeplift_shap(model, x, target, ctx):
    from captum.attr import DeepLiftShap

    explainer = DeepLiftShap(model)
    refs = ctx.references.to(x.dtype)
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(x.shape[0]):
            t = target[i:i + 1] if isinstance(target, Tensor) and target.dim() else target
            out.append(explainer.attribute(x[i:i + 1], baselines=refs[i], **_target_kw(t)))
    return torch.cat(out)


def _corrected(run: Callable, layout: str, per_reference: bool = False) -> Callable:
    """The same method run on the gradient-corrected model, recording the angle removed.

    ``layout`` says how the method lays out its expanded rows (Captum's
    IntegratedGradients: step-major; GradientShap: example-major);
    ``per_reference``: the method runs over the ``N * K`` example-reference
    pairs (example-major), whose angles are averaged per example.
    """

    def corrected(model, x, target, ctx):
        from captum_genomics.gradients import GradientCorrectedModel

        wrapped = GradientCorrectedModel(model)
        with wrapped.record_angles() as record:
            attributions = run(wrapped, x, target, ctx)
        n = x.shape[0]
        k = ctx.references.shape[1] if per_reference else 1
        angle = record.mean_angle(n_examples=n * k, layout=layout)
        return MethodRun(attributions, angle.reshape(n, k).mean(1))

    return corrected


def _available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def builtin_methods() -> dict[str, MethodSpec]:
    """Every built-in method by name (peers only when their package is installed).

    Returns
    -------
    dict of str to MethodSpec
        In the default display order.
    """
    base = {
        "deeplift_shap": MethodSpec("deeplift_shap", _deeplift_shap, "ours", "shuffle",
                                    hypothetical=True),
        "ism": MethodSpec("ism", _ism, "perturbation", hypothetical=True),
        "saliency": MethodSpec("saliency", _saliency, "gradient", hypothetical=True),
        "grad_x_input": MethodSpec("grad_x_input", _grad_x_input, "gradient"),
        "ig_zero": MethodSpec("ig_zero", _ig_zero, "gradient", "zero"),
        "ig_shuffle": MethodSpec("ig_shuffle", _ig_shuffle, "gradient", "shuffle"),
        "gradient_shap": MethodSpec("gradient_shap", _gradient_shap, "gradient"),
    }
    for name in GRADIENT_METHODS:
        spec = base[name]
        layout = "example_major" if name == "gradient_shap" else "step_major"
        base[f"{name}_corrected"] = MethodSpec(
            f"{name}_corrected", _corrected(spec.run, layout, name == "ig_shuffle"),
            "gradient", spec.baseline, hypothetical=spec.hypothetical)
    if _available("tangermeme"):
        base["tangermeme_deep_lift_shap"] = MethodSpec(
            "tangermeme_deep_lift_shap", _tangermeme, "peer", "shuffle", hypothetical=True)
    base["captum_deeplift_shap"] = MethodSpec(
        "captum_deeplift_shap", _captum_deeplift_shap, "peer", "shuffle")
    return base


def default_method_names() -> list[str]:
    """The methods a study runs when ``methods`` is None: every built-in one."""
    return list(builtin_methods())


def _user_spec(name: str, method: Any) -> MethodSpec:
    from captum.attr import Attribution

    if isinstance(method, Attribution):
        def run(model, x, target, ctx, _method=method):
            explainer = _method
            if model is not _method.forward_func:
                explainer = copy.copy(_method)
                explainer.forward_func = model
            return explainer.attribute(x, **_target_kw(target))

        randomizable = isinstance(getattr(method, "forward_func", None), nn.Module)
        return MethodSpec(name, run, "user", "", randomizable)
    if callable(method):
        def run(model, x, target, ctx, _method=method):
            return _method(model, x, target)

        return MethodSpec(name, run, "user", "", True)
    raise TypeError(
        f"`methods[{name!r}]` must be a captum Attribution or a callable "
        f"(model, inputs, target) -> Tensor (N, 4, L), got {type(method).__name__}.")


def resolve_methods(methods: Any) -> list[MethodSpec]:
    """Turn the user's ``methods`` into specs.

    Parameters
    ----------
    methods : None, str, sequence, or dict
        None: every built-in method (:func:`default_method_names`). A str or
        a sequence of names: built-ins by name. A sequence may also hold
        ``(name, method)`` pairs, and a dict maps names to methods or to
        None (a built-in), where a method is a Captum ``Attribution`` (called
        as ``attribute(inputs, target=target)``; rebuilt on a randomised copy
        of the model when its ``forward_func`` is the model) or a callable
        ``(model, inputs, target) -> Tensor (N, 4, L)``.

    Returns
    -------
    list of MethodSpec, in the given order.

    Raises
    ------
    ValueError
        An unknown built-in name (the known ones are listed), a repeated
        name, or no method at all.
    TypeError
        A method that is neither an Attribution nor a callable.
    """
    known = builtin_methods()
    if methods is None:
        return list(known.values())
    if isinstance(methods, str):
        methods = [methods]
    items: list[tuple[str, Any]] = []
    if isinstance(methods, dict):
        items = list(methods.items())
    else:
        try:
            entries = list(methods)
        except TypeError:
            raise TypeError(f"`methods` must be None, a name, a list or a dict, got "
                            f"{type(methods).__name__}.") from None
        for entry in entries:
            if isinstance(entry, str):
                items.append((entry, None))
            elif isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[0], str):
                items.append(entry)
            else:
                raise TypeError(f"`methods` entries must be names or (name, method) pairs, "
                                f"got {entry!r}.")
    if not items:
        raise ValueError("`methods` is empty: give at least one method name.")
    specs, seen = [], set()
    for name, method in items:
        if name in seen:
            raise ValueError(f"`methods` names {name!r} twice.")
        seen.add(name)
        if method is None:
            if name not in known:
                hint = ""
                if name == "tangermeme_deep_lift_shap":
                    hint = " (tangermeme is not installed: pip install 'tangermeme>=1.6,<1.7')"
                raise ValueError(f"`methods`: unknown method {name!r}{hint}; known: "
                                 f"{', '.join(known)}.")
            specs.append(known[name])
        else:
            specs.append(_user_spec(name, method))
    return specs
