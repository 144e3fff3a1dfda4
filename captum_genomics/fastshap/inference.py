"""Explaining with a trained explainer: one forward pass, then normalization against the game.

:func:`player_values` is what :meth:`FastSHAP.attribute
<captum_genomics.FastSHAP.attribute>` computes per batch: the explainer's raw
values ``(B, d, T)``, the game's ``v(x, 1)`` and ``v(x, 0)``, additive
efficient normalization (Jethani et al., ICLR 2022, Section 3.2; null players
fixed at 0 where the game knows them) and, if asked, the efficiency gap
against the model's own game. :func:`feature_efficiency_gap` recovers that gap
from attributions already expanded onto the features.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from captum_genomics._utils.devices import module_device, module_dtype
from captum_genomics._utils.targets import resolve_output_target, select_outputs
from captum_genomics.fastshap.games import Game, active_players
from captum_genomics.fastshap.normalization import additive_efficient_normalization
from captum_genomics.fastshap.players import Players

if TYPE_CHECKING:
    from captum_genomics.sc.inputs import FeatureRows

__all__ = ["game_input", "player_values", "feature_efficiency_gap"]


def game_input(game: Game, x: Tensor) -> Tensor:
    """``x`` on the device and in the floating dtype of the network behind ``game``.

    Parameters
    ----------
    game : Game
        Its ``surrogate`` or else its ``model`` decides; a game without
        either (or a model without parameters) keeps ``x``'s device and
        floating dtype.
    x : Tensor ``(B, *feature_shape)``
        Integer data are cast to the default floating dtype.

    Returns
    -------
    Tensor
    """
    net = getattr(game, "surrogate", None)
    if net is None:
        net = getattr(game, "model", None)
    fallback = x.dtype if x.is_floating_point() else torch.get_default_dtype()
    return x.to(device=module_device(net, x.device), dtype=module_dtype(net, fallback))


def _outputs_of(grand: Tensor, null: Tensor, idx: Tensor | None) -> tuple[Tensor, Tensor]:
    if idx is None:
        return grand, null
    col = idx.to(grand.device).unsqueeze(1)
    return grand.gather(1, col), null.gather(1, col)


def player_values(explainer: nn.Module, game: Game, rows: FeatureRows, batch_size: int, *,
                  model_game: Game | None = None, selected: int | Tensor | None = None,
                  mask_null_players: bool = True) -> tuple[Tensor, Tensor | None]:
    """Normalized player values of a trained explainer, batch by batch.

    Parameters
    ----------
    explainer : nn.Module
        ``(B, *feature_shape) -> (B, d, T)`` with ``n_players`` and
        ``n_outputs``; with ``selected`` it must accept ``outputs=`` (as
        :class:`~captum_genomics.fastshap.explainer.MLPExplainer` does). Run
        under ``torch.no_grad()`` on its device, in its dtype.
    game : Game
        Gives ``v(x, 1)`` and ``v(x, 0)`` for the normalization and, with
        ``mask_null_players``, the null players.
    rows : FeatureRows
        The ``N`` examples, read ``batch_size`` at a time (a sparse matrix is
        densified one batch at a time).
    batch_size : int
        Examples per explainer pass and game call.
    model_game : Game, optional
        If given, also return the efficiency gap against this game (the
        model's own); it may be ``game`` itself. Default None: no gap.
    selected : int or Tensor ``(N,)``, optional
        Compute only this output (or one output per example). Default None:
        all ``T``.
    mask_null_players : bool
        Fix the game's null players at exactly 0 and spread the efficiency
        gap over the others. Default True.

    Returns
    -------
    phi : Tensor ``(N, d, T)``, or ``(N, d, 1)`` with ``selected``
        In the explainer's dtype, on its device; per example and output
        ``sum_j phi_j = v(x, 1) - v(x, 0)`` to float rounding.
    delta : Tensor ``(N, T)`` (``(N, 1)``) float64, or None
        ``sum_j phi_j - (v_model(x, 1) - v_model(x, 0))``; None without
        ``model_game``.

    Raises
    ------
    ValueError
        If the explainer's output is not ``(B, d, T)``, or the game (or the
        model's game) returns another number of outputs than the explainer.
    """
    exp_device = module_device(explainer, torch.device("cpu"))
    exp_dtype = module_dtype(explainer, torch.get_default_dtype())
    d, t = explainer.n_players, explainer.n_outputs
    phis, deltas = [], []
    for lo in range(0, rows.n, batch_size):
        hi = min(lo + batch_size, rows.n)
        x = rows.rows(lo, hi, rows.native_dtype(exp_dtype))
        x_exp = x.to(device=exp_device, dtype=exp_dtype)
        idx = None
        if selected is not None:
            idx = (torch.full((hi - lo,), selected, dtype=torch.long)
                   if isinstance(selected, int) else selected[lo:hi])
        with torch.no_grad():
            raw = (explainer(x_exp) if idx is None
                   else explainer(x_exp, outputs=idx.to(exp_device)))
        t_raw = t if idx is None else 1
        if not isinstance(raw, Tensor) or tuple(raw.shape) != (hi - lo, d, t_raw):
            shape = tuple(raw.shape) if isinstance(raw, Tensor) else type(raw).__name__
            raise ValueError(
                f"`explainer` must return shape (B, d, T) = {(hi - lo, d, t)}, got {shape}."
            )
        x_game = game_input(game, x)
        grand, null = game.grand(x_game), game.null(x_game)
        if grand.shape[1] != t:
            raise ValueError(
                f"the game returns {grand.shape[1]} output(s) but the explainer predicts {t}; "
                "was the explainer trained on this model?"
            )
        grand, null = _outputs_of(grand, null, idx)
        active = active_players(game, x_game) if mask_null_players else None
        phi = additive_efficient_normalization(raw, grand.to(raw.device),
                                               null.to(raw.device), active)
        phis.append(phi)
        if model_game is not None:
            if model_game is game:
                m_grand, m_null = grand, null
            else:
                x_model = game_input(model_game, x)
                m_grand, m_null = model_game.grand(x_model), model_game.null(x_model)
                if m_grand.shape[1] != t:
                    raise ValueError(
                        f"`model` returns {m_grand.shape[1]} output(s) but the explainer "
                        f"predicts {t}."
                    )
                m_grand, m_null = _outputs_of(m_grand, m_null, idx)
            diff = (m_grand.double() - m_null.double()).to(phi.device)
            deltas.append(phi.double().sum(1) - diff)
    phi = torch.cat(phis, dim=0)
    return phi, (torch.cat(deltas, dim=0) if model_game is not None else None)


def feature_efficiency_gap(attributions: Tensor, rows: FeatureRows, players: Players,
                           model_game: Game, n_outputs: int, target: Any,
                           input_dtype: torch.dtype) -> Tensor:
    """Efficiency gap of attributions expanded onto the features, against ``model_game``.

    Parameters
    ----------
    attributions : Tensor ``(N, *feature_shape)`` or ``(N, *feature_shape, T)``
        Every feature holds its player's value (Captum's ``feature_mask``
        convention); with the trailing ``T`` axis (``n_outputs > 1`` values
        per feature), all outputs and ``target`` is ignored.
    rows : FeatureRows
        The ``N`` explained examples, ``F`` features each.
    players : Players
        ``d`` players over the ``F`` features.
    model_game : Game
        The model's own game.
    n_outputs : int
        ``T``.
    target
        A Captum target for outputs ``(B, T)``
        (:func:`~captum_genomics._utils.targets.resolve_output_target`).
    input_dtype : torch.dtype
        Dtype of non-floating inputs (the explainer's).

    Returns
    -------
    Tensor ``(N,)`` or ``(N, T)``
        ``sum_j phi_j - (f(x) - f(baseline))`` (after the game's link), the
        player values ``phi_j`` recovered as ``sum_f attr_f / |group(f)|``;
        in the attributions' dtype, on their device.

    Raises
    ------
    ValueError
        If ``attributions`` does not hold ``F`` (or ``F x T``) values per
        example, or ``target`` is invalid.
    """
    n, f = rows.n, players.n_features
    flat = attributions.reshape(n, -1)
    all_targets = n_outputs > 1 and flat.shape[1] == f * n_outputs
    if all_targets:
        flat = attributions.reshape(n, f, n_outputs)
    elif flat.shape[1] != f:
        raise ValueError(
            f"`attributions` must have {f} values per example (or {f} x {n_outputs}), "
            f"got shape {tuple(attributions.shape)}."
        )
    sizes = players.group_sizes().to(flat.device)
    weight = 1.0 / sizes[players.player_of_feature.to(flat.device)].double()
    if all_targets:
        total = (flat.double() * weight[:, None]).sum(1)
    else:
        total = (flat.double() * weight).sum(1)
    x = game_input(model_game, rows.rows(0, n, rows.native_dtype(input_dtype)))
    diff = (model_game.grand(x).double() - model_game.null(x).double())
    if not all_targets:
        diff = select_outputs(diff, resolve_output_target(target, n, diff.shape[1], "target"))
    return (total - diff.to(total.device)).to(attributions.dtype)
