"""Shared set-up for the DeepLIFT/SHAP benchmarks: three model families, 20 references.

- ``bpnet``: :class:`captum_genomics.zoo.bpnet.BPNetLike` (wide first convolution,
  8 dilated residual convolutions of 64 channels, ReLU, global average pool,
  linear head of 8 outputs), 1 kb.
- ``basset``: :class:`captum_genomics.zoo.basset.BassetLike` (convolutions of
  300/200/200 filters of width 19/11/7 with batch norm, ReLU and max-pools of
  3/4/4, two dense layers of 1000, 164 outputs), 600 bp; the batch-norm running
  statistics are drawn at random so that they are not the identity.
- ``transformer``: :class:`captum_genomics.zoo.ctcf_transformer.CTCFTransformer`
  at ``d_model=128``, 8 heads, 4 pre-norm encoder layers with a GELU feed-forward
  of 256 and a max-pool of 8 (125 tokens from 1 kb). tangermeme has no rule for
  ``nn.TransformerEncoderLayer``'s fused ops, so it runs on the same weights
  written with the modules it hooks
  (``transformer_vs_peers.RewrittenCTCFTransformer``; equal forward).

Random weights from ``torch.manual_seed(seed)``, random one-hot inputs and
references from a seeded generator; 32 example-reference pairs per batch.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from captum_genomics import ShuffleDeepLiftShap

LENGTH = 1000
N_REFERENCES = 20
BATCH = 32
MODELS = ("bpnet", "basset", "transformer")


@dataclass
class Case:
    """One benchmark model: ``model`` for ours and Captum, ``peer_model`` for tangermeme."""

    name: str
    model: nn.Module
    peer_model: nn.Module
    x: torch.Tensor
    refs: torch.Tensor
    description: str


def _one_hot(n: int, length: int, g: torch.Generator):
    x = F.one_hot(torch.randint(0, 4, (n, length), generator=g), 4).permute(0, 2, 1).float()
    refs = F.one_hot(torch.randint(0, 4, (n, N_REFERENCES, length), generator=g), 4)
    return x, refs.permute(0, 1, 3, 2).float().contiguous()


def make_case(name: str = "bpnet", n: int = 8, seed: int = 0) -> Case:
    """Model (eval, float32), inputs ``(n, 4, L)`` and references ``(n, 20, 4, L)``."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    if name == "bpnet":
        from captum_genomics.zoo.bpnet import BPNetLike

        model, length = BPNetLike().eval(), LENGTH
        peer, text = model, "BPNetLike (64 filters, 8 dilated residual layers), 1 kb"
    elif name == "basset":
        from captum_genomics.zoo.basset import BassetLike

        model, length = BassetLike().eval(), 600
        for m in model.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
        peer, text = model, "BassetLike (300/200/200 filters, BN, ReLU, max-pools, 2x1000 dense), 600 bp"
    elif name == "transformer":
        from captum_genomics.zoo.ctcf_transformer import CTCFTransformer
        from transformer_vs_peers import RewrittenCTCFTransformer

        model = CTCFTransformer(d_model=128, n_heads=8, n_layers=4, dim_feedforward=256,
                                pool=8).eval()
        length = LENGTH
        peer = RewrittenCTCFTransformer(model).eval()
        text = ("CTCFTransformer(d_model=128, 8 heads, 4 pre-norm layers, GELU ff 256, pool 8): "
                "125 tokens from 1 kb")
    else:
        raise ValueError(f"unknown model {name!r}; one of {MODELS}")
    x, refs = _one_hot(n, length, g)
    return Case(name, model, peer, x, refs, text)


def make(n: int = 8, seed: int = 0):
    """BPNet-style model, inputs ``(n, 4, 1000)`` and references ``(n, 20, 4, 1000)``."""
    case = make_case("bpnet", n, seed)
    return case.model, case.x, case.refs


def ours(model, x, refs, target=0, targets=None, **kwargs):
    return ShuffleDeepLiftShap(model).attribute(
        x, references=refs, target=target, targets=targets, batch_size=BATCH,
        warning_threshold=float("inf"), **kwargs)


def tangermeme(model, x, refs, target=0):
    from tangermeme.deep_lift_shap import deep_lift_shap

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return deep_lift_shap(model, x, target=target, references=refs, batch_size=BATCH,
                              device=x.device.type, warning_threshold=float("inf"))


def captum_deeplift(model, x, refs, target=0):
    """Captum DeepLift over the same example-reference pairs, ``BATCH`` pairs per call."""
    from captum.attr import DeepLift

    n, k = refs.shape[:2]
    xs = x.repeat_interleave(k, 0)
    rs = refs.reshape(n * k, *refs.shape[2:])
    explainer = DeepLift(model)
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for s in range(0, n * k, BATCH):
            out.append(explainer.attribute(xs[s:s + BATCH], baselines=rs[s:s + BATCH],
                                           target=target))
    return torch.cat(out).reshape(n, k, *x.shape[1:]).mean(1)


def plain_forward_backward(model, x, refs, target=0):
    """An ordinary forward and backward of the concatenated [inputs; references] pairs."""
    n, k = refs.shape[:2]
    xs = x.repeat_interleave(k, 0)
    rs = refs.reshape(n * k, *refs.shape[2:])
    for s in range(0, n * k, BATCH):
        _input_gradient(model, torch.cat([xs[s:s + BATCH], rs[s:s + BATCH]]), target)


def _input_gradient(model, batch, target):
    """One ordinary forward of ``batch`` and the backward of ``target`` to its inputs."""
    batch = batch.requires_grad_(True)
    torch.autograd.grad(model(batch)[:, target].sum(), batch)


def floor_forward_backward(model, x, refs, target=0):
    """An ordinary forward and input-gradient backward of the reference rows alone.

    One forward and one backward per example-reference pair, ``BATCH`` pairs per call,
    with the model's own kernels: the work DeepLIFT/SHAP cannot avoid (the references'
    activations, and every pair's multipliers), against which an implementation's
    overhead is measured. ``x`` is not used (it has the anchors' signature).
    """
    n, k = refs.shape[:2]
    rs = refs.reshape(n * k, *refs.shape[2:])
    for s in range(0, n * k, BATCH):
        _input_gradient(model, rs[s:s + BATCH].clone(), target)
