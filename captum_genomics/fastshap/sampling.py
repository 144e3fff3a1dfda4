"""Coalition sampling: the Shapley kernel distribution and a uniform-size distribution.

FastSHAP (Jethani et al., ICLR 2022, Eq. 6-7) trains its explainer on
coalitions ``S`` drawn from the Shapley kernel distribution

    p(S) ∝ (d - 1) / (C(d, |S|) |S| (d - |S|)),   0 < |S| < d,

i.e. a size ``s`` with ``p(s) ∝ (d - 1) / (s (d - s))`` and then a uniform
subset of that size (Charnes et al. 1988; Lundberg & Lee 2017). The masked
surrogate is trained on all sizes, ``s`` uniform in ``0..d`` (Covert et al.,
"Explaining by removing", JMLR 2021; the FastSHAP reference implementation does
the same).

Every sampler takes a ``torch.Generator`` and uses no global random state, so
the same generator state gives the same masks. Masks are drawn on the
generator's device and then moved to ``device``; a CPU generator therefore
gives the same masks whatever ``device`` is.
"""

from __future__ import annotations

import torch
from torch import Tensor

from captum_genomics._utils.checks import check_positive_int

__all__ = [
    "shapley_kernel_size_probs",
    "sample_shapley_coalitions",
    "sample_uniform_size_coalitions",
    "coalitions_of_sizes",
]


def shapley_kernel_size_probs(n_players: int, dtype: torch.dtype = torch.float64) -> Tensor:
    """Probabilities of the coalition sizes ``1..d-1`` under the Shapley kernel.

    Parameters
    ----------
    n_players
        ``d >= 2``.
    dtype
        Floating dtype of the result. Default ``torch.float64``.

    Returns
    -------
    Tensor
        ``shape=(d - 1,)``; entry ``s - 1`` is ``p(s) ∝ (d-1) / (s (d-s))``,
        normalized to sum to 1.

    Raises
    ------
    ValueError
        If ``n_players < 2`` (no size lies strictly between 0 and ``d``).
    """
    check_positive_int(n_players, "n_players", minimum=2)
    s = torch.arange(1, n_players, dtype=torch.float64)
    w = (n_players - 1) / (s * (n_players - s))
    return (w / w.sum()).to(dtype)


def coalitions_of_sizes(sizes: Tensor, n_players: int,
                        generator: torch.Generator | None = None) -> Tensor:
    """Uniformly random subsets of given sizes, one per row.

    Parameters
    ----------
    sizes
        Integer tensor ``shape=(n,)`` with entries in ``0..d``.
    n_players
        ``d``.
    generator
        Source of randomness; None uses a fresh generator seeded 0 (never the
        global state). Sizes and masks are drawn on ``generator.device``.

    Returns
    -------
    Tensor
        ``shape=(n, d)``, ``dtype=torch.bool``: row ``k`` has exactly
        ``sizes[k]`` True entries, all ``C(d, sizes[k])`` subsets equally
        likely (the ranks of ``d`` i.i.d. uniforms form a uniform permutation).
    """
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    n = int(sizes.shape[0])
    u = torch.rand(n, n_players, generator=g, device=g.device)
    ranks = u.argsort(dim=1).argsort(dim=1)
    return ranks < sizes.to(g.device).view(-1, 1)


def _finish(masks: Tensor, paired: bool, device, dtype) -> Tensor:
    if paired:
        n, d = masks.shape
        masks = torch.stack([masks, ~masks], dim=1).reshape(2 * n, d)
    return masks.to(device=device, dtype=dtype)


def _check_n(n_samples: int, paired: bool) -> int:
    check_positive_int(n_samples, "n_samples")
    if paired and n_samples % 2:
        raise ValueError(
            f"`n_samples` must be even with paired=True (each coalition comes with its "
            f"complement), got {n_samples}."
        )
    return n_samples // 2 if paired else n_samples


def sample_shapley_coalitions(n_samples: int, n_players: int,
                              generator: torch.Generator | None = None, paired: bool = False,
                              device: torch.device | str | None = None,
                              dtype: torch.dtype = torch.float32) -> Tensor:
    """Draw coalitions from the Shapley kernel distribution.

    A size ``s`` in ``1..d-1`` with ``p(s) ∝ (d-1) / (s (d-s))``
    (:func:`shapley_kernel_size_probs`), then a uniform subset of size ``s``.
    The empty and the grand coalition are never drawn: FastSHAP's loss handles
    them through the efficiency constraint.

    Parameters
    ----------
    n_samples
        Number of coalitions ``n``; must be even when ``paired``.
    n_players
        ``d >= 2``.
    generator
        Source of randomness; None uses a fresh generator seeded 0 (never the
        global state).
    paired
        If True, draw ``n / 2`` coalitions and follow each by its complement
        (rows ``2k`` and ``2k+1`` are complements; Covert & Lee, "Improving
        KernelSHAP", AISTATS 2021). Sizes ``s`` and ``d-s`` have the same
        kernel probability, so every row is still kernel-distributed. Default
        False.
    device
        Device of the result. Default: the generator's device.
    dtype
        Dtype of the result (0/1 entries). Default ``torch.float32``.

    Returns
    -------
    Tensor
        ``shape=(n, d)``.

    Raises
    ------
    ValueError
        If ``n_players < 2``, ``n_samples < 1``, or ``paired`` with an odd
        ``n_samples``.
    """
    m = _check_n(n_samples, paired)
    probs = shapley_kernel_size_probs(n_players)
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    sizes = torch.multinomial(probs.to(g.device), m, replacement=True, generator=g) + 1
    masks = coalitions_of_sizes(sizes, n_players, g)
    return _finish(masks, paired, g.device if device is None else device, dtype)


def sample_uniform_size_coalitions(n_samples: int, n_players: int,
                                   generator: torch.Generator | None = None,
                                   paired: bool = False,
                                   device: torch.device | str | None = None,
                                   dtype: torch.dtype = torch.float32) -> Tensor:
    """Draw coalitions with a size uniform in ``0..d``, then a uniform subset.

    The distribution used to train masked surrogates: every size, the empty
    and the grand coalition included, is equally likely.

    Parameters
    ----------
    n_samples, n_players, generator, paired, device, dtype
        As in :func:`sample_shapley_coalitions`; ``n_players >= 1``.

    Returns
    -------
    Tensor
        ``shape=(n, d)``.
    """
    m = _check_n(n_samples, paired)
    check_positive_int(n_players, "n_players")
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    sizes = torch.randint(0, n_players + 1, (m,), generator=g, device=g.device)
    masks = coalitions_of_sizes(sizes, n_players, g)
    return _finish(masks, paired, g.device if device is None else device, dtype)
