"""Gene attributions per class for a cell classifier: one call, any Captum method, every class.

:func:`class_gene_attributions` explains a classifier ``(N, G) -> (N, C)``
(cells x genes to class logits) over cells, for

* ``target="predicted"``: each cell's predicted class (what scvi-tools'
  ``model.predict(ig_interpretability=True)`` explains);
* ``target="label"``: each cell's own label (so a misclassified cell is
  explained toward its true class, not toward the wrong one);
* ``target="all"``: every class, attributions ``(N, C, G)``, from **one pass
  over the cells** (not one call per class).

The default method is Integrated Gradients (Sundararajan, Taly & Yan, ICML
2017) as Captum implements it (``captum.attr.IntegratedGradients``: Gauss-
Legendre quadrature, ``n_steps=50``, attributions ``(x - x') * sum_k w_k
grad f(x' + a_k (x - x'))``). For one target per cell Captum's
``IntegratedGradients.attribute`` is called as is, one batch of cells at a
time. For ``target="all"`` the same quadrature is evaluated with **one
forward pass per path point for all classes**: the gradients of the C
outputs are taken together (``torch.autograd.grad(...,
is_grads_batched=True)``, a vectorized backward over the C one-hot output
directions), and when the inputs enter the model only through one
``nn.Linear`` (auto-detected, then verified numerically), the gradients are
taken at that layer's output and multiplied by its weight once per cell
after summing over the path (chain rule, exact: ``d f / d x = (d f / d h) W``
with ``W`` constant), which removes the C backward passes through the
largest matrix. Both are the same numbers as C calls of Captum's
``IntegratedGradients`` (``tests/test_gene_attributions.py``: to 1e-6).

Any other Captum ``Attribution`` (``DeepLift``, ``InputXGradient``,
:class:`~captum_genomics.FastSHAP`, ...) is called with ``target=``; with
``target="all"`` a method that takes ``targets="all"`` (FastSHAP) gets it,
any other is called once per batch on the cells repeated C times with one
target per row (one call, C times the rows).

Baselines (IG, and any method with a ``baselines`` argument): ``"zeros"``,
``"mean"`` (the mean cell) or ``"shuffle"`` (each gene's values permuted
over cells, seeded: keeps every gene's distribution, breaks the
gene-gene structure; one baseline cell per cell). Convergence deltas
(``sum_g phi_g - (f_c(x) - f_c(x'))``, Captum's sign) come back per cell (and
class).

The result, :class:`GeneAttributions`, gives the per-class gene table
(:func:`captum_genomics.stats.attribution_table`), writes itself into an
AnnData (:func:`captum_genomics.sc.anndata_results.write_gene_attributions`)
and plots (:mod:`captum_genomics.sc.plot`).
"""

from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from captum_genomics._utils.checks import check_eval_mode, check_random_state
from captum_genomics._utils.devices import module_device, module_dtype
from captum_genomics._utils.grad_mode import autograd_enabled, autograd_tensors
from captum_genomics.sc.inputs import FeatureRows, anndata_var_names, is_anndata

__all__ = ["GeneAttributions", "class_gene_attributions", "integration_parameters",
           "TARGETS", "BASELINES"]

TARGETS = ("predicted", "label", "all")
"""The string values of ``target``."""

BASELINES = ("zeros", "mean", "shuffle")
"""The string values of ``baseline``."""

_METHODS = ("gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_right",
            "riemann_middle")


def integration_parameters(method: str, n_steps: int) -> tuple[list[float], list[float]]:
    """Captum's quadrature for Integrated Gradients: ``(step_sizes, alphas)``.

    The definitions of ``captum.attr._utils.approximation_methods`` (Captum
    0.8-0.9), written out so that no private Captum helper is imported:
    ``"gausslegendre"`` uses ``numpy.polynomial.legendre.leggauss(n)``
    rescaled from [-1, 1] to [0, 1]; the Riemann rules use ``n`` equal steps
    (halved at both ends for the trapezoid) at ``torch.linspace`` points.

    Parameters
    ----------
    method : {"gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_right", \
"riemann_middle"}
    n_steps : int
        At least 1 (2 for the Riemann rules).

    Returns
    -------
    step_sizes, alphas : list of float, length n_steps
    """
    if method == "gausslegendre":
        x, w = np.polynomial.legendre.leggauss(n_steps)
        return (0.5 * w).tolist(), (0.5 * (1 + x)).tolist()
    if method not in _METHODS:
        raise ValueError(f"`integration_method` must be one of {_METHODS}, got {method!r}.")
    if n_steps < 2:
        raise ValueError(f"`n_steps` must be >= 2 for {method!r}, got {n_steps}.")
    n = n_steps
    steps = [1 / n] * n
    if method == "riemann_trapezoid":
        steps[0] /= 2
        steps[-1] /= 2
        alphas = torch.linspace(0, 1, n).tolist()
    elif method == "riemann_left":
        alphas = torch.linspace(0, 1 - 1 / n, n).tolist()
    elif method == "riemann_middle":
        alphas = torch.linspace(1 / (2 * n), 1 - 1 / (2 * n), n).tolist()
    else:
        alphas = torch.linspace(1 / n, 1, n).tolist()
    return steps, alphas


@dataclass
class GeneAttributions:
    """Gene attributions of cells for their classes, with what they were computed for.

    Attributes
    ----------
    attributions : ndarray, shape=(N, G) or (N, C, G), float32
        ``(N, G)``: each cell toward ``targets[i]``; ``(N, C, G)`` for
        ``target="all"``: each cell toward every class.
    target : str
        ``"predicted"``, ``"label"``, ``"all"``, or ``"given"`` (explicit
        class indices).
    targets : ndarray, shape=(N,), int64, or None
        The class each cell was explained for (None for ``"all"``).
    predicted : ndarray, shape=(N,), int64
        The model's predicted class (argmax of its outputs).
    labels : ndarray, shape=(N,), int64, or None
        The given labels as class indices.
    convergence_delta : ndarray, shape=(N,) or (N, C), or None
        ``sum_g phi_g - (f(x) - f(baseline))`` per cell (and class); None
        when the method has no convergence delta or it was not asked for.
    genes : list of str, length G
    class_names : list of str, length C
    cells : list of str or None, length N
        Cell names (an AnnData's ``obs_names``).
    params : dict
        How they were computed: method, baseline, n_steps, integration
        method, batch size, random state, the IG path (``"captum"``,
        ``"batched"``, ``"linear-input"``), matrix read.
    """

    attributions: np.ndarray
    target: str
    targets: np.ndarray | None
    predicted: np.ndarray
    labels: np.ndarray | None
    convergence_delta: np.ndarray | None
    genes: list
    class_names: list
    cells: list | None = None
    params: dict = field(default_factory=dict)

    @property
    def all_classes(self) -> bool:
        """True for ``(N, C, G)`` attributions."""
        return self.attributions.ndim == 3

    def _grouping(self, group_by: str | None):
        if group_by is None:
            group_by = ("label" if self.labels is not None else "none") if self.all_classes \
                else "target"
        if group_by == "target":
            if self.all_classes:
                raise ValueError("`group_by='target'` needs one target per cell; these "
                                 "attributions are for every class (use 'label' or 'none').")
            return self.targets
        if group_by == "label":
            if self.labels is None:
                raise ValueError("`group_by='label'` but no `labels` were given to "
                                 "`class_gene_attributions`.")
            return self.labels
        if group_by == "predicted":
            return self.predicted
        if group_by == "none":
            if not self.all_classes:
                raise ValueError("`group_by='none'` is for all-classes attributions (N, C, G).")
            return None
        raise ValueError(f"`group_by` must be 'target', 'label', 'predicted' or 'none', got "
                         f"{group_by!r}.")

    def to_frame(self, group_by: str | None = None, full: bool = True,
                 n_bootstrap: int = 1000, random_state: int = 0, confidence: float = 0.95,
                 classes: Sequence[str] | None = None,
                 scvi_compatible: bool = False):
        """The per-(class, gene) table (:func:`captum_genomics.stats.attribution_table`).

        Parameters
        ----------
        group_by : {"target", "label", "predicted", "none"}, optional
            Which cells make up a class. ``"target"``: the class each cell was
            explained for (default for ``(N, G)``); ``"label"``: the given
            labels (default for ``(N, C, G)`` when labels were given);
            ``"predicted"``: the predicted class; ``"none"`` (``(N, C, G)``
            only, default without labels): every cell in every class.
        full, n_bootstrap, random_state, confidence, classes, scvi_compatible
            As in :func:`~captum_genomics.stats.attribution_table`; ``full``
            defaults to True here (mean of absolute values, bootstrap CI,
            fraction positive).

        Returns
        -------
        pandas.DataFrame
        """
        from captum_genomics.stats.attribution_tables import attribution_table

        groups = self._grouping(group_by)
        return attribution_table(self.attributions, groups, self.genes, self.class_names,
                                 confidence, full=full and not scvi_compatible,
                                 n_bootstrap=n_bootstrap, random_state=random_state,
                                 classes=classes, scvi_compatible=scvi_compatible)

    def to_anndata(self, adata, key: str = "gene_attributions", table=None,
                   group_by: str | None = None, overwrite: bool = False, copy: bool = False,
                   per_cell: bool = True):
        """Write into an AnnData (``.varm``, ``.layers``/``.obsm``, ``.obs``, ``.uns``).

        See :func:`captum_genomics.sc.anndata_results.write_gene_attributions`.
        """
        from captum_genomics.sc.anndata_results import write_gene_attributions

        return write_gene_attributions(adata, self, key=key, table=table, group_by=group_by,
                                       overwrite=overwrite, copy=copy, per_cell=per_cell)

    def plot(self, kind: str = "top", table=None, **kwargs):
        """A figure of the table: ``"top"`` (top positive and negative genes per class, with
        the bootstrap CI), ``"stacked"`` (positive contributions stacked by class) or
        ``"heatmap"`` (genes x classes).

        ``table`` defaults to :meth:`to_frame`; ``kwargs`` go to the plot
        function (:func:`~captum_genomics.sc.plot.plot_class_top_genes`,
        :func:`~captum_genomics.sc.plot.plot_positive_contributions`,
        :func:`~captum_genomics.sc.plot.plot_gene_class_heatmap`).

        Returns
        -------
        matplotlib.figure.Figure
        """
        from captum_genomics.sc import plot as scplot

        table = self.to_frame() if table is None else table
        if kind == "top":
            return scplot.plot_class_top_genes(table, **kwargs)
        if kind == "stacked":
            return scplot.plot_positive_contributions(table, **kwargs).figure
        if kind == "heatmap":
            return scplot.plot_gene_class_heatmap(table, **kwargs).figure
        raise ValueError(f"`kind` must be 'top', 'stacked' or 'heatmap', got {kind!r}.")


# ----------------------------------------------------------------------------- arguments

def _is_attribution(obj: Any) -> bool:
    try:
        from captum.attr import Attribution
    except ImportError:  # pragma: no cover - captum is a dependency
        return False
    return isinstance(obj, Attribution)


def _accepts(func, name: str) -> bool:
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins
        return False
    return name in params or any(p.kind == p.VAR_KEYWORD for p in params.values())


def _resolve_labels(labels, inputs, n: int, class_names: list[str] | None, n_classes: int):
    """The labels as class indices ``(N,)`` int64 (or None)."""
    if labels is None:
        return None
    name = "labels"
    if isinstance(labels, str):
        if not is_anndata(inputs):
            raise ValueError(f"`labels`={labels!r} is a string, which names an `obs` column of "
                             "an AnnData; `inputs` is not an AnnData. Pass one label per cell.")
        if labels not in inputs.obs.columns:
            raise ValueError(f"`labels`={labels!r} is not a column of `inputs.obs`; columns: "
                             f"{list(inputs.obs.columns)[:20]}.")
        name = f"labels (obs[{labels!r}])"
        labels = inputs.obs[labels]
    if hasattr(labels, "detach"):
        labels = labels.detach().cpu().numpy()
    import pandas as pd

    values = labels.to_numpy(dtype=object) if isinstance(labels, pd.Series) else np.asarray(labels)
    if values.ndim != 1 or values.shape[0] != n:
        raise ValueError(f"`{name}` must have one entry per cell, shape ({n},), got shape "
                         f"{values.shape}.")
    missing = pd.isna(values) if values.dtype.kind in "fO" else np.zeros(n, bool)
    if missing.any():
        raise ValueError(f"`{name}` has {int(missing.sum())} missing value(s) (NaN/None), "
                         f"first at cell {int(np.flatnonzero(missing)[0])}; every cell needs a "
                         "class.")
    if values.dtype.kind in "iu" or (values.dtype.kind == "f"
                                     and np.all(values == np.round(values))):
        codes = values.astype(np.int64)
        bad = np.flatnonzero((codes < 0) | (codes >= n_classes))
        if bad.size:
            raise ValueError(f"`{name}` holds {int(codes[bad[0]])} at cell {int(bad[0])}: class "
                             f"indices must be in 0..{n_classes - 1} (the model has "
                             f"{n_classes} outputs).")
        return codes
    if values.dtype.kind == "f":
        raise ValueError(f"`{name}` must hold class indices or class names, got non-integer "
                         "floats.")
    if class_names is None:
        raise ValueError(f"`{name}` holds class names; pass `class_names` (the name of each "
                         "model output, in output order) to map them to outputs.")
    lookup = {c: i for i, c in enumerate(class_names)}
    strs = np.array([str(v) for v in values], dtype=object)
    unknown = sorted(set(strs) - set(lookup))
    if unknown:
        raise ValueError(f"`{name}` holds names that are not in `class_names`: {unknown[:5]}; "
                         f"class_names: {class_names}.")
    return np.array([lookup[s] for s in strs], dtype=np.int64)


def _resolve_target(target, labels, predicted: np.ndarray, n: int, n_classes: int):
    """``(kind, targets (N,) or None)``."""
    if isinstance(target, str):
        if target not in TARGETS:
            raise ValueError(f"`target` must be one of {TARGETS}, a class index or one index "
                             f"per cell; got {target!r}.")
        if target == "all":
            return "all", None
        if target == "predicted":
            return "predicted", predicted
        if labels is None:
            raise ValueError("`target='label'` explains each cell for its own label: pass "
                             "`labels` (one class per cell, or an obs column of the AnnData).")
        return "label", labels
    if isinstance(target, bool):
        raise TypeError(f"`target` must be a string, an int or an array of ints, got {target!r}.")
    if isinstance(target, (int, np.integer)):
        if not 0 <= int(target) < n_classes:
            raise ValueError(f"`target`={int(target)} is out of range: the model has "
                             f"{n_classes} outputs.")
        return "given", np.full(n, int(target), dtype=np.int64)
    t = target.detach().cpu().numpy() if hasattr(target, "detach") else np.asarray(target)
    if t.shape != (n,) or t.dtype.kind not in "iu":
        raise ValueError(f"`target` as an array must hold one class index per cell, integer "
                         f"shape ({n},); got dtype {t.dtype}, shape {t.shape}.")
    if t.min() < 0 or t.max() >= n_classes:
        raise ValueError(f"`target` holds class indices outside 0..{n_classes - 1}.")
    return "given", t.astype(np.int64)


def _baseline_source(baseline, rows: FeatureRows, dtype: torch.dtype, random_state):
    """``(description, function (lo, hi) -> Tensor (hi - lo, G))``."""
    n, g = rows.n, rows.n_features
    if isinstance(baseline, str):
        if baseline not in BASELINES:
            raise ValueError(f"`baseline` must be one of {BASELINES} or an array (1, G) or "
                             f"(N, G); got {baseline!r}.")
        if baseline == "zeros":
            zero = torch.zeros(1, g, dtype=dtype)
            return "zeros", lambda lo, hi: zero.expand(hi - lo, g)
        if baseline == "mean":
            total = np.zeros(g)
            for lo in range(0, n, 4096):
                total += rows.rows(lo, min(n, lo + 4096), torch.float64).reshape(-1, g).sum(
                    0).numpy()
            mean = torch.tensor(total / n, dtype=dtype).reshape(1, g)
            return "mean", lambda lo, hi: mean.expand(hi - lo, g)
        dense = rows.rows(0, n, dtype).reshape(n, g).numpy()
        rng = np.random.default_rng(random_state)
        shuffled = torch.from_numpy(np.ascontiguousarray(rng.permuted(dense, axis=0)))
        return "shuffle", lambda lo, hi: shuffled[lo:hi]
    b = baseline.detach().cpu() if isinstance(baseline, Tensor) else torch.as_tensor(
        np.asarray(baseline))
    if b.dtype.is_complex or not (b.is_floating_point() or b.dtype in (torch.int32, torch.int64)):
        raise TypeError(f"`baseline` must hold real numbers, got dtype {b.dtype}.")
    if b.ndim == 1:
        b = b.reshape(1, -1)
    if b.ndim != 2 or b.shape[1] != g or b.shape[0] not in (1, n):
        raise ValueError(f"`baseline` as an array must have shape (1, {g}), ({g},) or ({n}, {g}); "
                         f"got {tuple(b.shape)}.")
    if not torch.isfinite(b.double()).all():
        raise ValueError("`baseline` contains NaN or Inf.")
    b = b.to(dtype)
    if b.shape[0] == 1:
        return "given", lambda lo, hi: b.expand(hi - lo, g)
    return "given", lambda lo, hi: b[lo:hi]


# ----------------------------------------------------------------------------- IG, all classes

def _find_input_linear(model: nn.Module, probe: Tensor) -> nn.Linear | None:
    """The one ``nn.Linear`` the inputs are passed to, as the same tensor object, if any."""
    found: list[nn.Module] = []

    def pre_hook(module, args):
        if args and args[0] is probe:
            found.append(module)
        return None

    handles = [m.register_forward_pre_hook(pre_hook) for m in model.modules()
               if isinstance(m, nn.Linear)]
    try:
        with torch.no_grad():
            model(probe)
    finally:
        for h in handles:
            h.remove()
    if len(found) != 1 or not isinstance(found[0], nn.Linear) \
            or found[0].in_features != probe.shape[-1]:
        return None
    return found[0]


def _jacobian_sum(forward, xb: Tensor, bb: Tensor, n_classes: int, steps: Tensor,
                  alphas: list[float], layer: nn.Linear | None) -> Tensor:
    """``sum_k w_k d f_c / d x (x' + a_k (x - x'))`` for every class: ``(C, B, G)``.

    One forward pass over the ``n_steps * B`` path points (step-major, as
    Captum builds them); the C one-hot output directions are backpropagated
    together (``is_grads_batched``; a loop over classes on the same graph if
    the model's ops cannot be vectorized). With ``layer``, gradients are
    taken at the layer's output (the model still runs it on the path points)
    and mapped to the inputs by its weight after the sum over steps.
    """
    n_steps, b = len(alphas), xb.shape[0]
    path = torch.cat([bb + a * (xb - bb) for a in alphas], dim=0)
    leaf: list[Tensor] = []
    handle = None
    if layer is not None:
        def hook(module, args, out):
            if args and args[0] is path:
                h = out.detach().requires_grad_()
                leaf.append(h)
                return h
            return None
        handle = layer.register_forward_hook(hook)
    else:
        path.requires_grad_()
    try:
        with autograd_enabled():
            out = forward(path)
            if not isinstance(out, Tensor) or out.ndim != 2 or out.shape[1] != n_classes:
                raise ValueError(f"The model must return logits (B, {n_classes}), got "
                                 f"{getattr(out, 'shape', type(out).__name__)}.")
            wrt = leaf[0] if layer is not None else path
            if layer is not None and len(leaf) != 1:
                raise RuntimeError("the input layer was not called on the path points.")
            eye = torch.eye(n_classes, dtype=out.dtype, device=out.device)
            directions = eye[:, None, :].expand(n_classes, out.shape[0], n_classes)
            try:
                (grads,) = torch.autograd.grad(out, wrt, directions, retain_graph=True,
                                               is_grads_batched=True)
            except (RuntimeError, NotImplementedError):
                grads = torch.stack([torch.autograd.grad(out[:, c].sum(), wrt,
                                                         retain_graph=c < n_classes - 1)[0]
                                     for c in range(n_classes)])
    finally:
        if handle is not None:
            handle.remove()
    width = grads.shape[-1]
    if layer is None:
        scaled = grads.reshape(n_classes, n_steps, b * width) * steps.to(grads).view(1, n_steps, 1)
        return scaled.reshape(n_classes, n_steps, b, width).sum(1)
    summed = (grads.double().reshape(n_classes, n_steps, b, width)
              * steps.double().to(grads.device).view(1, n_steps, 1, 1)).sum(1)
    return summed @ layer.weight.detach().double()


def _check_linear_layer(forward, layer: nn.Linear, xb: Tensor, bb: Tensor, n_classes: int,
                        steps: Tensor, alphas: list[float]) -> float:
    """Largest relative difference between the layer-factorized and the direct Jacobian sums."""
    direct = _jacobian_sum(forward, xb, bb, n_classes, steps, alphas, None).double()
    factored = _jacobian_sum(forward, xb, bb, n_classes, steps, alphas, layer)
    scale = float(direct.abs().max()) or 1.0
    return float((direct - factored).abs().max()) / scale


def _attribute_batch(kind, is_ig, ig, forward, xb, bb, targets, lo, hi, n_classes, g, steps,
                     alphas, linear, dtype, device, takes_baselines, attribute_kwargs, n_steps,
                     integration_method, return_convergence_delta):
    """One batch of cells: ``(attributions (B, G) or (B, C, G), deltas or None)`` on the CPU."""
    bsz = hi - lo
    if kind == "all" and is_ig:
        total = _jacobian_sum(forward, xb, bb, n_classes, steps, alphas, linear)
        diff = xb - bb
        if linear is not None:
            attr = (total * diff.double().unsqueeze(0)).to(dtype)
        else:
            attr = total * diff.unsqueeze(0)
        attr = attr.permute(1, 0, 2).detach()
        delta = None
        if return_convergence_delta:
            with torch.no_grad():
                gap = forward(xb).double() - forward(bb).double()
            delta = (attr.double().sum(-1) - gap).cpu()
        return attr.cpu(), delta
    kwargs = dict(attribute_kwargs)
    if takes_baselines:
        kwargs.setdefault("baselines", bb)
    if is_ig:
        kwargs.setdefault("n_steps", int(n_steps))
        kwargs.setdefault("method", integration_method)
    want_delta = return_convergence_delta and ig.has_convergence_delta()
    if want_delta:
        kwargs["return_convergence_delta"] = True
    if kind == "all":
        if "targets" in inspect.signature(ig.attribute).parameters:  # FastSHAP: every output
            res = ig.attribute(xb, targets="all", **kwargs)
            attr, delta = res if want_delta else (res, None)
            if isinstance(attr, tuple):
                attr = attr[0]
            attr = attr.reshape(bsz, g, n_classes).permute(0, 2, 1)
        else:  # one call on the cells repeated C times, one target per row
            rep = xb.repeat_interleave(n_classes, 0)
            if "baselines" in kwargs:
                kwargs["baselines"] = bb.repeat_interleave(n_classes, 0)
            tgt = torch.arange(n_classes, device=device).repeat(bsz)
            res = ig.attribute(rep, target=tgt, **kwargs)
            attr, delta = res if want_delta else (res, None)
            if isinstance(attr, tuple):
                attr = attr[0]
            attr = attr.reshape(bsz, n_classes, g)
        if delta is not None:
            delta = delta.detach().double().reshape(bsz, n_classes).cpu()
    else:
        tgt = torch.as_tensor(targets[lo:hi], dtype=torch.long, device=device)
        res = ig.attribute(xb, target=tgt, **kwargs)
        attr, delta = res if want_delta else (res, None)
        if isinstance(attr, tuple):
            attr = attr[0]
        attr = attr.reshape(bsz, g)
        if delta is not None:
            delta = delta.detach().double().reshape(bsz).cpu()
    return attr.detach().cpu(), delta


# ----------------------------------------------------------------------------- main entry

def class_gene_attributions(
    method: Any,
    inputs: Any,
    target: Any = "predicted",
    labels: Any = None,
    *,
    class_names: Sequence[str] | None = None,
    genes: Sequence[str] | None = None,
    baseline: Any = "zeros",
    n_steps: int = 50,
    integration_method: str = "gausslegendre",
    batch_size: int = 64,
    random_state: int | None = 0,
    layer: str | None = None,
    use_raw: bool = False,
    return_convergence_delta: bool = True,
    input_layer: Any = "auto",
    attribute_kwargs: dict | None = None,
    show_progress: bool = False,
) -> GeneAttributions:
    """Attributions of every gene of every cell for its class (or for every class).

    Parameters
    ----------
    method : nn.Module, callable or captum.attr.Attribution
        A classifier ``(B, G) -> (B, C)`` (logits, or any per-class score),
        explained with Integrated Gradients (Captum's); or a Captum
        attribution method built on such a classifier
        (``IntegratedGradients(model)``, ``DeepLift(model)``,
        :class:`~captum_genomics.FastSHAP`, ...), whose ``forward_func`` gives
        the predictions. A module must be in eval mode.
    inputs : Tensor, ndarray, scipy sparse matrix or AnnData, shape=(N, G)
        Cells x genes, in the units the model reads (e.g. raw counts for
        scvi-tools models, log-normalized expression for the shipped PBMC
        classifier). Cast to the model's floating dtype; a sparse matrix is
        densified one batch at a time. Never modified.
    target : {"predicted", "label", "all"}, int or array of int, shape=(N,)
        The class each cell is explained for: its predicted class (default),
        its label (needs ``labels``), every class (attributions
        ``(N, C, G)``, from one pass), one class for all cells, or one class
        per cell.
    labels : array-like, shape=(N,), or str, optional
        One class per cell: indices into the model's outputs, or names of
        ``class_names``; for an AnnData also the name of an ``obs`` column.
        Needed by ``target="label"``; kept in the result to group cells.
    class_names : sequence of str, length C, optional
        The name of each model output. Default ``"0"``, ``"1"``, ...
    genes : sequence of str, length G, optional
        Default: the AnnData's ``var_names`` (``raw.var_names`` with
        ``use_raw``), else ``"gene0"``, ...
    baseline : {"zeros", "mean", "shuffle"} or array, shape=(1, G) or (N, G)
        The reference input of IG (and of any method with a ``baselines``
        argument). ``"mean"``: the mean cell of ``inputs``; ``"shuffle"``:
        every gene's values permuted over the cells independently
        (``numpy.random.Generator.permuted(axis=0)`` seeded by
        ``random_state``; densifies ``inputs``). Default ``"zeros"``.
    n_steps : int
        IG quadrature points. Default 50 (as scvi-tools).
    integration_method : str
        IG quadrature, Captum's names (:func:`integration_parameters`).
        Default ``"gausslegendre"``.
    batch_size : int
        Cells per attribution call (IG evaluates ``batch_size * n_steps``
        path points at once; with ``target="all"`` the gradients held are
        ``C * batch_size * n_steps * G`` floats without a linear input layer).
        Results do not depend on it beyond float rounding. Default 64.
    random_state : int or None
        Seed of the ``"shuffle"`` baseline. Default 0.
    layer, use_raw
        For an AnnData: read ``inputs.layers[layer]`` or ``inputs.raw.X``
        instead of ``.X``.
    return_convergence_delta : bool
        Compute the convergence deltas (IG: one extra forward pass on the
        cells and one on the baselines). Default True.
    input_layer : "auto", nn.Linear or None
        ``target="all"`` with IG only. An ``nn.Linear`` that is the only
        consumer of the inputs lets the gradients be taken at its output
        (exact; much faster). ``"auto"`` (default): found by hooks (the one
        ``nn.Linear`` called with the input tensor itself) and used only if
        it reproduces the direct gradients on the first batch to 1e-5
        (relative); else the direct batched gradients. None: direct. An
        explicit module that fails the check raises.
    attribute_kwargs : dict, optional
        Further keyword arguments of ``method.attribute`` (e.g.
        ``internal_batch_size``, or ``references`` for ShuffleDeepLiftShap).
        Not used by the one-pass IG of ``target="all"`` (``internal_batch_size``
        is ignored there, ``batch_size`` sets the memory; others raise).
    show_progress : bool
        A tqdm bar over batches. Default False.

    Returns
    -------
    GeneAttributions

    Raises
    ------
    TypeError
        ``method`` neither a callable nor a Captum ``Attribution``; bad
        ``target`` or ``baseline`` types.
    ValueError
        A module in training mode; ``inputs`` not 2-D, empty or holding
        NaN/Inf; ``labels`` of the wrong length, with missing values,
        unknown names or indices out of range; an unknown ``target`` string;
        ``target="label"`` without labels; ``class_names`` of the wrong
        length; a bad ``baseline``; ``n_steps`` or ``batch_size`` < 1; an
        explicit ``input_layer`` that does not reproduce the gradients.

    Notes
    -----
    The model and the inputs are not modified: no ``eval()``/``train()``
    call, no parameter's ``requires_grad`` changed; hooks registered on
    ``input_layer`` are removed before returning, also after an error.
    """
    from captum.attr import IntegratedGradients

    # --- method and model
    if _is_attribution(method):
        attr_method = method
        forward = method.forward_func
        is_ig = type(method) is IntegratedGradients and method.multiplies_by_inputs
        method_name = type(method).__name__
    elif callable(method):
        attr_method = None
        forward = method
        is_ig = True
        method_name = "IntegratedGradients"
    else:
        raise TypeError(f"`method` must be a model (nn.Module or callable) or a Captum "
                        f"Attribution, got {type(method).__name__}.")
    if isinstance(forward, nn.Module):
        check_eval_mode(forward, "method")
    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
        raise ValueError(f"`n_steps` must be an integer >= 1, got {n_steps!r}.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise ValueError(f"`batch_size` must be an integer >= 1, got {batch_size!r}.")
    random_state = check_random_state(random_state)
    attribute_kwargs = dict(attribute_kwargs or {})

    # --- data
    rows = FeatureRows(inputs, layer, use_raw, "inputs")
    if len(rows.shape) != 2:
        raise ValueError(f"`inputs` must be cells x genes (N, G), got shape {rows.shape}.")
    n, g = rows.n, rows.n_features
    if genes is None:
        genes = (anndata_var_names(inputs, use_raw) if is_anndata(inputs)
                 else [f"gene{j}" for j in range(g)])
    genes = [str(x) for x in genes]
    if len(genes) != g:
        raise ValueError(f"`genes` has {len(genes)} names for {g} genes of `inputs`.")
    cells = [str(c) for c in inputs.obs_names] if is_anndata(inputs) else None
    dtype = module_dtype(forward, torch.float32) if isinstance(forward, nn.Module) \
        else rows.native_dtype(torch.float32)
    device = module_device(forward) if isinstance(forward, nn.Module) else torch.device("cpu")
    desc, base_rows = _baseline_source(baseline, rows, dtype, random_state)
    takes_baselines = attr_method is None or _accepts(attr_method.attribute, "baselines")
    if attr_method is not None and not takes_baselines and not (isinstance(baseline, str)
                                                                and baseline == "zeros"):
        raise ValueError(f"`baseline`={baseline!r}: {method_name}.attribute has no "
                         "`baselines` argument; leave `baseline` at 'zeros'.")

    def batches():
        rng_ = range(0, n, batch_size)
        if show_progress:
            from tqdm.auto import tqdm
            rng_ = tqdm(rng_, desc="cells", unit="batch")
        for lo in rng_:
            hi = min(n, lo + batch_size)
            with autograd_enabled():  # ordinary tensors, also under inference_mode
                xb, bb = autograd_tensors((rows.rows(lo, hi, dtype).to(device),
                                           base_rows(lo, hi).to(device)))
            yield lo, hi, xb, bb

    # --- outputs and predictions (one forward pass)
    outs = []
    with torch.no_grad():
        for lo, hi, xb, _ in batches():
            out = forward(xb)
            if not isinstance(out, Tensor) or out.ndim != 2:
                raise ValueError("The model must return one score per class, shape (B, C); "
                                 f"got {getattr(out, 'shape', type(out).__name__)}.")
            outs.append(out.detach().float().cpu())
    logits = torch.cat(outs).numpy()
    n_classes = logits.shape[1]
    predicted = logits.argmax(1).astype(np.int64)
    if class_names is None:
        class_names = [str(c) for c in range(n_classes)]
    class_names = [str(c) for c in class_names]
    if len(class_names) != n_classes:
        raise ValueError(f"`class_names` has {len(class_names)} names but the model has "
                         f"{n_classes} outputs.")
    label_codes = _resolve_labels(labels, inputs, n, class_names, n_classes)
    kind, targets = _resolve_target(target, label_codes, predicted, n, n_classes)

    steps_list, alphas = integration_parameters(integration_method, int(n_steps))
    steps = torch.tensor(steps_list).float()
    path = "captum"
    linear = None
    if kind == "all" and is_ig:
        path = "batched"
        unused = sorted(set(attribute_kwargs) - {"internal_batch_size"})
        if unused:
            raise ValueError(f"`attribute_kwargs` {unused} cannot be used with target='all' and "
                             "Integrated Gradients (one pass, not Captum's attribute); use "
                             "`baseline`, `n_steps`, `integration_method` and `batch_size`.")
        if isinstance(input_layer, nn.Linear) and input_layer.in_features != g:
            raise ValueError(f"`input_layer` has in_features={input_layer.in_features}, the "
                             f"inputs have {g} genes.")
        if input_layer is not None and isinstance(forward, nn.Module):
            if input_layer == "auto":
                probe = rows.rows(0, min(n, 8), dtype).to(device)
                linear = _find_input_linear(forward, probe)
                explicit = False
            elif isinstance(input_layer, nn.Linear):
                linear, explicit = input_layer, True
            else:
                raise TypeError(f"`input_layer` must be 'auto', an nn.Linear or None, got "
                                f"{type(input_layer).__name__}.")
            if linear is not None:
                with autograd_enabled():
                    xb, bb = autograd_tensors((rows.rows(0, min(n, 8), dtype).to(device),
                                               base_rows(0, min(n, 8)).to(device)))
                gap = _check_linear_layer(forward, linear, xb, bb, n_classes, steps, alphas)
                if gap > 1e-5:
                    if explicit:
                        raise ValueError(
                            f"`input_layer` does not reproduce the model's input gradients "
                            f"(relative difference {gap:.2e}): the inputs must reach the model "
                            "only through this nn.Linear. Pass input_layer=None.")
                    linear = None
                else:
                    path = "linear-input"
        elif input_layer not in (None, "auto"):
            raise TypeError("`input_layer` needs the model to be an nn.Module.")

    # --- attributions
    chunks, deltas = [], []
    ig = IntegratedGradients(forward) if attr_method is None else attr_method
    for lo, hi, xb, bb in batches():
        with autograd_enabled():
            attr, delta = _attribute_batch(
                kind, is_ig, ig, forward, xb, bb, targets, lo, hi, n_classes, g, steps, alphas,
                linear, dtype, device, takes_baselines, attribute_kwargs, n_steps,
                integration_method, return_convergence_delta)
        chunks.append(attr)
        if delta is not None:
            deltas.append(delta)
    attributions = torch.cat(chunks).float().numpy()
    if not np.isfinite(attributions).all():
        warnings.warn("Some attributions are NaN or Inf (the model's gradients); check the "
                      "model on these inputs.", RuntimeWarning, stacklevel=2)
    delta_arr = torch.cat(deltas).numpy() if deltas else None
    if kind == "all" and is_ig:
        impl = {"batched": "one forward pass per path point, batched backward over classes",
                "linear-input": "one forward pass per path point, gradients at the input "
                                "nn.Linear, mapped by its weight"}[path]
    elif is_ig:
        impl = "captum.attr.IntegratedGradients.attribute"
    else:
        impl = f"{method_name}.attribute"
    params = {
        "method": method_name, "target": kind, "baseline": desc,
        "n_steps": int(n_steps) if is_ig else None,
        "integration_method": integration_method if is_ig else None,
        "batch_size": int(batch_size), "random_state": random_state,
        "ig_path": path if is_ig else None, "implementation": impl,
        "matrix": ("raw" if use_raw else (f"layers[{layer!r}]" if layer else "X"))
        if is_anndata(inputs) else None,
        "n_cells": int(n), "n_genes": int(g), "n_classes": int(n_classes),
    }
    return GeneAttributions(
        attributions=attributions, target=kind, targets=targets, predicted=predicted,
        labels=label_codes, convergence_delta=delta_arr, genes=genes,
        class_names=class_names, cells=cells, params=params)
