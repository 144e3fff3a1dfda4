"""Head adapters: where each attention implementation keeps its per-head values.

A *head adapter* wraps one attention module of a model and exposes its heads
as one tensor in a canonical layout, ``(B, H, *rest)``: rows first (the
model's batch axis, here the (variant, example) pairs of a batched
ablation), heads second. :meth:`HeadAdapter.attach` installs the hooks that
hand that tensor to a ``transform`` and put the transformed tensor back in
the module's computation. Head ablation (:func:`~captum_genomics.heads.ablated_forward`)
is one such transform: it replaces the ablated heads' slices by zeros or by
their mean over a reference set.

Four adapters ship:

* :class:`MultiheadAttentionAdapter`: ``torch.nn.MultiheadAttention``. Its
  ``out_proj`` is never called as a module (``F.multi_head_attention_forward``
  reads its weight), so a hook on it never fires. The adapter recomputes each
  head's attention output exactly from the module's parameters
  (:func:`per_head_outputs` gives the per-head contributions) in a forward
  hook and replaces the module's output.
* :class:`TransformerEncoderLayerAdapter`: ``torch.nn.TransformerEncoderLayer``,
  through its ``self_attn`` (a :class:`MultiheadAttentionAdapter` on it), with
  PyTorch's fused encoder-layer inference path switched off while the layer
  runs, so that ``self_attn`` is called as a module. Its heads are labelled by
  the module path of ``self_attn`` (``"encoder.layers.0.self_attn"``).
* :class:`HeadAxisAdapter`: any module whose output already has a head axis,
  e.g. attention patterns ``(B, H, L, S)`` or per-head outputs ``(B, H, L, d)``.
* :class:`OutputProjectionAdapter`: an out-projection (``nn.Linear``) called
  as a module, whose input's last axis concatenates the heads, ``H * d_head``.

The decomposition follows the head-ablation definition of AMICI (Hong et al.
2025, "AMICI: attention mechanism interpretation of cell-cell
interactions"): a head's contribution to the layer output is its attention
output times its block of the output projection; implemented here from that
definition, for any PyTorch attention module.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

__all__ = [
    "UnsupportedAttentionError",
    "HeadAdapter",
    "MultiheadAttentionAdapter",
    "TransformerEncoderLayerAdapter",
    "HeadAxisAdapter",
    "OutputProjectionAdapter",
    "per_head_outputs",
]

Transform = Callable[[Tensor], Tensor]
"""``(B, H, *rest) -> (B, H, *rest)``: what an adapter's hooks apply to the heads."""


class UnsupportedAttentionError(TypeError):
    """A layer is not an attention module with a head adapter.

    Raised by :meth:`HeadAdapterRegistry.adapter_for
    <captum_genomics.heads.HeadAdapterRegistry.adapter_for>` and by the
    adapters' constructors when handed the wrong kind of module. The message
    names the layer and its type and says how to register an adapter.
    """


def _check_options(cls_name: str, options: dict, allowed: Sequence[str]) -> None:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TypeError(
            f"{cls_name} got unknown option(s) {unknown}; accepted options: "
            f"{sorted(allowed) or 'none'}."
        )


def _check_n_heads(value: Any, name: str, cls_name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"{cls_name} for layer {name!r}: `n_heads` must be an integer >= 1, got {value!r}."
        )
    return value


class HeadAdapter:
    """Base class: one instance wraps one attention module of a model.

    Subclasses implement :meth:`attach`: install hooks on ``self.module``
    that, on every call of the module, pass the per-head tensor in the
    canonical layout ``(B, H, *rest)`` (``B`` = the module's batch axis,
    ``H`` = ``n_heads``) to ``transform`` and use its return value in place of
    the heads. To support your own attention module, subclass this (or use
    :class:`HeadAxisAdapter` / :class:`OutputProjectionAdapter` with options)
    and register the class with
    :meth:`HeadAdapterRegistry.with_adapter
    <captum_genomics.heads.HeadAdapterRegistry.with_adapter>`.

    Parameters
    ----------
    module : nn.Module
        The attention module (a submodule of the model).
    name : str
        Its dotted name in ``model.named_modules()``, used in messages and
        results.
    **options
        Adapter-specific options; unknown ones raise ``TypeError``.

    Attributes
    ----------
    module : nn.Module
    name : str
    n_heads : int
        Number of heads ``H``.
    """

    n_heads: int
    options: tuple[str, ...] = ()

    def __init__(self, module: nn.Module, name: str, **options: Any) -> None:
        if not isinstance(module, nn.Module):
            raise TypeError(
                f"{type(self).__name__}: `module` must be a torch.nn.Module, got "
                f"{type(module).__name__}."
            )
        if not isinstance(name, str):
            raise TypeError(f"{type(self).__name__}: `name` must be a str, got {name!r}.")
        _check_options(type(self).__name__, options, self.options)
        self.module = module
        self.name = name

    def check(self) -> None:
        """Raise ``ValueError`` if the module cannot be ablated exactly now.

        Called before every batched pass. The default checks nothing.
        """

    def attach(self, transform: Transform) -> list[RemovableHandle]:
        """Install the hooks; return their handles (the caller removes them).

        Parameters
        ----------
        transform : callable ``(B, H, *rest) -> (B, H, *rest)``
            Called with the heads of every call of the module; returns the
            tensor to use instead (same shape and dtype).

        Returns
        -------
        list of torch.utils.hooks.RemovableHandle
        """
        raise NotImplementedError(
            f"{type(self).__name__} must implement `attach(transform)`."
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, n_heads={self.n_heads})"


# ----------------------------------------------------------------------------- MHA
_MHA_SIGNATURE = inspect.signature(nn.MultiheadAttention.forward)


def _float_mask(mask: Tensor | None, dtype: torch.dtype, name: str) -> Tensor | None:
    """An additive float mask: bool ``True`` -> ``-inf``, float masks as given."""
    if mask is None:
        return None
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(
            mask, float("-inf"))
    if not mask.is_floating_point():
        raise TypeError(f"`{name}` must be a bool or floating-point mask, got {mask.dtype}.")
    return mask.to(dtype)


def _mha_heads(mha: nn.MultiheadAttention, query: Tensor, key: Tensor, value: Tensor,
               key_padding_mask: Tensor | None = None, need_weights: bool = True,
               attn_mask: Tensor | None = None, is_causal: bool = False
               ) -> tuple[Tensor, bool]:
    """Per-head attention outputs ``(B, H, L, d_head)`` before the out-projection.

    Returns the heads in batch-first layout and whether the input was batched.
    Follows ``F.multi_head_attention_forward`` step by step (in-projection,
    ``bias_k``/``bias_v``, ``add_zero_attn``, masks, scaled softmax).
    """
    batched = query.dim() == 3
    if not batched:
        query, key, value = query.unsqueeze(0), key.unsqueeze(0), value.unsqueeze(0)
        if key_padding_mask is not None:
            key_padding_mask = key_padding_mask.unsqueeze(0)
    elif not mha.batch_first:
        query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
    b, length, _ = query.shape
    h, d = mha.num_heads, mha.head_dim
    dtype = query.dtype

    if mha.in_proj_weight is not None:
        w_q, w_k, w_v = mha.in_proj_weight.chunk(3)
    else:
        w_q, w_k, w_v = mha.q_proj_weight, mha.k_proj_weight, mha.v_proj_weight
    b_q = b_k = b_v = None
    if mha.in_proj_bias is not None:
        b_q, b_k, b_v = mha.in_proj_bias.chunk(3)
    q = F.linear(query, w_q, b_q)
    k = F.linear(key, w_k, b_k)
    v = F.linear(value, w_v, b_v)

    if is_causal and attn_mask is None:
        raise ValueError(
            "`is_causal=True` needs `attn_mask` (torch.nn.MultiheadAttention treats "
            "is_causal as a hint that attn_mask is the causal mask)."
        )
    # torch drops attn_mask for the is_causal hint when it can call SDPA with
    # is_causal=True (no key_padding_mask, need_weights=False): the causal mask
    # is then built on the final key length (after bias_k / zero attention).
    causal_only = is_causal and key_padding_mask is None and not need_weights
    mask = None if causal_only else _float_mask(attn_mask, dtype, "attn_mask")
    if mask is not None:
        mask = mask.unsqueeze(0).unsqueeze(0) if mask.dim() == 2 else mask.view(
            b, h, *mask.shape[-2:])
    kpm = _float_mask(key_padding_mask, dtype, "key_padding_mask")
    if kpm is not None:
        kpm = kpm.view(b, 1, 1, kpm.shape[-1])

    def pad(m: Tensor | None) -> Tensor | None:
        return None if m is None else F.pad(m, (0, 1))

    if mha.bias_k is not None and mha.bias_v is not None:
        k = torch.cat([k, mha.bias_k.expand(b, 1, -1).to(k.dtype)], dim=1)
        v = torch.cat([v, mha.bias_v.expand(b, 1, -1).to(v.dtype)], dim=1)
        mask, kpm = pad(mask), pad(kpm)
    q = q.view(b, length, h, d).transpose(1, 2)
    k = k.view(b, k.shape[1], h, d).transpose(1, 2)
    v = v.view(b, v.shape[1], h, d).transpose(1, 2)
    if mha.add_zero_attn:
        k = torch.cat([k, k.new_zeros(b, h, 1, d)], dim=2)
        v = torch.cat([v, v.new_zeros(b, h, 1, d)], dim=2)
        mask, kpm = pad(mask), pad(kpm)

    scores = torch.matmul(q * math.sqrt(1.0 / float(d)), k.transpose(-2, -1))
    if causal_only:
        allowed = torch.ones(length, k.shape[2], dtype=torch.bool, device=q.device).tril()
        mask = _float_mask(~allowed, dtype, "attn_mask")
    if mask is not None:
        scores = scores + mask
    if kpm is not None:
        scores = scores + kpm
    weights = torch.softmax(scores, dim=-1)
    return torch.matmul(weights, v), batched


def _bind_mha(args: tuple, kwargs: dict) -> dict:
    bound = _MHA_SIGNATURE.bind(None, *args, **kwargs)
    bound.apply_defaults()
    out = dict(bound.arguments)
    out.pop("self")
    return out


def per_head_outputs(mha: nn.MultiheadAttention, query: Tensor, key: Tensor, value: Tensor,
                     **mha_kwargs: Any) -> Tensor:
    """Each head's contribution to the output of ``torch.nn.MultiheadAttention``.

    Head ``h``'s contribution is its attention output times the ``h``-th
    column block of ``out_proj.weight``,
    ``softmax(q_h k_h^T / sqrt(d) + masks) v_h W_out[:, h d:(h+1) d]^T``; the
    sum over heads plus ``out_proj.bias`` is the module's ``attn_output``
    (to float rounding: ~1e-15 relative in float64). Computed from the
    module's parameters, so ``kdim``/``vdim`` (separate q/k/v weights),
    ``bias=False``, ``add_bias_kv``, ``add_zero_attn``, ``attn_mask`` (2-D or
    3-D, bool or float), ``key_padding_mask`` and ``batch_first`` are all
    honoured. Dropout is not applied: call the module in eval mode (or with
    ``dropout=0``) for the sum to match.

    Parameters
    ----------
    mha : torch.nn.MultiheadAttention
    query, key, value : Tensor
        As for ``mha(query, key, value)``: batch-first ``(B, L, E)`` /
        ``(B, S, kdim)`` / ``(B, S, vdim)`` if ``mha.batch_first``, else
        ``(L, B, E)`` / ``(S, B, kdim)`` / ``(S, B, vdim)``; or unbatched
        ``(L, E)`` / ``(S, kdim)`` / ``(S, vdim)``.
    **mha_kwargs
        ``key_padding_mask``, ``attn_mask``, ``is_causal``, ``need_weights``,
        ``average_attn_weights``: as for the module (the last two do not
        change the outputs).

    Returns
    -------
    Tensor
        The contributions, with the head axis right after the batch axis of
        the module's output: ``(B, H, L, E)`` if ``batch_first``,
        ``(L, B, H, E)`` if not, ``(H, L, E)`` for unbatched inputs. So
        ``out.sum(dim=head_axis) + mha.out_proj.bias == mha(...)[0]``, with
        ``head_axis`` 1, 2 and 0 respectively.

    Raises
    ------
    UnsupportedAttentionError
        If ``mha`` is not a ``torch.nn.MultiheadAttention``.
    ValueError
        If ``is_causal=True`` without ``attn_mask``.
    TypeError
        For an unknown keyword argument or a mask of another dtype.
    """
    if not isinstance(mha, nn.MultiheadAttention):
        raise UnsupportedAttentionError(
            f"`mha` must be a torch.nn.MultiheadAttention, got {type(mha).__name__}."
        )
    call = _bind_mha((query, key, value), mha_kwargs)
    heads, batched = _mha_heads(
        mha, call["query"], call["key"], call["value"], call["key_padding_mask"],
        call["need_weights"], call["attn_mask"], call["is_causal"])
    e = mha.embed_dim
    w = mha.out_proj.weight.view(e, mha.num_heads, mha.head_dim)
    out = torch.einsum("bhld,ehd->bhle", heads, w)           # (B, H, L, E)
    if not batched:
        return out[0]                                        # (H, L, E)
    if not mha.batch_first:
        return out.permute(2, 0, 1, 3)                       # (L, B, H, E)
    return out


class MultiheadAttentionAdapter(HeadAdapter):
    """Adapter for ``torch.nn.MultiheadAttention`` (and subclasses with its forward).

    A forward hook (``with_kwargs=True``) recomputes the per-head attention
    outputs ``(B, H, L_q, d_head)`` from the module's inputs and parameters,
    hands them to the transform, and rebuilds the output
    ``concat_h(heads) @ out_proj.weight^T + out_proj.bias`` (head ``h``'s
    contribution is its block of the product, see :func:`per_head_outputs`).
    Rows whose heads the transform left all unchanged keep the module's own
    output bit for bit. The attention-weights part of the output tuple is
    returned as the module computed it (unablated).

    Replacing a head's attention output ``o_h`` by the reference mean of
    ``o_h`` replaces its contribution by the reference mean of the
    contribution (the projection is linear).

    Parameters
    ----------
    module : torch.nn.MultiheadAttention
    name : str

    Raises
    ------
    UnsupportedAttentionError
        If ``module`` is not a ``torch.nn.MultiheadAttention``.
    """

    def __init__(self, module: nn.Module, name: str, **options: Any) -> None:
        super().__init__(module, name, **options)
        if not isinstance(module, nn.MultiheadAttention):
            raise UnsupportedAttentionError(
                f"MultiheadAttentionAdapter: layer {name!r} is a {type(module).__name__}, not "
                "a torch.nn.MultiheadAttention."
            )
        self.n_heads = int(module.num_heads)

    def check(self) -> None:
        """Raise ``ValueError`` if the module would apply attention dropout.

        ``nn.MultiheadAttention`` in training mode with ``dropout > 0`` draws
        random dropout masks, so no ablation is reproducible.
        """
        mod = self.module
        if mod.training and float(mod.dropout) > 0:
            raise ValueError(
                f"Layer {self.name!r} (MultiheadAttention, dropout={mod.dropout}) is in training "
                "mode and would apply random attention dropout; call `model.eval()` first."
            )

    def attach(self, transform: Transform) -> list[RemovableHandle]:
        mha = self.module
        name = self.name

        def hook(module: nn.Module, args: tuple, kwargs: dict, output: Any) -> Any:
            call = _bind_mha(args, kwargs)
            if call["query"].dim() != 3:
                raise ValueError(
                    f"Layer {name!r} (MultiheadAttention) was called with unbatched inputs "
                    f"(query shape {tuple(call['query'].shape)}); head ablation needs a batch "
                    "axis that follows the model input's first axis."
                )
            heads, _ = _mha_heads(
                mha, call["query"], call["key"], call["value"], call["key_padding_mask"],
                call["need_weights"], call["attn_mask"], call["is_causal"])
            new = transform(heads)                                   # (B, H, L, d)
            b, h, length, d = new.shape
            out = F.linear(new.transpose(1, 2).reshape(b, length, h * d),
                           mha.out_proj.weight, mha.out_proj.bias)   # (B, L, E)
            attn_output = output[0] if isinstance(output, tuple) else output
            if not mha.batch_first:
                out = out.transpose(0, 1)
            unchanged = (new == heads).flatten(1).all(dim=1)          # (B,)
            if bool(unchanged.any()):
                shape = [1] * out.dim()
                shape[1 if not mha.batch_first else 0] = b
                out = torch.where(unchanged.view(shape), attn_output, out)
            out = out.to(attn_output.dtype)
            if isinstance(output, tuple):
                return (out, *output[1:])
            return out

        return [mha.register_forward_hook(hook, with_kwargs=True)]


# ----------------------------------------------------------------------------- encoder layer
class TransformerEncoderLayerAdapter(HeadAdapter):
    """Adapter for ``torch.nn.TransformerEncoderLayer``: the heads of its ``self_attn``.

    The layer's self-attention is an ``nn.MultiheadAttention``; this adapter
    is a :class:`MultiheadAttentionAdapter` on it, named by its module path:
    for the layer ``"encoder.layers.0"`` the adapter's ``name`` (the label of
    its heads in every result) is ``"encoder.layers.0.self_attn"``, never the
    class name. ``module`` is the ``self_attn`` module itself, so naming both
    the layer and its ``self_attn`` is caught as the same layer twice.

    In eval mode without gradients PyTorch may run the whole layer as one fused
    kernel (``torch._transformer_encoder_layer_fwd``, when
    ``torch.backends.mha.get_fastpath_enabled()``), which never calls
    ``self_attn`` as a module, so no hook on it would fire. While attached, a
    forward pre-hook on the layer switches that fast path off for the layer's
    call and a forward hook (``always_call=True``, so also after an error)
    restores the previous setting. :func:`~captum_genomics.heads.ablated_forward`
    in addition runs every pass, the unablated model's included, with the fast
    path off (:func:`~captum_genomics._utils.attention.fused_attention_disabled`),
    so the unablated and ablated rows take the same kernels.

    Parameters
    ----------
    module : torch.nn.TransformerEncoderLayer
    name : str
        The layer's dotted name in ``model.named_modules()`` (e.g.
        ``"encoder.layers.0"``); ``".self_attn"`` is appended.

    Attributes
    ----------
    layer : torch.nn.TransformerEncoderLayer
    module : torch.nn.MultiheadAttention
        ``layer.self_attn``.
    name : str
        ``name + ".self_attn"`` (``"self_attn"`` for an empty ``name``).
    n_heads : int
        ``layer.self_attn.num_heads``.

    Raises
    ------
    UnsupportedAttentionError
        If ``module`` is not a ``torch.nn.TransformerEncoderLayer`` or its
        ``self_attn`` is not a ``torch.nn.MultiheadAttention``.
    """

    def __init__(self, module: nn.Module, name: str, **options: Any) -> None:
        super().__init__(module, name, **options)
        if not isinstance(module, nn.TransformerEncoderLayer):
            raise UnsupportedAttentionError(
                f"TransformerEncoderLayerAdapter: layer {name!r} is a {type(module).__name__}, "
                "not a torch.nn.TransformerEncoderLayer."
            )
        attn = getattr(module, "self_attn", None)
        if not isinstance(attn, nn.MultiheadAttention):
            raise UnsupportedAttentionError(
                f"TransformerEncoderLayerAdapter: layer {name!r} has a `self_attn` of type "
                f"{type(attn).__name__}, not a torch.nn.MultiheadAttention."
            )
        self.layer = module
        self.name = f"{name}.self_attn" if name else "self_attn"
        self.module = attn
        self._attention = MultiheadAttentionAdapter(attn, self.name)
        self.n_heads = self._attention.n_heads

    def check(self) -> None:
        """Raise ``ValueError`` if ``self_attn`` would apply attention dropout (training mode)."""
        self._attention.check()

    def attach(self, transform: Transform) -> list[RemovableHandle]:
        saved: list[bool] = []
        mha = torch.backends.mha

        def before(module: nn.Module, args: tuple) -> None:
            saved.append(mha.get_fastpath_enabled())
            mha.set_fastpath_enabled(False)

        def after(module: nn.Module, args: tuple, output: Any) -> None:
            if saved:
                mha.set_fastpath_enabled(saved.pop())

        handles = [self.layer.register_forward_pre_hook(before)]
        try:
            handles.append(self.layer.register_forward_hook(after, always_call=True))
            handles.extend(self._attention.attach(transform))
        except BaseException:
            for h in handles:
                h.remove()
            raise
        return handles


# ----------------------------------------------------------------------------- head axis
def _norm_dim(dim: int, ndim: int, what: str, name: str) -> int:
    if not -ndim <= dim < ndim:
        raise ValueError(
            f"Layer {name!r}: `{what}`={dim} is out of range for a tensor with {ndim} axes."
        )
    return dim % ndim


def _rows_check(x: Tensor, name: str) -> None:
    if x.dim() < 2:
        raise ValueError(
            f"Layer {name!r}: the per-head tensor has shape {tuple(x.shape)}; expected a batch "
            "axis and a head axis."
        )


class HeadAxisAdapter(HeadAdapter):
    """Adapter for a module whose output has an explicit head axis.

    For attention patterns ``(B, H, L, S)``, per-head outputs ``(B, H, L, d)``
    and the like: a forward hook moves the batch and head axes to the front,
    applies the transform, and moves them back. Ablating a pattern (zeros or
    the reference mean pattern) ablates what the model computes from it.

    Parameters
    ----------
    module : nn.Module
    name : str
    head_dim : int, optional
        The head axis of the output. Default 1.
    batch_dim : int, optional
        The batch axis of the output. Default 0.
    n_heads : int, optional
        Number of heads. Default: ``module.num_heads`` or ``module.n_heads``
        if the module has one; otherwise required.
    output_index : int, optional
        If the module returns a tuple or list, the position of the per-head
        tensor in it. Default None: the output is the tensor.

    Raises
    ------
    ValueError
        If ``n_heads`` is neither given nor found on the module; at call time,
        if the output's head axis does not have ``n_heads`` entries.
    """

    options = ("head_dim", "batch_dim", "n_heads", "output_index")

    def __init__(self, module: nn.Module, name: str, **options: Any) -> None:
        super().__init__(module, name, **options)
        n_heads = options.get("n_heads")
        if n_heads is None:
            n_heads = getattr(module, "num_heads", getattr(module, "n_heads", None))
        if n_heads is None:
            raise ValueError(
                f"HeadAxisAdapter for layer {name!r} ({type(module).__name__}): pass "
                "`n_heads` (the module has no `num_heads` or `n_heads` attribute), e.g. "
                "functools.partial(HeadAxisAdapter, n_heads=4)."
            )
        self.n_heads = _check_n_heads(int(n_heads) if isinstance(n_heads, Tensor) else n_heads,
                                      name, "HeadAxisAdapter")
        self.head_dim = int(options.get("head_dim", 1))
        self.batch_dim = int(options.get("batch_dim", 0))
        self.output_index = options.get("output_index")

    def attach(self, transform: Transform) -> list[RemovableHandle]:
        name, n_heads = self.name, self.n_heads
        head_dim, batch_dim, index = self.head_dim, self.batch_dim, self.output_index

        def hook(module: nn.Module, args: tuple, output: Any) -> Any:
            x = output if index is None else output[index]
            if not isinstance(x, Tensor):
                raise TypeError(
                    f"Layer {name!r}: HeadAxisAdapter expected a tensor output"
                    + ("" if index is None else f" at position {index}")
                    + f", got {type(x).__name__}; set `output_index` for tuple outputs."
                )
            _rows_check(x, name)
            hd = _norm_dim(head_dim, x.dim(), "head_dim", name)
            bd = _norm_dim(batch_dim, x.dim(), "batch_dim", name)
            if hd == bd:
                raise ValueError(f"Layer {name!r}: `head_dim` and `batch_dim` are the same axis.")
            if x.shape[hd] != n_heads:
                raise ValueError(
                    f"Layer {name!r}: the output's head axis {hd} has {x.shape[hd]} entries, "
                    f"expected n_heads={n_heads} (output shape {tuple(x.shape)})."
                )
            y = transform(x.movedim((bd, hd), (0, 1))).movedim((0, 1), (bd, hd))
            if index is None:
                return y
            new = list(output)
            new[index] = y
            return type(output)(new) if isinstance(output, tuple) else new

        return [self.module.register_forward_hook(hook)]


class OutputProjectionAdapter(HeadAdapter):
    """Adapter for an out-projection called as a module (``nn.Linear``).

    Its input's last axis concatenates the heads, ``H * d_head`` (head
    ``h`` = features ``h d .. (h+1) d - 1``). A forward pre-hook reshapes the
    input to ``(B, H, ..., d_head)``, applies the transform and reshapes back,
    so an ablated head's slice of the input (and hence its contribution to the
    projection) is zero or its reference mean.

    Parameters
    ----------
    module : nn.Module
        Usually ``nn.Linear``; any module whose first input is ``(..., H*d)``.
    name : str
    n_heads : int
        Number of heads (required).
    batch_dim : int, optional
        The batch axis of the input. Default 0.

    Raises
    ------
    ValueError
        If ``n_heads`` is missing or does not divide ``in_features``; at call
        time, if the input's last axis is not divisible by ``n_heads``.
    """

    options = ("n_heads", "batch_dim")

    def __init__(self, module: nn.Module, name: str, **options: Any) -> None:
        super().__init__(module, name, **options)
        if "n_heads" not in options:
            raise ValueError(
                f"OutputProjectionAdapter for layer {name!r}: pass `n_heads`, e.g. "
                "functools.partial(OutputProjectionAdapter, n_heads=4)."
            )
        self.n_heads = _check_n_heads(options["n_heads"], name, "OutputProjectionAdapter")
        self.batch_dim = int(options.get("batch_dim", 0))
        in_features = getattr(module, "in_features", None)
        if isinstance(in_features, int) and in_features % self.n_heads:
            raise ValueError(
                f"OutputProjectionAdapter for layer {name!r}: in_features={in_features} is not "
                f"divisible by n_heads={self.n_heads}."
            )

    def attach(self, transform: Transform) -> list[RemovableHandle]:
        name, n_heads, batch_dim = self.name, self.n_heads, self.batch_dim

        def hook(module: nn.Module, args: tuple, kwargs: dict) -> Any:
            if args:
                x, where = args[0], "args"
            elif "input" in kwargs:
                x, where = kwargs["input"], "kwargs"
            else:
                raise TypeError(f"Layer {name!r}: OutputProjectionAdapter found no input tensor.")
            _rows_check(x, name)
            if x.shape[-1] % n_heads:
                raise ValueError(
                    f"Layer {name!r}: the input's last axis has {x.shape[-1]} features, not "
                    f"divisible by n_heads={n_heads}."
                )
            bd = _norm_dim(batch_dim, x.dim() - 1, "batch_dim", name)
            heads = x.unflatten(-1, (n_heads, x.shape[-1] // n_heads))   # (..., H, d)
            y = transform(heads.movedim((bd, -2), (0, 1)))
            y = y.movedim((0, 1), (bd, heads.dim() - 2)).flatten(-2)
            if where == "args":
                return (y, *args[1:]), kwargs
            return args, {**kwargs, "input": y}

        return [self.module.register_forward_pre_hook(hook, with_kwargs=True)]
