"""What :meth:`FastSHAP.fit <captum_genomics.FastSHAP.fit>` builds before training the explainer.

- :func:`build_game`: the game the explainer learns, by name: the model's own
  baseline game, a marginal game over background rows (drawn from the
  training data unless given) or the paper's surrogate game, whose
  :class:`~captum_genomics.fastshap.surrogate.MaskedSurrogate` is trained here
  (Jethani et al., ICLR 2022, Section 4);
- :func:`build_explainer`: the :class:`~captum_genomics.fastshap.explainer.MLPExplainer`,
  with the gradient x input parametrization where it applies;
- :func:`training_data`: the training, validation and background data as tensors;
- :func:`source_rows`: the rows of an input read from the source (AnnData
  layer or ``.raw``, gene order) a fitted explainer recorded;
- :func:`check_components`: the explainer, game, players and link of a
  :class:`~captum_genomics.FastSHAP` checked against each other;
- :func:`count_outputs`, :func:`check_game`, :func:`with_defaults`: the
  checks and keyword handling around them.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor, nn

from captum_genomics.fastshap.explainer import MLPExplainer
from captum_genomics.fastshap.games import LINKS, BaselineGame, Game, MarginalGame, SurrogateGame
from captum_genomics.fastshap.players import Players, resolve_players
from captum_genomics.fastshap.surrogate import MaskedSurrogate, train_surrogate
from captum_genomics.sc.inputs import (
    FeatureRows,
    anndata_matrix,
    anndata_var_names,
    is_anndata,
    take_columns,
)

__all__ = ["check_components", "training_data", "source_rows", "describe_source", "GAMES",
           "DEFAULT_BACKGROUND_SIZE", "check_game", "count_outputs", "build_game",
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


def describe_source(layer: str | None, use_raw: bool) -> str:
    """``.X``, ``.layers['name']`` or ``.raw.X``: the AnnData matrix of a source, in words."""
    if use_raw:
        return "`.raw.X` (use_raw=True)"
    return "`.X`" if layer is None else f"`.layers[{layer!r}]` (layer={layer!r})"


def _gene_order(names: list[str], expected: list[str], name: str,
                use_raw: bool) -> np.ndarray | None:
    """Column of ``names`` holding each gene of ``expected``; None when already in order."""
    if names == expected:
        return None
    unique = len(set(names)) == len(names) and len(set(expected)) == len(expected)
    if unique and set(names) == set(expected):
        position = {g: i for i, g in enumerate(names)}
        return np.array([position[g] for g in expected], dtype=np.int64)
    have, want = set(names), set(expected)
    missing = [g for g in expected if g not in have]
    extra = [g for g in names if g not in want]
    parts = []
    if missing:
        parts.append(f"{len(missing)} of them are missing here (first: {missing[:5]})")
    if extra:
        parts.append(f"{len(extra)} gene(s) here were not seen at fit (first: {extra[:5]})")
    if not parts:
        dups = sorted({g for genes in (names, expected)
                       for g, count in Counter(genes).items() if count > 1})
        parts.append(f"duplicated gene names ({dups[:5]}) cannot be matched by name")
    first = next((i for i, (a, b) in enumerate(zip(names, expected)) if a != b),
                 min(len(names), len(expected)))
    here = repr(names[first]) if first < len(names) else "nothing"
    then = repr(expected[first]) if first < len(expected) else "nothing"
    where = "`.raw.var_names`" if use_raw else "`.var_names`"
    raise ValueError(
        f"The genes of the AnnData `{name}` ({len(names)} in {where}) differ from the "
        f"{len(expected)} genes the explainer was fitted on: {'; '.join(parts)}; first "
        f"difference at position {first}: {here} here, {then} at fit. Select those genes, in "
        "the order of the explainer's `source['var_names']`, before explaining."
    )


def source_rows(data: Any, source: dict[str, Any] | None, layer: str | None,
                use_raw: bool | None, name: str
                ) -> tuple[FeatureRows, dict[str, Any] | None, np.ndarray | None]:
    """Rows of ``data``, read from the same source as a fitted explainer's data.

    For an AnnData, ``source`` (a fitted FastSHAP's ``source`` record:
    ``{"layer", "use_raw", "var_names", "n_features"}``) decides which matrix
    is read when neither ``layer`` nor ``use_raw`` is given, and its genes
    are matched by name: the same genes in another order are reordered into
    the fitted order; other genes raise. Other containers carry no names and
    are read as they are.

    Parameters
    ----------
    data : Tensor, ndarray, scipy sparse matrix or AnnData
        ``shape=(N, *feature_shape)``.
    source : dict, optional
        The recorded source; None: no checks (``use_raw=None`` means False).
    layer : str, optional
        An AnnData layer to read. Default (None, with ``use_raw=None``): the
        source's matrix.
    use_raw : bool, optional
        Read ``.raw.X``. None: the source's choice (False without a source).
    name : str
        The argument's name, for the messages.

    Returns
    -------
    rows : FeatureRows
        The data, columns in the fitted gene order.
    found : dict or None
        For an AnnData: the source record of the data as read (``var_names``
        in the fitted order when ``source`` is given); None otherwise.
    order : ndarray ``(F,)`` of int64, or None
        For a reordered AnnData: the column of ``data`` holding each fitted
        gene (``rows`` = ``data[:, order]``); None when nothing was reordered.

    Raises
    ------
    ValueError
        An explicit ``layer`` / ``use_raw`` other than the source's, a source
        matrix the AnnData lacks, genes that differ from the fitted ones
        (naming the first differences), or any error of ``FeatureRows``.
    """
    if not is_anndata(data):
        return FeatureRows(data, layer, bool(use_raw), name), None, None
    if source is not None and layer is None and use_raw is None:
        layer, use_raw = source["layer"], bool(source["use_raw"])
        fitted = describe_source(layer, use_raw)
        if use_raw and data.raw is None:
            raise ValueError(
                f"The explainer was fitted on {fitted} of its AnnData (its `source`), but the "
                f"AnnData `{name}` has no `.raw`. Give `{name}` a `.raw` with the same genes, or "
                "pass the matrix itself (no gene-name checks)."
            )
        if layer is not None and layer not in data.layers:
            raise ValueError(
                f"The explainer was fitted on {fitted} of its AnnData (its `source`), but the "
                f"AnnData `{name}` has no layer {layer!r}; available layers: "
                f"{sorted(data.layers.keys())}."
            )
    else:
        use_raw = bool(use_raw)
        if (source is not None and not (layer is not None and use_raw)
                and (layer, use_raw) != (source["layer"], bool(source["use_raw"]))):
            raise ValueError(
                f"`layer`={layer!r}, `use_raw`={use_raw} read {describe_source(layer, use_raw)} "
                f"of `{name}`, but the explainer was fitted on "
                f"{describe_source(source['layer'], source['use_raw'])} of its AnnData (its "
                "`source`): the values would be explained on another scale. Leave `layer` and "
                "`use_raw` out to read the same matrix, or pass the matrix itself (no "
                "gene-name checks) if another one is really meant."
            )
    matrix = anndata_matrix(data, layer, use_raw, name)
    names = anndata_var_names(data, use_raw)
    order = None
    if source is not None:
        order = _gene_order(names, list(source["var_names"]), name, use_raw)
        if order is not None:
            matrix = take_columns(matrix, order)
            names = list(source["var_names"])
    found = {"layer": layer, "use_raw": use_raw, "var_names": names,
             "n_features": len(names)}
    return FeatureRows(matrix, None, False, name), found, order


def training_data(x_train: Any, x_val: Any, background: Any, n_features: int | None,
                  dtype: torch.dtype, device: torch.device, layer: str | None = None,
                  use_raw: bool | None = False, source: dict[str, Any] | None = None,
                  return_source: bool = False) -> tuple:
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
        For AnnData data: read ``adata.layers[layer]`` or ``adata.raw.X``
        (see :func:`source_rows`; ``use_raw=None`` follows ``source``).
        Default None, False: ``.X``.
    source : dict, optional
        A fitted explainer's source record (see :func:`source_rows`). Default
        None: the first AnnData among the data defines it, and the others
        must have its genes (reordered by name if needed).
    return_source : bool
        Also return the source record. Default False.

    Returns
    -------
    x_train : Tensor ``(N, *feature_shape)``
    x_val : Tensor ``(N_val, *feature_shape)``
    background : Tensor ``(M, *feature_shape)`` or None
        None when ``background`` is None.
    source : dict or None
        Only with ``return_source=True``: ``source`` if given, else the record
        of the first AnnData (None when no data is an AnnData).

    Raises
    ------
    ValueError
        Data with a feature count different from ``n_features`` (or from
        ``x_train``), AnnData genes or matrices that differ from the source's,
        or any error of ``FeatureRows`` (NaN, empty, bad kind).
    """
    found = source
    out = []
    for data, name in ((x_train, "x_train"), (x_val, "x_val")):
        rows, record, _ = source_rows(data, found, layer, use_raw, name)
        found = found if found is not None else record
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
        rows, record, _ = source_rows(background, found, layer, use_raw, "background")
        found = found if found is not None else record
        bg = rows.rows(0, rows.n, dtype).to(device)
    return (out[0], out[1], bg, found) if return_source else (out[0], out[1], bg)


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
