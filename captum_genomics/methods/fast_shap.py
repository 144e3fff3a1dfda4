"""``FastSHAP``: amortized Shapley values (Jethani et al., ICLR 2022) as a Captum attribution.

Orchestration only: players, games, training, inference and saving live in
:mod:`captum_genomics.fastshap`, input containers in :mod:`captum_genomics.sc.inputs`
and target handling in :mod:`captum_genomics._utils.targets`. This module turns
a trained explainer into a ``captum.attr.Attribution``: inputs of any supported
container in, one explainer forward pass, additive efficient normalization
against the game, player values expanded back onto the features, a tensor out.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Literal, Sequence, overload

import torch
from torch import Tensor, nn

from captum_genomics._utils.captum import (
    PerturbationAttribution,
    format_additional_forward_args,
    log_usage,
)
from captum_genomics._utils.checks import (
    check_eval_mode,
    check_positive_int,
    check_random_state,
)
from captum_genomics._utils.deprecation import MISSING, renamed_training_keywords
from captum_genomics._utils.devices import module_device, module_dtype
from captum_genomics._utils.grad_mode import autograd_enabled, autograd_tensors
from captum_genomics._utils.targets import resolve_output_targets, select_outputs
from captum_genomics.fastshap.explainer import MLPExplainer
from captum_genomics.fastshap.fitting import DEFAULT_BACKGROUND_SIZE, GAMES  # noqa: F401
from captum_genomics.fastshap.fitting import (
    build_explainer,
    build_game,
    check_components,
    check_game,
    count_outputs,
    source_rows,
    training_data,
    with_defaults,
)
from captum_genomics.fastshap.games import BaselineGame, Game
from captum_genomics.fastshap.inference import feature_efficiency_gap, player_values
from captum_genomics.fastshap.io import FASTSHAP_FORMAT as FORMAT  # noqa: F401
from captum_genomics.fastshap.io import FASTSHAP_VERSION as VERSION  # noqa: F401
from captum_genomics.fastshap.io import FastSHAPFileError, read_fastshap, save_fastshap
from captum_genomics.fastshap.io import _text
from captum_genomics.fastshap.io import _where as file_name
from captum_genomics.fastshap.players import resolve_players
from captum_genomics.fastshap.training import train_explainer

__all__ = ["FastSHAP"]
# FORMAT, VERSION (the tag of FastSHAP.save's files), GAMES and
# DEFAULT_BACKGROUND_SIZE stay importable from here.


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
    source : dict or None
        Where the explainer's training data came from, when they were an
        AnnData (set by :meth:`fit` / :meth:`fit_explainer`, kept by
        :meth:`save` / :meth:`load`): ``{"layer": str or None, "use_raw":
        bool, "var_names": [F gene names, in feature order], "n_features": F}``.
        :meth:`attribute` then reads an AnnData from the same matrix and
        matches its genes by name (see there). None for tensor, array and
        sparse data (no names; nothing is checked).

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
        players, link = check_components(explainer, game, players, link)
        self.explainer = explainer
        self.players = players
        self.link = link
        self.model_game = BaselineGame(model, players, baseline=baseline, link=link)
        self.baseline = self.model_game.baseline
        self.game = self.model_game if game is None else game
        self.trained = bool(trained)
        self.mask_null_players = bool(mask_null_players)
        self.history: dict[str, dict] = {}
        self.source: dict[str, Any] | None = None

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
            baseline: float | Tensor = 0.0, random_state: int = 0,
            explainer_kwargs: dict | None = None, train_kwargs: dict | None = None,
            surrogate_kwargs: dict | None = None, surrogate_train_kwargs: dict | None = None,
            show_progress: bool = False, layer: str | None = None,
            use_raw: bool = False, *, seed: Any = MISSING,
            progress_bar: Any = MISSING) -> "FastSHAP":
        r"""Train an explainer (and, for ``game="surrogate"``, a surrogate first).

        Every random choice (weight initialization, coalitions, shuffling, the
        marginal background) comes from ``random_state``: the same call gives
        the same weights and attributions, on the same device and library
        versions. The game and the explainer are built by
        :func:`~captum_genomics.fastshap.fitting.build_game` and
        :func:`~captum_genomics.fastshap.fitting.build_explainer`.

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
            ``background`` rows (``M`` model calls per coalition).
            ``"surrogate"``: the paper's game, of a ``MaskedSurrogate``
            trained first (KL to the model's probabilities for
            ``link="softmax"``, squared error for ``"identity"``). A ``Game``
            instance is used as given.
        background : Tensor, ndarray, sparse matrix or AnnData, optional
            ``shape=(M, *feature_shape)``, for ``game="marginal"``. Default
            None: ``min(N, 64)`` rows of ``x_train`` drawn with ``random_state``.
        link : {"identity", "softmax"}
            See the constructor; also the link of a marginal or surrogate
            game built here (a ``Game`` instance keeps its own). Default
            ``"identity"``.
        baseline : float or Tensor
            See the constructor. Default 0.0.
        random_state : int
            Seeds every random choice (see above). Default 0.
        explainer_kwargs : dict, optional
            Extra arguments of
            :class:`~captum_genomics.fastshap.explainer.MLPExplainer`
            (``hidden_width``, ``n_hidden_layers``, ``activation``...; the
            default ``scale_by_input``: see ``build_explainer``).
        train_kwargs : dict, optional
            Extra arguments of
            :func:`~captum_genomics.fastshap.training.train_explainer`
            (``max_epochs``, ``lr``, ``n_samples``, ``batch_size``...; its
            defaults otherwise).
        surrogate_kwargs, surrogate_train_kwargs : dict, optional
            Extra arguments of ``MaskedSurrogate`` and
            :func:`~captum_genomics.fastshap.surrogate.train_surrogate`.
        show_progress : bool
            Show tqdm bars over epochs. Default False.
        layer, use_raw
            For AnnData data: read ``adata.layers[layer]`` or ``adata.raw.X``
            instead of ``adata.X`` (all three data arguments). The matrix
            and its gene names (``var_names``, of ``.raw`` with ``use_raw``)
            are recorded in ``source``; AnnData ``x_val`` / ``background``
            must have ``x_train``'s genes (another order is matched by name).
            Default None, False: ``adata.X``.
        seed, progress_bar
            Deprecated spellings of ``random_state`` and ``show_progress``,
            kept for one release (``DeprecationWarning``).

        Returns
        -------
        FastSHAP
            Trained (``trained=True``), with ``history`` and, for AnnData
            data, ``source`` filled.

        Raises
        ------
        ValueError
            Unknown ``game``, a model in training mode or returning more than
            two axes, data of different feature counts, invalid players.
        TypeError
            A ``game`` that is neither a name nor a ``Game``, or a deprecated
            keyword given with a different value under its new name.
        """
        random_state, show_progress = renamed_training_keywords(
            "FastSHAP.fit", seed, random_state, progress_bar, show_progress)
        random_state = check_random_state(random_state)
        check_eval_mode(model, "model")
        check_game(game, background)
        # training needs autograd, also inside the caller's no_grad / inference_mode
        with autograd_enabled():
            device = module_device(model, torch.device("cpu"))
            dtype = module_dtype(model, torch.get_default_dtype())
            xtr, xva, bg, source = training_data(x_train, x_val, background, None, dtype, device,
                                                 layer, bool(use_raw), return_source=True)
            xtr, xva, bg = autograd_tensors((xtr, xva, bg))
            players = resolve_players(players, xtr[0].numel(), tuple(xtr.shape[1:]))
            n_out = count_outputs(model, xtr)
            if link == "softmax" and n_out == 1:
                raise ValueError(
                    "`link='softmax'` needs a model with one output per class, but this model "
                    "has a single output: its softmax is 1 for every input, so every Shapley "
                    "value would be 0. Use `link='identity'` for a single logit or score."
                )
            the_game, history = build_game(model, game, players, xtr, xva, n_out, link, bg,
                                           random_state, surrogate_kwargs, surrogate_train_kwargs,
                                           show_progress)
            explainer = build_explainer(players, n_out, the_game, baseline, random_state,
                                        explainer_kwargs, device, dtype)
            fs = cls(model, explainer, game=the_game, players=players,
                     link=link if the_game is None else None, baseline=baseline)
            fs.history.update(history)
            fs.fit_explainer(xtr, xva, **with_defaults(train_kwargs, random_state=random_state,
                                                       show_progress=show_progress))
            fs.source = source
            return fs

    def fit_explainer(self, x_train: Any, x_val: Any, layer: str | None = None,
                      use_raw: bool | None = None, **train_kwargs: Any) -> dict:
        """Train ``self.explainer`` in place on ``self.game`` and mark it trained.

        Parameters
        ----------
        x_train, x_val : Tensor, ndarray, scipy sparse matrix or AnnData
            ``shape=(N, *feature_shape)``; densified, moved to the explainer's
            device and cast to its dtype.
        layer, use_raw
            For AnnData data, as in :meth:`attribute`: with a recorded
            ``source`` its matrix and gene order are used (and checked);
            without one, the AnnData's matrix (``.X`` by default) and genes
            are recorded as ``source`` once training succeeds.
        **train_kwargs
            Arguments of :func:`~captum_genomics.fastshap.training.train_explainer`
            (``random_state`` defaults to 0 there).

        Returns
        -------
        dict
            The training history, also stored as ``self.history["explainer"]``.

        Raises
        ------
        ValueError
            Data with another feature count than the explainer's, an AnnData
            matrix other than the recorded ``source``'s, AnnData genes that
            differ from it (or, without a source, between ``x_train`` and
            ``x_val``), or invalid training arguments. Nothing is changed then.
        """
        *data, _, source = training_data(
            x_train, x_val, None, self.n_features,
            module_dtype(self.explainer, torch.get_default_dtype()),
            module_device(self.explainer, torch.device("cpu")), layer, use_raw,
            source=self.source, return_source=True)
        train_kwargs.setdefault("mask_null_players", self.mask_null_players)
        with autograd_enabled():  # also inside the caller's no_grad / inference_mode
            history = train_explainer(self.explainer, self.game, *autograd_tensors(data[:2]),
                                      self.players, **train_kwargs)
        self.mask_null_players = bool(train_kwargs["mask_null_players"])
        self.history["explainer"] = history
        self.trained = True
        if self.source is None:
            self.source = source
        return history

    # ------------------------------------------------------------------ attribution
    @overload
    def attribute(self, inputs: Any, target: Any = ..., additional_forward_args: Any = ...,
                  return_convergence_delta: Literal[False] = ..., batch_size: int | None = ...,
                  targets: Any = ..., layer: str | None = ..., use_raw: bool | None = ...,
                  return_player_values: bool = ...) -> Any: ...

    @overload
    def attribute(self, inputs: Any, target: Any = ..., additional_forward_args: Any = ...,
                  *, return_convergence_delta: Literal[True], batch_size: int | None = ...,
                  targets: Any = ..., layer: str | None = ..., use_raw: bool | None = ...,
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
        use_raw: bool | None = None,
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

            **AnnData and the fitted source.** When the explainer was fitted
            on an AnnData (``source`` is set), an AnnData is read from the
            same matrix (layer, ``.raw`` or ``.X``) unless ``layer`` /
            ``use_raw`` are given, and its genes are matched by name: the
            same genes in another order are reordered into the fitted order
            for the explainer, and the attributions come back in the
            AnnData's own order (column ``j`` is ``var_names[j]``), equal to
            those of the correctly ordered AnnData. Other genes raise. Pass
            the matrix itself (e.g. ``adata.layers["x"]``) to skip these
            checks.
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
        use_raw : bool, optional
            For AnnData inputs: use ``inputs.raw.X``. Default None: the
            fitted ``source``'s matrix (``.X`` when there is none). An
            explicit ``layer`` / ``use_raw`` that reads another matrix than
            the fitted one raises.
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
            from the explainer's, ``layer`` / ``use_raw`` without an AnnData,
            an AnnData matrix other than the fitted ``source``'s, or AnnData
            genes that differ from the fitted ones (the first differences are
            named).
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
        rows, order = self._input_rows(inputs, layer, use_raw)
        n = rows.n
        specs = resolve_output_targets(target, targets, n, self.n_outputs)
        step = n if batch_size is None else check_positive_int(batch_size, "batch_size")

        selected = None
        if targets is None and isinstance(self.explainer, MLPExplainer):
            # One `target`: the explainer computes only that output (equal to the
            # corresponding `targets=` entry up to float rounding).
            selected, specs = specs[0], [0]
        phi, delta = player_values(
            self.explainer, self.game, rows, step, selected=selected,
            model_game=self.model_game if return_convergence_delta else None,
            mask_null_players=self.mask_null_players)
        if rows.is_tensor:
            out_dtype = rows.data.dtype if rows.data.is_floating_point() else phi.dtype
            out_device = rows.data.device
        else:
            out_dtype, out_device = phi.dtype, phi.device
        pof = self.players.player_of_feature
        if order is not None:  # an AnnData in another gene order: back to its order
            pof = pof[torch.as_tensor(order).argsort()]
        pof = pof.to(phi.device)
        results = []
        for spec in specs:
            values = select_outputs(phi, spec)  # (N, d) or (N, d, T)
            if not return_player_values:
                values = values.index_select(1, pof)
                values = values.reshape(rows.shape + values.shape[2:])
            attr = values.to(device=out_device, dtype=out_dtype)
            if was_tuple:
                attr = (attr,)
            if return_convergence_delta:
                d = select_outputs(delta, spec).to(device=out_device, dtype=out_dtype)
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

    def _input_rows(self, inputs: Any, layer: str | None, use_raw: bool | None) -> tuple:
        """``inputs`` (or a one-tensor tuple of it) as rows, checked against the explainer.

        Returns the rows (in the fitted gene order) and, for an AnnData whose
        genes were reordered, the column of ``inputs`` of each fitted gene
        (else None); see :func:`~captum_genomics.fastshap.fitting.source_rows`.
        """
        if isinstance(inputs, tuple):
            if len(inputs) != 1:
                raise ValueError(
                    f"`inputs` tuple must hold exactly one tensor (FastSHAP explains one input), "
                    f"got {len(inputs)}."
                )
            inputs = inputs[0]
        rows, _, order = source_rows(inputs, self.source, layer, use_raw, "inputs")
        if rows.n_features != self.n_features:
            raise ValueError(
                f"`inputs` has {rows.n_features} features per example (shape {rows.shape}) but "
                f"the explainer expects {self.n_features}."
            )
        return rows, order

    def compute_convergence_delta(self, attributions: Tensor | tuple[Tensor], inputs: Any,
                                  target: Any = None, additional_forward_args: Any = None,
                                  layer: str | None = None,
                                  use_raw: bool | None = None) -> Tensor:
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
            For AnnData inputs, as in :meth:`attribute` (attributions of a
            reordered AnnData are in its own gene order, as :meth:`attribute`
            returns them).

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
        rows, order = self._input_rows(inputs, layer, use_raw)
        if order is not None and attributions.ndim >= 2:
            attributions = attributions.index_select(
                1, torch.as_tensor(order, device=attributions.device))
        return feature_efficiency_gap(attributions, rows, self.players, self.model_game,
                                      self.n_outputs, target,
                                      module_dtype(self.explainer, torch.get_default_dtype()))

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike, overwrite: bool = False) -> None:
        """Write the explainer, its game and settings to one file.

        A plain dictionary (layout in :mod:`captum_genomics.fastshap.io`),
        read back with ``torch.load(weights_only=True)`` (no pickled code):
        the networks' weights and configs, the players, link, baseline,
        ``trained`` flag, history, the game's own data and ``source``, with a
        SHA-256 checksum of all of it that :meth:`load` verifies. The model
        itself is not saved; pass it to :meth:`load`.

        Parameters
        ----------
        path : str or os.PathLike, or a writable binary file object
            Destination file (conventionally ``.pt``), written atomically
            (beside it, flushed, then moved into place): a failed write (e.g.
            a full disk) leaves an existing file as it was.
        overwrite : bool
            Replace an existing file at ``path``. Default False: an existing
            file raises ``FileExistsError`` and is left as it is.

        Raises
        ------
        TypeError
            If the explainer is not an ``MLPExplainer``, the game is not a
            ``BaselineGame``, ``MarginalGame`` or a ``SurrogateGame`` of a
            ``MaskedSurrogate``.
        FileExistsError
            If ``path`` exists and ``overwrite`` is False.
        OSError, RuntimeError
            If writing fails (e.g. a full disk): an existing file at ``path``
            is left unchanged and no temporary file remains.
        """
        save_fastshap(self, path, overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike, model: Callable,
             map_location: str | torch.device | None = None) -> "FastSHAP":
        """Read a file written by :meth:`save` and attach it to ``model``.

        Files of format version 2 (this release) are verified against their
        checksum; version 1 files (earlier releases: no checksum, no
        ``source``) are read as they are.

        Parameters
        ----------
        path : str or os.PathLike, or a readable binary file object
            The file.
        model : callable or torch.nn.Module
            The model the explainer was trained for (not stored in the file);
            the game is rebuilt around it.
        map_location : str or torch.device, optional
            Device of the explainer and surrogate. Default None: the model's
            device (CPU for a callable without parameters).

        Returns
        -------
        FastSHAP
            With the saved ``trained`` flag, ``history`` and ``source``;
            networks in eval mode, in their saved dtype.

        Raises
        ------
        FastSHAPFileError
            (a ``ValueError``, from :mod:`captum_genomics.fastshap`) If the
            file cannot be used, whatever the reason: empty, truncated or
            otherwise damaged, not a file of ``torch.save``, a torch file
            that is not a FastSHAP file, a checksum that does not match (a
            flipped byte, an edited class, dtype or setting), inconsistent
            contents, or written by a newer version. The message names the
            file and the reason.
        FileNotFoundError, IsADirectoryError
            If ``path`` does not exist or is a directory (naming it).
        """
        arguments = read_fastshap(path, model, map_location)
        history = arguments.pop("history")
        source = arguments.pop("source")
        try:
            fs = cls(model, **arguments)
        except (TypeError, ValueError) as err:  # file contents that do not fit together
            raise FastSHAPFileError(
                f"{file_name(path)!r} is damaged or not a valid FastSHAP file: its parts do not "
                f"fit together ({_text(err)}).") from err
        fs.history = history
        fs.source = source
        return fs

    def __repr__(self) -> str:
        return (f"FastSHAP(n_features={self.n_features}, n_players={self.n_players}, "
                f"n_outputs={self.n_outputs}, game={type(self.game).__name__}, "
                f"link={self.link!r}, trained={self.trained})")
