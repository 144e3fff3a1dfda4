"""PyTorch's fused attention inference path, switched off for a block and restored.

``nn.MultiheadAttention`` and ``nn.TransformerEncoderLayer`` run one fused
kernel (``torch._native_multi_head_attention`` /
``torch._transformer_encoder_layer_fwd``) in eval mode when no input requires
grad. DeepLIFT's two passes (:mod:`captum_genomics.deeplift.engine`) must run
the same ops, and head ablation (:mod:`captum_genomics.heads`) must see the
heads, so both run their forwards inside :func:`fused_attention_disabled`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

__all__ = ["fused_attention_disabled"]


@contextlib.contextmanager
def fused_attention_disabled() -> Iterator[None]:
    """Switch off PyTorch's fused attention inference path; restore the user's setting.

    ``nn.MultiheadAttention`` and ``nn.TransformerEncoderLayer`` run
    ``torch._native_multi_head_attention`` / ``torch._transformer_encoder_layer_fwd``
    when no input requires grad and ``torch.backends.mha.get_fastpath_enabled()``
    is True; inside this context they run ``F.multi_head_attention_forward``
    in both of the engine's passes. The previous value is restored on exit,
    also after an error.
    """
    mha = torch.backends.mha
    previous = mha.get_fastpath_enabled()
    mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        mha.set_fastpath_enabled(previous)
