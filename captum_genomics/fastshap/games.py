"""Cooperative games ``v(x, S)`` built from a model: what "holding features out" means.

A game maps inputs ``x`` ``shape=(B, *feature_shape)`` and coalition masks
``S`` ``shape=(B, d)`` (1 = player present) to values ``shape=(B, T)``, one per
model output. Players present keep their features of ``x``; how the others
are removed is the game:

- :class:`BaselineGame`: replaced by a baseline (``v(x, S) = f(x_S, b_{~S})``),
  the game of Captum's ``ShapleyValues`` and of "baseline Shapley"
  (Sundararajan & Najmi, ICML 2020);
- :class:`MarginalGame`: averaged over background rows
  (``v(x, S) = mean_m f(x_S, z^m_{~S})``), the "interventional" game of
  KernelSHAP (Lundberg & Lee, NeurIPS 2017);
- :class:`SurrogateGame`: a masked surrogate trained to approximate the
  conditional expectation ``E[f(X) | X_S = x_S]`` (Frye et al. 2021; Covert et
  al. 2021), the game FastSHAP uses by default (Jethani et al., ICLR 2022).

``link="softmax"`` applies a softmax to the model's logits first (per row,
before averaging), so that classifier games are on the probability scale.
Values are computed without gradient tracking: they are targets, not part of
a graph. The model is used as it is; put it in ``eval()`` mode.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from captum_genomics.fastshap.players import Players, as_players

__all__ = [
    "Game", "BaselineGame", "MarginalGame", "SurrogateGame", "LINKS", "active_players"]

LINKS = ("identity", "softmax")
"""The accepted values of ``link``."""


def _check_link(link: str) -> str:
    if link not in LINKS:
        raise ValueError(f"`link` must be one of {LINKS}, got {link!r}.")
    return link


def _as_2d(out: Tensor, rows: int, who: str) -> Tensor:
    if not isinstance(out, Tensor):
        raise TypeError(f"{who} must return a tensor, got {type(out).__name__}.")
    if out.ndim == 1:
        out = out.unsqueeze(1)
    if out.ndim != 2 or out.shape[0] != rows:
        raise ValueError(
            f"{who} must return shape (B,) or (B, T) with B={rows} rows, got {tuple(out.shape)}."
        )
    return out


class Game:
    """Base class: a value function ``v(x, S)`` over :class:`Players`.

    Subclasses implement :meth:`_values`. Calling the game checks shapes,
    casts ``S`` to the dtype of ``x``, evaluates under ``torch.no_grad()`` in
    chunks of at most ``batch_size`` model rows, and applies the link.

    Parameters
    ----------
    players
        The players: a :class:`Players`, or anything :func:`as_players`
        accepts given ``feature_shape`` (None: one player per feature).
    feature_shape
        Shape of one input, needed only when ``players`` is not a
        :class:`Players`.
    link
        ``"identity"`` (default) or ``"softmax"`` over the last axis of the
        model output.
    batch_size
        Most rows sent to the model at once (for :class:`MarginalGame` a row is
        one (example, background) pair). Default None: all at once.
    """

    null_is_constant: bool = False
    """True when ``v(x, 0)`` is the same for every ``x`` (every feature is held out
    and what replaces it does not depend on ``x``), so the empty coalition's value
    of one example serves all. False (the safe default) for games that cannot
    promise it."""

    def __init__(self, players, feature_shape=None, link: str = "identity",
                 batch_size: int | None = None) -> None:
        if not isinstance(players, Players):
            if feature_shape is None:
                raise ValueError("`feature_shape` is needed when `players` is not a Players object.")
            players = as_players(players, feature_shape)
        self.players = players
        self.link = _check_link(link)
        if batch_size is not None and (isinstance(batch_size, bool) or int(batch_size) < 1):
            raise ValueError(f"`batch_size` must be a positive integer or None, got {batch_size!r}.")
        self.batch_size = batch_size

    @property
    def n_players(self) -> int:
        """``d``."""
        return self.players.n_players

    def _apply_link(self, out: Tensor) -> Tensor:
        return torch.softmax(out, dim=-1) if self.link == "softmax" else out

    def _flat(self, x: Tensor, name: str = "x") -> Tensor:
        if not isinstance(x, Tensor) or x.ndim < 1:
            raise ValueError(f"`{name}` must be a tensor with a batch axis.")
        flat = x.reshape(x.shape[0], -1)
        if flat.shape[1] != self.players.n_features:
            raise ValueError(
                f"`{name}` has {flat.shape[1]} features per example (shape {tuple(x.shape)}) but "
                f"the players cover {self.players.n_features} (feature_shape "
                f"{self.players.feature_shape})."
            )
        return flat

    def __call__(self, x: Tensor, S: Tensor) -> Tensor:
        """Evaluate ``v(x, S)``.

        Parameters
        ----------
        x
            ``shape=(B, *feature_shape)`` (or ``(B, F)``), floating.
        S
            ``shape=(B, d)``, bool or 0/1 floats: row ``k`` is the coalition
            for example ``k``.

        Returns
        -------
        Tensor
            ``shape=(B, T)``, the dtype of the model output; a model returning
            ``(B,)`` gives ``T = 1``.

        Raises
        ------
        ValueError
            If the shapes do not match the players or each other.
        """
        flat = self._flat(x)
        if not isinstance(S, Tensor) or S.ndim != 2 or S.shape != (flat.shape[0], self.n_players):
            shape = tuple(S.shape) if isinstance(S, Tensor) else type(S).__name__
            raise ValueError(
                f"`S` must have shape (B, d) = {(flat.shape[0], self.n_players)}, got {shape}."
            )
        with torch.no_grad():
            return self._values(x, flat, S.to(flat.device))

    def _values(self, x: Tensor, flat: Tensor, S: Tensor) -> Tensor:  # pragma: no cover
        raise NotImplementedError

    def null_players(self, x: Tensor) -> Tensor | None:
        """Players known to be null in ``x``'s game, or None if the game cannot tell.

        A null player adds nothing to any coalition (``v(x, S u {i}) = v(x, S)``
        for all ``S``), so its Shapley value is exactly 0 (the null-player
        axiom). The base class knows of none and returns None.

        Parameters
        ----------
        x
            ``shape=(B, *feature_shape)``.

        Returns
        -------
        Tensor or None
            ``shape=(B, d)``, bool, True for a player that is null for that
            example.
        """
        self._flat(x)
        return None

    def null(self, x: Tensor) -> Tensor:
        """``v(x, 0)``, the empty coalition; ``shape=(B, T)``."""
        flat = self._flat(x)
        return self(x, torch.zeros(flat.shape[0], self.n_players, dtype=torch.bool, device=flat.device))

    def grand(self, x: Tensor) -> Tensor:
        """``v(x, 1)``, the grand coalition; ``shape=(B, T)``."""
        flat = self._flat(x)
        return self(x, torch.ones(flat.shape[0], self.n_players, dtype=torch.bool, device=flat.device))

    def _forward(self, fn: Callable[[Tensor], Tensor], rows: Tensor, shape: tuple, who: str) -> Tensor:
        """``fn`` on ``rows`` (R, F) reshaped to ``(R, *shape)``, in chunks; (R, T) after the link."""
        step = rows.shape[0] if self.batch_size is None else self.batch_size
        outs = []
        for start in range(0, rows.shape[0], max(step, 1)):
            chunk = rows[start:start + step]
            out = _as_2d(fn(chunk.reshape((chunk.shape[0],) + shape)), chunk.shape[0], who)
            outs.append(self._apply_link(out))
        return outs[0] if len(outs) == 1 else torch.cat(outs, dim=0)


def active_players(game: Game, x: Tensor) -> Tensor | None:
    """``~game.null_players(x)``: players that may be non-null, ``(B, d)`` bool, or None.

    None when the game cannot tell (every player may then be non-null).
    """
    nulls = game.null_players(x)
    return None if nulls is None else ~nulls


class BaselineGame(Game):
    """Held-out features take a baseline value: ``v(x, S) = link(f(x ⊙ m + b ⊙ (1 - m)))``.

    ``m`` is the feature mask of ``S`` (:meth:`Players.to_feature_mask`).

    Parameters
    ----------
    model
        Callable ``(B, *feature_shape) -> (B, T)`` or ``(B,)``.
    players
        See :class:`Game`. Default None: one player per feature (then
        ``feature_shape`` is required).
    baseline
        A scalar (default 0.0) or a tensor broadcastable to one input,
        ``shape=feature_shape`` or ``(1, *feature_shape)`` or ``(F,)``.
    feature_shape, link, batch_size
        See :class:`Game`.

    Raises
    ------
    ValueError
        If the baseline does not have one value per feature (or one in all).
    """

    @property
    def null_is_constant(self) -> bool:
        """True: ``v(x, 0) = link(f(baseline))`` for every ``x`` (unless a subclass
        redefines the coalition values)."""
        return type(self)._values is BaselineGame._values

    def __init__(self, model: Callable[[Tensor], Tensor], players=None,
                 baseline: float | Tensor = 0.0, feature_shape=None, link: str = "identity",
                 batch_size: int | None = None) -> None:
        super().__init__(players, feature_shape, link, batch_size)
        self.model = model
        b = torch.as_tensor(baseline)
        n = self.players.n_features
        if b.numel() == 1:
            b = b.reshape(1).expand(n)
        elif b.numel() == n:
            b = b.reshape(n)
        else:
            raise ValueError(
                f"`baseline` must be a scalar or have one value per feature ({n}), got shape "
                f"{tuple(b.shape)}."
            )
        self.baseline = b

    def _values(self, x, flat, S):
        m = self.players.to_feature_mask(S.bool())
        b = self.baseline.to(device=flat.device, dtype=flat.dtype)
        rows = torch.where(m, flat, b)
        return self._forward(self.model, rows, tuple(x.shape[1:]), "`model`")

    def grand(self, x: Tensor) -> Tensor:
        """``v(x, 1) = link(f(x))``; ``shape=(B, T)``."""
        flat = self._flat(x)
        with torch.no_grad():
            return self._forward(self.model, flat, tuple(x.shape[1:]), "`model`")

    def null(self, x: Tensor) -> Tensor:
        """``v(x, 0) = link(f(b))`` for every row; ``shape=(B, T)``.

        The rows ``v(x, S)`` builds for an empty ``S`` (every feature at the
        baseline), built directly.
        """
        if not self.null_is_constant:  # a subclass's own coalition values
            return super().null(x)
        flat = self._flat(x)
        rows = self.baseline.to(device=flat.device, dtype=flat.dtype).expand(flat.shape)
        with torch.no_grad():
            return self._forward(self.model, rows.contiguous(), tuple(x.shape[1:]), "`model`")

    def null_players(self, x: Tensor) -> Tensor:
        """Players whose every feature already equals the baseline in ``x``.

        Holding such a player out replaces its features by the values they
        already have, so ``v(x, S u {i}) = v(x, S)`` for every coalition and its
        Shapley value is exactly 0. With the default baseline 0 these are the
        genes a cell does not express; in ``pbmc68k_reduced`` (200 most variable
        genes) that is about half of them per cell.

        Parameters
        ----------
        x
            ``shape=(B, *feature_shape)``.

        Returns
        -------
        Tensor
            ``shape=(B, d)``, bool, on ``x``'s device.
        """
        flat = self._flat(x)
        b = self.baseline.to(device=flat.device, dtype=flat.dtype)
        if self.players.is_singletons:  # player i is feature i: no counting needed
            return flat == b
        differs = (flat != b).to(flat.dtype)
        pof = self.players.player_of_feature.to(flat.device)
        count = torch.zeros(flat.shape[0], self.n_players, dtype=flat.dtype, device=flat.device)
        count.index_add_(1, pof, differs)
        return count == 0


class MarginalGame(Game):
    """Held-out features averaged over background rows (the interventional game).

    ``v(x, S) = sum_m w_m link(f(x ⊙ m_S + z^m ⊙ (1 - m_S)))`` with weights
    ``w`` summing to 1 (uniform by default). Each call sends ``B * M`` rows to
    the model (in chunks of ``batch_size``).

    Parameters
    ----------
    model
        Callable ``(R, *feature_shape) -> (R, T)`` or ``(R,)``.
    background
        ``shape=(M, *feature_shape)`` or ``(M, F)``: the background rows.
    players
        See :class:`Game`. Default None: one player per feature.
    weights
        Optional ``shape=(M,)`` non-negative weights (e.g. k-means cluster
        sizes), normalized to sum to 1. Default None: uniform.
    link, batch_size
        See :class:`Game`.

    Raises
    ------
    ValueError
        If ``background`` is empty or its rows do not match the players, or the
        weights are negative, sum to 0 or have the wrong length.
    """

    @property
    def null_is_constant(self) -> bool:
        """True: ``v(x, 0) = sum_m w_m link(f(z^m))`` for every ``x`` (unless a subclass
        redefines the coalition values)."""
        return type(self)._values is MarginalGame._values

    def __init__(self, model: Callable[[Tensor], Tensor], background: Tensor, players=None,
                 weights: Tensor | None = None, link: str = "identity",
                 batch_size: int | None = None) -> None:
        if not isinstance(background, Tensor) or background.ndim < 2 or background.shape[0] == 0:
            raise ValueError("`background` must be a tensor of shape (M, *feature_shape) with M >= 1.")
        super().__init__(players, tuple(background.shape[1:]), link, batch_size)
        self.model = model
        self.background = self._flat(background, "background")
        m = self.background.shape[0]
        if weights is None:
            w = torch.full((m,), 1.0 / m, dtype=torch.float64)
        else:
            w = torch.as_tensor(weights, dtype=torch.float64).reshape(-1)
            if w.numel() != m or bool((w < 0).any()) or float(w.sum()) <= 0:
                raise ValueError(
                    f"`weights` must be {m} non-negative numbers with a positive sum, got "
                    f"shape {tuple(w.shape)}."
                )
            w = w / w.sum()
        self.weights = w

    def _values(self, x, flat, S):
        b, f = flat.shape
        bg = self.background.to(device=flat.device, dtype=flat.dtype)
        m_rows = bg.shape[0]
        mask = self.players.to_feature_mask(S.bool())
        rows = torch.where(mask.unsqueeze(1), flat.unsqueeze(1), bg.unsqueeze(0))  # (B, M, F)
        out = self._forward(self.model, rows.reshape(b * m_rows, f), tuple(x.shape[1:]), "`model`")
        out = out.reshape(b, m_rows, -1)
        w = self.weights.to(device=out.device, dtype=out.dtype)
        return torch.einsum("bmt,m->bt", out, w)

    def null(self, x: Tensor) -> Tensor:
        """``v(x, 0)``: the weighted mean model output over the background, ``shape=(B, T)``."""
        flat = self._flat(x)
        bg = self.background.to(device=flat.device, dtype=flat.dtype)
        with torch.no_grad():
            out = self._forward(self.model, bg, tuple(x.shape[1:]), "`model`")
        w = self.weights.to(device=out.device, dtype=out.dtype)
        return (w @ out).unsqueeze(0).expand(flat.shape[0], -1).clone()

    def grand(self, x: Tensor) -> Tensor:
        """``v(x, 1) = link(f(x))``; ``shape=(B, T)``."""
        flat = self._flat(x)
        with torch.no_grad():
            return self._forward(self.model, flat, tuple(x.shape[1:]), "`model`")


class SurrogateGame(Game):
    """The game of a masked surrogate: ``v(x, S) = link(g(x, S))``.

    Parameters
    ----------
    surrogate
        A module called as ``surrogate(x, S)`` with ``x`` ``(B, F)`` and ``S``
        ``(B, d)``, returning ``(B, T)``, e.g.
        :class:`~captum_genomics.fastshap.surrogate.MaskedSurrogate`, which
        carries its players.
    players
        Default None: ``surrogate.players``. If given, it must equal them.
    link
        ``"softmax"`` for a classifier surrogate trained on logits (the
        default), ``"identity"`` for regression.
    batch_size
        See :class:`Game`.

    Raises
    ------
    ValueError
        If ``players`` differs from the surrogate's, or neither is available.
    """

    def __init__(self, surrogate: nn.Module, players=None, link: str = "softmax",
                 batch_size: int | None = None) -> None:
        own = getattr(surrogate, "players", None)
        if players is None:
            if own is None:
                raise ValueError("`players` is required: the surrogate has no `players` attribute.")
            players = own
        elif own is not None and isinstance(players, Players) and players != own:
            raise ValueError(
                f"`players` {players} differ from the surrogate's {own}; the surrogate was "
                "trained on its own players."
            )
        super().__init__(players, getattr(own, "feature_shape", None), link, batch_size)
        self.surrogate = surrogate

    def _values(self, x, flat, S):
        step = flat.shape[0] if self.batch_size is None else self.batch_size
        outs = []
        for start in range(0, flat.shape[0], max(step, 1)):
            xs, ss = flat[start:start + step], S[start:start + step]
            out = _as_2d(self.surrogate(xs, ss.to(flat.dtype)), xs.shape[0], "`surrogate`")
            outs.append(self._apply_link(out))
        return outs[0] if len(outs) == 1 else torch.cat(outs, dim=0)
