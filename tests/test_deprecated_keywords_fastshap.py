"""FastSHAP's old keywords ``seed`` / ``progress_bar``: kept for one release, warning, same results."""

import warnings

import numpy as np
import pytest
import torch

from captum_genomics import FastSHAP
from captum_genomics.fastshap import (
    BaselineGame,
    MaskedSurrogate,
    MLPExplainer,
    Players,
    train_explainer,
    train_surrogate,
)
from captum_genomics.workflows.fastshap_pbmc import run_fastshap_job, run_fastshap_on_data

pytestmark = pytest.mark.usefixtures("one_thread")

D, T = 5, 2
FIT = {"max_epochs": 2, "n_samples": 8}


def _model():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(D, 8), torch.nn.Tanh(),
                                   torch.nn.Linear(8, T)).eval()


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(0)
    return _model(), *(torch.randn(n, D, generator=g) for n in (64, 16, 8))


def _params(module):
    return torch.cat([p.detach().flatten() for p in module.parameters()])


def _quiet(fn, *args, **kwargs):
    """``fn(...)`` that must not warn about a deprecated keyword."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        return fn(*args, **kwargs)


def _old(new_name, fn, *args, **kwargs):
    """``fn(...)`` that must warn once, naming ``new_name``."""
    with pytest.warns(DeprecationWarning, match=f"use `{new_name}` instead") as record:
        out = fn(*args, **kwargs)
    assert sum(issubclass(w.category, DeprecationWarning) for w in record) == 1
    return out


@pytest.mark.parametrize("game", ["baseline", "marginal", "surrogate"])
def test_fit_seed_and_progress_bar(data, game):
    model, xtr, xva, x = data
    kw = dict(game=game, train_kwargs=FIT, surrogate_train_kwargs={"max_epochs": 2}
              if game == "surrogate" else None)
    new = _quiet(FastSHAP.fit, model, xtr, xva, random_state=3, show_progress=False, **kw)
    old = _old("random_state", FastSHAP.fit, model, xtr, xva, seed=3, **kw)
    bar = _old("show_progress", FastSHAP.fit, model, xtr, xva, random_state=3,
               progress_bar=False, **kw)
    a = new.attribute(x, targets="all")
    assert torch.equal(a, old.attribute(x, targets="all"))
    assert torch.equal(a, bar.attribute(x, targets="all"))
    assert new.history["explainer"]["val_loss"] == old.history["explainer"]["val_loss"]
    other = _quiet(FastSHAP.fit, model, xtr, xva, random_state=4, **kw)
    assert not torch.equal(a, other.attribute(x, targets="all"))


def test_fit_keeps_old_names_inside_keyword_dicts(data):
    model, xtr, xva, x = data
    kw = dict(game="surrogate", train_kwargs=FIT)
    new = _quiet(FastSHAP.fit, model, xtr, xva, surrogate_kwargs={"random_state": 5},
                 surrogate_train_kwargs={"max_epochs": 2, "random_state": 6},
                 explainer_kwargs={"random_state": 7}, **kw)
    # the old names inside the dicts still win over `random_state` (default 0)
    with pytest.warns(DeprecationWarning, match="use `random_state` instead"):
        old = FastSHAP.fit(model, xtr, xva, surrogate_kwargs={"seed": 5},
                           surrogate_train_kwargs={"max_epochs": 2, "seed": 6},
                           explainer_kwargs={"seed": 7}, **kw)
    assert torch.equal(_params(new.game.surrogate), _params(old.game.surrogate))
    assert torch.equal(new.attribute(x, targets="all"), old.attribute(x, targets="all"))


def test_fit_both_spellings(data):
    model, xtr, xva, _ = data
    with pytest.raises(TypeError, match="both `seed` \\(deprecated\\) and `random_state`"):
        FastSHAP.fit(model, xtr, xva, seed=1, random_state=2, train_kwargs=FIT)
    with pytest.raises(TypeError, match="both `progress_bar` \\(deprecated\\) and `show_progress`"):
        FastSHAP.fit(model, xtr, xva, progress_bar=False, show_progress=True, train_kwargs=FIT)
    with pytest.warns(DeprecationWarning):  # the same value twice is accepted
        FastSHAP.fit(model, xtr, xva, seed=2, random_state=2, train_kwargs=FIT)


def test_train_explainer_and_surrogate(data):
    model, xtr, xva, _ = data
    game = BaselineGame(model, Players.singletons(D))

    def explainer(**kw):
        ex = MLPExplainer(D, D, T, hidden_width=8, random_state=0)
        h = train_explainer(ex, game, xtr, xva, max_epochs=2, **kw)
        return _params(ex), h["val_loss"]

    def surrogate(**kw):
        sur = MaskedSurrogate(Players.singletons(D), T, hidden_width=8, random_state=0)
        h = train_surrogate(sur, model, xtr, xva, max_epochs=2, **kw)
        return _params(sur), h["val_loss"]

    for fn, name in ((explainer, "train_explainer"), (surrogate, "train_surrogate")):
        w, h = _quiet(fn, random_state=7, show_progress=False)
        w_old, h_old = _old("random_state", fn, seed=7)
        w_bar, h_bar = _old("show_progress", fn, random_state=7, progress_bar=False)
        assert torch.equal(w, w_old) and torch.equal(w, w_bar) and h == h_old == h_bar
        # None means 0, under both names
        assert torch.equal(_quiet(fn, random_state=None)[0], _old("random_state", fn, seed=0)[0])
        with pytest.raises(TypeError, match=f"{name}\\(\\) got both `seed`"):
            fn(seed=1, random_state=2)
        with pytest.raises(TypeError, match=f"{name}\\(\\) got both `progress_bar`"):
            fn(progress_bar=False, show_progress=True)


@pytest.mark.parametrize("cls, args", [(MLPExplainer, (D, D, T)),
                                        (MaskedSurrogate, (Players.singletons(D), T))])
def test_network_constructors(cls, args):
    kw = {"zero_init_output": False} if cls is MLPExplainer else {}  # random output layer
    new = _quiet(cls, *args, random_state=3, **kw)
    old = _old("random_state", cls, *args, seed=3, **kw)
    assert torch.equal(_params(new), _params(old))
    assert not torch.equal(_params(new), _params(_quiet(cls, *args, random_state=4, **kw)))
    with pytest.raises(TypeError, match=f"{cls.__name__}\\(\\) got both `seed`"):
        cls(*args, seed=1, random_state=2)


def test_workflow_seed(tmp_path, data):
    model, _, _, _ = data
    g = torch.Generator().manual_seed(1)
    x = torch.randn(40, D, generator=g).numpy().astype(np.float32)
    labels = np.arange(40) % T
    split = {"train": np.arange(24), "validation": np.arange(24, 32), "test": np.arange(32, 40)}
    common = dict(model=model, x=x, labels=labels, genes=[f"g{i}" for i in range(D)],
                  label_names=["a", "b"], split=split, max_epochs=1, n_samples=8,
                  gene_dropout=0.0, plot=False, verbose=False)
    new = _quiet(run_fastshap_on_data, out_dir=tmp_path / "new", random_state=3, **common)
    old = _old("random_state", run_fastshap_on_data, out_dir=tmp_path / "old", seed=3, **common)
    assert new["seed"] == old["seed"] == 3
    with np.load(tmp_path / "new" / "attributions.npz") as a, \
            np.load(tmp_path / "old" / "attributions.npz") as b:
        assert np.array_equal(a["attributions"], b["attributions"])
    with pytest.raises(TypeError, match="run_fastshap_on_data\\(\\) got both `seed`"):
        run_fastshap_on_data(out_dir=tmp_path / "x", seed=1, random_state=2, **common)
    with pytest.raises(TypeError, match="run_fastshap_job\\(\\) got both `seed`"):
        run_fastshap_job(tmp_path / "y", seed=1, random_state=2)
