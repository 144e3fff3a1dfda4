"""Decompositions: composite torch functions rewritten from ops that have DeepLIFT rules.

Some torch functions are one op to a :class:`~torch.overrides.TorchFunctionMode`
but a whole network inside: ``F.scaled_dot_product_attention`` (softmax of a
product of two input-dependent tensors, times a third) and
``F.multi_head_attention_forward`` (used by ``nn.MultiheadAttention``,
``nn.TransformerEncoderLayer`` and ``nn.TransformerDecoderLayer``). No single
rule is exact for them, but every op inside has one: linear maps, the midpoint
product rule for ``matmul``/``bmm`` of two input-dependent tensors and the
exact softmax rule. When the engine (:mod:`captum_genomics.deeplift.engine`)
meets an op without a rule that has a decomposition here, it runs the
decomposition *inside* its mode, in both passes, so each inner op gets its
own rule and the attributions stay additive.

The built-in decompositions follow torch 2.13's own code
(``torch.nn.functional.multi_head_attention_forward`` and the reference
implementation in the docstring of ``scaled_dot_product_attention``): forward
outputs equal torch's up to floating-point rounding (``~1e-16`` relative in
float64). Attribution is defined for the model in eval mode, so a nonzero
dropout probability raises ``ValueError``.

Adding your own
---------------
Wrap a function of the same signature as the op in :class:`Decomposition`
and register it under the op's name in the rules you pass
(``rules=default_rules().with_rules({"my_attention": Decomposition(fn)})``);
``fn`` must use only torch ops (those with rules, or linear ones) so the
engine can see them. A registered rule or decomposition takes precedence over
the built-in one of the same name. For a function to reach the engine as one
op it must be a torch function that honours ``__torch_function__`` (a plain
Python function is already seen op by op and needs nothing).
"""

from __future__ import annotations

import math
from types import MappingProxyType
from typing import Any, Callable, Mapping

import torch
from torch import Tensor

from captum_genomics.deeplift.rules.base import Rule

__all__ = [
    "Decomposition",
    "DEFAULT_DECOMPOSITIONS",
    "scaled_dot_product_attention",
    "multi_head_attention_forward",
]


class Decomposition(Rule):
    """A rule that runs a Python rewrite of an op inside the engine's mode.

    Parameters
    ----------
    fn : callable
        Called as ``fn(*args, **kwargs)`` with the op's own arguments; must
        return what the op returns, computed from torch ops only.

    The engine does not call :meth:`reference` or :meth:`apply` of a
    decomposition: it runs ``fn`` with its mode active so that each inner op
    gets its own rule (both methods raise ``RuntimeError`` if called).

    Examples
    --------
    >>> import torch
    >>> from captum_genomics.deeplift.rules import default_rules
    >>> def my_attention(q, k, v):
    ...     return torch.softmax(q @ k.transpose(-2, -1), dim=-1) @ v
    >>> rules = default_rules().with_rules({"my_attention": Decomposition(my_attention)})
    """

    name = "decomposition"

    def __init__(self, fn: Callable[..., Any]):
        if not callable(fn):
            raise TypeError(f"`fn` must be callable, got {type(fn).__name__}.")
        self.fn = fn

    def __call__(self, *args, **kwargs):
        return self.fn(*args, **kwargs)

    def reference(self, func, args, kwargs):
        raise RuntimeError("A Decomposition is run by the engine, not as a rule.")

    def apply(self, func, args, kwargs, state, pairs):
        raise RuntimeError("A Decomposition is run by the engine, not as a rule.")

    def __repr__(self) -> str:
        return f"Decomposition({getattr(self.fn, '__name__', self.fn)!r})"


def _no_dropout(dropout_p: float, name: str) -> None:
    if dropout_p != 0.0:
        raise ValueError(
            f"`{name}` was called with dropout_p={dropout_p!r}; DeepLIFT attributions are "
            "defined for the model in eval mode, where dropout is off. Call model.eval() "
            "(or pass dropout_p=0.0)."
        )


def _bool_to_additive(mask: Tensor, masked_where: bool, dtype: torch.dtype) -> Tensor:
    """A float mask with ``-inf`` where the bool ``mask`` equals ``masked_where``, else 0."""
    hide = mask if masked_where else mask.logical_not()
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(
        hide, float("-inf"))


def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor,
                                 attn_mask: Tensor | None = None, dropout_p: float = 0.0,
                                 is_causal: bool = False, scale: float | None = None,
                                 enable_gqa: bool = False) -> Tensor:
    """``F.scaled_dot_product_attention`` from ``matmul``, ``softmax`` and additive masks.

    Parameters
    ----------
    query : Tensor ``(..., L, E)``
    key : Tensor ``(..., S, E)``
    value : Tensor ``(..., S, Ev)``
    attn_mask : Tensor broadcastable to ``(..., L, S)``, optional
        Bool (True = attend) or float (added to the scores). Default None.
    dropout_p : float
        Must be 0.0 (default); attribution is defined in eval mode.
    is_causal : bool
        Lower-triangular causal mask (top-left aligned); not together with
        ``attn_mask``. Default False.
    scale : float, optional
        Score scale; default ``1 / sqrt(E)``.
    enable_gqa : bool
        Grouped-query attention: key/value heads (axis -3) are repeated to
        the query's. Default False.

    Returns
    -------
    Tensor ``(..., L, Ev)``, same dtype as ``query``.

    Raises
    ------
    ValueError
        ``dropout_p`` nonzero, or ``is_causal`` together with ``attn_mask``.

    Notes
    -----
    The math of torch's reference implementation (the docstring of
    ``torch.nn.functional.scaled_dot_product_attention``). Rows whose keys
    are all masked give NaN here, where torch's math kernel returns zeros.
    """
    _no_dropout(dropout_p, "scaled_dot_product_attention")
    n_q, n_k = query.size(-2), key.size(-2)
    scale_factor = 1.0 / math.sqrt(query.size(-1)) if scale is None else scale
    bias = None
    if is_causal:
        if attn_mask is not None:
            raise ValueError("`scaled_dot_product_attention`: pass either `attn_mask` or "
                             "`is_causal=True`, not both.")
        allowed = torch.ones(n_q, n_k, dtype=torch.bool, device=query.device).tril(diagonal=0)
        bias = _bool_to_additive(allowed, False, query.dtype)
    elif attn_mask is not None:
        bias = (_bool_to_additive(attn_mask, False, query.dtype)
                if attn_mask.dtype == torch.bool else attn_mask)
    if enable_gqa:
        key = key.repeat_interleave(query.size(-3) // key.size(-3), -3)
        value = value.repeat_interleave(query.size(-3) // value.size(-3), -3)
    scores = torch.matmul(query, key.transpose(-2, -1)) * scale_factor
    if bias is not None:
        scores = scores + bias
    return torch.matmul(torch.softmax(scores, dim=-1), value)


def _in_projection(query, key, value, in_proj_weight, in_proj_bias, separate,
                   q_proj_weight, k_proj_weight, v_proj_weight):
    """q, k, v projections as torch's ``_in_projection_packed`` / ``_in_projection``."""
    linear = torch.nn.functional.linear
    if not separate:
        e = query.size(-1)
        if key is value and query is key:
            proj = linear(query, in_proj_weight, in_proj_bias)
            proj = proj.unflatten(-1, (3, e)).unsqueeze(0).transpose(0, -2).squeeze(-2)
            return proj[0], proj[1], proj[2]
        if key is value:
            w_q, w_kv = in_proj_weight.split([e, e * 2])
            b_q, b_kv = (None, None) if in_proj_bias is None else in_proj_bias.split([e, e * 2])
            kv = linear(key, w_kv, b_kv)
            kv = kv.unflatten(-1, (2, e)).unsqueeze(0).transpose(0, -2).squeeze(-2)
            return linear(query, w_q, b_q), kv[0], kv[1]
        w_q, w_k, w_v = in_proj_weight.chunk(3)
        b_q, b_k, b_v = (None,) * 3 if in_proj_bias is None else in_proj_bias.chunk(3)
        return linear(query, w_q, b_q), linear(key, w_k, b_k), linear(value, w_v, b_v)
    if q_proj_weight is None or k_proj_weight is None or v_proj_weight is None:
        raise ValueError("`multi_head_attention_forward` with use_separate_proj_weight=True "
                         "needs q_proj_weight, k_proj_weight and v_proj_weight.")
    b_q, b_k, b_v = (None,) * 3 if in_proj_bias is None else in_proj_bias.chunk(3)
    return (linear(query, q_proj_weight, b_q), linear(key, k_proj_weight, b_k),
            linear(value, v_proj_weight, b_v))


def _float_mask(mask: Tensor | None, dtype: torch.dtype, name: str) -> Tensor | None:
    """torch's ``_canonical_mask``: bool (True = masked) to additive ``-inf``; float kept."""
    if mask is None:
        return None
    if mask.dtype == torch.bool:
        return _bool_to_additive(mask, True, dtype)
    if not torch.is_floating_point(mask):
        raise TypeError(f"`{name}` must be a bool or floating-point tensor, got {mask.dtype}.")
    return mask


def multi_head_attention_forward(
    query: Tensor, key: Tensor, value: Tensor, embed_dim_to_check: int, num_heads: int,
    in_proj_weight: Tensor | None, in_proj_bias: Tensor | None, bias_k: Tensor | None,
    bias_v: Tensor | None, add_zero_attn: bool, dropout_p: float, out_proj_weight: Tensor,
    out_proj_bias: Tensor | None, training: bool = True, key_padding_mask: Tensor | None = None,
    need_weights: bool = True, attn_mask: Tensor | None = None,
    use_separate_proj_weight: bool = False, q_proj_weight: Tensor | None = None,
    k_proj_weight: Tensor | None = None, v_proj_weight: Tensor | None = None,
    static_k: Tensor | None = None, static_v: Tensor | None = None,
    average_attn_weights: bool = True, is_causal: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """``F.multi_head_attention_forward`` from linear maps, ``bmm``/``matmul`` and ``softmax``.

    Arguments and returns are torch's (sequence-first ``(L, N, E)`` or
    unbatched ``(L, E)`` query; key and value ``(S, N, E_k)``/``(S, N, E_v)``):
    the output ``(L, N, E)`` and, with ``need_weights=True``, the attention
    weights ``(N, L, S)`` averaged over heads or ``(N, H, L, S)`` per head
    (None otherwise). Packed and separate projection weights, ``bias_k``/
    ``bias_v``, ``add_zero_attn``, bool or float ``key_padding_mask`` and 2D/3D
    ``attn_mask``, and ``is_causal`` are supported, following torch 2.13's
    implementation step by step (``baddbmm(mask, q, k^T)`` is written
    ``bmm(q, k^T) + mask`` so the product rule sees it).

    Raises
    ------
    ValueError
        ``training=True`` with ``dropout_p > 0`` (attribution is defined in
        eval mode); ``static_k``/``static_v`` given (not supported); shapes
        torch would reject.
    """
    if training:
        _no_dropout(dropout_p, "multi_head_attention_forward")
    if static_k is not None or static_v is not None:
        raise ValueError("`multi_head_attention_forward`: static_k/static_v are not supported "
                         "by the DeepLIFT decomposition.")
    batched = query.dim() == 3
    if not batched:
        query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
        if key_padding_mask is not None:
            key_padding_mask = key_padding_mask.unsqueeze(0)
    tgt_len, bsz, embed_dim = query.shape
    src_len = key.shape[0]
    if embed_dim != embed_dim_to_check:
        raise ValueError(f"`query` has embedding dimension {embed_dim}, expected "
                         f"{embed_dim_to_check}.")
    head_dim = embed_dim // num_heads
    if head_dim * num_heads != embed_dim:
        raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}.")
    key_padding_mask = _float_mask(key_padding_mask, query.dtype, "key_padding_mask")
    if is_causal and attn_mask is None:
        raise ValueError("`multi_head_attention_forward`: is_causal=True needs attn_mask "
                         "(as in torch).")
    if is_causal and key_padding_mask is None and not need_weights:
        attn_mask = None
    else:
        attn_mask = _float_mask(attn_mask, query.dtype, "attn_mask")
        if key_padding_mask is not None:
            is_causal = False

    # every tensor a rule or a shared linear map sees keeps the batch on axis 0 (the
    # engine's pair axis): the projections run on (N, L, E) and the heads go to
    # (N, H, L, head_dim), where torch uses (L, N, E) and (N * H, L, head_dim)
    query_b = query.transpose(0, 1)
    key_b = query_b if key is query else key.transpose(0, 1)
    value_b = key_b if value is key else value.transpose(0, 1)
    q, k, v = _in_projection(query_b, key_b, value_b, in_proj_weight, in_proj_bias,
                             use_separate_proj_weight, q_proj_weight, k_proj_weight,
                             v_proj_weight)
    if attn_mask is not None:
        if attn_mask.dim() == 2:
            if tuple(attn_mask.shape) != (tgt_len, src_len):
                raise ValueError(f"The 2D attn_mask has shape {tuple(attn_mask.shape)}, "
                                 f"expected {(tgt_len, src_len)}.")
            attn_mask = attn_mask.view(1, 1, tgt_len, src_len)
        elif attn_mask.dim() == 3 and tuple(attn_mask.shape) == (bsz * num_heads, tgt_len,
                                                                  src_len):
            attn_mask = attn_mask.view(bsz, num_heads, tgt_len, src_len)
        else:
            raise ValueError(f"attn_mask has shape {tuple(attn_mask.shape)}, expected "
                             f"{(tgt_len, src_len)} or {(bsz * num_heads, tgt_len, src_len)}.")
    pad = torch.nn.functional.pad
    if bias_k is not None and bias_v is not None:
        k = torch.cat([k, bias_k.reshape(1, 1, -1).expand(bsz, 1, -1)], dim=1)
        v = torch.cat([v, bias_v.reshape(1, 1, -1).expand(bsz, 1, -1)], dim=1)
        if attn_mask is not None:
            attn_mask = pad(attn_mask, (0, 1))
        if key_padding_mask is not None:
            key_padding_mask = pad(key_padding_mask, (0, 1))
    elif bias_k is not None or bias_v is not None:
        raise ValueError("`bias_k` and `bias_v` must be given together.")
    q = q.reshape(bsz, tgt_len, num_heads, head_dim).transpose(1, 2)
    k = k.reshape(bsz, k.shape[1], num_heads, head_dim).transpose(1, 2)
    v = v.reshape(bsz, v.shape[1], num_heads, head_dim).transpose(1, 2)
    if add_zero_attn:
        zeros = torch.zeros((bsz, num_heads, 1, head_dim), dtype=k.dtype, device=k.device)
        k = torch.cat([k, zeros], dim=2)
        v = torch.cat([v, zeros.to(v.dtype)], dim=2)
        if attn_mask is not None:
            attn_mask = pad(attn_mask, (0, 1))
        if key_padding_mask is not None:
            key_padding_mask = pad(key_padding_mask, (0, 1))
    src_len = k.size(2)
    if key_padding_mask is not None:
        if tuple(key_padding_mask.shape) != (bsz, src_len):
            raise ValueError(f"key_padding_mask has shape {tuple(key_padding_mask.shape)}, "
                             f"expected {(bsz, src_len)}.")
        key_padding_mask = key_padding_mask.view(bsz, 1, 1, src_len)
        attn_mask = key_padding_mask if attn_mask is None else attn_mask + key_padding_mask

    if need_weights:
        q_scaled = q * math.sqrt(1.0 / float(head_dim))
        scores = torch.matmul(q_scaled, k.transpose(-2, -1))
        if attn_mask is not None:
            scores = attn_mask + scores
        weights = torch.softmax(scores, dim=-1)
        out = torch.matmul(weights, v)
    else:
        # through the torch function, so the engine meets (and decomposes) it in turn
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask, 0.0,
                                                               is_causal)
        weights = None
    out = out.transpose(1, 2).reshape(bsz, tgt_len, embed_dim)
    out = torch.nn.functional.linear(out, out_proj_weight, out_proj_bias).transpose(0, 1)
    if weights is not None and average_attn_weights:
        weights = weights.mean(dim=1)
    if not batched:
        out = out.squeeze(1)
        weights = None if weights is None else weights.squeeze(0)
    return out, weights


#: The built-in decompositions, by registry op name (read-only).
DEFAULT_DECOMPOSITIONS: Mapping[str, Decomposition] = MappingProxyType({
    "scaled_dot_product_attention": Decomposition(scaled_dot_product_attention),
    "multi_head_attention_forward": Decomposition(multi_head_attention_forward),
})
