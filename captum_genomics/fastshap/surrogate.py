"""The masked surrogate: one network that predicts the model's output with features held out.

FastSHAP's default game (Jethani et al., ICLR 2022, Section 4) is a surrogate
``g(x, S)`` trained so that, for a classifier, ``softmax(g(x, S))`` matches
``p(y | x)`` in KL divergence averaged over random coalitions ``S``; its
optimum is ``E[p(y | X) | X_S = x_S]`` (Frye et al., ICLR 2021; Covert et al.,
JMLR 2021). For regression the loss is the squared error and the optimum the
conditional mean.

Input encoding: held-out features are replaced by ``fill`` and the player mask
is appended, ``[x ⊙ m + fill ⊙ (1 - m), S]`` of width ``F + d``, so that a held
out feature is distinguishable from an observed one equal to ``fill``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F_
from torch import Tensor, nn

from captum_genomics._utils.checks import check_positive_int
from captum_genomics._utils.deprecation import MISSING, renamed_keyword, renamed_training_keywords
from captum_genomics._utils.devices import module_device
from captum_genomics.fastshap.explainer import _seeded_init, build_mlp, default_hidden_width
from captum_genomics.fastshap.players import Players
from captum_genomics.fastshap.sampling import sample_uniform_size_coalitions
# The training loop and its helpers, shared with the explainer's training in this folder.
from captum_genomics.fastshap.training import _check_data, _fit, _generator, _in_chunks

__all__ = ["MaskedSurrogate", "train_surrogate", "surrogate_loss", "TASKS"]

TASKS = ("classification", "regression")
"""Accepted values of ``task``."""


class MaskedSurrogate(nn.Module):
    """MLP surrogate ``g(x, S) -> (B, T)`` over masked inputs.

    Parameters
    ----------
    players
        The :class:`~captum_genomics.fastshap.players.Players` (``F``
        features, ``d`` players).
    n_outputs
        ``T``: classes (logits) or regression outputs.
    hidden_width
        Default None: ``default_hidden_width(F + d, T)`` (a power of two in
        ``64..512``).
    n_hidden_layers
        Default 2.
    activation
        Default ``"relu"``.
    fill
        Value of held-out features: a scalar (default 0.0) or ``shape=(F,)``
        (e.g. the training mean), stored as a buffer.
    random_state
        If given, weights are initialized from it without touching the global
        random state. Default None.
    seed
        Deprecated spelling of ``random_state``, kept for one release
        (``DeprecationWarning``).

    Attributes
    ----------
    players : Players
    n_features, n_players, n_outputs : int

    Raises
    ------
    TypeError
        If ``players`` is not a ``Players``, or ``seed`` and ``random_state``
        are both given, with different values.
    ValueError
        A size that is not a positive integer, an unknown activation, or a
        ``fill`` of another size.
    """

    def __init__(self, players: Players, n_outputs: int, hidden_width: int | None = None,
                 n_hidden_layers: int = 2, activation: str = "relu",
                 fill: float | Tensor = 0.0, random_state: int | None = None, *,
                 seed: Any = MISSING) -> None:
        super().__init__()
        random_state = renamed_keyword("seed", seed, "random_state", random_state, None,
                                       "MaskedSurrogate")
        if not isinstance(players, Players):
            raise TypeError(f"`players` must be a Players object, got {type(players).__name__}.")
        check_positive_int(n_outputs, "n_outputs")
        self.players = players
        self.n_features = players.n_features
        self.n_players = players.n_players
        self.n_outputs = int(n_outputs)
        n_in = self.n_features + self.n_players
        self.hidden_width = int(hidden_width or default_hidden_width(n_in, n_outputs))
        self.n_hidden_layers = int(n_hidden_layers)
        self.activation = activation
        fill_t = torch.as_tensor(fill, dtype=torch.get_default_dtype())
        if fill_t.numel() == 1:
            fill_t = fill_t.reshape(1).expand(self.n_features).clone()
        elif fill_t.numel() != self.n_features:
            raise ValueError(
                f"`fill` must be a scalar or have one value per feature ({self.n_features}), "
                f"got shape {tuple(fill_t.shape)}."
            )
        self.register_buffer("fill", fill_t.reshape(self.n_features).clone())
        self.net = build_mlp(n_in, self.n_outputs, self.hidden_width, self.n_hidden_layers,
                             activation)
        _seeded_init(self, random_state)

    def forward(self, x: Tensor, S: Tensor) -> Tensor:
        """Surrogate output for inputs with players ``~S`` held out.

        Parameters
        ----------
        x
            ``shape=(B, *feature_shape)`` with ``F`` elements per example.
        S
            ``shape=(B, d)``, bool or 0/1 floats.

        Returns
        -------
        Tensor
            ``shape=(B, T)``: logits for classification.

        Raises
        ------
        ValueError
            If the shapes do not match the players.
        """
        flat = x.reshape(x.shape[0], -1)
        if flat.shape[1] != self.n_features:
            raise ValueError(
                f"`x` has {flat.shape[1]} features per example; the surrogate expects "
                f"{self.n_features}."
            )
        if S.shape != (flat.shape[0], self.n_players):
            raise ValueError(
                f"`S` must have shape {(flat.shape[0], self.n_players)}, got {tuple(S.shape)}."
            )
        m = self.players.to_feature_mask(S.bool())
        masked = torch.where(m, flat, self.fill.to(flat.dtype))
        return self.net(torch.cat([masked, S.to(flat.dtype)], dim=1))

    def config(self) -> dict[str, Any]:
        """JSON-able constructor arguments except ``fill`` (kept in the state dict)."""
        return {"players": self.players.to_config(), "n_outputs": self.n_outputs,
                "hidden_width": self.hidden_width, "n_hidden_layers": self.n_hidden_layers,
                "activation": self.activation}


def surrogate_loss(out: Tensor, target: Tensor, task: str = "classification") -> Tensor:
    """The surrogate's loss against the model's targets.

    Parameters
    ----------
    out
        ``shape=(R, T)``: surrogate output (logits for classification).
    target
        ``shape=(R, T)``: the model's class probabilities (classification) or
        outputs (regression).
    task
        ``"classification"``: ``KL(target || softmax(out))`` summed over
        classes; ``"regression"``: squared error summed over outputs.

    Returns
    -------
    Tensor
        Scalar, the mean over rows.
    """
    if task == "classification":
        logq = F_.log_softmax(out, dim=-1)
        kl = torch.xlogy(target, target) - target * logq
        return kl.sum(-1).mean()
    if task == "regression":
        return (out - target).pow(2).sum(-1).mean()
    raise ValueError(f"`task` must be one of {TASKS}, got {task!r}.")


def train_surrogate(surrogate: MaskedSurrogate, model, x_train: Tensor, x_val: Tensor,
                    players: Players | None = None, *, task: str = "classification",
                    model_link: str | None = None, n_samples: int = 1, batch_size: int = 64,
                    lr: float = 1e-3, max_epochs: int = 100, lr_factor: float = 0.5,
                    lr_patience: int = 3, min_lr: float = 1e-6,
                    early_stopping_patience: int = 10, n_val_samples: int = 4,
                    val_masks: Tensor | None = None, weight_decay: float = 0.0,
                    random_state: int | None = 0, generator: torch.Generator | None = None,
                    show_progress: bool = False, device: torch.device | str | None = None,
                    eval_batch_size: int = 1024, seed: Any = MISSING,
                    progress_bar: Any = MISSING) -> dict:
    """Train a masked surrogate to imitate ``model`` with players held out.

    The model's outputs on the full training and validation inputs are
    computed once. Each step draws ``n_samples`` coalitions per example with a
    size uniform in ``0..d`` (:func:`~captum_genomics.fastshap.sampling.sample_uniform_size_coalitions`)
    and minimizes :func:`surrogate_loss` with Adam. After every epoch the loss
    on fixed validation masks drives ``ReduceLROnPlateau`` (built without the
    ``verbose`` argument that current PyTorch rejects) and early stopping; the
    best epoch's weights are restored and the surrogate is left in ``eval()``.

    Parameters
    ----------
    surrogate
        A :class:`MaskedSurrogate` (or any module ``(x, S) -> (B, T)``), trained
        in place.
    model
        Callable ``(B, *feature_shape) -> (B, T)``, on ``device``; evaluated
        under ``torch.no_grad()``. Put it in ``eval()`` mode.
    x_train, x_val
        ``shape=(N, *feature_shape)`` and ``(N_val, *feature_shape)``.
    players
        Default None: ``surrogate.players``; if given, must equal them.
    task
        ``"classification"`` (default; KL to the model's probabilities) or
        ``"regression"`` (squared error).
    model_link
        How model outputs become targets: ``"softmax"`` (model returns logits;
        the default for classification) or ``"identity"`` (model returns
        probabilities; the default, and only choice, for regression).
    n_samples
        Coalitions per training example per step. Default 1.
    batch_size
        Examples per step. Default 64.
    lr, max_epochs, lr_factor, lr_patience, min_lr, early_stopping_patience, weight_decay
        Adam, ``ReduceLROnPlateau`` and early stopping settings; defaults 1e-3,
        100, 0.5, 3, 1e-6, 10, 0.0.
    n_val_samples
        Fixed masks per validation example. Default 4.
    val_masks
        Optional ``shape=(N_val, n, d)`` fixed validation masks (0/1),
        overriding ``n_val_samples``.
    random_state, generator
        All randomness from ``generator`` (a CPU ``torch.Generator``) or a new
        one seeded with ``random_state`` (default 0; None also means 0).
    show_progress
        Show a tqdm bar over epochs. Default False.
    device
        Default: the surrogate's device.
    eval_batch_size
        Examples per model call when computing targets and per validation
        chunk. Default 1024.
    seed, progress_bar
        Deprecated spellings of ``random_state`` and ``show_progress``, kept
        for one release (``DeprecationWarning``).

    Returns
    -------
    dict
        As :func:`~captum_genomics.fastshap.training.train_explainer`:
        ``train_loss``, ``val_loss``, ``lr``, ``initial_val_loss``,
        ``best_val_loss``, ``best_epoch``, ``epochs_run``, ``stopped_early``,
        ``seconds``.

    Raises
    ------
    ValueError
        If ``task``/``model_link`` are unknown or incompatible, shapes disagree,
        or ``val_masks`` has the wrong shape.
    TypeError
        If a deprecated keyword and its new spelling are both given, with
        different values.
    """
    random_state, show_progress = renamed_training_keywords(
        "train_surrogate", seed, random_state, progress_bar, show_progress)
    if task not in TASKS:
        raise ValueError(f"`task` must be one of {TASKS}, got {task!r}.")
    if model_link is None:
        model_link = "softmax" if task == "classification" else "identity"
    if model_link not in ("softmax", "identity") or (task == "regression" and model_link != "identity"):
        raise ValueError(
            f"`model_link` must be 'softmax' or 'identity' (only 'identity' for regression), "
            f"got {model_link!r}."
        )
    own = getattr(surrogate, "players", None)
    if players is None:
        if own is None:
            raise ValueError("`players` is required: the surrogate has no `players` attribute.")
        players = own
    elif own is not None and players != own:
        raise ValueError(
            f"`players` {players} differ from the surrogate's {own}; leave `players` out to "
            "use the surrogate's."
        )
    d = players.n_players
    _check_data(x_train, x_val, players.n_features)
    check_positive_int(n_samples, "n_samples")
    check_positive_int(eval_batch_size, "eval_batch_size")
    g = _generator(random_state, generator)
    dev = torch.device(device) if device is not None else module_device(surrogate)
    dtype = next(surrogate.parameters()).dtype

    def targets_of(xb: Tensor) -> Tensor:
        with torch.no_grad():
            out = model(xb)
            out = out.unsqueeze(1) if out.ndim == 1 else out
            return torch.softmax(out, dim=-1) if model_link == "softmax" else out

    y_train = _in_chunks(targets_of, x_train, eval_batch_size, dev).to(dtype)
    y_val = _in_chunks(targets_of, x_val, eval_batch_size, dev).to(dtype)
    n_out = getattr(surrogate, "n_outputs", y_train.shape[1])
    if n_out != y_train.shape[1]:
        raise ValueError(f"the surrogate has {n_out} outputs but the model returns {y_train.shape[1]}.")

    n_val = x_val.shape[0]
    if val_masks is None:
        k = check_positive_int(n_val_samples, "n_val_samples")
        val_masks = sample_uniform_size_coalitions(n_val * k, d, g).reshape(n_val, k, d)
    elif val_masks.ndim != 3 or val_masks.shape[0] != n_val or val_masks.shape[2] != d:
        raise ValueError(
            f"`val_masks` must have shape (N_val, n, d) = ({n_val}, n, {d}), got "
            f"{tuple(val_masks.shape)}."
        )
    val_S = val_masks.to(device=dev, dtype=dtype)
    k_val = val_S.shape[1]

    def validate() -> float:
        total = 0.0
        with torch.no_grad():
            for s in range(0, n_val, eval_batch_size):
                xb = x_val[s:s + eval_batch_size].to(dev)
                b = xb.shape[0]
                out = surrogate(xb.repeat_interleave(k_val, 0), val_S[s:s + b].reshape(b * k_val, d))
                tgt = y_val[s:s + b].repeat_interleave(k_val, 0)
                total += float(surrogate_loss(out, tgt, task)) * b * k_val
        return total / (n_val * k_val)

    def batch_loss(idx: Tensor) -> Tensor:
        xb = x_train[idx].to(dev)
        b = xb.shape[0]
        S = sample_uniform_size_coalitions(b * n_samples, d, g, device=dev, dtype=dtype)
        out = surrogate(xb.repeat_interleave(n_samples, 0), S)
        tgt = y_train[idx.to(dev)].repeat_interleave(n_samples, 0)
        return surrogate_loss(out, tgt, task)

    return _fit(surrogate, x_train.shape[0], batch_loss, validate, batch_size=batch_size, lr=lr,
                max_epochs=max_epochs, lr_factor=lr_factor, lr_patience=lr_patience,
                min_lr=min_lr, early_stopping_patience=early_stopping_patience,
                weight_decay=weight_decay, generator=g, progress_bar=show_progress,
                desc="FastSHAP surrogate")
