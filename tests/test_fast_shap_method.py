"""FastSHAP as a Captum attribution: accuracy vs exact Shapley, axioms, contract, inputs, errors."""

import numpy as np
import pytest
import scipy.sparse
import torch
from captum.attr import Attribution, NoiseTunnel, ShapleyValues

from captum_genomics import FastSHAP
from captum_genomics.fastshap import (
    BaselineGame,
    MarginalGame,
    MLPExplainer,
    Players,
    exact_shapley,
    train_explainer,
)

D_IN = 6
T_OUT = 2
FIT = {"max_epochs": 30, "lr": 3e-3, "n_samples": 16}


pytestmark = pytest.mark.usefixtures("one_thread")


def _mlp(seed=0, d=D_IN, t=T_OUT):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return torch.nn.Sequential(torch.nn.Linear(d, 16), torch.nn.Tanh(),
                                   torch.nn.Linear(16, t)).eval()


@pytest.fixture(scope="module")
def problem():
    g = torch.Generator().manual_seed(0)
    data = {k: torch.randn(n, D_IN, generator=g) for k, n in (("train", 512), ("val", 128),
                                                                ("test", 64))}
    return _mlp(), data


@pytest.fixture(scope="module")
def fitted(problem):
    model, data = problem
    return FastSHAP.fit(model, data["train"], data["val"], seed=0, train_kwargs=FIT)


@pytest.fixture(scope="module")
def exact(problem, fitted):
    return exact_shapley(fitted.model_game, problem[1]["test"])  # (N, d, T)


def _top_k_overlap(a, b, k):
    ia, ib = a.abs().topk(k, dim=1).indices, b.abs().topk(k, dim=1).indices
    hits = sum(len(set(x.tolist()) & set(y.tolist())) for x, y in zip(ia, ib))
    return hits / (k * a.shape[0])


# ----------------------------------------------------------------------------- accuracy
def test_default_game_is_captums_shapley_values(problem, fitted, exact):
    # The reference itself: the default game is ShapleyValues' game with zero baselines.
    model, data = problem
    sv = ShapleyValues(model).attribute(data["test"][:4], baselines=0.0, target=1)
    torch.testing.assert_close(sv, exact[:4, :, 1], rtol=1e-5, atol=1e-5)


def test_agrees_with_exact_shapley(problem, fitted, exact):
    x = problem[1]["test"]
    attr = fitted.attribute(x, targets="all")  # (N, F, T)
    assert attr.shape == (64, D_IN, T_OUT)
    err = (attr - exact).norm(dim=1)  # per example and output
    mean_l2 = float(err.mean())
    rel = float((attr - exact).norm() / exact.norm())
    r = float(torch.corrcoef(torch.stack([attr.flatten(), exact.flatten()]))[0, 1])
    top2 = np.mean([_top_k_overlap(attr[..., t], exact[..., t], 2) for t in range(T_OUT)])
    print(f"\nFastSHAP vs exact Shapley (d={D_IN}, 30 epochs): mean L2 {mean_l2:.4f} "
          f"(mean exact norm {float(exact.norm(dim=1).mean()):.4f}), relative {rel:.4f}, "
          f"Pearson r {r:.4f}, top-2 overlap {top2:.3f}")
    assert rel < 0.25 and r > 0.98 and top2 > 0.85


def test_efficiency_exact_for_default_game(problem, fitted):
    x = problem[1]["test"]
    attr, delta = fitted.attribute(x, target=1, return_convergence_delta=True)
    assert attr.dtype == torch.float32 and delta.shape == (64,)
    with torch.no_grad():
        diff = fitted.forward_func(x)[:, 1] - fitted.forward_func(torch.zeros_like(x))[:, 1]
    assert (attr.sum(1) - diff).abs().max() <= 1e-5
    assert delta.abs().max() <= 1e-5
    torch.testing.assert_close(fitted.compute_convergence_delta(attr, x, target=1), delta)
    all_attr, all_delta = fitted.attribute(x, targets="all", return_convergence_delta=True)
    assert all_delta.shape == (64, T_OUT) and all_delta.abs().max() <= 1e-5
    torch.testing.assert_close(fitted.compute_convergence_delta(all_attr, x), all_delta)


def test_batch_invariance(problem, fitted):
    # Per-example normalization: batching changes nothing but the order of float
    # sums inside matrix products (gemv for one row, gemm for many): a few ulps.
    x = problem[1]["test"][:16]
    full = fitted.attribute(x, targets="all")
    alone = torch.cat([fitted.attribute(x[i:i + 1], targets="all") for i in range(16)])
    torch.testing.assert_close(alone, full, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fitted.attribute(x, targets="all", batch_size=5), full,
                               rtol=1e-5, atol=1e-6)
    # float64 throughout: agreement to 1e-12
    f64 = FastSHAP(fitted.forward_func.double(), fitted.explainer.double(), trained=True)
    try:
        full = f64.attribute(x.double(), targets="all")
        alone = torch.cat([f64.attribute(x[i:i + 1].double(), targets="all") for i in range(16)])
        torch.testing.assert_close(alone, full, rtol=0, atol=1e-12)
    finally:
        fitted.forward_func.float()
        fitted.explainer.float()


def test_fit_is_deterministic_under_a_seed(problem):
    model, data = problem
    xtr, xva, x = data["train"][:128], data["val"][:32], data["test"][:8]
    for game in ("baseline", "marginal"):
        kw = {"game": game, "train_kwargs": {"max_epochs": 2}}
        a = FastSHAP.fit(model, xtr, xva, seed=3, **kw).attribute(x, targets="all")
        torch.manual_seed(99)  # the global state does not matter
        b = FastSHAP.fit(model, xtr, xva, seed=3, **kw).attribute(x, targets="all")
        c = FastSHAP.fit(model, xtr, xva, seed=4, **kw).attribute(x, targets="all")
        assert torch.equal(a, b), game
        assert not torch.equal(a, c), game


def test_shapley_axioms_on_constructed_model():
    # f = x0 * x1 + 2 x2 + 0 x3: player 3 is a dummy; players 0 and 1 are
    # symmetric wherever x0 == x1 (exact values x0 x1 / 2 each, 2 x2, 0).
    def model(x):
        return x[:, 0] * x[:, 1] + 2 * x[:, 2] + 0 * x[:, 3]

    g = torch.Generator().manual_seed(1)
    xtr, xva = torch.randn(1024, 4, generator=g), torch.randn(128, 4, generator=g)
    fs = FastSHAP.fit(model, xtr, xva, seed=0, train_kwargs={**FIT, "lr": 1e-2})
    x = torch.randn(64, 4, generator=g)
    x[:, 1] = x[:, 0]
    attr = fs.attribute(x)  # one output: target=None is valid
    exact = exact_shapley(fs.model_game, x)[..., 0]
    assert exact[:, 3].abs().max() < 1e-6
    torch.testing.assert_close(exact[:, 0], exact[:, 1])
    # The estimates: ~0 and ~equal to within the explainer's own error level
    # (measured 0.03 and 0.013 of mean |phi| over 4 data seeds; error of the
    # other players 0.03-0.05).
    scale = attr.abs().mean()
    dummy = float(attr[:, 3].abs().mean() / scale)
    asym = float((attr[:, 0] - attr[:, 1]).abs().mean() / scale)
    err = float((attr - exact)[:, :3].abs().mean() / scale)
    print(f"\naxioms (relative to mean |phi| {float(scale):.3f}): dummy {dummy:.4f}, "
          f"symmetry gap {asym:.4f}, error of the other players {err:.4f}")
    assert dummy < 0.08 and asym < 0.05
    assert dummy < 2 * err


# ----------------------------------------------------------------------------- targets, groups
def test_targets_and_player_values(problem, fitted):
    x = problem[1]["test"][:10]
    all_attr = fitted.attribute(x, targets="all")
    t0, t1 = fitted.attribute(x, targets=[0, 1])
    assert torch.equal(t0, all_attr[..., 0]) and torch.equal(t1, all_attr[..., 1])
    # a single `target` computes only that output of the explainer: equal up to rounding
    close = dict(rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(fitted.attribute(x, target=-1), all_attr[..., 1], **close)
    per = torch.tensor([0, 1] * 5)
    expected = all_attr[torch.arange(10), :, per]
    torch.testing.assert_close(fitted.attribute(x, target=per), expected, **close)
    assert torch.equal(fitted.attribute(x, target=per.tolist()), fitted.attribute(x, target=per))
    (a, d), = fitted.attribute(x, targets=[1], return_convergence_delta=True)
    assert torch.equal(a, t1) and d.shape == (10,)
    torch.testing.assert_close(fitted.attribute(x, target=1, return_player_values=True), t1,
                               **close)


def test_groups_expand_onto_features():
    # Inputs (N, 2, 3), players from a Captum feature mask: every feature of a group
    # carries the group's value; efficiency holds over players.
    model = _mlp(seed=2, t=1)
    mask = torch.tensor([[0, 1, 1], [2, 0, 2]])
    g = torch.Generator().manual_seed(2)
    xtr, xva = torch.randn(128, 2, 3, generator=g), torch.randn(32, 2, 3, generator=g)
    fs = FastSHAP.fit(lambda x: model(x.reshape(-1, 6)), xtr, xva, players=mask,
                      train_kwargs={"max_epochs": 2})
    x = torch.randn(5, 2, 3, generator=g)
    attr, delta = fs.attribute(x, return_convergence_delta=True)
    phi = fs.attribute(x, return_player_values=True)
    assert attr.shape == (5, 2, 3) and phi.shape == (5, 3)
    torch.testing.assert_close(attr, phi[:, mask])
    assert delta.abs().max() <= 1e-5
    torch.testing.assert_close(fs.compute_convergence_delta(attr, x), delta)


# ----------------------------------------------------------------------------- Captum contract
def test_captum_contract(problem, fitted):
    x = problem[1]["test"][:4]
    assert isinstance(fitted, Attribution)
    assert hasattr(FastSHAP.attribute, "__wrapped__")
    assert fitted.has_convergence_delta() is True
    out = fitted.attribute(x, target=0)
    assert isinstance(out, torch.Tensor) and out.shape == x.shape and out.dtype == x.dtype
    assert not out.requires_grad
    tup = fitted.attribute((x,), target=0)
    assert isinstance(tup, tuple) and len(tup) == 1 and torch.equal(tup[0], out)
    # float64 in, float64 out (the float32 explainer and model compute)
    out64 = fitted.attribute(x.double(), target=0)
    assert out64.dtype == torch.float64 and torch.equal(out64, out.double())
    # Captum's wrappers reach attribute through __wrapped__
    nt = NoiseTunnel(fitted).attribute(x, nt_samples=2, stdevs=0.1, target=0)
    assert nt.shape == x.shape
    # repeat calls give the same result and leave the model as it was
    state = {k: v.clone() for k, v in fitted.forward_func.state_dict().items()}
    assert torch.equal(fitted.attribute(x, target=0), out)
    for k, v in fitted.forward_func.state_dict().items():
        assert torch.equal(v, state[k])


# ----------------------------------------------------------------------------- containers
def test_numpy_sparse_and_anndata_inputs_equal_dense(problem, fitted):
    x = problem[1]["test"][:12].clone()
    x[x.abs() < 0.7] = 0.0  # a real sparse pattern
    dense = fitted.attribute(x, targets="all")
    arr = x.numpy()
    assert torch.equal(fitted.attribute(arr, targets="all"), dense)
    assert torch.equal(fitted.attribute(arr.astype(np.float64), targets="all"),
                       fitted.attribute(x.double(), targets="all").float())
    for fmt in (scipy.sparse.csr_matrix, scipy.sparse.csc_matrix, scipy.sparse.coo_matrix):
        assert torch.equal(fitted.attribute(fmt(arr), targets="all"), dense)
        assert torch.equal(fitted.attribute(fmt(arr), targets="all", batch_size=5),
                           fitted.attribute(x, targets="all", batch_size=5))
    anndata = pytest.importorskip("anndata")
    adata = anndata.AnnData(X=scipy.sparse.csr_matrix(arr))
    assert torch.equal(fitted.attribute(adata, targets="all"), dense)
    other = anndata.AnnData(X=np.zeros_like(arr), layers={"counts": arr})
    other.raw = anndata.AnnData(X=arr)
    assert torch.equal(fitted.attribute(other, targets="all", layer="counts"), dense)
    assert torch.equal(fitted.attribute(other, targets="all", use_raw=True), dense)
    assert not torch.equal(fitted.attribute(other, targets="all"), dense)
    with pytest.raises(ValueError, match=r"`layer`='spliced' is not a layer .*\['counts'\]"):
        fitted.attribute(other, target=0, layer="spliced")
    with pytest.raises(ValueError, match=r"`use_raw=True` but the AnnData `inputs` has no `.raw`"):
        fitted.attribute(adata, target=0, use_raw=True)
    with pytest.raises(ValueError, match="`layer` and `use_raw` select a matrix of an AnnData"):
        fitted.attribute(arr, target=0, layer="counts")
    # AnnData for training too
    fs = FastSHAP.fit(fitted.forward_func, anndata.AnnData(X=problem[1]["train"][:64].numpy()),
                      problem[1]["val"][:16].numpy(), train_kwargs={"max_epochs": 1})
    assert fs.trained and fs.attribute(adata, target=0).shape == (12, D_IN)


# ----------------------------------------------------------------------------- save / load
def test_save_load_round_trip(tmp_path, problem, fitted):
    model, data = problem
    x = data["test"][:8]
    fitted.save(tmp_path / "fs.pt")
    blob = torch.load(tmp_path / "fs.pt", weights_only=True)
    assert blob["format"] == "captum_genomics.FastSHAP"
    back = FastSHAP.load(tmp_path / "fs.pt", model)
    assert back.trained and back.history["explainer"] == fitted.history["explainer"]
    assert torch.equal(back.attribute(x, targets="all"), fitted.attribute(x, targets="all"))

    for game, link in (("marginal", "identity"), ("surrogate", "softmax")):
        fs = FastSHAP.fit(model, data["train"][:128], data["val"][:32], game=game, link=link,
                          train_kwargs={"max_epochs": 2},
                          surrogate_train_kwargs={"max_epochs": 2} if game == "surrogate" else None)
        fs.save(tmp_path / f"{game}.pt")
        back = FastSHAP.load(tmp_path / f"{game}.pt", model)
        assert type(back.game) is type(fs.game) and back.link == link
        a, d = fs.attribute(x, targets="all", return_convergence_delta=True)
        b, e = back.attribute(x, targets="all", return_convergence_delta=True)
        assert torch.equal(a, b) and torch.equal(d, e)
        # the delta is the gap between the game's v(1) - v(0) and the model's
        with torch.no_grad():
            gap = (fs.game.grand(x) - fs.game.null(x)) - (fs.model_game.grand(x)
                                                          - fs.model_game.null(x))
        torch.testing.assert_close(d, gap, rtol=1e-4, atol=1e-5)
        assert d.abs().max() > 1e-3  # not the model's game: a real gap
        assert "surrogate" in back.history or game == "marginal"

    untrained = FastSHAP(model, MLPExplainer(D_IN, D_IN, T_OUT, seed=0))
    untrained.save(tmp_path / "untrained.pt")
    with pytest.raises(RuntimeError, match="has not been trained"):
        FastSHAP.load(tmp_path / "untrained.pt", model).attribute(x, target=0)
    torch.save({"format": "other"}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="is not a captum_genomics.FastSHAP file"):
        FastSHAP.load(tmp_path / "bad.pt", model)


def test_explainer_trained_elsewhere(problem):
    model, data = problem
    game = BaselineGame(model, Players.singletons(D_IN))
    explainer = MLPExplainer(D_IN, D_IN, T_OUT, seed=0)
    fs = FastSHAP(model, explainer)
    with pytest.raises(RuntimeError, match=r"`explainer` has not been trained.*trained=True"):
        fs.attribute(data["test"][:2], target=0)
    train_explainer(explainer, game, data["train"][:64], data["val"][:16], max_epochs=1)
    a = FastSHAP(model, explainer, trained=True).attribute(data["test"][:4], target=0)
    fs.fit_explainer(data["train"][:64], data["val"][:16], max_epochs=1)
    assert fs.trained and "explainer" in fs.history
    # a custom game: its players and link are used, and checked
    marg = MarginalGame(model, data["train"][:8])
    fs = FastSHAP(model, explainer, game=marg, trained=True)
    assert fs.players == marg.players and a.shape == (4, D_IN)


# ----------------------------------------------------------------------------- errors
def test_bad_inputs(problem, fitted):
    x = problem[1]["test"][:4]
    with pytest.raises(ValueError, match=r"`inputs` has 5 features per example \(shape \(4, 5\)\) "
                                         r"but the explainer expects 6"):
        fitted.attribute(x[:, :5], target=0)
    with pytest.raises(ValueError, match=r"`inputs` has 5 features per example"):
        fitted.attribute(scipy.sparse.csr_matrix(x[:, :5].numpy()), target=0)
    bad = x.clone()
    bad[1, 2] = float("nan")
    msg = r"`inputs` contains 1 non-finite value\(s\) \(NaN\), first at index \(1, 2\)"
    for form in (bad, bad.numpy(), scipy.sparse.csr_matrix(bad.numpy())):
        with pytest.raises(ValueError, match=msg):
            fitted.attribute(form, target=0)
    bad[1, 2] = float("inf")
    with pytest.raises(ValueError, match=r"\(Inf\), first at index \(1, 2\)"):
        fitted.attribute(bad, target=0)
    with pytest.raises(ValueError, match="`inputs` is an empty batch"):
        fitted.attribute(x[:0], target=0)
    with pytest.raises(ValueError, match="`inputs` must have a batch axis"):
        fitted.attribute(x[0], target=0)
    with pytest.raises(TypeError, match="`inputs` must be a torch.Tensor, numpy array"):
        fitted.attribute(np.array([["a"] * 6]), target=0)
    with pytest.raises(ValueError, match="`inputs` tuple must hold exactly one tensor"):
        fitted.attribute((x, x), target=0)
    with pytest.raises(ValueError, match="`additional_forward_args` is not supported"):
        fitted.attribute(x, target=0, additional_forward_args=(torch.ones(4),))


@pytest.mark.parametrize("kwargs, err, match", [
    ({"target": 2}, ValueError, r"`target`=2 is out of range: the model has 2 output\(s\), "
                                r"expected an int in 0..1"),
    ({"target": -3}, ValueError, r"`target`=-3 is out of range"),
    ({"target": [0, 1, 5, 0]}, ValueError, r"`target` holds 5 for example 2, out of range"),
    ({"target": torch.tensor([0, 1])}, ValueError, r"`target` tensor must have one entry per "
                                                   r"example, shape \(4,\), got \(2,\)"),
    ({"target": [0, 1]}, ValueError, r"`target` list .* length 4, got 2"),
    ({"target": None}, ValueError, r"`target` is None but the model has 2 outputs"),
    ({"target": 0.5}, TypeError, r"`target` must be None, an int"),
    ({"target": torch.tensor([0.0] * 4)}, TypeError, r"`target` tensor must hold integers"),
    ({"targets": [0, 7]}, ValueError, r"`targets`=7 is out of range"),
    ({"targets": "some"}, ValueError, r"`targets` must be 'all' or a sequence"),
    ({"targets": []}, ValueError, r"`targets` must hold at least one target"),
    ({"target": 0, "targets": "all"}, ValueError, r"either `target` or `targets`"),
    ({"target": 0, "batch_size": 0}, ValueError, r"`batch_size` must be an integer >= 1"),
])
def test_bad_targets(problem, fitted, kwargs, err, match):
    with pytest.raises(err, match=match):
        fitted.attribute(problem[1]["test"][:4], **kwargs)


def test_bad_players_and_construction(problem, fitted):
    model, data = problem
    exp = MLPExplainer(D_IN, 4, T_OUT, seed=0)
    with pytest.raises(ValueError, match=r"`players` leaves features \[4, 5\] in no group"):
        FastSHAP(model, exp, players=[[0, 1], [2], [3]])
    with pytest.raises(ValueError, match=r"`players` covers 5 features but the explainer expects"):
        FastSHAP(model, exp, players=Players.singletons(5))
    with pytest.raises(ValueError, match=r"`players` has d=3 players but the explainer predicts 4"):
        FastSHAP(model, exp, players=[[0, 1], [2, 3], [4, 5]])
    with pytest.raises(ValueError, match=r"`players` skips player ids \[2\]"):
        FastSHAP(model, exp, players=torch.tensor([0, 1, 3, 3, 4, 4]))
    with pytest.raises(ValueError, match=r"`players` lists features \[1\] more than once"):
        FastSHAP.fit(model, data["train"][:16], data["val"][:8],
                     players=[[0, 1], [1, 2], [3], [4, 5]])
    with pytest.raises(ValueError, match="differ from the game's"):
        FastSHAP(model, exp, game=MarginalGame(model, data["train"][:4]),
                 players=[[0, 1], [2], [3], [4, 5]])
    with pytest.raises(TypeError, match="`explainer` must be a torch.nn.Module"):
        FastSHAP(model, torch.nn.Linear(6, 6))
    with pytest.raises(TypeError, match="`game` must be a captum_genomics.fastshap Game"):
        FastSHAP(model, exp, game="baseline")
    with pytest.raises(ValueError, match="`link` must be one of"):
        FastSHAP(model, exp, players=[[0, 1], [2, 3], [4], [5]], link="sigmoid")
    with pytest.raises(ValueError, match="`game` must be one of"):
        FastSHAP.fit(model, data["train"][:16], data["val"][:8], game="conditional")
    with pytest.raises(ValueError, match="`background` is used only with game='marginal'"):
        FastSHAP.fit(model, data["train"][:16], data["val"][:8], background=data["train"][:4])
    with pytest.raises(ValueError, match="`x_val` has 5 features per example but `x_train` has 6"):
        FastSHAP.fit(model, data["train"][:16], data["val"][:8, :5])
    dropout = torch.nn.Sequential(torch.nn.Linear(6, 2), torch.nn.Dropout(0.5))  # training mode
    with pytest.raises(ValueError, match="`model` is in training mode"):
        FastSHAP(dropout, fitted.explainer, trained=True).attribute(data["test"][:2], target=0)
    with pytest.raises(ValueError, match="`model` is in training mode"):
        FastSHAP.fit(dropout, data["train"][:16], data["val"][:8])
    with pytest.raises(ValueError, match="the game returns 3 output"):
        FastSHAP(_mlp(t=3), fitted.explainer, trained=True).attribute(data["test"][:2], target=0)


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def device(request):
    if request.param == "cuda" and not torch.cuda.is_available():
        pytest.skip("CUDA not available")
    return torch.device(request.param)


def test_device(tmp_path, problem, fitted, device):
    # Tensors stay on their device; arrays come back on the explainer's device.
    model, data = problem
    x = data["test"][:8]
    ref, ref_delta = fitted.attribute(x, target=1, return_convergence_delta=True)
    fitted.save(tmp_path / "fs.pt")
    moved = FastSHAP.load(tmp_path / "fs.pt", _mlp().to(device))
    out, delta = moved.attribute(x.to(device), target=torch.tensor([1] * 8, device=device),
                                 return_convergence_delta=True)
    assert out.device.type == device.type and delta.device.type == device.type
    torch.testing.assert_close(out.cpu(), ref, rtol=1e-4, atol=1e-5)
    assert delta.abs().max() <= 1e-5 and ref_delta.abs().max() <= 1e-5
    from_numpy = moved.attribute(x.numpy(), target=1)
    assert from_numpy.device.type == device.type
    torch.testing.assert_close(from_numpy, out)
    torch.testing.assert_close(moved.compute_convergence_delta(out, x.to(device), target=1),
                               delta)
