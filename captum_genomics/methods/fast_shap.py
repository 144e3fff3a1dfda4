"""``FastSHAP``: amortized Shapley values (Jethani et al., ICLR 2022) as a Captum attribution.

Orchestration only: players, games, training, normalization and saving live in
:mod:`captum_genomics.fastshap`. This module turns a trained explainer into a
``captum.attr.Attribution``: inputs of any supported container in, one
explainer forward pass, additive efficient normalization against the game,
player values expanded back onto the features, a tensor out.
"""

from __future__ import annotations

import io
import os
from typing import Any, Callable, Literal, Sequence, overload

import numpy as np
import torch
from torch import Tensor, nn

from captum_genomics._utils.captum import PerturbationAttribution, format_additional_forward_args, log_usage
from captum_genomics._utils.checks import check_eval_mode, check_finite, check_positive_int
from captum_genomics.fastshap.explainer import MLPExplainer
from captum_genomics.fastshap.games import (
    LINKS,
    BaselineGame,
    Game,
    MarginalGame,
    SurrogateGame,
    active_players,
)
from captum_genomics.fastshap.io import FORMAT as MODULE_FORMAT
from captum_genomics.fastshap.io import VERSION as MODULE_VERSION
from captum_genomics.fastshap.io import load_module, save_module
from captum_genomics.fastshap.normalization import additive_efficient_normalization
from captum_genomics.fastshap.players import Players, as_players
from captum_genomics.fastshap.surrogate import MaskedSurrogate, train_surrogate
from captum_genomics.fastshap.training import train_explainer

__all__ = ["FastSHAP"]

FORMAT = "captum_genomics.FastSHAP"
"""The ``format`` tag of files written by :meth:`FastSHAP.save`."""
VERSION = 1

GAMES = ("baseline", "marginal", "surrogate")
"""The game names accepted by :meth:`FastSHAP.fit`."""

DEFAULT_BACKGROUND_SIZE = 64
"""Rows of ``x_train`` drawn as the background of ``game="marginal"`` when none is given."""


# ----------------------------------------------------------------------------- helpers
def _first_tensor(module: Any) -> Tensor | None:
    if isinstance(module, nn.Module):
        for t in list(module.parameters()) + list(module.buffers()):
            if t.is_floating_point():
                return t
    return None


def _device_of(module: Any, fallback: torch.device) -> torch.device:
    t = _first_tensor(module)
    return t.device if t is not None else fallback


def _dtype_of(module: Any, fallback: torch.dtype) -> torch.dtype:
    t = _first_tensor(module)
    return t.dtype if t is not None else fallback


def _is_anndata(x: Any) -> bool:
    return any(c.__name__ == "AnnData" and c.__module__.split(".")[0] == "anndata"
               for c in type(x).__mro__)


def _is_scipy_sparse(x: Any) -> bool:
    try:
        import scipy.sparse
    except ImportError:  # pragma: no cover - scipy is a dependency
        return False
    return scipy.sparse.issparse(x)


def _anndata_matrix(adata: Any, layer: str | None, use_raw: bool, name: str) -> Any:
    """``adata.X``, ``adata.layers[layer]`` or ``adata.raw.X``."""
    if layer is not None and use_raw:
        raise ValueError(
            f"`layer`={layer!r} and `use_raw=True` were both given for `{name}`; pick one "
            "(a layer of the AnnData, or its `.raw`)."
        )
    if use_raw:
        if adata.raw is None:
            raise ValueError(
                f"`use_raw=True` but the AnnData `{name}` has no `.raw`; leave `use_raw` out to "
                "use `.X`, or pass `layer=`."
            )
        return adata.raw.X
    if layer is not None:
        if layer not in adata.layers:
            raise ValueError(
                f"`layer`={layer!r} is not a layer of the AnnData `{name}`; available layers: "
                f"{sorted(adata.layers.keys())}."
            )
        return adata.layers[layer]
    if adata.X is None:
        raise ValueError(f"The AnnData `{name}` has no `.X`; pass `layer=` or `use_raw=True`.")
    return adata.X


class _Rows:
    """Rows of a dense tensor, numpy array, scipy sparse matrix or AnnData, as tensors.

    Validates on construction (at least two axes, at least one example, real
    dtype, finite values) and converts lazily, ``rows(lo, hi)`` at a time, so a
    sparse matrix is densified one batch at a time.
    """

    def __init__(self, inputs: Any, layer: str | None, use_raw: bool, name: str) -> None:
        self.name = name
        self.is_tensor = isinstance(inputs, Tensor)
        if _is_anndata(inputs):
            data = _anndata_matrix(inputs, layer, use_raw, name)
        else:
            if layer is not None or use_raw:
                raise ValueError(
                    f"`layer` and `use_raw` select a matrix of an AnnData; `{name}` is a "
                    f"{type(inputs).__name__}. Leave them out."
                )
            data = inputs
        if isinstance(data, Tensor):
            if data.layout != torch.strided:
                data = data.to_dense()
            if data.is_complex():
                raise TypeError(f"`{name}` must hold real numbers, got dtype {data.dtype}.")
            self.kind, self.data = "tensor", data.detach()
        elif _is_scipy_sparse(data):
            self.kind, self.data = "sparse", data.tocsr()
        else:
            try:
                arr = np.asarray(data)
            except Exception as err:  # noqa: BLE001 - report what was received
                raise TypeError(
                    f"`{name}` must be a torch.Tensor, numpy array, scipy sparse matrix or "
                    f"AnnData, got {type(data).__name__}."
                ) from err
            if arr.dtype.kind not in "biuf":
                raise TypeError(
                    f"`{name}` must be a torch.Tensor, numpy array, scipy sparse matrix or "
                    f"AnnData of real numbers, got {type(data).__name__} of dtype {arr.dtype}."
                )
            self.kind, self.data = "numpy", arr
        shape = tuple(int(s) for s in self.data.shape)
        if len(shape) < 2:
            raise ValueError(
                f"`{name}` must have a batch axis and at least one feature axis, shape "
                f"(N, *feature_shape), got shape {shape}."
            )
        if shape[0] == 0:
            raise ValueError(f"`{name}` is an empty batch (shape {shape}); need N >= 1 examples.")
        self.shape = shape
        self.n = shape[0]
        self.n_features = int(np.prod(shape[1:]))
        self._check_finite()

    def native_dtype(self, fallback: torch.dtype) -> torch.dtype:
        """The data's floating dtype as a torch dtype, or ``fallback`` for other dtypes."""
        if self.kind == "tensor":
            return self.data.dtype if self.data.is_floating_point() else fallback
        kind = self.data.dtype
        if kind in (np.float16, np.float32, np.float64):
            return getattr(torch, np.dtype(kind).name)
        return fallback

    def _check_finite(self) -> None:
        if self.kind == "tensor":
            check_finite(self.data, self.name)
        elif self.kind == "numpy":
            if self.data.dtype.kind == "f" and not bool(np.isfinite(self.data).all()):
                check_finite(torch.tensor(self.data), self.name)
        else:
            values = self.data.data
            if values.dtype.kind == "f" and not bool(np.isfinite(values).all()):
                coo = self.data.tocoo()
                bad = ~np.isfinite(coo.data)
                order = np.lexsort((coo.col[bad], coo.row[bad]))
                first = (int(coo.row[bad][order[0]]), int(coo.col[bad][order[0]]))
                kind = "NaN" if bool(np.isnan(coo.data).any()) else "Inf"
                raise ValueError(
                    f"`{self.name}` contains {int(bad.sum())} non-finite value(s) ({kind}), "
                    f"first at index {first}; expected finite values."
                )

    def rows(self, lo: int, hi: int, dtype: torch.dtype) -> Tensor:
        """Examples ``lo..hi-1`` as a tensor ``(hi - lo, *feature_shape)`` of ``dtype``."""
        if self.kind == "tensor":
            return self.data[lo:hi].to(dtype)
        if self.kind == "sparse":
            block = self.data[lo:hi].toarray()
        else:
            block = self.data[lo:hi]
        return torch.tensor(np.asarray(block), dtype=dtype)


def _resolve_players(players: Any, n_features: int, feature_shape: Sequence[int] | None,
                     name: str = "players") -> Players:
    """Players covering ``n_features`` features, from any accepted declaration."""
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


def _target_spec(target: Any, n: int, t: int, name: str) -> int | Tensor:
    """A Captum ``target`` for ``(B, T)`` outputs: an int, or one index per example ``(N,)``."""
    if target is None:
        if t != 1:
            raise ValueError(
                f"`{name}` is None but the model has {t} outputs; pass an int in 0..{t - 1}, "
                "one target per example, or `targets='all'`."
            )
        return 0
    if isinstance(target, tuple):
        if len(target) != 1:
            raise ValueError(
                f"`{name}`={target!r}: FastSHAP explains outputs of shape (B, T), so a tuple "
                "target must hold exactly one index."
            )
        target = target[0]
    if isinstance(target, bool):
        raise TypeError(f"`{name}` must be an int, a tensor or a list, got a bool ({target!r}).")
    if isinstance(target, Tensor):
        if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
            raise TypeError(f"`{name}` tensor must hold integers, got dtype {target.dtype}.")
        if target.numel() == 1:
            target = int(target.item())
        elif target.ndim != 1 or target.shape[0] != n:
            raise ValueError(
                f"`{name}` tensor must have one entry per example, shape ({n},), got "
                f"{tuple(target.shape)}."
            )
        else:
            target = target.detach().to("cpu", torch.long)
    elif isinstance(target, list):
        if len(target) != n:
            raise ValueError(
                f"`{name}` list gives one target per example and must have length {n}, got "
                f"{len(target)}."
            )
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in target):
            raise TypeError(f"`{name}` list must hold ints, got {target[:5]!r}...")
        target = torch.tensor(target, dtype=torch.long)
    elif not isinstance(target, int):
        raise TypeError(
            f"`{name}` must be None, an int, a tensor or a list of length N; got "
            f"{type(target).__name__}."
        )
    if isinstance(target, int):
        if not -t <= target < t:
            raise ValueError(
                f"`{name}`={target} is out of range: the model has {t} output(s), expected an "
                f"int in 0..{t - 1} (or {-t}..-1)."
            )
        return target % t
    bad = ((target < -t) | (target >= t)).nonzero().flatten()
    if bad.numel():
        i = int(bad[0])
        raise ValueError(
            f"`{name}` holds {int(target[i])} for example {i}, out of range: the model has {t} "
            f"output(s), expected values in 0..{t - 1} (or {-t}..-1)."
        )
    return target % t


def _select(values: Tensor, spec: int | Tensor | Literal["all"]) -> Tensor:
    """Pick targets from ``values`` ``(N, ..., T)``: ``(N, ...)``, or all of it."""
    if isinstance(spec, str):
        return values
    if isinstance(spec, int):
        return values[..., spec]
    idx = spec.to(values.device)
    rows = torch.arange(values.shape[0], device=values.device)
    return values.movedim(-1, 1)[rows, idx]


def _module_blob(module: nn.Module) -> dict:
    """The dictionary that :func:`save_module` writes for ``module``."""
    buf = io.BytesIO()
    save_module(module, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def _module_from_blob(blob: Any, what: str, path: Any, map_location: Any) -> nn.Module:
    """Inverse of :func:`_module_blob`, through :func:`load_module`."""
    where = os.fspath(path) if isinstance(path, (str, os.PathLike)) else "the file"
    if not isinstance(blob, dict) or blob.get("format") != MODULE_FORMAT:
        raise ValueError(f"{where!r} does not hold a valid {what}.")
    if int(blob.get("version", 0)) > MODULE_VERSION:
        raise ValueError(
            f"{where!r} stores its {what} in format version {blob['version']}; this "
            f"captum_genomics reads up to {MODULE_VERSION}. Upgrade the package."
        )
    buf = io.BytesIO()
    torch.save(blob, buf)
    buf.seek(0)
    try:
        return load_module(buf, map_location=map_location)
    except (TypeError, ValueError, KeyError, RuntimeError) as err:
        raise ValueError(f"{where!r} holds an invalid {what}: {err}") from err


# ----------------------------------------------------------------------------- the method
class FastSHAP(PerturbationAttribution):
    r"""FastSHAP: Shapley values from one forward pass of a trained explainer.

    FastSHAP (Jethani, Sudarshan, Covert, Lee & Ranganath, ICLR 2022) trains an
    explainer network ``phi(x)`` to predict the Shapley values of every player
    for every model output, so that attributing a batch costs one explainer
    forward pass plus the two game values ``v(x, 1)`` and ``v(x, 0)`` used to
    enforce efficiency (additive efficient normalization, Section 3.2):

        phi_i <- phi_i + (v(1) - v(0) - sum_j phi_j) / d.

    Build one with :meth:`fit` (trains the explainer, and the surrogate if
    asked), :meth:`load` (reads :meth:`save`'s file), or from an explainer
    trained elsewhere (``trained=True``).

    The game defines what holding a player out means (see
    :mod:`captum_genomics.fastshap.games`). By default it is the model's own
    :class:`~captum_genomics.fastshap.games.BaselineGame`: held-out features
    take ``baseline`` (0 by default), ``v(x, S) = f(x_S, 0_{~S})``, the game of
    Captum's ``ShapleyValues`` / ``ShapleyValueSampling`` with zero baselines,
    so the values are comparable with theirs. A
    :class:`~captum_genomics.fastshap.games.MarginalGame` (KernelSHAP's
    interventional game) or :class:`~captum_genomics.fastshap.games.SurrogateGame`
    (the paper's default) may be given instead.

    Parameters
    ----------
    model : callable or torch.nn.Module
        Maps ``(B, *feature_shape)`` to ``(B, T)`` or ``(B,)`` (then ``T = 1``).
        Dropout and batch-norm layers must be in eval mode.
    explainer : torch.nn.Module
        Maps ``(B, *feature_shape)`` to raw values ``(B, d, T)`` and exposes
        ``n_features``, ``n_players`` and ``n_outputs``, e.g. a
        :class:`~captum_genomics.fastshap.explainer.MLPExplainer` trained with
        :func:`~captum_genomics.fastshap.training.train_explainer`.
    game : Game, optional
        The game the explainer was trained on; its ``grand`` and ``null``
        values normalize the attributions. Default None: the model's own
        baseline game (see above).
    players : Players, Tensor, list of lists, optional
        The players (see :mod:`captum_genomics.fastshap.players`): a
        :class:`~captum_genomics.fastshap.players.Players`, a Captum-style
        integer ``feature_mask`` shaped like one input, or lists of flat
        feature indices. They must cover the explainer's ``n_features``
        features exactly once and number ``n_players``. Default None: the
        game's players, or one player per feature.
    link : {"identity", "softmax"}, optional
        Applied to the model output by the model's own game (the default game
        and the convergence delta): ``"softmax"`` explains class
        probabilities of a model returning logits. Default None: the game's
        link when a game is given, else ``"identity"``.
    baseline : float or Tensor
        Value of held-out features in the model's own game: a scalar or one
        value per feature. Default 0.0.
    trained : bool
        Whether ``explainer`` has been trained. :meth:`attribute` refuses an
        untrained explainer (its values would be noise that still sums
        correctly); :meth:`fit`, :meth:`fit_explainer` and :meth:`load` set
        it. Pass True for an explainer trained or loaded by other means.
        Default False.
    mask_null_players : bool
        Where the game knows which players are null for an example (the
        baseline game: players whose features all equal the baseline, e.g.
        unexpressed genes with baseline 0), return exactly 0 for them and
        spread the efficiency gap over the other players only, matching how
        :func:`~captum_genomics.fastshap.training.train_explainer` trains by
        default. Exact by the null-player axiom. Default True; set it to the
        value the explainer was trained with.

    Attributes
    ----------
    explainer : torch.nn.Module
    game : Game
        The game used for normalization.
    model_game : BaselineGame
        The model's own game, used for the convergence delta.
    players : Players
    trained : bool
    history : dict
        Training histories from :meth:`fit` / :meth:`fit_explainer`:
        ``{"explainer": {...}}`` and, for a surrogate game fitted by
        :meth:`fit`, ``{"surrogate": {...}}`` (see
        :func:`~captum_genomics.fastshap.training.train_explainer`).

    Raises
    ------
    TypeError
        If ``explainer`` is not a module exposing ``n_features``,
        ``n_players``, ``n_outputs``, or ``game`` is not a ``Game``.
    ValueError
        If the players do not cover the explainer's features or differ from
        the game's, or ``link`` / ``baseline`` are invalid.
    """

    def __init__(self, model: Callable, explainer: nn.Module, game: Game | None = None,
                 players: Any = None, link: str | None = None, baseline: float | Tensor = 0.0,
                 trained: bool = False, mask_null_players: bool = True) -> None:
        super().__init__(model)
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
            players = game.players if players is None else _resolve_players(
                players, n_features, None)
            if players != game.players:
                raise ValueError(
                    f"`players` {players} differ from the game's {game.players}; leave "
                    "`players` out to use the game's."
                )
        players = _resolve_players(players, n_features, None)
        if players.n_players != explainer.n_players:
            raise ValueError(
                f"`players` has d={players.n_players} players but the explainer predicts "
                f"{explainer.n_players}."
            )
        if link is None:
            link = game.link if game is not None else "identity"
        if link not in LINKS:
            raise ValueError(f"`link` must be one of {LINKS}, got {link!r}.")
        self.explainer = explainer
        self.players = players
        self.link = link
        self.model_game = BaselineGame(model, players, baseline=baseline, link=link)
        self.baseline = self.model_game.baseline
        self.game = self.model_game if game is None else game
        self.trained = bool(trained)
        self.mask_null_players = bool(mask_null_players)
        self.history: dict[str, dict] = {}

    # ------------------------------------------------------------------ properties
    @property
    def n_features(self) -> int:
        """``F``: features per example."""
        return self.explainer.n_features

    @property
    def n_players(self) -> int:
        """``d``: players."""
        return self.explainer.n_players

    @property
    def n_outputs(self) -> int:
        """``T``: model outputs explained at once."""
        return self.explainer.n_outputs

    def has_convergence_delta(self) -> bool:
        """True: ``attribute`` can return convergence deltas (efficiency gaps)."""
        return True

    # ------------------------------------------------------------------ training
    @classmethod
    def fit(cls, model: Callable, x_train: Any, x_val: Any, players: Any = None,
            game: str | Game = "baseline", background: Any = None, link: str = "identity",
            baseline: float | Tensor = 0.0, seed: int = 0,
            explainer_kwargs: dict | None = None, train_kwargs: dict | None = None,
            surrogate_kwargs: dict | None = None, surrogate_train_kwargs: dict | None = None,
            progress_bar: bool = False, layer: str | None = None,
            use_raw: bool = False) -> "FastSHAP":
        r"""Train an explainer (and, for ``game="surrogate"``, a surrogate first).

        Every random choice (weight initialization, coalitions, shuffling, the
        marginal background) comes from ``seed``: the same call gives the same
        weights and attributions, on the same device and library versions.

        Parameters
        ----------
        model : callable or torch.nn.Module
            As in the constructor; in eval mode. Data are moved to its device
            and cast to its floating dtype (float32 for a callable without
            parameters).
        x_train, x_val : Tensor, ndarray, scipy sparse matrix or AnnData
            Training and validation inputs ``shape=(N, *feature_shape)``
            (densified once; for AnnData see ``layer`` and ``use_raw``).
        players : Players, Tensor, list of lists, optional
            The players, as in the constructor; a ``feature_mask`` is shaped
            like one input. Default None: one player per feature.
        game : {"baseline", "marginal", "surrogate"} or Game
            ``"baseline"`` (default): the model's own game, held-out features
            = ``baseline``. ``"marginal"``: held-out features averaged over
            ``background`` rows (each step costs ``M`` model calls per
            coalition). ``"surrogate"``: a
            :class:`~captum_genomics.fastshap.surrogate.MaskedSurrogate` is
            trained first (KL to the model's probabilities for
            ``link="softmax"``, squared error on the raw outputs for
            ``link="identity"``) and its game is used, as in the paper. A
            ``Game`` instance is used as given.
        background : Tensor, ndarray, sparse matrix or AnnData, optional
            ``shape=(M, *feature_shape)``, for ``game="marginal"``. Default
            None: ``min(N, 64)`` rows of ``x_train`` drawn with ``seed``.
        link : {"identity", "softmax"}
            See the constructor; also the link of a marginal or surrogate
            game built here (a ``Game`` instance keeps its own). Default
            ``"identity"``.
        baseline : float or Tensor
            See the constructor. Default 0.0.
        seed : int
            Seeds the explainer's and surrogate's initialization, their
            training and the background draw. Default 0.
        explainer_kwargs : dict, optional
            Extra arguments of
            :class:`~captum_genomics.fastshap.explainer.MLPExplainer`
            (``hidden_width``, ``n_hidden_layers``, ``activation``,
            ``scale_by_input``...). Unless given, ``scale_by_input`` is True
            (with the game's baseline) for a baseline game with one player per
            feature, and False otherwise.
        train_kwargs : dict, optional
            Extra arguments of
            :func:`~captum_genomics.fastshap.training.train_explainer`
            (``max_epochs``, ``lr``, ``n_samples``, ``batch_size``...; its
            defaults otherwise).
        surrogate_kwargs, surrogate_train_kwargs : dict, optional
            Extra arguments of ``MaskedSurrogate`` and
            :func:`~captum_genomics.fastshap.surrogate.train_surrogate`.
        progress_bar : bool
            Show tqdm bars over epochs. Default False.
        layer, use_raw
            For AnnData data: read ``adata.layers[layer]`` or ``adata.raw.X``
            instead of ``adata.X`` (all three data arguments).

        Returns
        -------
        FastSHAP
            Trained (``trained=True``), with ``history`` filled.

        Raises
        ------
        ValueError
            Unknown ``game``, a model in training mode or returning more than
            two axes, data of different feature counts, invalid players.
        """
        check_eval_mode(model, "model")
        if isinstance(game, str) and game not in GAMES:
            raise ValueError(f"`game` must be one of {GAMES} or a Game, got {game!r}.")
        if not isinstance(game, (str, Game)):
            raise TypeError(f"`game` must be one of {GAMES} or a Game, got {type(game).__name__}.")
        if background is not None and game != "marginal":
            raise ValueError(f"`background` is used only with game='marginal', got game={game!r}.")
        device = _device_of(model, torch.device("cpu"))
        dtype = _dtype_of(model, torch.get_default_dtype())

        def dense(data: Any, name: str) -> Tensor:
            rows = _Rows(data, layer, use_raw, name)
            return rows.rows(0, rows.n, dtype).to(device)

        xtr, xva = dense(x_train, "x_train"), dense(x_val, "x_val")
        feature_shape = tuple(xtr.shape[1:])
        if xva[0].numel() != xtr[0].numel():
            raise ValueError(
                f"`x_val` has {xva[0].numel()} features per example but `x_train` has "
                f"{xtr[0].numel()}."
            )
        players = _resolve_players(players, xtr[0].numel(), feature_shape)
        with torch.no_grad():
            out = model(xtr[:1])
        if not isinstance(out, Tensor) or out.ndim not in (1, 2):
            shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ValueError(f"`model` must return shape (B,) or (B, T), got {shape}.")
        n_out = 1 if out.ndim == 1 else int(out.shape[1])

        history: dict[str, dict] = {}
        the_game: Game | None
        if isinstance(game, Game):
            the_game = game
        elif game == "baseline":
            the_game = None
        elif game == "marginal":
            if background is None:
                g = torch.Generator().manual_seed(int(seed))
                idx = torch.randperm(xtr.shape[0], generator=g)[:DEFAULT_BACKGROUND_SIZE]
                bg = xtr[idx.to(device)]
            else:
                bg = dense(background, "background")
            the_game = MarginalGame(model, bg, players, link=link)
        else:
            task = "classification" if link == "softmax" else "regression"
            sur = MaskedSurrogate(players, n_out, **{"seed": seed, **(surrogate_kwargs or {})})
            sur = sur.to(device=device, dtype=dtype)
            history["surrogate"] = train_surrogate(
                sur, model, xtr, xva, task=task,
                **{"seed": seed, "progress_bar": progress_bar, **(surrogate_train_kwargs or {})})
            the_game = SurrogateGame(sur, link=link)

        ekw = {"seed": seed, **(explainer_kwargs or {})}
        if "scale_by_input" not in ekw:
            # Gradient x input parametrization for the baseline game over single features.
            base_game = the_game is None or isinstance(the_game, BaselineGame)
            ekw["scale_by_input"] = base_game and players.n_players == xtr[0].numel()
            if ekw["scale_by_input"] and "baseline" not in ekw:
                ekw["baseline"] = (torch.as_tensor(baseline) if the_game is None
                                   else the_game.baseline).detach().cpu()
        explainer = MLPExplainer(xtr[0].numel(), players.n_players, n_out, **ekw)
        explainer = explainer.to(device=device, dtype=dtype)
        fs = cls(model, explainer, game=the_game, players=players,
                 link=link if the_game is None else None, baseline=baseline)
        fs.history.update(history)
        fs.fit_explainer(xtr, xva, **{"seed": seed, "progress_bar": progress_bar,
                                      **(train_kwargs or {})})
        return fs

    def fit_explainer(self, x_train: Any, x_val: Any, layer: str | None = None,
                      use_raw: bool = False, **train_kwargs: Any) -> dict:
        """Train ``self.explainer`` in place on ``self.game`` and mark it trained.

        Parameters
        ----------
        x_train, x_val : Tensor, ndarray, scipy sparse matrix or AnnData
            ``shape=(N, *feature_shape)``; densified, moved to the explainer's
            device and cast to its dtype.
        layer, use_raw
            For AnnData data, as in :meth:`attribute`.
        **train_kwargs
            Arguments of :func:`~captum_genomics.fastshap.training.train_explainer`
            (``seed`` defaults to 0 there).

        Returns
        -------
        dict
            The training history, also stored as ``self.history["explainer"]``.
        """
        device = _device_of(self.explainer, torch.device("cpu"))
        dtype = _dtype_of(self.explainer, torch.get_default_dtype())
        data = []
        for x, name in ((x_train, "x_train"), (x_val, "x_val")):
            rows = _Rows(x, layer, use_raw, name)
            if rows.n_features != self.n_features:
                raise ValueError(
                    f"`{name}` has {rows.n_features} features per example (shape {rows.shape}) "
                    f"but the explainer expects {self.n_features}."
                )
            data.append(rows.rows(0, rows.n, dtype).to(device))
        train_kwargs.setdefault("mask_null_players", self.mask_null_players)
        history = train_explainer(self.explainer, self.game, data[0], data[1], self.players,
                                  **train_kwargs)
        self.mask_null_players = bool(train_kwargs["mask_null_players"])
        self.history["explainer"] = history
        self.trained = True
        return history

    # ------------------------------------------------------------------ attribution
    @overload
    def attribute(self, inputs: Any, target: Any = ..., additional_forward_args: Any = ...,
                  return_convergence_delta: Literal[False] = ..., batch_size: int | None = ...,
                  targets: Any = ..., layer: str | None = ..., use_raw: bool = ...,
                  return_player_values: bool = ...) -> Any: ...

    @overload
    def attribute(self, inputs: Any, target: Any = ..., additional_forward_args: Any = ...,
                  *, return_convergence_delta: Literal[True], batch_size: int | None = ...,
                  targets: Any = ..., layer: str | None = ..., use_raw: bool = ...,
                  return_player_values: bool = ...) -> tuple[Any, Tensor]: ...

    @log_usage()
    def attribute(
        self,
        inputs: Any,
        target: Any = None,
        additional_forward_args: Any = None,
        return_convergence_delta: bool = False,
        batch_size: int | None = None,
        targets: Sequence[Any] | Literal["all"] | None = None,
        layer: str | None = None,
        use_raw: bool = False,
        return_player_values: bool = False,
    ):
        r"""FastSHAP attributions of the selected output(s).

        One explainer forward pass per batch (all targets at once), then
        additive efficient normalization with the game's ``v(x, 1)`` and
        ``v(x, 0)``, so that per example and target
        ``sum_j phi_j = v(x, 1) - v(x, 0)`` (to float rounding: ``<= 1e-5``
        in float32 for values of order 1).

        Parameters
        ----------
        inputs : Tensor ``(N, *feature_shape)``, ndarray, scipy sparse matrix, AnnData
            The examples, ``F`` features each. A dense tensor may have any
            feature shape with ``F`` elements (the model sees that shape); a
            1-tuple holding one tensor is accepted (Captum's tuple form). A
            numpy array, a scipy sparse matrix ``(N, F)`` (densified one batch
            at a time) or an AnnData (``.X`` by default; see ``layer``,
            ``use_raw``) works too. Integer data are cast to float.
        target : int, Tensor ``(N,)``, list of N ints, or None
            Captum's ``target``: the output explained. An int selects
            ``output[:, target]`` (negative ints count from the end), a tensor
            or list gives one target per example, None is valid only for a
            model with one output. Default None.
        additional_forward_args : None
            Only None (or an empty tuple): the explainer was trained on
            ``model(x)`` alone, so extra model arguments would not reach its
            values. Wrap the model (``lambda x: model(x, *args)``) before
            fitting instead.
        return_convergence_delta : bool
            Also return the convergence delta. Default False.
        batch_size : int, optional
            Examples per explainer pass and game call. Default None: all at
            once. Results agree with the unbatched ones to float rounding (the
            explainer's matrix products may sum in another order for another
            batch size; differences are a few ulps).
        targets : "all" or sequence of targets, optional
            ``"all"``: every output at once, attributions
            ``(N, *feature_shape, T)`` and deltas ``(N, T)``. A sequence:
            a list with one result per entry (each a ``target`` as above),
            all from the same explainer pass. Exclusive with ``target``.
        layer : str, optional
            For AnnData inputs: use ``inputs.layers[layer]``. Default None.
        use_raw : bool
            For AnnData inputs: use ``inputs.raw.X``. Default False.
        return_player_values : bool
            Return the player values ``(N, d)`` (``(N, d, T)`` with
            ``targets="all"``) instead of expanding them onto the features.
            Default False.

        Returns
        -------
        attributions : Tensor
            Shaped like ``inputs`` (``(N, F)`` for arrays, sparse matrices and
            AnnData), ``(N, *feature_shape, T)`` with ``targets="all"``.
            **Groups**: every feature of a player gets the player's value
            (Captum's ``feature_mask`` convention, as in ``ShapleyValues``),
            so with groups the sum over features counts a player once per
            feature; the efficiency sum is over players (use
            ``return_player_values=True`` or divide by the group sizes). For a
            tensor input: its dtype (float dtypes; the explainer's for
            integer tensors) and device. Otherwise: the explainer's dtype and
            device. A 1-tuple input gives a 1-tuple.
        delta : Tensor ``(N,)``, or ``(N, T)`` with ``targets="all"``
            Only with ``return_convergence_delta=True``: the efficiency gap
            against the **model's own** baseline game,
            ``sum_j phi_j - (f(x) - f(baseline))`` (after ``link``), Captum's
            sign. For the default game it is float rounding (~1e-7 in
            float32); for a marginal or surrogate game it measures how far
            that game's ``v(1) - v(0)`` is from the model's (e.g. the
            surrogate's error at the full input plus the difference between
            the surrogate's empty-coalition value and ``f(baseline)``).

        With a sequence ``targets``, a list of the above, one per target.

        Raises
        ------
        ValueError
            Inputs with another feature count than the explainer's, NaN/Inf
            in inputs, an empty batch, a target out of range (or None for a
            multi-output model), ``additional_forward_args``, a model or
            explainer in training mode, a model whose output count differs
            from the explainer's, ``layer`` / ``use_raw`` without an AnnData.
        RuntimeError
            If the explainer has not been trained (see ``trained``).
        TypeError
            Unsupported input containers or target types.
        """
        self._check_ready()
        if format_additional_forward_args(additional_forward_args):
            raise ValueError(
                "`additional_forward_args` is not supported by FastSHAP: the explainer was "
                "trained on model(x) alone, so extra model arguments would not change its "
                "values. Wrap the model, e.g. `lambda x: model(x, *args)`, and fit on that."
            )
        was_tuple = isinstance(inputs, tuple)
        if was_tuple:
            if len(inputs) != 1:
                raise ValueError(
                    f"`inputs` tuple must hold exactly one tensor (FastSHAP explains one input), "
                    f"got {len(inputs)}."
                )
            inputs = inputs[0]
        rows = _Rows(inputs, layer, use_raw, "inputs")
        if rows.n_features != self.n_features:
            raise ValueError(
                f"`inputs` has {rows.n_features} features per example (shape {rows.shape}) but "
                f"the explainer expects {self.n_features}."
            )
        n, t = rows.n, self.n_outputs
        if targets is not None and target is not None:
            raise ValueError("Pass either `target` or `targets`, not both.")
        if isinstance(targets, str):
            if targets != "all":
                raise ValueError(
                    f"`targets` must be 'all' or a sequence of targets, got {targets!r}.")
            specs: list = ["all"]
        elif targets is not None:
            if len(targets) == 0:
                raise ValueError("`targets` must hold at least one target, got an empty sequence.")
            specs = [_target_spec(tg, n, t, "targets") for tg in targets]
        else:
            specs = [_target_spec(target, n, t, "target")]
        step = n if batch_size is None else check_positive_int(batch_size, "batch_size")

        selected = None
        if targets is None and isinstance(self.explainer, MLPExplainer):
            # One `target`: the explainer computes only that output (equal to the
            # corresponding `targets=` entry up to float rounding).
            selected, specs = specs[0], [0]
        phi, delta = self._player_values(rows, step, return_convergence_delta, selected)
        if rows.is_tensor:
            out_dtype = inputs.dtype if inputs.is_floating_point() else phi.dtype
            out_device = inputs.device
        else:
            out_dtype, out_device = phi.dtype, phi.device
        pof = self.players.player_of_feature.to(phi.device)
        results = []
        for spec in specs:
            values = _select(phi, spec)  # (N, d) or (N, d, T)
            if not return_player_values:
                values = values.index_select(1, pof)
                values = values.reshape(rows.shape + values.shape[2:])
            attr = values.to(device=out_device, dtype=out_dtype)
            if was_tuple:
                attr = (attr,)
            if return_convergence_delta:
                d = _select(delta, spec).to(device=out_device, dtype=out_dtype)
                results.append((attr, d))
            else:
                results.append(attr)
        return results if targets is not None and not isinstance(targets, str) else results[0]

    def _check_ready(self) -> None:
        if not self.trained:
            raise RuntimeError(
                "`explainer` has not been trained: its values would be noise (that still sums "
                "to v(1) - v(0)). Train it with `FastSHAP.fit(...)` or `.fit_explainer(x_train, "
                "x_val)`, or pass `trained=True` for an explainer trained elsewhere (e.g. with "
                "`train_explainer`) or loaded with `load_module`."
            )
        check_eval_mode(self.forward_func, "model")
        check_eval_mode(self.explainer, "explainer")
        surrogate = getattr(self.game, "surrogate", None)
        if surrogate is not None:
            check_eval_mode(surrogate, "surrogate")
        game_model = getattr(self.game, "model", None)
        if game_model is not None and game_model is not self.forward_func:
            check_eval_mode(game_model, "game.model")

    def _game_input(self, game: Game, x: Tensor) -> Tensor:
        """``x`` on the device and in the dtype of the network behind ``game``."""
        net = getattr(game, "surrogate", None)
        if net is None:
            net = getattr(game, "model", None)
        fallback = x.dtype if x.is_floating_point() else torch.get_default_dtype()
        return x.to(device=_device_of(net, x.device), dtype=_dtype_of(net, fallback))

    def _player_values(self, rows: _Rows, step: int, with_delta: bool,
                       selected: int | Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Normalized player values ``(N, d, T)`` and deltas ``(N, T)`` (or None).

        With ``selected`` (an output index or one per example, ``(N,)``), only
        that output: ``(N, d, 1)`` and ``(N, 1)``.
        """
        exp_device = _device_of(self.explainer, torch.device("cpu"))
        exp_dtype = _dtype_of(self.explainer, torch.get_default_dtype())
        d, t = self.n_players, self.n_outputs
        phis, deltas = [], []
        for lo in range(0, rows.n, step):
            hi = min(lo + step, rows.n)
            x = rows.rows(lo, hi, rows.native_dtype(exp_dtype))
            x_exp = x.to(device=exp_device, dtype=exp_dtype)
            idx = None
            if selected is not None:
                idx = (torch.full((hi - lo,), selected, dtype=torch.long)
                       if isinstance(selected, int) else selected[lo:hi])
            with torch.no_grad():
                raw = (self.explainer(x_exp) if idx is None
                       else self.explainer(x_exp, outputs=idx.to(exp_device)))
            t_raw = t if idx is None else 1
            if not isinstance(raw, Tensor) or tuple(raw.shape) != (hi - lo, d, t_raw):
                shape = tuple(raw.shape) if isinstance(raw, Tensor) else type(raw).__name__
                raise ValueError(
                    f"`explainer` must return shape (B, d, T) = {(hi - lo, d, t)}, got {shape}."
                )
            x_game = self._game_input(self.game, x)
            grand, null = self.game.grand(x_game), self.game.null(x_game)
            if grand.shape[1] != t:
                raise ValueError(
                    f"the game returns {grand.shape[1]} output(s) but the explainer predicts {t}; "
                    "was the explainer trained on this model?"
                )
            if idx is not None:
                col = idx.to(grand.device).unsqueeze(1)
                grand, null = grand.gather(1, col), null.gather(1, col)
            active = active_players(self.game, x_game) if self.mask_null_players else None
            phi = additive_efficient_normalization(raw, grand.to(raw.device),
                                                   null.to(raw.device), active)
            phis.append(phi)
            if with_delta:
                if self.game is self.model_game:
                    m_grand, m_null = grand, null
                else:
                    x_model = self._game_input(self.model_game, x)
                    m_grand, m_null = self.model_game.grand(x_model), self.model_game.null(x_model)
                    if m_grand.shape[1] != t:
                        raise ValueError(
                            f"`model` returns {m_grand.shape[1]} output(s) but the explainer "
                            f"predicts {t}."
                        )
                    if idx is not None:
                        col = idx.to(m_grand.device).unsqueeze(1)
                        m_grand, m_null = m_grand.gather(1, col), m_null.gather(1, col)
                diff = (m_grand.double() - m_null.double()).to(phi.device)
                deltas.append(phi.double().sum(1) - diff)
        phi = torch.cat(phis, dim=0)
        return phi, (torch.cat(deltas, dim=0) if with_delta else None)

    def compute_convergence_delta(self, attributions: Tensor | tuple[Tensor], inputs: Any,
                                  target: Any = None, additional_forward_args: Any = None,
                                  layer: str | None = None, use_raw: bool = False) -> Tensor:
        r"""Efficiency gap of feature-shaped attributions against the model's own game.

        Parameters
        ----------
        attributions : Tensor ``(N, *feature_shape)`` or ``(N, *feature_shape, T)``
            As returned by :meth:`attribute` (players expanded onto features;
            the trailing ``T`` axis for ``targets="all"``, then ``target`` is
            ignored). A 1-tuple is accepted.
        inputs
            The inputs they explain, any container :meth:`attribute` accepts.
        target
            As in :meth:`attribute`.
        additional_forward_args
            Only None, as in :meth:`attribute`.
        layer, use_raw
            For AnnData inputs, as in :meth:`attribute`.

        Returns
        -------
        Tensor ``(N,)`` or ``(N, T)``
            ``sum_j phi_j - (f(x) - f(baseline))`` (after ``link``), where the
            player values ``phi_j`` are recovered from the features as
            ``sum_f attr_f / |group(f)|``; the attributions' dtype and device.
        """
        if format_additional_forward_args(additional_forward_args):
            raise ValueError("`additional_forward_args` is not supported by FastSHAP.")
        if isinstance(attributions, tuple):
            attributions = attributions[0]
        if isinstance(inputs, tuple):
            inputs = inputs[0]
        rows = _Rows(inputs, layer, use_raw, "inputs")
        n, f = rows.n, self.n_features
        if rows.n_features != f:
            raise ValueError(
                f"`inputs` has {rows.n_features} features per example but the explainer "
                f"expects {f}."
            )
        flat = attributions.reshape(n, -1)
        all_targets = self.n_outputs > 1 and flat.shape[1] == f * self.n_outputs
        if all_targets:
            flat = attributions.reshape(n, f, self.n_outputs)
        elif flat.shape[1] != f:
            raise ValueError(
                f"`attributions` must have {f} values per example (or {f} x {self.n_outputs}), "
                f"got shape {tuple(attributions.shape)}."
            )
        sizes = self.players.group_sizes().to(flat.device)
        weight = 1.0 / sizes[self.players.player_of_feature.to(flat.device)].double()
        if all_targets:
            total = (flat.double() * weight[:, None]).sum(1)
        else:
            total = (flat.double() * weight).sum(1)
        x = rows.rows(0, n, rows.native_dtype(_dtype_of(self.explainer,
                                                       torch.get_default_dtype())))
        x = self._game_input(self.model_game, x)
        diff = (self.model_game.grand(x).double() - self.model_game.null(x).double())
        if not all_targets:
            diff = _select(diff, _target_spec(target, n, diff.shape[1], "target"))
        return (total - diff.to(total.device)).to(attributions.dtype)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> None:
        """Write the explainer, its game and settings to one file.

        The file is a plain dictionary read back with
        ``torch.load(weights_only=True)`` (no pickled code): the explainer and,
        for a surrogate game, the surrogate as written by
        :func:`~captum_genomics.fastshap.io.save_module`, the players, link,
        baseline, ``trained`` flag, training history and, for a marginal game,
        the background rows and weights. The model itself is not saved; pass
        it to :meth:`load`.

        Parameters
        ----------
        path
            Destination file (conventionally ``.pt``); overwritten.

        Raises
        ------
        TypeError
            If the explainer is not an ``MLPExplainer``, the game is not a
            ``BaselineGame``, ``MarginalGame`` or a ``SurrogateGame`` of a
            ``MaskedSurrogate``.
        """
        game = self.game
        blob: dict[str, Any] = {"format": FORMAT, "version": VERSION,
                                "explainer": _module_blob(self.explainer),
                                "baseline": self.baseline.detach().cpu().clone(),
                                "surrogate": None, "background": None, "weights": None,
                                "game_baseline": None}
        if game is self.model_game:
            kind = "model"
        elif isinstance(game, SurrogateGame) and isinstance(game.surrogate, MaskedSurrogate):
            kind = "surrogate"
            blob["surrogate"] = _module_blob(game.surrogate)
        elif isinstance(game, MarginalGame):
            kind = "marginal"
            blob["background"] = game.background.detach().cpu().clone()
            blob["weights"] = game.weights.detach().cpu().clone()
        elif isinstance(game, BaselineGame):
            kind = "baseline"
            blob["game_baseline"] = game.baseline.detach().cpu().clone()
        else:
            raise TypeError(
                f"`game` of type {type(game).__name__} cannot be saved: only the model's game, "
                "a BaselineGame, a MarginalGame or a SurrogateGame of a MaskedSurrogate."
            )
        blob["config"] = {"game": kind, "link": self.link, "game_link": game.link,
                          "game_batch_size": game.batch_size, "trained": self.trained,
                          "players": self.players.to_config(), "history": self.history,
                          "mask_null_players": self.mask_null_players}
        torch.save(blob, path)

    @classmethod
    def load(cls, path: str | os.PathLike, model: Callable,
             map_location: str | torch.device | None = None) -> "FastSHAP":
        """Read a file written by :meth:`save` and attach it to ``model``.

        Parameters
        ----------
        path
            The file.
        model
            The model the explainer was trained for (not stored in the file);
            the game is rebuilt around it.
        map_location
            Device of the explainer and surrogate. Default None: the model's
            device (CPU for a callable without parameters).

        Returns
        -------
        FastSHAP
            With the saved ``trained`` flag and ``history``; networks in eval
            mode, in their saved dtype.

        Raises
        ------
        ValueError
            If the file is not a FastSHAP file, is of a newer version, or holds
            invalid modules.
        """
        blob = torch.load(path, map_location="cpu", weights_only=True)
        where = os.fspath(path) if isinstance(path, (str, os.PathLike)) else "the file"
        if not isinstance(blob, dict) or blob.get("format") != FORMAT:
            raise ValueError(f"{where!r} is not a {FORMAT} file (written by FastSHAP.save).")
        if int(blob.get("version", 0)) > VERSION:
            raise ValueError(
                f"{where!r} has format version {blob['version']}; this captum_genomics reads up "
                f"to {VERSION}. Upgrade the package."
            )
        device = torch.device(map_location) if map_location is not None else _device_of(
            model, torch.device("cpu"))
        config = blob["config"]
        explainer = _module_from_blob(blob["explainer"], "explainer", path, device)
        players = Players.from_config(config["players"])
        kind, link, batch = config["game"], config["game_link"], config["game_batch_size"]
        if kind == "model":
            game = None
        elif kind == "surrogate":
            sur = _module_from_blob(blob["surrogate"], "surrogate", path, device)
            game = SurrogateGame(sur, link=link, batch_size=batch)
        elif kind == "marginal":
            game = MarginalGame(model, blob["background"].to(device), players,
                                weights=blob["weights"], link=link, batch_size=batch)
        elif kind == "baseline":
            game = BaselineGame(model, players, baseline=blob["game_baseline"], link=link,
                                batch_size=batch)
        else:
            raise ValueError(f"{where!r} names an unknown game {kind!r}.")
        fs = cls(model, explainer, game=game, players=players, link=config["link"],
                 baseline=blob["baseline"], trained=bool(config["trained"]),
                 mask_null_players=bool(config.get("mask_null_players", False)))
        fs.history = dict(config.get("history") or {})
        return fs

    def __repr__(self) -> str:
        return (f"FastSHAP(n_features={self.n_features}, n_players={self.n_players}, "
                f"n_outputs={self.n_outputs}, game={type(self.game).__name__}, "
                f"link={self.link!r}, trained={self.trained})")
