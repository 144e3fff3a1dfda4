"""The op lists: which torch operations are elementwise, linear, bilinear, divisions or comparisons.

Ops are named as :func:`~captum_genomics.deeplift.rules.registry.op_name` names
them (``torch.relu``, ``F.relu``, ``Tensor.relu_`` are all ``"relu"``).

- ``ELEMENTWISE_OPS``: handled by the rescale rule in
  :func:`~captum_genomics.deeplift.rules.registry.default_rules`.
- ``LINEAR_OPS``: linear (or merely structural) in each input-dependent
  tensor; the engine lets them through without a rule.
- ``BILINEAR_OPS``, ``DIVISION_OPS``, ``COMPARISON_OPS``: linear only in some
  uses; the engine reports them when they act nonlinearly on input-dependent
  tensors (two input-dependent factors, an input-dependent divisor, a
  comparison of input-dependent tensors).
- ``ALIASES`` and :func:`normalize_op_name`: the one spelling of every op name (also
  re-exported by :mod:`~captum_genomics.deeplift.rules.registry`).
"""

from __future__ import annotations

__all__ = ["ELEMENTWISE_OPS", "LINEAR_OPS", "BILINEAR_OPS", "DIVISION_OPS", "COMPARISON_OPS",
           "ALIASES", "normalize_op_name"]

#: Elementwise functions of one input-dependent tensor, handled by the rescale rule.
ELEMENTWISE_OPS = (
    # torch.nn activations
    "relu", "relu6", "leaky_relu", "elu", "selu", "celu", "gelu", "silu", "mish",
    "softplus", "sigmoid", "tanh", "hardtanh", "softsign", "hardswish",
    "hardsigmoid", "hardshrink", "softshrink", "tanhshrink", "logsigmoid",
    "log_sigmoid", "rrelu", "threshold", "prelu",
    # elementwise math
    "exp", "exp2", "expm1", "log", "log1p", "log2", "log10", "sqrt", "rsqrt", "abs",
    "square", "sin", "cos", "tan", "sinh", "cosh", "asinh", "atan", "asin", "acos",
    "atanh", "acosh", "erf", "erfc", "erfinv", "sign", "sgn", "clamp", "clamp_min",
    "clamp_max", "pow", "reciprocal", "logit", "floor", "ceil", "round", "trunc",
    "frac", "sinc", "nan_to_num",
)

#: Operations that are linear (or merely structural) in each input-dependent tensor.
LINEAR_OPS = frozenset((
    "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
    "conv_transpose3d", "conv_tbc", "linear", "addmm", "addmv", "mv", "einsum", "tensordot",
    "outer", "dot", "kron", "add", "radd", "iadd", "sub", "rsub", "isub", "neg",
    "negative", "div", "truediv", "rtruediv", "itruediv", "true_divide", "imul", "rmul",
    "sum", "mean", "nansum", "cumsum", "trace", "diff",
    "reshape", "view", "view_as", "flatten", "unflatten", "permute", "transpose",
    "t", "mT", "T", "squeeze", "unsqueeze", "expand", "expand_as", "repeat",
    "repeat_interleave", "contiguous", "clone", "detach", "to", "type", "type_as",
    "float", "double", "half", "bfloat16", "cpu", "cuda", "cat", "concat",
    "concatenate", "stack", "hstack", "vstack", "split", "split_with_sizes", "chunk",
    "tensor_split", "narrow", "select", "index_select", "gather", "take_along_dim",
    "getitem", "setitem", "pad", "constant_pad_nd", "avg_pool1d", "avg_pool2d",
    "avg_pool3d", "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
    "lp_pool1d", "batch_norm", "dropout", "dropout1d", "dropout2d", "dropout3d",
    "alpha_dropout", "feature_alpha_dropout", "interpolate", "upsample",
    "roll", "flip", "fliplr", "flipud", "rot90", "tile", "movedim", "moveaxis",
    "swapaxes", "swapdims", "unbind", "masked_fill", "masked_select", "where",
    "diagonal", "diag", "diag_embed", "tril", "triu", "unfold", "fold",
    "pixel_shuffle", "pixel_unshuffle", "channel_shuffle", "as_strided",
    "sum_to_size", "broadcast_to", "atleast_1d", "atleast_2d", "atleast_3d",
    "ravel", "zeros_like", "ones_like", "empty_like", "full_like", "new_zeros",
    "new_ones", "new_empty", "new_full", "requires_grad_", "retain_grad",
    "register_hook", "copy_", "fill_", "zero_", "get", "set", "identity",
    "scatter", "scatter_add", "index_add", "index_copy", "index_put", "put",
    "embedding_bag", "linalg_vector_norm_linear", "real", "imag", "conj",
    "resolve_conj", "resolve_neg", "view_as_complex", "view_as_real", "complex",
    "align_to", "refine_names", "rename", "mul",
    "matmul", "mm", "bmm", "baddbmm", "addbmm", "float_power_scalar",
))

#: Products: linear in each factor, nonlinear when two factors depend on the inputs.
BILINEAR_OPS = frozenset(("mul", "matmul", "mm", "bmm", "einsum", "dot", "outer", "kron",
                          "tensordot", "baddbmm", "addbmm", "addmm", "addmv", "mv", "imul",
                          "rmul"))
#: Divisions: linear in the dividend, nonlinear when the divisor depends on the inputs.
DIVISION_OPS = frozenset(("div", "truediv", "rtruediv", "itruediv", "true_divide"))
#: Comparisons of input-dependent tensors build masks (``h * (h > 0)``,
#: ``torch.where(h > 0, h, 0)``): the ops that use them are piecewise, not linear.
COMPARISON_OPS = frozenset(("gt", "lt", "ge", "le", "eq", "ne", "greater", "less",
                            "greater_equal", "less_equal", "not_equal", "isclose",
                            "argmax", "argmin", "argsort", "heaviside", "signbit"))


#: Other spellings of the same op (``torch.special`` names, numpy-style aliases).
ALIASES = {
    "special_expit": "sigmoid", "expit": "sigmoid", "special_erf": "erf",
    "special_erfc": "erfc", "special_erfinv": "erfinv", "special_logit": "logit",
    "special_log1p": "log1p", "special_expm1": "expm1", "special_exp2": "exp2",
    "special_sinc": "sinc", "special_round": "round", "special_softmax": "softmax",
    "special_log_softmax": "log_softmax", "arcsinh": "asinh", "arctan": "atan",
    "absolute": "abs", "clip": "clamp", "negative": "neg", "concat": "cat",
    "concatenate": "cat", "true_divide": "div", "multiply": "mul", "subtract": "sub",
    "divide": "div", "swapaxes": "transpose", "swapdims": "transpose",
}


def normalize_op_name(name: str) -> str:
    """Canonical registry name: strip leading/trailing underscores, resolve aliases."""
    name = name.strip("_")
    return ALIASES.get(name, name)
