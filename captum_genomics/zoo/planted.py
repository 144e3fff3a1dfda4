"""Small CNNs trained on the planted-motif task, with ReLU or exponential first-layer activations.

After Koo & Ploenzke (2021), "Improving representations of genomic sequence
motifs in convolutional networks with exponential activations", *Nat Mach
Intell* 3:258-266: the same CNN with ``exp`` instead of ReLU after the first
convolution learns more interpretable first-layer filters and attributions.
The models are small (about 50k parameters) so that they train in about a
minute on a CPU. Only layers covered by DeepLIFT's rules are used
(``Conv1d``, ``ReLU``, ``torch.exp``, ``MaxPool1d``, ``Flatten``, ``Dropout``
in eval mode, ``Linear``).

Shipped weights: ``planted_relu.pt`` and ``planted_exponential.pt``, trained by
``scripts/train_planted.py`` with :func:`train_planted_model`; the JSON file
beside each records the architecture, the data arguments of every split, the
training settings and the held-out AUROC. :func:`planted_data_for` regenerates
the exact held-out set from those arguments (no data files are shipped).
"""

from __future__ import annotations

import copy
import json
import time
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from captum_genomics._utils.checks import check_positive_int, check_random_state
from captum_genomics.seq.planted import PlantedMotifData, make_planted_dataset

__all__ = [
    "ACTIVATIONS",
    "Exp",
    "evaluate_auroc",
    "PlantedMotifCNN",
    "load_planted_metadata",
    "load_planted_model",
    "planted_data_for",
    "planted_split_args",
    "train_planted_model",
]

ACTIVATIONS = ("relu", "exponential")
SPLITS = ("train", "validation", "test")
DATA_DEFAULTS = dict(length=200, n_motifs=[3, 5], positive_fraction=0.5)


def _check_activation(activation) -> str:
    if activation not in ACTIVATIONS:
        raise ValueError(f"`activation` must be one of {ACTIVATIONS}, got {activation!r}.")
    return activation


class Exp(nn.Module):
    """Elementwise ``torch.exp`` as a module (shape and dtype unchanged)."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.exp(x)


class PlantedMotifCNN(nn.Module):
    """Conv-act-pool-Conv-ReLU-pool-Linear-ReLU-Linear: one logit per sequence.

    In the spirit of Koo & Ploenzke's (2021) CNN-deep, smaller.

    Parameters
    ----------
    activation
        First-layer activation, ``"relu"`` (default) or ``"exponential"``
        (``torch.exp``; the first convolution is then initialised with
        normal weights of std ``exp_init_std`` and zero bias, so ``exp``
        starts near 1 and does not overflow).
    n_filters
        First-layer filters. Default 32.
    filter_width
        First-layer width (padding "same"). Default 19.
    n_filters2
        Second-layer filters. Default 48.
    filter_width2
        Second-layer width (padding "same"). Default 7.
    pool
        Kernel and stride of both max-pools. Default 4.
    hidden
        Width of the dense layer. Default 64.
    dropout
        Dropout after the pools and the dense layer, ``(p1, p2, p3)``.
        Default ``(0.1, 0.2, 0.5)`` as in Koo & Ploenzke.
    length
        Input length L. Default 200.
    exp_init_std
        See ``activation``. Default 0.01.

    Notes
    -----
    Input one-hot ``(N, 4, L)`` float; output logits ``(N, 1)``. The keyword
    arguments are kept in the ``architecture`` dict (JSON-ready).

    Raises
    ------
    ValueError
        For an unknown ``activation`` or sizes that are not positive integers.
    """

    def __init__(
        self,
        activation: str = "relu",
        n_filters: int = 32,
        filter_width: int = 19,
        n_filters2: int = 48,
        filter_width2: int = 7,
        pool: int = 4,
        hidden: int = 64,
        dropout: tuple[float, float, float] = (0.1, 0.2, 0.5),
        length: int = 200,
        exp_init_std: float = 0.01,
    ):
        super().__init__()
        self.activation = _check_activation(activation)
        self.architecture = dict(
            activation=activation, n_filters=n_filters, filter_width=filter_width,
            n_filters2=n_filters2, filter_width2=filter_width2, pool=pool, hidden=hidden,
            dropout=[float(p) for p in dropout], length=length, exp_init_std=exp_init_std,
        )
        for name, value in dict(
            n_filters=n_filters, filter_width=filter_width, n_filters2=n_filters2,
            filter_width2=filter_width2, pool=pool, hidden=hidden, length=length,
        ).items():
            check_positive_int(value, name)
        pooled = (length // pool) // pool
        if pooled < 1:
            raise ValueError(f"`length`={length} is too short for two max-pools of {pool}.")
        self.conv1 = nn.Conv1d(4, n_filters, filter_width, padding="same")
        self.act1 = Exp() if activation == "exponential" else nn.ReLU()
        self.pool1 = nn.MaxPool1d(pool)
        self.drop1 = nn.Dropout(dropout[0])
        self.conv2 = nn.Conv1d(n_filters, n_filters2, filter_width2, padding="same")
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool1d(pool)
        self.drop2 = nn.Dropout(dropout[1])
        self.flatten = nn.Flatten()
        self.dense = nn.Linear(n_filters2 * pooled, hidden)
        self.relu3 = nn.ReLU()
        self.drop3 = nn.Dropout(dropout[2])
        self.out = nn.Linear(hidden, 1)
        if activation == "exponential":
            nn.init.normal_(self.conv1.weight, std=exp_init_std)
            nn.init.zeros_(self.conv1.bias)

    def forward(self, x: Tensor) -> Tensor:
        """Logits, shape=(N, 1), for one-hot ``x`` shaped ``(N, 4, L)``."""
        x = self.drop1(self.pool1(self.act1(self.conv1(x))))
        x = self.drop2(self.pool2(self.relu2(self.conv2(x))))
        x = self.drop3(self.relu3(self.dense(self.flatten(x))))
        return self.out(x)


def _zoo_path(name: str) -> Path:
    return Path(str(resources.files("captum_genomics") / "zoo" / name))


def load_planted_metadata(activation: str = "relu") -> dict:
    """The training record shipped beside the weights (``planted_<activation>.json``).

    Returns
    -------
    dict
        Keys ``"architecture"`` (:class:`PlantedMotifCNN` keyword arguments),
        ``"data"`` (``"splits"``: the :func:`make_planted_dataset` arguments of
        ``"train"``, ``"validation"``, ``"test"``), ``"training"`` and
        ``"metrics"`` (``"validation_auroc"``, ``"test_auroc"``).

    Raises
    ------
    ValueError
        For an unknown ``activation``.
    """
    _check_activation(activation)
    with open(_zoo_path(f"planted_{activation}.json"), encoding="utf-8") as handle:
        return json.load(handle)


def planted_split_args(
    data_random_state: int = 0,
    n_train: int = 20000,
    n_valid: int = 2000,
    n_test: int = 2000,
    **data_kwargs,
) -> dict[str, dict]:
    """The :func:`make_planted_dataset` arguments of the three splits.

    Each split gets its own seed, ``numpy.random.SeedSequence(data_random_state)``
    spawned three times (train, validation, test), so splits never share
    sequences by construction of the seeds. ``data_kwargs`` (``length``,
    ``n_motifs``, ``positive_fraction``) default to 200, ``[3, 5]``, 0.5.

    Returns
    -------
    dict of str to dict
        ``{"train": {...}, "validation": {...}, "test": {...}}``, JSON-ready.
    """
    seed = check_random_state(data_random_state, "data_random_state", allow_none=False)
    children = np.random.SeedSequence(seed).spawn(3)
    kwargs = {**DATA_DEFAULTS, **data_kwargs}
    kwargs["n_motifs"] = [int(v) for v in kwargs["n_motifs"]]
    return {
        split: dict(n=int(n), random_state=int(child.generate_state(1)[0]), **kwargs)
        for split, n, child in zip(SPLITS, (n_train, n_valid, n_test), children)
    }


def _make(args: dict) -> PlantedMotifData:
    args = dict(args)
    args["n_motifs"] = tuple(args["n_motifs"])
    return make_planted_dataset(**args)


def planted_data_for(activation: str = "relu", split: str = "test") -> PlantedMotifData:
    """Regenerate a split of the data the shipped model of ``activation`` saw.

    Parameters
    ----------
    activation
        ``"relu"`` (default) or ``"exponential"``.
    split
        ``"train"``, ``"validation"`` or ``"test"`` (default, the held-out set
        behind the JSON's ``test_auroc``).

    Returns
    -------
    PlantedMotifData
        one_hot (N, 4, 200) float32, labels (N,), ground truth and sites.

    Raises
    ------
    ValueError
        For an unknown ``activation`` or ``split``.
    """
    if split not in SPLITS:
        raise ValueError(f"`split` must be one of {SPLITS}, got {split!r}.")
    return _make(load_planted_metadata(activation)["data"]["splits"][split])


def load_planted_model(activation: str = "relu", random_state: int | None = None):
    """A planted-motif CNN in eval mode on the CPU.

    Parameters
    ----------
    activation
        ``"relu"`` (default) or ``"exponential"``.
    random_state
        None (default) or the shipped model's seed (0): the shipped weights
        (``torch.load(weights_only=True)``). Another int trains a fresh model
        with that seed and the shipped record's data and settings
        (:func:`train_planted_model`, about a minute or two on a CPU).

    Returns
    -------
    PlantedMotifCNN

    Raises
    ------
    ValueError
        For an unknown ``activation``.
    TypeError
        For a non-integer ``random_state``.
    """
    meta = load_planted_metadata(activation)
    random_state = check_random_state(random_state)
    training = meta["training"]
    if random_state is None or random_state == training["random_state"]:
        model = PlantedMotifCNN(**meta["architecture"])
        path = _zoo_path(f"planted_{activation}.pt")
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return model.eval()
    splits = meta["data"]["splits"]
    model, _ = train_planted_model(
        activation, random_state, data_random_state=training["data_random_state"],
        n_train=splits["train"]["n"], n_valid=splits["validation"]["n"],
        n_test=splits["test"]["n"], max_epochs=training["max_epochs"],
        patience=training["patience"], batch_size=training["batch_size"], lr=training["lr"],
    )
    return model


@torch.no_grad()
def _scores(model: nn.Module, x: Tensor, batch_size: int = 1000) -> np.ndarray:
    model.eval()
    return torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])[
        :, 0
    ].double().numpy()


def evaluate_auroc(model: nn.Module, data: PlantedMotifData) -> float:
    """``sklearn.metrics.roc_auc_score`` of the model's logits on ``data`` (eval mode)."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(data.labels.numpy(), _scores(model, data.one_hot)))


def train_planted_model(
    activation: str = "relu",
    random_state: int = 0,
    data_random_state: int = 0,
    n_train: int = 20000,
    n_valid: int = 2000,
    n_test: int = 2000,
    max_epochs: int = 15,
    patience: int = 3,
    batch_size: int = 100,
    lr: float = 2e-3,
    n_threads: int = 1,
    show_progress: bool = False,
) -> tuple[PlantedMotifCNN, dict]:
    """Train a :class:`PlantedMotifCNN` on the planted-motif task.

    Adam (``lr``) on ``BCEWithLogitsLoss``, mini-batches in an order drawn
    from ``random_state``; after every epoch the validation AUROC
    (``sklearn.metrics.roc_auc_score``) is measured and the best epoch's
    weights are kept; training stops after ``patience`` epochs without
    improvement or at ``max_epochs``. The global torch RNG is forked (the
    caller's RNG state is untouched) and seeded with ``random_state``; the
    thread count is set to ``n_threads`` and restored, so two runs on one
    machine give identical weights.

    Parameters
    ----------
    activation
        ``"relu"`` (default) or ``"exponential"``.
    random_state
        Seeds initialisation, batch order and dropout. Default 0.
    data_random_state
        Seeds the data (:func:`planted_split_args`). Default 0, as shipped, so
        models of several ``random_state`` share one held-out set.
    n_train, n_valid, n_test
        Split sizes. Defaults 20000, 2000, 2000 (200 bp).
    max_epochs, patience, batch_size, lr
        Defaults 15, 3, 100, 2e-3.
    n_threads
        Torch CPU threads while training. Default 1.
    show_progress
        Print nothing, but show a tqdm bar over epochs. Default False.

    Returns
    -------
    (model, metrics) : tuple of PlantedMotifCNN (eval mode) and dict
        ``metrics`` holds ``validation_auroc``, ``test_auroc``, ``best_epoch``,
        ``epochs_run``, ``seconds``, ``history`` (validation AUROC per epoch),
        ``architecture``, ``data`` (``splits``) and ``training`` (settings).

    Raises
    ------
    ValueError
        For an unknown ``activation`` or a non-positive size.
    """
    _check_activation(activation)
    for name, value in dict(n_train=n_train, n_valid=n_valid, n_test=n_test,
                            max_epochs=max_epochs, patience=patience,
                            batch_size=batch_size, n_threads=n_threads).items():
        check_positive_int(value, name)
    seed = check_random_state(random_state, "random_state", allow_none=False)
    splits = planted_split_args(data_random_state, n_train, n_valid, n_test)
    train, valid, test = (_make(splits[s]) for s in SPLITS)
    t0 = time.perf_counter()
    old_threads = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = PlantedMotifCNN(activation)
            architecture = dict(model.architecture)
            optimiser = torch.optim.Adam(model.parameters(), lr=lr)
            loss_fn = nn.BCEWithLogitsLoss()
            order_rng = torch.Generator().manual_seed(seed)
            best, best_state, best_epoch, history = -1.0, None, 0, []
            epochs = range(1, max_epochs + 1)
            if show_progress:
                from tqdm.auto import tqdm

                epochs = tqdm(epochs, desc=f"planted {activation}")
            for epoch in epochs:
                model.train()
                order = torch.randperm(n_train, generator=order_rng)
                for i in range(0, n_train, batch_size):
                    idx = order[i:i + batch_size]
                    optimiser.zero_grad()
                    logits = model(train.one_hot[idx])[:, 0]
                    loss_fn(logits, train.labels[idx]).backward()
                    optimiser.step()
                score = evaluate_auroc(model, valid)
                history.append(score)
                if score > best:
                    best, best_epoch = score, epoch
                    best_state = copy.deepcopy(model.state_dict())
                elif epoch - best_epoch >= patience:
                    break
            model.load_state_dict(best_state)
            model.eval()
            test_auroc = evaluate_auroc(model, test)
    finally:
        torch.set_num_threads(old_threads)
    metrics = dict(
        validation_auroc=best, test_auroc=test_auroc, best_epoch=best_epoch,
        epochs_run=len(history), seconds=time.perf_counter() - t0, history=history,
        architecture=architecture, data=dict(splits=splits),
        training=dict(
            random_state=seed, data_random_state=int(data_random_state),
            max_epochs=max_epochs, patience=patience, batch_size=batch_size, lr=lr,
            optimiser="Adam", loss="BCEWithLogitsLoss", n_threads=n_threads,
            early_stopping="best validation AUROC (sklearn.metrics.roc_auc_score)",
        ),
    )
    return model, metrics
