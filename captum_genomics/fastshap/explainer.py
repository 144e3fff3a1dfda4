"""The FastSHAP explainer: an MLP from one input to all players' values for all outputs.

Jethani et al. (ICLR 2022) train a network ``phi(x; theta)`` that outputs the
Shapley values of every player for every model output in one forward pass. For
tabular inputs the paper and its reference implementation use fully connected
networks; here the width and depth are chosen from the problem size (see
:func:`default_hidden_width`) and can be overridden.

The raw output is not efficient; :func:`estimate_shapley` applies additive
efficient normalization per example with the game's ``v(x, 1)`` and ``v(x, 0)``
(correct for any batch size: each example uses its own values).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from captum_genomics._utils.checks import check_positive_int
from captum_genomics._utils.deprecation import MISSING, renamed_keyword
from captum_genomics.fastshap.games import active_players
from captum_genomics.fastshap.normalization import constrain

__all__ = ["MLPExplainer", "default_hidden_width", "build_mlp", "estimate_shapley", "ACTIVATIONS"]

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh,
               "elu": nn.ELU}
"""Activations accepted by name."""


def default_hidden_width(n_in: int, n_out: int) -> int:
    """Hidden width used when none is given.

    The next power of two at or above ``max(n_in, n_out)``, clipped to
    ``64..512``: wide enough not to bottleneck small problems, bounded so that
    the output layer of a large problem (e.g. 2,000 genes x 10 classes) stays a
    few million weights.

    Parameters
    ----------
    n_in, n_out
        Input and output sizes of the network.
    """
    m = max(int(n_in), int(n_out), 1)
    return int(min(512, max(64, 2 ** math.ceil(math.log2(m)))))


def build_mlp(n_in: int, n_out: int, hidden_width: int, n_hidden_layers: int,
              activation: str = "relu", dropout: float = 0.0) -> nn.Sequential:
    """``n_hidden_layers`` blocks of Linear + activation (+ dropout), then a Linear.

    Parameters
    ----------
    n_in, n_out
        Sizes of the input and output.
    hidden_width
        Units per hidden layer.
    n_hidden_layers
        Number of hidden layers; 0 gives a single Linear.
    activation
        A key of :data:`ACTIVATIONS`. Default ``"relu"``.
    dropout
        Dropout probability after each activation. Default 0.0 (none; dropout
        would draw from the global random state).

    Raises
    ------
    ValueError
        If the activation is unknown or a size is not positive.
    """
    check_positive_int(n_in, "n_in")
    check_positive_int(n_out, "n_out")
    check_positive_int(hidden_width, "hidden_width")
    check_positive_int(n_hidden_layers, "n_hidden_layers", minimum=0)
    if activation not in ACTIVATIONS:
        raise ValueError(f"`activation` must be one of {sorted(ACTIVATIONS)}, got {activation!r}.")
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"`dropout` must be in [0, 1), got {dropout!r}.")
    layers: list[nn.Module] = []
    width = n_in
    for _ in range(n_hidden_layers):
        layers += [nn.Linear(width, hidden_width), ACTIVATIONS[activation]()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = hidden_width
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


def _seeded_init(module: nn.Module, random_state: int | None) -> None:
    """Re-run ``reset_parameters`` of every submodule from ``random_state``, global RNG untouched."""
    if random_state is None:
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(random_state))
        for sub in module.modules():
            if sub is not module and hasattr(sub, "reset_parameters"):
                sub.reset_parameters()


class MLPExplainer(nn.Module):
    """FastSHAP explainer ``x (B, F) -> phi (B, d, T)``.

    Parameters
    ----------
    n_features
        ``F``, features per flattened input.
    n_players
        ``d``.
    n_outputs
        ``T``, model outputs explained at once (classes, or 1 for regression).
        Default 1.
    hidden_width
        Units per hidden layer. Default None:
        ``default_hidden_width(F, d * T)`` (power of two in ``64..512``).
    n_hidden_layers
        Default 2.
    activation
        Default ``"relu"``; see :data:`ACTIVATIONS`.
    dropout
        Default 0.0.
    random_state
        If given, the weights are initialized from this seed (global random
        state untouched), so construction is reproducible. Default None: the
        usual PyTorch initialization from the global state.
    zero_init_output
        Start the output layer at zero (weights and bias), so the untrained
        explainer predicts ``phi = 0`` (after normalization: the efficiency
        gap spread evenly). Default True. Shapley values are small (on the
        PBMC study a cell's 200 values have an L2 norm of about 0.4) and the
        loss's signal per player is weak, so the default initialization's
        random output (about as large as the values themselves) survived
        training as noise; zero-initializing it lowered the held-out mean L2
        error from 0.304 to 0.276 at 30 epochs and the trained-on one from
        0.267 (350 epochs) to 0.241 (30 epochs).
    scale_by_input
        Predict ``phi_i = (x_i - b_i) g_i(x)``: the network's output ``g`` is
        multiplied by the input's difference from the baseline ``b``, the
        parametrization of gradient x input and Integrated Gradients. A player
        at its baseline then gets 0 by construction, and a linear model's
        Shapley values ``w_i (x_i - b_i)`` need a constant ``g``, which
        generalizes to unseen inputs. Needs one player per feature
        (``n_features == n_players``, players in feature order). Default
        False. On the PBMC protocol (200 genes, baseline 0, permutation
        objective) it lowered the held-out mean L2 error from 0.173 to 0.152.
    baseline
        ``b`` for ``scale_by_input``: a scalar or ``F`` values. Default 0.0.
        Use the game's baseline.
    seed
        Deprecated spelling of ``random_state``, kept for one release
        (``DeprecationWarning``).

    Raises
    ------
    ValueError
        A size that is not a positive integer, an unknown activation,
        ``scale_by_input`` with ``n_features != n_players``, or a baseline of
        another size.
    TypeError
        If ``seed`` and ``random_state`` are both given, with different values.

    Notes
    -----
    The network is applied to ``x.reshape(B, -1)``, so any input shape with
    ``F`` elements works. The output is raw; normalize it with
    :func:`estimate_shapley` or
    :func:`~captum_genomics.fastshap.normalization.additive_efficient_normalization`.
    """

    def __init__(self, n_features: int, n_players: int, n_outputs: int = 1,
                 hidden_width: int | None = None, n_hidden_layers: int = 2,
                 activation: str = "relu", dropout: float = 0.0,
                 random_state: int | None = None, zero_init_output: bool = True,
                 scale_by_input: bool = False, baseline: float | Tensor = 0.0, *,
                 seed: Any = MISSING) -> None:
        super().__init__()
        random_state = renamed_keyword("seed", seed, "random_state", random_state, None,
                                       "MLPExplainer")
        check_positive_int(n_features, "n_features")
        check_positive_int(n_players, "n_players")
        check_positive_int(n_outputs, "n_outputs")
        if hidden_width is None:
            hidden_width = default_hidden_width(n_features, n_players * n_outputs)
        self.n_features = int(n_features)
        self.n_players = int(n_players)
        self.n_outputs = int(n_outputs)
        self.hidden_width = int(hidden_width)
        self.n_hidden_layers = int(n_hidden_layers)
        self.activation = activation
        self.dropout = float(dropout)
        self.zero_init_output = bool(zero_init_output)
        self.scale_by_input = bool(scale_by_input)
        if self.scale_by_input and self.n_features != self.n_players:
            raise ValueError(
                f"`scale_by_input=True` needs one player per feature, got n_features="
                f"{self.n_features} and n_players={self.n_players}."
            )
        b = torch.as_tensor(baseline, dtype=torch.get_default_dtype()).reshape(-1)
        if b.numel() not in (1, self.n_features):
            raise ValueError(
                f"`baseline` must be a scalar or have n_features={self.n_features} values, got "
                f"{b.numel()}."
            )
        self.register_buffer("baseline", b.expand(self.n_features).clone())
        self.net = build_mlp(self.n_features, self.n_players * self.n_outputs, self.hidden_width,
                             self.n_hidden_layers, activation, dropout)
        _seeded_init(self, random_state)
        if self.zero_init_output:
            last = self.net[-1]
            with torch.no_grad():
                last.weight.zero_()
                last.bias.zero_()

    def forward(self, x: Tensor, outputs: Tensor | int | None = None) -> Tensor:
        """Raw Shapley value predictions.

        Parameters
        ----------
        x
            ``shape=(B, *feature_shape)`` with ``F`` elements per example.
        outputs
            Optional ``shape=(B,)`` int64: compute only output ``outputs[b]``
            for example ``b``; or one int in ``0..T-1`` for every example.
            The last layer then runs one matrix product per distinct output
            instead of all ``T`` (about 2x faster per cell for 200 genes x 10
            classes at width 512). Default None: all outputs.

        Returns
        -------
        Tensor
            ``shape=(B, d, T)``, or ``(B, d, 1)`` with ``outputs``.

        Raises
        ------
        ValueError
            If an example does not have ``F`` elements, or ``outputs`` is not
            an int or ``(B,)`` with values in ``0..T-1``.
        """
        flat = x.reshape(x.shape[0], -1)
        if flat.shape[1] != self.n_features:
            raise ValueError(
                f"`x` has {flat.shape[1]} features per example (shape {tuple(x.shape)}); "
                f"the explainer expects {self.n_features}."
            )
        if outputs is None:
            out = self.net(flat).reshape(-1, self.n_players, self.n_outputs)
        else:
            out = self._selected(flat, outputs)
        if self.scale_by_input:
            out = out * (flat - self.baseline.to(flat.dtype)).unsqueeze(-1)
        return out

    def _selected(self, flat: Tensor, outputs: Tensor | int) -> Tensor:
        """Output ``outputs[b]`` only, ``(B, d, 1)``: one GEMM per distinct output.

        An int selects one output for every example without any tensor
        bookkeeping (no device syncs): the path of a single ``target``.
        """
        b, d, t = flat.shape[0], self.n_players, self.n_outputs
        if isinstance(outputs, int) and not isinstance(outputs, bool):
            if not 0 <= outputs < t:
                raise ValueError(f"`outputs` must hold values in 0..{t - 1}, got {outputs}.")
            return self._one_output(self._hidden(flat), outputs)
        if not isinstance(outputs, Tensor) or tuple(outputs.shape) != (b,):
            shape = tuple(outputs.shape) if isinstance(outputs, Tensor) else type(outputs).__name__
            raise ValueError(f"`outputs` must have shape (B,) = ({b},), got {shape}.")
        outputs = outputs.to(device=flat.device, dtype=torch.long)
        if b:
            lo, hi = (int(v) for v in torch.aminmax(outputs))
            if lo < 0 or hi >= t:
                raise ValueError(f"`outputs` must hold values in 0..{t - 1}, got {lo}..{hi}.")
        h = self._hidden(flat)
        uniq = outputs.unique()
        if uniq.numel() == 1:
            return self._one_output(h, int(uniq))
        last = self.net[-1]
        weight = last.weight.view(d, t, -1)
        bias = last.bias.view(d, t)
        out = h.new_empty(b, d)
        for c in uniq.tolist():
            rows = (outputs == c).nonzero().squeeze(1)
            out[rows] = torch.addmm(bias[:, c], h[rows], weight[:, c].T)
        return out.unsqueeze(-1)

    def _hidden(self, flat: Tensor) -> Tensor:
        """The layers before the last (``net[:-1]`` without building a new Sequential)."""
        layers = list(self.net)
        for layer in layers[:-1]:
            flat = layer(flat)
        return flat

    def _one_output(self, h: Tensor, c: int) -> Tensor:
        """The last layer for output ``c`` only: ``(B, d, 1)``."""
        last = self.net[-1]
        d, t = self.n_players, self.n_outputs
        weight = last.weight.view(d, t, -1)
        bias = last.bias.view(d, t)
        return torch.addmm(bias[:, c], h, weight[:, c].T).unsqueeze(-1)

    def config(self) -> dict[str, Any]:
        """JSON-able constructor arguments (used by :mod:`~captum_genomics.fastshap.io`)."""
        return {"n_features": self.n_features, "n_players": self.n_players,
                "n_outputs": self.n_outputs, "hidden_width": self.hidden_width,
                "n_hidden_layers": self.n_hidden_layers, "activation": self.activation,
                "dropout": self.dropout, "zero_init_output": self.zero_init_output,
                "scale_by_input": self.scale_by_input}


def estimate_shapley(explainer: nn.Module, x: Tensor, game=None, normalize: bool = True,
                     batch_size: int | None = None, grand: Tensor | None = None,
                     null: Tensor | None = None, mask_null_players: bool = True) -> Tensor:
    """FastSHAP estimates for a batch: one explainer pass, then normalization.

    Parameters
    ----------
    explainer
        Module ``(B, *feature_shape) -> (B, d, T)``, e.g. :class:`MLPExplainer`.
        Run as it is, under ``torch.no_grad()``; call ``eval()`` first if it
        has dropout.
    x
        ``shape=(B, *feature_shape)``.
    game
        Gives ``v(x, 1)`` and ``v(x, 0)`` per example (``game.grand``,
        ``game.null``) for the normalization. Needed when ``normalize`` and
        ``grand``/``null`` are not given.
    normalize
        Apply additive efficient normalization. Default True.
    batch_size
        Examples per explainer/game call. Default None: all at once. The
        result does not depend on it.
    grand, null
        Optional precomputed ``shape=(B, T)`` values.
    mask_null_players
        If the game reports null players
        (:meth:`~captum_genomics.fastshap.games.Game.null_players`), set their
        values to exactly 0 and normalize over the others, as in training.
        Default True. Needs ``game``.

    Returns
    -------
    Tensor
        ``shape=(B, d, T)``; with ``normalize``, ``phi.sum(1) = v(1) - v(0)``
        per example.

    Raises
    ------
    ValueError
        If ``normalize`` and neither a game nor both ``grand`` and ``null`` are
        given.
    """
    if normalize and game is None and (grand is None or null is None):
        raise ValueError("`game` (or both `grand` and `null`) is required with normalize=True.")
    b = x.shape[0]
    step = b if batch_size is None else check_positive_int(batch_size, "batch_size")
    outs = []
    with torch.no_grad():
        for start in range(0, b, max(step, 1)):
            xs = x[start:start + step]
            phi = explainer(xs)
            active = (active_players(game, xs) if mask_null_players and game is not None
                      else None)
            g = n = None
            if normalize:
                g = game.grand(xs) if grand is None else grand[start:start + step]
                n = game.null(xs) if null is None else null[start:start + step]
                g, n = g.to(phi), n.to(phi)
            outs.append(constrain(phi, g, n, active))
    return torch.cat(outs, dim=0)
