"""From the changes of the output to ISM attributions: centering and projection."""

from __future__ import annotations

from torch import Tensor

__all__ = ["ism_scores"]


def ism_scores(changes: Tensor, x: Tensor, start: int, end: int, centered: bool,
               hypothetical: bool) -> Tensor:
    """ISM attributions from the change of the output at every (base, position).

    Parameters
    ----------
    changes : Tensor ``(N, A, L)``
        ``f(edited) - f(original)`` for the edit to base ``a`` at position
        ``l``; 0 at the observed base and outside ``[start, end)``.
    x : Tensor ``(N, A, L)``
        The one-hot inputs (all-zero columns are ``N``).
    start, end : int
        The edited window.
    centered : bool
        Subtract, at every edited position, the mean over the ``A`` bases
        (the observed base's 0 included): tangermeme's
        ``saturation_mutagenesis`` convention.
    hypothetical : bool
        With ``centered``, return the centered values of all bases; otherwise
        project them on the observed base (multiply by ``x``; an ``N``
        position gets 0). Without ``centered`` the changes are returned as
        they are: every base's change, the observed base's being 0.

    Returns
    -------
    Tensor ``(N, A, L)``
        A new tensor; 0 outside ``[start, end)``.
    """
    out = changes.clone()
    if not centered:
        return out
    window = out[:, :, start:end]
    window -= window.mean(1, keepdim=True)
    if not hypothetical:
        window *= x[:, :, start:end].to(window)
    return out
