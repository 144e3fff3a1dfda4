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

from captum_genomics._utils.targets import resolve_output_target, select_outputs
from captum_genomics.fastshap.games import Game, active_players
from captum_genomics.fastshap.normalization import additive_efficient_normalization
from captum_genomics.fastshap.players import Players

if TYPE_CHECKING:
    from captum_genomics.sc.inputs import FeatureRows

__all__ = ["game_input", "player_values", "feature_efficiency_gap"]


def _placement(module: Any, device: torch.device, dtype: torch.dtype
               ) -> tuple[torch.device, torch.dtype]:
    """``(module_device(module, device), module_dtype(module, dtype))`` in one walk.

    The same answers as :func:`~captum_genomics._utils.devices.module_device`
    and :func:`~captum_genomics._utils.devices.module_dtype` (the first
    parameter's device, else the first buffer's; the first floating
    parameter's dtype, else the first floating buffer's), found by one pass
    over ``module.modules()`` that stops at the first floating parameter.
    Nothing is cached: a model moved or cast between calls is seen.
    """
    if not isinstance(module, nn.Module):
        return device, dtype
    first = None
    for sub in module.modules():
        for p in sub._parameters.values():
            if p is None:
                continue
            if first is None:
                first = p
            if p.is_floating_point():
                return first.device, p.dtype
    first_buffer = floating_buffer = None
    for sub in module.modules():
        for b in sub._buffers.values():
            if b is None:
                continue
            if first_buffer is None:
                first_buffer = b
            if b.is_floating_point():
                floating_buffer = b
                break
        if floating_buffer is not None:
            break
    if first is not None:
        device = first.device
    elif first_buffer is not None:
        device = first_buffer.device
    return device, (floating_buffer.dtype if floating_buffer is not None else dtype)


def _game_net(game: Game) -> Any:
    net = getattr(game, "surrogate", None)
    return getattr(game, "model", None) if net is None else net


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
    fallback = x.dtype if x.is_floating_point() else torch.get_default_dtype()
    device, dtype = _placement(_game_net(game), x.device, fallback)
    return x.to(device=device, dtype=dtype)


def _outputs_of(grand: Tensor, null: Tensor, idx: Tensor | int | None) -> tuple[Tensor, Tensor]:
    if idx is None:
        return grand, null
    if isinstance(idx, int):
        return grand[:, idx:idx + 1], null[:, idx:idx + 1]
    col = idx.to(grand.device).unsqueeze(1)
    return grand.gather(1, col), null.gather(1, col)


class _GameValues:
    """``v(x, 1)`` and ``v(x, 0)`` of one game for the batches of one call.

    The network's device and dtype are looked up once per call. For a game
    whose empty coalition does not depend on ``x`` (``null_is_constant``:
    the baseline and marginal games) ``v(x, 0)`` is computed once, on one
    example, and expanded to every batch: one model row instead of one per
    example. Nothing outlives the call, so weights changed in place, a moved
    model or another baseline are always seen.
    """

    def __init__(self, game: Game, x_dtype: torch.dtype, x_device: torch.device) -> None:
        self.game = game
        fallback = x_dtype if x_dtype.is_floating_point else torch.get_default_dtype()
        self.device, self.dtype = _placement(_game_net(game), x_device, fallback)
        self._null_row: Tensor | None = None

    def input(self, x: Tensor) -> Tensor:
        return x.to(device=self.device, dtype=self.dtype)

    def values(self, x_game: Tensor) -> tuple[Tensor, Tensor]:
        game = self.game
        grand = game.grand(x_game)
        if not game.null_is_constant:
            return grand, game.null(x_game)
        if self._null_row is None:
            self._null_row = game.null(x_game[:1])
        return grand, self._null_row.expand(x_game.shape[0], -1)


def player_values(explainer: nn.Module, game: Game, rows: FeatureRows, batch_size: int, *,
                  model_game: Game | None = None, selected: int | Tensor | None = None,
                  mask_null_players: bool = True) -> tuple[Tensor, Tensor | None]:
    """Normalized player values of a trained explainer, batch by batch.

    Parameters
    ----------
    explainer : nn.Module
        ``(B, *feature_shape) -> (B, d, T)`` with ``n_players`` and
        ``n_outputs``; with ``selected`` it must accept ``outputs=`` (as
        :class:`~captum_genomics.fastshap.explainer.MLPExplainer` does: an int
        or a ``(B,)`` tensor). Run under ``torch.no_grad()`` on its device,
        in its dtype.
    game : Game
        Gives ``v(x, 1)`` and ``v(x, 0)`` for the normalization and, with
        ``mask_null_players``, the null players. For a game with
        ``null_is_constant`` (baseline, marginal) ``v(x, 0)`` is computed once
        per call, on the first example, and used for every example.
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
    exp_device, exp_dtype = _placement(explainer, torch.device("cpu"), torch.get_default_dtype())
    d, t = explainer.n_players, explainer.n_outputs
    x_dtype = rows.native_dtype(exp_dtype)
    x_device = rows.data.device if rows.kind == "tensor" else torch.device("cpu")
    values = _GameValues(game, x_dtype, x_device)
    model_values = (None if model_game is None or model_game is game
                    else _GameValues(model_game, x_dtype, x_device))
    phis, deltas = [], []
    for lo in range(0, rows.n, batch_size):
        hi = min(lo + batch_size, rows.n)
        x = rows.rows(lo, hi, x_dtype)
        x_exp = x.to(device=exp_device, dtype=exp_dtype)
        idx = selected
        if isinstance(selected, Tensor):
            idx = selected[lo:hi]
        with torch.no_grad():
            if idx is None:
                raw = explainer(x_exp)
            else:
                raw = explainer(x_exp, outputs=idx if isinstance(idx, int)
                                else idx.to(exp_device))
        t_raw = t if idx is None else 1
        if not isinstance(raw, Tensor) or tuple(raw.shape) != (hi - lo, d, t_raw):
            shape = tuple(raw.shape) if isinstance(raw, Tensor) else type(raw).__name__
            raise ValueError(
                f"`explainer` must return shape (B, d, T) = {(hi - lo, d, t)}, got {shape}."
            )
        x_game = values.input(x)
        grand, null = values.values(x_game)
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
            if model_values is None:
                m_grand, m_null = grand, null
            else:
                m_grand, m_null = model_values.values(model_values.input(x))
                if m_grand.shape[1] != t:
                    raise ValueError(
                        f"`model` returns {m_grand.shape[1]} output(s) but the explainer "
                        f"predicts {t}."
                    )
                m_grand, m_null = _outputs_of(m_grand, m_null, idx)
            diff = (m_grand.double() - m_null.double()).to(phi.device)
            deltas.append(phi.double().sum(1) - diff)
    phi = phis[0] if len(phis) == 1 else torch.cat(phis, dim=0)
    if model_game is None:
        return phi, None
    return phi, deltas[0] if len(deltas) == 1 else torch.cat(deltas, dim=0)


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
    x = rows.rows(0, n, rows.native_dtype(input_dtype))
    values = _GameValues(model_game, x.dtype, x.device)
    grand, null = values.values(values.input(x))
    diff = grand.double() - null.double()
    if not all_targets:
        diff = select_outputs(diff, resolve_output_target(target, n, diff.shape[1], "target"))
    return (total - diff.to(total.device)).to(attributions.dtype)
