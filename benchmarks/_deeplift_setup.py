"""Shared set-up for the DeepLIFT/SHAP benchmarks: one BPNet-style model, 1 kb, 20 references."""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

from captum_genomics import ShuffleDeepLiftShap
from captum_genomics.zoo.bpnet import BPNetLike

LENGTH = 1000
N_REFERENCES = 20
BATCH = 32


def make(n: int = 8, seed: int = 0):
    """Model (eval, float32), inputs ``(n, 4, 1000)`` and references ``(n, 20, 4, 1000)``."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = BPNetLike().eval()
    x = F.one_hot(torch.randint(0, 4, (n, LENGTH), generator=g), 4).permute(0, 2, 1).float()
    refs = F.one_hot(torch.randint(0, 4, (n, N_REFERENCES, LENGTH), generator=g), 4)
    refs = refs.permute(0, 1, 3, 2).float().contiguous()
    return model, x, refs


def ours(model, x, refs, target=0, targets=None):
    return ShuffleDeepLiftShap(model).attribute(
        x, references=refs, target=target, targets=targets, batch_size=BATCH,
        warning_threshold=float("inf"))


def tangermeme(model, x, refs, target=0):
    from tangermeme.deep_lift_shap import deep_lift_shap

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return deep_lift_shap(model, x, target=target, references=refs, batch_size=BATCH,
                              device="cpu", warning_threshold=float("inf"))


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
        batch = torch.cat([xs[s:s + BATCH], rs[s:s + BATCH]]).requires_grad_(True)
        y = model(batch)[:, target]
        torch.autograd.grad(y.sum(), batch)
