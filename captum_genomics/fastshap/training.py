"""Training the FastSHAP explainer, and the loop shared with the surrogate.

FastSHAP (Jethani et al., ICLR 2022, Eq. 8) fits ``phi(x; theta)`` by
minimizing, over examples ``x`` and coalitions ``S`` drawn from the Shapley
kernel distribution,

    L(theta) = E_x E_{S ~ p} || v(x, S) - v(x, 0) - S^T phi(x; theta) ||^2,

with ``phi`` projected onto the efficiency constraint ``1^T phi = v(x, 1) -
v(x, 0)`` (additive efficient normalization) inside the loss. For every ``x``
the constrained minimizer is the exact Shapley value (the weighted
least-squares characterization of Charnes et al. 1988, used by KernelSHAP), so
a perfect explainer recovers it; a game that is additive in the players gives
zero loss at the optimum.

What this implementation does differently from the reference code: all
randomness (shuffling and coalitions) comes from one ``torch.Generator``; the
validation loss uses coalitions drawn once and held fixed, so epochs are
comparable; ``ReduceLROnPlateau`` is built without the ``verbose`` argument
removed from PyTorch; ``v(x, 0)`` and ``v(x, 1)`` are computed once per example
and indexed per batch, so normalization is right for any batch size.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Any, Callable

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from captum_genomics._utils.checks import check_positive_int
from captum_genomics._utils.deprecation import MISSING, renamed_training_keywords
from captum_genomics._utils.devices import module_device
from captum_genomics.fastshap.games import active_players
from captum_genomics.fastshap.normalization import constrain
from captum_genomics.fastshap.permutation import permutation_shapley_estimates
from captum_genomics.fastshap.players import Players
from captum_genomics.fastshap.sampling import sample_shapley_coalitions

__all__ = ["train_explainer", "explainer_loss"]


def _generator(random_state: int | None, generator: torch.Generator | None) -> torch.Generator:
    """``generator`` (checked), or a new CPU generator seeded with ``random_state`` (None: 0)."""
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"`generator` must be a torch.Generator, got {type(generator).__name__}.")
        if generator.device.type != "cpu":
            raise ValueError(
                f"`generator` must be a CPU torch.Generator (masks are drawn on the CPU so that "
                f"they do not depend on the device), got one on {generator.device}."
            )
        return generator
    return torch.Generator().manual_seed(0 if random_state is None else int(random_state))


def _in_chunks(fn: Callable[[Tensor], Tensor], x: Tensor, chunk: int, device) -> Tensor:
    """``fn`` over ``x`` in chunks of examples moved to ``device``, concatenated."""
    outs = [fn(x[s:s + chunk].to(device)) for s in range(0, x.shape[0], chunk)]
    return torch.cat(outs, dim=0)


def _check_data(x_train: Tensor, x_val: Tensor, n_features: int) -> None:
    for name, x in (("x_train", x_train), ("x_val", x_val)):
        if not isinstance(x, Tensor) or x.ndim < 2 or x.shape[0] == 0:
            raise ValueError(f"`{name}` must be a tensor of shape (N, *feature_shape) with N >= 1.")
        if x[0].numel() != n_features:
            raise ValueError(
                f"`{name}` has {x[0].numel()} features per example (shape {tuple(x.shape)}); "
                f"the players cover {n_features}."
            )


def _active_players(game, x: Tensor, chunk: int, device) -> Tensor | None:
    """``~game.null_players(x)`` over ``x`` in chunks, ``(N, d)`` bool, or None if unknown."""
    outs = []
    for s in range(0, x.shape[0], chunk):
        active = active_players(game, x[s:s + chunk].to(device))
        if active is None:
            return None
        outs.append(active)
    return torch.cat(outs, dim=0)


_SCHEDULES = ("plateau", "cosine", "linear", "constant")
_OBJECTIVES = ("fastshap", "permutation")


def _schedule_factor(schedule: str, step: int, total: int) -> float:
    """Multiplier of the base rate at optimizer step ``step`` of ``total``."""
    frac = min(step / max(total, 1), 1.0)
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * frac))
    if schedule == "linear":
        return 1.0 - frac
    return 1.0


class _EMA:
    """Exponential moving average of a module's floating-point parameters.

    The decay is ramped up as ``min(decay, (1 + t) / (10 + t))`` so that the
    average is not dominated by the initial weights in short runs.
    """

    def __init__(self, module: nn.Module, decay: float):
        self.decay = decay
        self.t = 0
        self.params = [p for p in module.parameters() if p.dtype.is_floating_point]
        self.shadow = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def update(self) -> None:
        self.t += 1
        d = min(self.decay, (1.0 + self.t) / (10.0 + self.t))
        for s, p in zip(self.shadow, self.params):
            s.lerp_(p.detach(), 1.0 - d)

    @torch.no_grad()
    def swap(self) -> None:
        """Exchange the live and the averaged weights (call twice to undo)."""
        for s, p in zip(self.shadow, self.params):
            tmp = p.detach().clone()
            p.copy_(s)
            s.copy_(tmp)


def _fit(module: nn.Module, n_train: int, batch_loss: Callable[[Tensor], Tensor],
         validate: Callable[[], float], *, batch_size: int, lr: float, max_epochs: int,
         lr_factor: float, lr_patience: int, min_lr: float,
         early_stopping_patience: int | None, weight_decay: float,
         generator: torch.Generator, progress_bar: bool, desc: str,
         schedule: str = "plateau", ema_decay: float | None = None,
         restore_best: bool = True) -> dict:
    """Adam + a learning-rate schedule (+ optional EMA of the weights).

    ``schedule="plateau"`` uses ``ReduceLROnPlateau`` on the validation loss;
    ``"cosine"`` / ``"linear"`` decay the rate per step from ``lr`` to
    ``min_lr`` over ``max_epochs``; ``"constant"`` keeps it. With
    ``ema_decay`` the weights that are validated, kept and returned are the
    exponential moving average of the iterates. Early stopping (None turns it
    off) and restore of the best-validated weights (``restore_best``; the
    state before training counts as epoch 0) apply to all schedules.

    ``batch_loss(idx)`` returns the differentiable mean loss of the training
    examples ``idx``; ``validate()`` returns the validation loss (no grad).
    """
    check_positive_int(batch_size, "batch_size")
    check_positive_int(max_epochs, "max_epochs")
    if early_stopping_patience is not None:
        check_positive_int(early_stopping_patience, "early_stopping_patience")
    check_positive_int(lr_patience, "lr_patience", minimum=0)
    if not 0.0 < lr_factor < 1.0:
        raise ValueError(f"`lr_factor` must be in (0, 1), got {lr_factor!r}.")
    if schedule not in _SCHEDULES:
        raise ValueError(f"`schedule` must be one of {_SCHEDULES}, got {schedule!r}.")
    if ema_decay is not None and not 0.0 < ema_decay < 1.0:
        raise ValueError(f"`ema_decay` must be in (0, 1) or None, got {ema_decay!r}.")
    optimizer = torch.optim.Adam(module.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = None
    if schedule == "plateau":
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=lr_factor, patience=lr_patience, min_lr=min_lr)
    steps_per_epoch = -(-n_train // batch_size)
    total_steps = steps_per_epoch * max_epochs
    ema = _EMA(module, ema_decay) if ema_decay is not None else None
    t0 = time.perf_counter()
    module.eval()
    best = float(validate())
    history = {"train_loss": [], "val_loss": [], "lr": [], "initial_val_loss": best,
               "best_val_loss": best, "best_epoch": 0, "epochs_run": 0, "stopped_early": False}
    best_state = copy.deepcopy(module.state_dict()) if restore_best else None
    wait, step = 0, 0
    bar = tqdm(range(1, max_epochs + 1), desc=desc, disable=not progress_bar, leave=False)
    for epoch in bar:
        module.train()
        perm = torch.randperm(n_train, generator=generator)
        total, seen = 0.0, 0
        for start in range(0, n_train, batch_size):
            if scheduler is None:
                f = _schedule_factor(schedule, step, total_steps)
                for group in optimizer.param_groups:
                    group["lr"] = min_lr + (lr - min_lr) * f if schedule != "constant" else lr
            idx = perm[start:start + batch_size]
            loss = batch_loss(idx)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            if ema is not None:
                ema.update()
            total += float(loss.detach()) * idx.numel()
            seen += idx.numel()
        module.eval()
        if ema is not None:
            ema.swap()
        val = float(validate())
        history["train_loss"].append(total / seen)
        history["val_loss"].append(val)
        history["lr"].append(optimizer.param_groups[0]["lr"])
        history["epochs_run"] = epoch
        if scheduler is not None:
            scheduler.step(val)
        if val < best:
            best, wait = val, 0
            history["best_val_loss"], history["best_epoch"] = val, epoch
            if restore_best:
                best_state = copy.deepcopy(module.state_dict())
        else:
            wait += 1
        last_epoch = epoch == max_epochs or (
            early_stopping_patience is not None and wait >= early_stopping_patience)
        if ema is not None and not last_epoch:
            ema.swap()
        bar.set_postfix(val=f"{val:.4g}", best=f"{best:.4g}")
        if early_stopping_patience is not None and wait >= early_stopping_patience:
            history["stopped_early"] = True
            break
    bar.close()
    if restore_best:
        module.load_state_dict(best_state)
    module.eval()
    history["seconds"] = time.perf_counter() - t0
    return history


def explainer_loss(phi: Tensor, S: Tensor, values: Tensor, null: Tensor,
                   grand: Tensor | None = None, active: Tensor | None = None) -> Tensor:
    """FastSHAP's loss for one batch.

    Parameters
    ----------
    phi
        ``shape=(B, d, T)``: raw explainer output.
    S
        ``shape=(B, n, d)``: ``n`` coalitions per example, 0/1 floats.
    values
        ``shape=(B, n, T)``: ``v(x, S)``.
    null
        ``shape=(B, T)``: ``v(x, 0)``.
    grand
        ``shape=(B, T)``: ``v(x, 1)``. If given, ``phi`` is first normalized
        by additive efficient normalization; if None, it is used as it is.
    active
        Optional ``shape=(B, d)`` bool: players that may be non-null. The
        others are set to 0 before the loss (and, with ``grand``, the
        normalization spreads the gap over the active players only). Default
        None: all players.

    Returns
    -------
    Tensor
        Scalar: ``|| v(x,S) - v(x,0) - S^T phi ||^2`` summed over the ``T``
        outputs and averaged over examples and coalitions.
    """
    phi = constrain(phi, grand, null, active)
    pred = torch.einsum("bnd,bdt->bnt", S.to(phi.dtype), phi)
    target = (values - null.unsqueeze(1)).to(phi.dtype)
    return (pred - target).pow(2).sum(-1).mean()


def train_explainer(explainer: nn.Module, game, x_train: Tensor, x_val: Tensor,
                    players: Players | None = None, *, n_samples: int = 32,
                    paired: bool = True, batch_size: int = 32, lr: float = 2e-4,
                    max_epochs: int = 200, lr_factor: float = 0.5, lr_patience: int = 3,
                    min_lr: float = 1e-6, early_stopping_patience: int | None = 10,
                    schedule: str = "plateau", ema_decay: float | None = None,
                    restore_best: bool = True, n_val_samples: int | None = None, val_coalitions: Tensor | None = None,
                    normalize: bool = True, mask_null_players: bool = True,
                    objective: str = "fastshap", augment: Callable | None = None,
                    weight_decay: float = 0.0, random_state: int | None = 0,
                    generator: torch.Generator | None = None, show_progress: bool = False,
                    device: torch.device | str | None = None,
                    eval_batch_size: int = 256, seed: Any = MISSING,
                    progress_bar: Any = MISSING) -> dict:
    """Train a FastSHAP explainer on a game (Jethani et al., ICLR 2022, Algorithm 1).

    Each step takes ``batch_size`` examples, draws ``n_samples`` coalitions
    per example from the Shapley kernel (paired with their complements by
    default), evaluates ``v(x, S)`` with the game, and minimizes
    :func:`explainer_loss` with Adam. After every epoch the loss on fixed
    validation coalitions drives ``ReduceLROnPlateau`` and early stopping; the
    weights of the best epoch are restored at the end and the explainer is left
    in ``eval()`` mode.

    Parameters
    ----------
    explainer
        Module ``(B, *feature_shape) -> (B, d, T)``, e.g.
        :class:`~captum_genomics.fastshap.explainer.MLPExplainer`; trained in
        place.
    game
        A :class:`~captum_genomics.fastshap.games.Game` (``SurrogateGame`` as in
        the paper, or ``BaselineGame`` / ``MarginalGame``); must be
        deterministic. Its ``T`` must equal the explainer's.
    x_train, x_val
        ``shape=(N, *feature_shape)`` and ``(N_val, *feature_shape)``; moved to
        ``device`` batch by batch.
    players
        Default None: ``game.players``; if given, must have the game's ``d``.
    n_samples
        Coalitions per example per step. Default 32 (even when ``paired``).
    paired
        Follow each coalition by its complement. Default True.
    batch_size
        Examples per step. Default 32.
    lr
        Adam learning rate. Default 2e-4.
    max_epochs
        Default 200.
    lr_factor, lr_patience, min_lr
        ``ReduceLROnPlateau`` settings: multiply the rate by ``lr_factor``
        (default 0.5) after ``lr_patience`` (default 3) epochs without a better
        validation loss, down to ``min_lr`` (default 1e-6).
    early_stopping_patience
        Stop after this many epochs without a better validation loss; None
        never stops early. Default 10.
    schedule
        ``"plateau"`` (default): ``ReduceLROnPlateau`` as above; ``"cosine"`` /
        ``"linear"``: decay the rate per step from ``lr`` to ``min_lr`` over
        ``max_epochs``; ``"constant"``: keep ``lr``.
    ema_decay
        If given (in (0, 1), e.g. 0.99), validate and return an exponential
        moving average of the weights instead of the last iterate. Default None.
    restore_best
        Restore the weights of the best validation epoch at the end. Default
        True; False returns the final (or averaged) weights.
    n_val_samples
        Fixed coalitions per validation example. Default None: ``n_samples``.
    val_coalitions
        Optional ``shape=(N_val, n, d)`` fixed validation coalitions (0/1),
        overriding ``n_val_samples``.
    normalize
        Additive efficient normalization inside the loss. Default True.
    objective
        ``"fastshap"`` (default): the paper's loss, :func:`explainer_loss`, on
        ``n_samples`` Shapley-kernel coalitions per example. ``"permutation"``:
        regress the normalized output on fresh unbiased Shapley estimates from
        one random ordering of the players per example and step (with its
        reverse when ``paired``), :func:`~captum_genomics.fastshap.permutation.permutation_shapley_estimates`
        (the "stochastic amortization" of Covert et al., ICML 2024); costs
        ``a + 1`` game evaluations per ordering for ``a`` active players;
        ``n_samples`` is then unused for training (it still sets the
        validation coalitions). Both losses are minimized by the exact
        Shapley values, and the validation loss is :func:`explainer_loss` on
        fixed coalitions in both cases.
    augment
        Optional ``augment(x_batch, generator) -> x_batch``: replaces each
        training batch by variants of its examples (same shape), e.g.
        :func:`~captum_genomics.fastshap.augment.feature_dropout`. The
        explainer needs no labels, so any plausible input is training data;
        the game values (and null players) are computed for the variants, so
        the targets stay exact. Must draw its randomness from ``generator``.
        Validation uses the data as given. Default None.
    mask_null_players
        Where the game can tell which players are null for an example
        (:meth:`~captum_genomics.fastshap.games.Game.null_players`; the
        baseline game: players already at the baseline, e.g. unexpressed
        genes), fix their values at exactly 0 and normalize over the others,
        so the explainer learns only the values that can be non-zero. Exact
        (the null-player axiom); games that cannot tell are unaffected.
        Default True. On the PBMC protocol (200 genes, baseline 0) it lowered
        the held-out mean L2 error to ground truth from 0.276 to about 0.19.
    weight_decay
        Adam weight decay. Default 0.0.
    random_state, generator
        All randomness comes from ``generator`` (a CPU ``torch.Generator``) or,
        if None, from a new one seeded with ``random_state`` (default 0; None
        also means 0). The explainer's initial weights are not drawn here:
        build it with a ``random_state``.
    show_progress
        Show a tqdm bar over epochs. Default False.
    device
        Where to train. Default: the explainer's device. The game's model must
        live there too.
    eval_batch_size
        Examples per game call when precomputing ``v(x, 0)``, ``v(x, 1)`` and
        the validation values. Default 256.
    seed, progress_bar
        Deprecated spellings of ``random_state`` and ``show_progress``, kept
        for one release (``DeprecationWarning``).

    Returns
    -------
    dict
        ``train_loss``, ``val_loss``, ``lr`` (lists, one entry per epoch),
        ``initial_val_loss``, ``best_val_loss``, ``best_epoch`` (0 = the
        initial weights), ``epochs_run``, ``stopped_early``, ``seconds``.

    Raises
    ------
    ValueError
        If the data, players, game and explainer disagree on ``F``, ``d`` or
        ``T``, ``n_samples`` is odd with ``paired``, or ``val_coalitions`` has
        the wrong shape.
    TypeError
        If a deprecated keyword and its new spelling are both given, with
        different values.
    """
    random_state, show_progress = renamed_training_keywords(
        "train_explainer", seed, random_state, progress_bar, show_progress)
    players = game.players if players is None else players
    if players.n_players != game.n_players:
        raise ValueError(f"`players` has d={players.n_players} but the game has d={game.n_players}.")
    d = players.n_players
    exp_d = getattr(explainer, "n_players", d)
    if exp_d != d:
        raise ValueError(f"the explainer predicts {exp_d} players but the game has {d}.")
    _check_data(x_train, x_val, players.n_features)
    check_positive_int(n_samples, "n_samples")
    check_positive_int(eval_batch_size, "eval_batch_size")
    if paired and n_samples % 2:
        raise ValueError(f"`n_samples` must be even with paired=True, got {n_samples}.")
    if objective not in _OBJECTIVES:
        raise ValueError(f"`objective` must be one of {_OBJECTIVES}, got {objective!r}.")
    g = _generator(random_state, generator)
    dev = torch.device(device) if device is not None else module_device(explainer)
    dtype = next(explainer.parameters()).dtype

    null_train = _in_chunks(game.null, x_train, eval_batch_size, dev)
    grand_train = _in_chunks(game.grand, x_train, eval_batch_size, dev)
    null_val = _in_chunks(game.null, x_val, eval_batch_size, dev)
    grand_val = _in_chunks(game.grand, x_val, eval_batch_size, dev)
    active_train = active_val = None
    if mask_null_players:
        active_train = _active_players(game, x_train, eval_batch_size, dev)
        active_val = _active_players(game, x_val, eval_batch_size, dev)
    n_out = null_train.shape[1]
    exp_t = getattr(explainer, "n_outputs", n_out)
    if exp_t != n_out:
        raise ValueError(f"the explainer predicts {exp_t} outputs but the game returns {n_out}.")

    n_val = x_val.shape[0]
    if val_coalitions is None:
        k = n_samples if n_val_samples is None else check_positive_int(n_val_samples, "n_val_samples")
        if paired and k % 2:
            raise ValueError(f"`n_val_samples` must be even with paired=True, got {k}.")
        val_coalitions = sample_shapley_coalitions(n_val * k, d, g, paired=paired).reshape(n_val, k, d)
    elif val_coalitions.ndim != 3 or val_coalitions.shape[0] != n_val or val_coalitions.shape[2] != d:
        raise ValueError(
            f"`val_coalitions` must have shape (N_val, n, d) = ({n_val}, n, {d}), got "
            f"{tuple(val_coalitions.shape)}."
        )
    val_S = val_coalitions.to(device=dev, dtype=dtype)

    def game_values(xb: Tensor, S: Tensor) -> Tensor:
        b, n = S.shape[:2]
        rep = xb.repeat_interleave(n, dim=0)
        return game(rep, S.reshape(b * n, d)).reshape(b, n, -1)

    val_values = torch.cat([
        game_values(x_val[s:s + eval_batch_size].to(dev), val_S[s:s + eval_batch_size])
        for s in range(0, n_val, eval_batch_size)])

    def validate() -> float:
        total = 0.0
        with torch.no_grad():
            for s in range(0, n_val, eval_batch_size):
                sl = slice(s, s + eval_batch_size)
                phi = explainer(x_val[sl].to(dev))
                loss = explainer_loss(phi, val_S[sl], val_values[sl], null_val[sl],
                                      grand_val[sl] if normalize else None,
                                      None if active_val is None else active_val[sl])
                total += float(loss) * phi.shape[0]
        return total / n_val

    def batch_loss(idx: Tensor) -> Tensor:
        xb = x_train[idx].to(dev)
        b = xb.shape[0]
        idx_d = idx.to(dev)
        if augment is None:
            null_b, grand_b = null_train[idx_d], grand_train[idx_d]
            act = None if active_train is None else active_train[idx_d]
        else:
            # A fresh variant of each example; its game values are computed for it.
            xb = augment(xb, g)
            null_b, grand_b = game.null(xb), game.grand(xb)
            act = active_players(game, xb) if mask_null_players else None
        if objective == "permutation":
            labels = permutation_shapley_estimates(
                game, xb, g, active=act, antithetic=paired, grand=grand_b,
                null=null_b).to(dtype)
            phi = constrain(explainer(xb), grand_b if normalize else None, null_b, act)
            return (phi - labels).pow(2).sum(dim=(1, 2)).mean()
        S = sample_shapley_coalitions(b * n_samples, d, g, paired=paired, device=dev,
                                      dtype=dtype).reshape(b, n_samples, d)
        values = game_values(xb, S)
        phi = explainer(xb)
        return explainer_loss(phi, S, values, null_b, grand_b if normalize else None, act)

    return _fit(explainer, x_train.shape[0], batch_loss, validate, batch_size=batch_size, lr=lr,
                max_epochs=max_epochs, lr_factor=lr_factor, lr_patience=lr_patience,
                min_lr=min_lr, early_stopping_patience=early_stopping_patience,
                weight_decay=weight_decay, generator=g, progress_bar=show_progress,
                desc="FastSHAP explainer", schedule=schedule, ema_decay=ema_decay,
                restore_best=restore_best)
