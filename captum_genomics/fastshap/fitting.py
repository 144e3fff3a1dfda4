"""What :meth:`FastSHAP.fit <captum_genomics.FastSHAP.fit>` builds before training the explainer.

- :func:`build_game`: the game the explainer learns, by name: the model's own
  baseline game, a marginal game over background rows (drawn from the
  training data unless given) or the paper's surrogate game, whose
  :class:`~captum_genomics.fastshap.surrogate.MaskedSurrogate` is trained here
  (Jethani et al., ICLR 2022, Section 4);
- :func:`build_explainer`: the :class:`~captum_genomics.fastshap.explainer.MLPExplainer`,
  with the gradient x input parametrization where it applies;
- :func:`training_data`: the training, validation and background data as tensors;
- :func:`check_components`: the explainer, game, players and link of a
  :class:`~captum_genomics.FastSHAP` checked against each other;
- :func:`count_outputs`, :func:`check_game`, :func:`with_defaults`: the
  checks and keyword handling around them.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor, nn

from captum_genomics.fastshap.explainer import MLPExplainer
from captum_genomics.fastshap.games import LINKS, BaselineGame, Game, MarginalGame, SurrogateGame
from captum_genomics.fastshap.players import Players, resolve_players
from captum_genomics.fastshap.surrogate import MaskedSurrogate, train_surrogate
from captum_genomics.sc.inputs import FeatureRows

__all__ = ["check_components", "training_data", "GAMES", "DEFAULT_BACKGROUND_SIZE", "check_game", "count_outputs", "build_game",
           "build_explainer", "with_defaults"]

GAMES = ("baseline", "marginal", "surrogate")
"""The game names accepted by :meth:`FastSHAP.fit <captum_genomics.FastSHAP.fit>`."""

DEFAULT_BACKGROUND_SIZE = 64
"""Rows of ``x_train`` drawn as the background of ``game="marginal"`` when none is given."""

_OLD_NAMES = {"random_state": "seed", "show_progress": "progress_bar"}


def with_defaults(kwargs: dict | None, **defaults: Any) -> dict:
    """``kwargs`` (copied) plus ``defaults`` for the keywords it gives under neither spelling.

    Parameters
    ----------
    kwargs : dict, optional
        A user's extra keyword arguments; None for none.
    **defaults
        Values under their new names (``random_state``, ``show_progress``...).
        A default is not added when ``kwargs`` holds the keyword under its
        new or its deprecated name (``seed``, ``progress_bar``), so that the
        user's value wins and the callee warns about the old name.

    Returns
    -------
    dict
    """
    out = dict(kwargs or {})
    for name, value in defaults.items():
        if name not in out and _OLD_NAMES.get(name) not in out:
            out[name] = value
    return out


def check_game(game: Any, background: Any) -> None:
    """Raise unless ``game`` names a game of :data:`GAMES` or is a ``Game``.

    Raises
    ------
    ValueError
        An unknown game name, or ``background`` with a game other than
        ``"marginal"``.
    TypeError
        If ``game`` is neither a string nor a ``Game``.
    """
    if isinstance(game, str) and game not in GAMES:
        raise ValueError(f"`game` must be one of {GAMES} or a Game, got {game!r}.")
    if not isinstance(game, (str, Game)):
        raise TypeError(f"`game` must be one of {GAMES} or a Game, got {type(game).__name__}.")
    if background is not None and game != "marginal":
        raise ValueError(f"`background` is used only with game='marginal', got game={game!r}.")


def count_outputs(model: Callable, x: Tensor) -> int:
    """``T``: the outputs of ``model`` on one example of ``x`` ``(N, *feature_shape)``.

    Returns
    -------
    int
        ``T`` for outputs ``(B, T)``, 1 for ``(B,)``.

    Raises
    ------
    ValueError
        If the model returns anything else.
    """
    with torch.no_grad():
        out = model(x[:1])
    if not isinstance(out, Tensor) or out.ndim not in (1, 2):
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(f"`model` must return shape (B,) or (B, T), got {shape}.")
    return 1 if out.ndim == 1 else int(out.shape[1])


def build_game(model: Callable, game: str | Game, players: Players, x_train: Tensor,
               x_val: Tensor, n_outputs: int, link: str = "identity",
               background: Tensor | None = None, random_state: int = 0,
               surrogate_kwargs: dict | None = None,
               surrogate_train_kwargs: dict | None = None,
               show_progress: bool = False) -> tuple[Game | None, dict[str, dict]]:
    """The game an explainer is trained on, from its name (training a surrogate if needed).

    Parameters
    ----------
    model : callable
        ``(B, *feature_shape) -> (B, T)`` or ``(B,)``, in eval mode.
    game : {"baseline", "marginal", "surrogate"} or Game
        ``"baseline"``: the model's own game (returned as None: the
        ``FastSHAP`` constructor builds it with its ``baseline``).
        ``"marginal"``: a :class:`~captum_genomics.fastshap.games.MarginalGame`
        over ``background``. ``"surrogate"``: a
        :class:`~captum_genomics.fastshap.surrogate.MaskedSurrogate` trained
        with :func:`~captum_genomics.fastshap.surrogate.train_surrogate` (KL
        to the model's probabilities for ``link="softmax"``, squared error on
        the raw outputs for ``link="identity"``), then its
        :class:`~captum_genomics.fastshap.games.SurrogateGame`. A ``Game`` is
        returned as given.
    players : Players
        ``d`` players over the ``F`` features.
    x_train, x_val : Tensor ``(N, *feature_shape)``
        Dense, on the model's device and in its dtype (the surrogate is built
        there).
    n_outputs : int
        ``T``, the model's outputs.
    link : {"identity", "softmax"}
        The link of a marginal or surrogate game. Default ``"identity"``.
    background : Tensor ``(M, *feature_shape)``, optional
        For ``"marginal"``, on the model's device. Default None:
        ``min(N, 64)`` rows of ``x_train``, drawn by a CPU generator seeded
        with ``random_state``.
    random_state : int
        Seeds the background draw and the surrogate's initialization and
        training. Default 0.
    surrogate_kwargs, surrogate_train_kwargs : dict, optional
        Extra arguments of ``MaskedSurrogate`` and ``train_surrogate``
        (theirs win over ``random_state`` and ``show_progress``).
    show_progress : bool
        Show tqdm bars while training the surrogate. Default False.

    Returns
    -------
    game : Game or None
        None for ``"baseline"``.
    history : dict
        ``{"surrogate": train_surrogate's history}`` for ``"surrogate"``,
        else empty.
    """
    history: dict[str, dict] = {}
    if isinstance(game, Game):
        return game, history
    if game == "baseline":
        return None, history
    if game == "marginal":
        if background is None:
            g = torch.Generator().manual_seed(int(random_state))
            idx = torch.randperm(x_train.shape[0], generator=g)[:DEFAULT_BACKGROUND_SIZE]
            background = x_train[idx.to(x_train.device)]
        return MarginalGame(model, background, players, link=link), history
    task = "classification" if link == "softmax" else "regression"
    sur = MaskedSurrogate(players, n_outputs,
                          **with_defaults(surrogate_kwargs, random_state=random_state))
    sur = sur.to(device=x_train.device, dtype=x_train.dtype)
    history["surrogate"] = train_surrogate(
        sur, model, x_train, x_val, task=task,
        **with_defaults(surrogate_train_kwargs, random_state=random_state,
                        show_progress=show_progress))
    return SurrogateGame(sur, link=link), history


def build_explainer(players: Players, n_outputs: int, game: Game | None,
                    baseline: float | Tensor, random_state: int = 0,
                    explainer_kwargs: dict | None = None,
                    device: torch.device | None = None,
                    dtype: torch.dtype | None = None) -> MLPExplainer:
    """The untrained explainer for ``players`` and ``n_outputs`` outputs.

    Parameters
    ----------
    players : Players
        ``d`` players over ``F`` features.
    n_outputs : int
        ``T``.
    game : Game or None
        The game it will learn (None: the model's own baseline game).
    baseline : float or Tensor
        The model's own game's baseline.
    random_state : int
        Seeds the initialization. Default 0.
    explainer_kwargs : dict, optional
        Extra arguments of :class:`~captum_genomics.fastshap.explainer.MLPExplainer`
        (``hidden_width``, ``n_hidden_layers``, ``activation``,
        ``scale_by_input``...; theirs win over ``random_state``). Unless
        given, ``scale_by_input`` is True (with the game's baseline) for a
        baseline game with one player per feature, and False otherwise.
    device, dtype : optional
        Where to put it. Default None: left as built.

    Returns
    -------
    MLPExplainer
    """
    ekw = with_defaults(explainer_kwargs, random_state=random_state)
    if "scale_by_input" not in ekw:
        # Gradient x input parametrization for the baseline game over single features.
        base_game = game is None or isinstance(game, BaselineGame)
        ekw["scale_by_input"] = base_game and players.n_players == players.n_features
        if ekw["scale_by_input"] and "baseline" not in ekw:
            ekw["baseline"] = (torch.as_tensor(baseline) if game is None
                               else game.baseline).detach().cpu()
    explainer = MLPExplainer(players.n_features, players.n_players, n_outputs, **ekw)
    return explainer.to(device=device, dtype=dtype)


def training_data(x_train: Any, x_val: Any, background: Any, n_features: int | None,
                  dtype: torch.dtype, device: torch.device, layer: str | None = None,
                  use_raw: bool = False) -> tuple[Tensor, Tensor, Tensor | None]:
    """Training, validation (and background) data as dense tensors on the model's device.

    Parameters
    ----------
    x_train, x_val : Tensor, ndarray, scipy sparse matrix or AnnData
        ``shape=(N, *feature_shape)``; densified once (see
        :class:`~captum_genomics.sc.inputs.FeatureRows`).
    background : same kinds, optional
        ``shape=(M, *feature_shape)``. None: not returned.
    n_features : int, optional
        Features per example the explainer expects. None: only require
        ``x_val`` to match ``x_train``.
    dtype, device
        Of the returned tensors.
    layer, use_raw
        For AnnData data: read ``adata.layers[layer]`` or ``adata.raw.X``.

    Returns
    -------
    x_train : Tensor ``(N, *feature_shape)``
    x_val : Tensor ``(N_val, *feature_shape)``
    background : Tensor ``(M, *feature_shape)`` or None
        None when ``background`` is None.

    Raises
    ------
    ValueError
        Data with a feature count different from ``n_features`` (or from
        ``x_train``), or any error of ``FeatureRows`` (NaN, empty, bad kind).
    """
    out = []
    for data, name in ((x_train, "x_train"), (x_val, "x_val")):
        rows = FeatureRows(data, layer, use_raw, name)
        if n_features is not None and rows.n_features != n_features:
            raise ValueError(
                f"`{name}` has {rows.n_features} features per example (shape {rows.shape}) "
                f"but the explainer expects {n_features}."
            )
        out.append(rows.rows(0, rows.n, dtype).to(device))
    if n_features is None and out[1][0].numel() != out[0][0].numel():
        raise ValueError(
            f"`x_val` has {out[1][0].numel()} features per example but `x_train` has "
            f"{out[0][0].numel()}."
        )
    bg = None
    if background is not None:
        rows = FeatureRows(background, layer, use_raw, "background")
        bg = rows.rows(0, rows.n, dtype).to(device)
    return out[0], out[1], bg


def check_components(explainer: Any, game: Any, players: Any,
                     link: str | None) -> tuple[Players, str]:
    """The players and link of a FastSHAP built from ``explainer`` and ``game``, checked.

    Parameters
    ----------
    explainer : nn.Module
        Exposes integer ``n_features``, ``n_players``, ``n_outputs``.
    game : Game, optional
    players : Players, Tensor, list of lists, optional
        See :func:`~captum_genomics.fastshap.players.resolve_players`; None:
        the game's, or one per feature.
    link : {"identity", "softmax"}, optional
        None: the game's link, else ``"identity"``.

    Returns
    -------
    players : Players
    link : str

    Raises
    ------
    TypeError
        If ``explainer`` is not such a module or ``game`` is not a ``Game``.
    ValueError
        If the players differ from the game's, do not cover the explainer's
        features, do not number its players, or ``link`` is unknown.
    """
    if not isinstance(explainer, nn.Module) or not all(
            isinstance(getattr(explainer, a, None), int)
            for a in ("n_features", "n_players", "n_outputs")):
        raise TypeError(
            "`explainer` must be a torch.nn.Module with integer attributes n_features, "
            f"n_players and n_outputs (e.g. an MLPExplainer), got {type(explainer).__name__}."
        )
    if game is not None and not isinstance(game, Game):
        raise TypeError(
            f"`game` must be a captum_genomics.fastshap Game (BaselineGame, MarginalGame, "
            f"SurrogateGame) or None, got {type(game).__name__}."
        )
    n_features = explainer.n_features
    if game is not None:
        players = game.players if players is None else resolve_players(
            players, n_features, None)
        if players != game.players:
            raise ValueError(
                f"`players` {players} differ from the game's {game.players}; leave "
                "`players` out to use the game's."
            )
    players = resolve_players(players, n_features, None)
    if players.n_players != explainer.n_players:
        raise ValueError(
            f"`players` has d={players.n_players} players but the explainer predicts "
            f"{explainer.n_players}."
        )
    if link is None:
        link = game.link if game is not None else "identity"
    if link not in LINKS:
        raise ValueError(f"`link` must be one of {LINKS}, got {link!r}.")
    return players, link
