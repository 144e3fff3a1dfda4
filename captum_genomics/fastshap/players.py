"""Players: the units that FastSHAP attributes to, single features or feature groups.

A game's coalition mask ``S`` has one column per player, shape ``(B, d)``. The
model sees features, shape ``(B, F)`` once flattened; :class:`Players` holds
the map from each feature to the one player that owns it and turns player
masks into feature masks.

Two ways to declare players, both validated so that every feature belongs to
exactly one player:

- a ``feature_mask`` in Captum's convention (``captum.attr.FeatureAblation``,
  ``ShapleyValues``): an integer tensor shaped like one input (optionally with a
  leading axis of size 1) whose entry is the player id of that feature, ids
  ``0..d-1`` all present;
- a list of index lists, one list of flat feature indices per player.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch import Tensor

__all__ = ["Players", "as_players", "resolve_players"]


def _format_list(values: Sequence[int], limit: int = 10) -> str:
    """``[1, 2, 3]`` with at most ``limit`` items and the count of the rest."""
    values = list(values)
    shown = ", ".join(str(v) for v in values[:limit])
    more = f", ... ({len(values) - limit} more)" if len(values) > limit else ""
    return f"[{shown}{more}]"


class Players:
    """The partition of ``F`` features into ``d`` players.

    Build one with :meth:`from_feature_mask`, :meth:`from_groups` or
    :meth:`singletons` rather than the constructor, which takes the already
    validated map.

    Parameters
    ----------
    player_of_feature
        Integer tensor ``shape=(F,)``: the player id, in ``0..d-1``, of each
        flat feature. Every id must occur.
    feature_shape
        The shape of one input, whose product is ``F``. Default ``(F,)``.
    name
        The argument name used in error messages. Default ``"players"``.

    Attributes
    ----------
    player_of_feature : Tensor
        ``shape=(F,)``, ``dtype=torch.long``, on the CPU.
    n_features : int
        ``F``.
    n_players : int
        ``d``.
    feature_shape : tuple of int
        The shape of one input.

    Raises
    ------
    ValueError
        If ``player_of_feature`` is not 1-D integer, holds ids outside
        ``0..d-1`` or skips an id, or ``feature_shape`` does not have ``F``
        elements.
    """

    def __init__(self, player_of_feature: Tensor, feature_shape: Sequence[int] | None = None,
                 name: str = "players") -> None:
        if not isinstance(player_of_feature, Tensor):
            player_of_feature = torch.as_tensor(player_of_feature)
        if player_of_feature.ndim != 1 or player_of_feature.numel() == 0:
            raise ValueError(
                f"`{name}`: the player map must be a non-empty 1-D tensor, got shape "
                f"{tuple(player_of_feature.shape)}."
            )
        if player_of_feature.is_floating_point() or player_of_feature.is_complex() \
                or player_of_feature.dtype == torch.bool:
            raise ValueError(
                f"`{name}` must hold integer player ids, got dtype {player_of_feature.dtype}."
            )
        pof = player_of_feature.detach().to("cpu", torch.long).clone()
        negative = (pof < 0).nonzero().flatten().tolist()
        if negative:
            raise ValueError(
                f"`{name}` holds negative player ids at flat feature indices "
                f"{_format_list(negative)}; ids must be 0..d-1."
            )
        d = int(pof.max()) + 1
        present = torch.zeros(d, dtype=torch.bool)
        present[pof] = True
        missing = (~present).nonzero().flatten().tolist()
        if missing:
            raise ValueError(
                f"`{name}` skips player ids {_format_list(missing)}: ids must be the "
                f"consecutive integers 0..d-1 (here d would be {d}); renumber the groups, "
                f"e.g. with `torch.unique(mask, return_inverse=True)[1]`."
            )
        n = pof.numel()
        shape = (n,) if feature_shape is None else tuple(int(s) for s in feature_shape)
        if math.prod(shape) != n:
            raise ValueError(
                f"`{name}`: feature_shape {shape} has {math.prod(shape)} elements but the "
                f"player map covers {n} features."
            )
        self.player_of_feature = pof
        self.n_features = n
        self.n_players = d
        self.feature_shape = shape
        self._cache: dict[torch.device, Tensor] = {}
        self._singletons: bool | None = None

    @property
    def is_singletons(self) -> bool:
        """True when player ``i`` is exactly feature ``i`` (one player per feature, in order)."""
        if self._singletons is None:
            self._singletons = bool(self.n_players == self.n_features and torch.equal(
                self.player_of_feature, torch.arange(self.n_features)))
        return self._singletons

    # ------------------------------------------------------------------ builders
    @classmethod
    def singletons(cls, n_features: int | Sequence[int]) -> "Players":
        """One player per feature.

        Parameters
        ----------
        n_features
            ``F``, or the shape of one input (then ``F`` is its product).
        """
        shape = (int(n_features),) if isinstance(n_features, int) else tuple(n_features)
        n = math.prod(shape)
        if n < 1:
            raise ValueError(f"`n_features` must be >= 1, got {n_features!r}.")
        return cls(torch.arange(n), shape)

    @classmethod
    def from_feature_mask(cls, feature_mask: Tensor, input_shape: Sequence[int] | None = None,
                          n_players: int | None = None, name: str = "feature_mask") -> "Players":
        """Players from a Captum-style ``feature_mask``.

        Parameters
        ----------
        feature_mask
            Integer tensor shaped like one input, ``shape=(*S)``, or with a
            leading axis of size 1, ``shape=(1, *S)``; entry = player id of the
            feature, ids ``0..d-1`` all present. Features sharing an id form one
            group (as in ``captum.attr.ShapleyValues``).
        input_shape
            The shape of one input ``S``, without the batch axis. If given, the
            mask must be shaped ``S`` or ``(1, *S)``. Default None: the mask's
            own shape (with a leading 1 kept).
        n_players
            The expected number of players ``d``. Default None: ``max id + 1``.
        name
            The argument name used in error messages.

        Raises
        ------
        ValueError
            If the mask is not integer, its shape does not fit ``input_shape``,
            an id is negative or (with ``n_players``) ``>= n_players``, or ids
            skip a value (the message lists the missing ids).
        TypeError
            If ``feature_mask`` is not a tensor.
        """
        if not isinstance(feature_mask, Tensor):
            raise TypeError(f"`{name}` must be a torch.Tensor, got {type(feature_mask).__name__}.")
        if input_shape is not None:
            input_shape = tuple(int(s) for s in input_shape)
            fm_shape = tuple(feature_mask.shape)
            if fm_shape == (1,) + input_shape:
                feature_mask = feature_mask[0]
            elif fm_shape != input_shape:
                raise ValueError(
                    f"`{name}` must have the shape of one input {input_shape} (or "
                    f"{(1,) + input_shape}), got {fm_shape}."
                )
        shape = tuple(feature_mask.shape) if input_shape is None else input_shape
        if n_players is not None and not feature_mask.is_floating_point() \
                and feature_mask.dtype != torch.bool and feature_mask.numel():
            flat = feature_mask.reshape(-1)
            out = (flat >= n_players).nonzero().flatten().tolist()
            if out:
                raise ValueError(
                    f"`{name}` holds player ids {_format_list(sorted(set(flat[out].tolist())))} "
                    f">= n_players={n_players} (at flat feature indices {_format_list(out)}); "
                    f"ids must be 0..{n_players - 1}."
                )
        players = cls(feature_mask.reshape(-1), shape, name=name)
        if n_players is not None and players.n_players != n_players:
            raise ValueError(
                f"`{name}` uses only player ids 0..{players.n_players - 1} but n_players="
                f"{n_players}; player ids {_format_list(range(players.n_players, n_players))} "
                "own no feature."
            )
        return players

    @classmethod
    def from_groups(cls, groups: Sequence[Sequence[int]], n_features: int | Sequence[int],
                    name: str = "groups") -> "Players":
        """Players from a list of index lists.

        Parameters
        ----------
        groups
            ``d`` lists of flat feature indices; player ``j`` owns
            ``groups[j]``. Together they must cover ``0..F-1`` exactly once.
        n_features
            ``F``, or the shape of one input (then ``F`` is its product).
        name
            The argument name used in error messages.

        Raises
        ------
        ValueError
            If a group is empty, an index is out of ``0..F-1`` or not an
            integer, an index appears more than once, or some features are in
            no group. The message names the offending indices.
        """
        shape = (int(n_features),) if isinstance(n_features, int) else tuple(int(s) for s in n_features)
        n = math.prod(shape)
        if isinstance(groups, (str, bytes)) or not isinstance(groups, Sequence) or len(groups) == 0:
            raise ValueError(f"`{name}` must be a non-empty list of index lists, got {groups!r}.")
        pof = torch.full((n,), -1, dtype=torch.long)
        duplicated: list[int] = []
        for j, group in enumerate(groups):
            idx = torch.as_tensor(list(group))
            if idx.numel() == 0:
                raise ValueError(f"`{name}[{j}]` is empty; every player needs at least one feature.")
            if idx.is_floating_point() or idx.dtype == torch.bool:
                raise ValueError(f"`{name}[{j}]` must hold integer feature indices, got {list(group)!r}.")
            idx = idx.long().flatten()
            out = idx[(idx < 0) | (idx >= n)].tolist()
            if out:
                raise ValueError(
                    f"`{name}[{j}]` holds feature indices {_format_list(out)} outside 0..{n - 1} "
                    f"(there are {n} features)."
                )
            uniq, counts = torch.unique(idx, return_counts=True)
            duplicated += uniq[counts > 1].tolist()
            taken = uniq[pof[uniq] >= 0]
            duplicated += taken.tolist()
            pof[uniq] = j
        if duplicated:
            raise ValueError(
                f"`{name}` lists features {_format_list(sorted(set(duplicated)))} more than once; "
                "every feature must belong to exactly one player."
            )
        missing = (pof < 0).nonzero().flatten().tolist()
        if missing:
            raise ValueError(
                f"`{name}` leaves features {_format_list(missing)} in no group; every feature "
                "must belong to exactly one player (add singleton groups for them)."
            )
        return cls(pof, shape, name=name)

    # ------------------------------------------------------------------ mapping
    def _index(self, device: torch.device) -> Tensor:
        if device not in self._cache:
            self._cache[device] = self.player_of_feature.to(device)
        return self._cache[device]

    def to_feature_mask(self, player_mask: Tensor) -> Tensor:
        """Map player masks to feature masks.

        Parameters
        ----------
        player_mask
            ``shape=(B, d)``, any dtype (bool or 0/1 floats): 1 where the
            player is in the coalition.

        Returns
        -------
        Tensor
            ``shape=(B, F)``, the dtype and device of ``player_mask``: each
            feature takes the entry of its player.

        Raises
        ------
        ValueError
            If ``player_mask`` is not 2-D with ``d`` columns.
        """
        if not isinstance(player_mask, Tensor) or player_mask.ndim != 2 \
                or player_mask.shape[1] != self.n_players:
            shape = tuple(player_mask.shape) if isinstance(player_mask, Tensor) else type(player_mask).__name__
            raise ValueError(
                f"player mask must have shape (B, {self.n_players}) (one column per player), "
                f"got {shape}."
            )
        return player_mask.index_select(1, self._index(player_mask.device))

    def groups(self) -> list[list[int]]:
        """The flat feature indices of each player, ``d`` sorted lists."""
        order = torch.argsort(self.player_of_feature, stable=True)
        counts = torch.bincount(self.player_of_feature, minlength=self.n_players).tolist()
        return [chunk.tolist() for chunk in torch.split(order, counts)]

    def group_sizes(self) -> Tensor:
        """The number of features of each player, ``shape=(d,)``, long."""
        return torch.bincount(self.player_of_feature, minlength=self.n_players)

    # ------------------------------------------------------------------ io
    def to_config(self) -> dict[str, Any]:
        """A JSON-able description: ``{"feature_shape": [...], "player_of_feature": [...]}``."""
        return {"feature_shape": list(self.feature_shape),
                "player_of_feature": self.player_of_feature.tolist()}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Players":
        """Inverse of :meth:`to_config`."""
        return cls(torch.tensor(config["player_of_feature"], dtype=torch.long),
                   config["feature_shape"])

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Players) and self.feature_shape == other.feature_shape
                and torch.equal(self.player_of_feature, other.player_of_feature))

    def __hash__(self) -> int:  # pragma: no cover - identity hash, objects are mutable
        return id(self)

    def __repr__(self) -> str:
        return (f"Players(n_players={self.n_players}, n_features={self.n_features}, "
                f"feature_shape={self.feature_shape})")


def as_players(players: "Players | Tensor | Sequence[Sequence[int]] | None",
               input_shape: Sequence[int] | int, name: str = "players") -> Players:
    """Coerce a user's player declaration to :class:`Players`.

    Parameters
    ----------
    players
        A :class:`Players` (checked against ``input_shape``), an integer
        ``feature_mask`` tensor (:meth:`Players.from_feature_mask`), a list of
        index lists (:meth:`Players.from_groups`), or None for one player per
        feature.
    input_shape
        The shape of one input without the batch axis, or ``F``.
    name
        The argument name used in error messages.

    Raises
    ------
    ValueError
        If the declaration is invalid or does not cover ``input_shape``.
    """
    shape = (int(input_shape),) if isinstance(input_shape, int) else tuple(int(s) for s in input_shape)
    n = math.prod(shape)
    if players is None:
        return Players.singletons(shape)
    if isinstance(players, Players):
        if players.n_features != n:
            raise ValueError(
                f"`{name}` covers {players.n_features} features but one input has {n} "
                f"(shape {shape})."
            )
        return players
    if isinstance(players, Tensor):
        return Players.from_feature_mask(players, shape, name=name)
    return Players.from_groups(players, shape, name=name)


def resolve_players(players: "Players | Tensor | Sequence[Sequence[int]] | None", n_features: int,
                    feature_shape: Sequence[int] | None = None,
                    name: str = "players") -> Players:
    """Players covering exactly ``n_features`` features, from any accepted declaration.

    What :class:`~captum_genomics.FastSHAP` accepts as ``players``: with the
    shape of one input, :func:`as_players` (a ``feature_mask`` is shaped like
    one input); without it, a feature mask is read as given and index lists
    are flat feature indices.

    Parameters
    ----------
    players : Players, Tensor, list of lists of int, or None
        A :class:`Players`, an integer ``feature_mask``
        (:meth:`Players.from_feature_mask`), lists of flat feature indices
        (:meth:`Players.from_groups`), or None for one player per feature.
    n_features : int
        ``F``: the features the players must cover.
    feature_shape : sequence of int, optional
        The shape of one input without the batch axis. Default None.
    name : str
        The argument's name, for the messages. Default ``"players"``.

    Returns
    -------
    Players
        ``players`` itself when it is a :class:`Players`.

    Raises
    ------
    ValueError
        If the declaration is invalid or the players do not cover
        ``n_features`` features, each exactly once.
    """
    if feature_shape is not None:
        p = as_players(players, tuple(feature_shape), name)
    elif players is None:
        p = Players.singletons(n_features)
    elif isinstance(players, Players):
        p = players
    elif isinstance(players, Tensor):
        p = Players.from_feature_mask(players, name=name)
    else:
        p = Players.from_groups(players, n_features, name=name)
    if p.n_features != n_features:
        raise ValueError(
            f"`{name}` covers {p.n_features} features but the explainer expects {n_features}; "
            "every feature must belong to exactly one player."
        )
    return p
