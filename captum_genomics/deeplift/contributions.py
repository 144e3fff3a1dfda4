"""Hypothetical contributions and their projection onto the observed bases.

For one-hot inputs ``x`` ``(N, A, L)``, DeepLIFT multipliers ``m`` and
references ``r`` ``(N, K, A, L)``, the hypothetical contribution of base ``a``
at position ``l`` against reference ``k`` is the contribution that base would
have had if it had been observed there:

``h[k, a, l] = sum_b m[k, b, l] * (onehot(a)[b] - r[k, b, l]) = m[k, a, l] - sum_b m[k, b, l] r[k, b, l]``

averaged over the ``K`` references (Shrikumar et al.'s DeepSHAP ``combine_mult_and_diffref``
for one-hot DNA; tangermeme's ``hypothetical_attributions``). Multiplying by the
one-hot input keeps the observed base only, and then the sum over ``A`` at each
position equals the DeepLIFT contribution ``sum_b m (x - r)`` of that position.
"""

from __future__ import annotations

from torch import Tensor

from captum_genomics._utils.checks import check_shape, check_tensor

__all__ = ["hypothetical_contributions", "project_contributions", "pair_hypothetical"]


def pair_hypothetical(multipliers: Tensor, references: Tensor) -> Tensor:
    """Hypothetical contributions of aligned pairs; ``(B, A, L)`` in, ``(B, A, L)`` out.

    ``multipliers[b] - sum_a(multipliers[b] * references[b], axis=A)``; no averaging.
    """
    return multipliers - (multipliers * references).sum(dim=-2, keepdim=True)


def hypothetical_contributions(multipliers: Tensor, inputs: Tensor, references: Tensor) -> Tensor:
    """Hypothetical contributions averaged over references.

    Parameters
    ----------
    multipliers : Tensor ``(N, K, A, L)``, float
        DeepLIFT multipliers of each example-reference pair, e.g. from
        ``ShuffleDeepLiftShap.attribute(..., return_multipliers=True)``.
    inputs : Tensor ``(N, A, L)``
        The one-hot inputs (only their shape is used: hypothetical
        contributions do not depend on the observed base).
    references : Tensor ``(N, K, A, L)``
        The references the multipliers were computed against.

    Returns
    -------
    Tensor ``(N, A, L)``, dtype of ``multipliers``
        Hypothetical contributions: the mean over ``K`` of
        ``m - sum_A(m * r)``. Multiply by ``inputs`` (see
        :func:`project_contributions`) for contributions of the observed bases.

    Raises
    ------
    ValueError
        If the shapes do not match ``(N, K, A, L)`` / ``(N, A, L)``.
    """
    for value, name in ((multipliers, "multipliers"), (inputs, "inputs"), (references, "references")):
        check_tensor(value, name)
    check_shape(inputs, "inputs", (None, None, None))
    n, a, length = inputs.shape
    check_shape(multipliers, "multipliers", (n, None, a, length))
    check_shape(references, "references", tuple(multipliers.shape))
    per_pair = pair_hypothetical(multipliers, references.to(multipliers.dtype))
    return per_pair.mean(dim=1)


def project_contributions(hypothetical: Tensor, inputs: Tensor) -> Tensor:
    """Contributions of the observed bases: ``hypothetical * inputs``, ``(N, A, L)``.

    N positions (all-zero columns) get zero contribution.
    """
    check_shape(inputs, "inputs", tuple(hypothetical.shape))
    return hypothetical * inputs.to(hypothetical.dtype)
