"""``captum_genomics.compare``: every number checked against an independent computation.

A small CNN and random one-hot sequences with a planted mask; each metric of the tidy
table is recomputed here from the attributions with sklearn/scipy/direct Captum calls.
"""

import copy
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from captum.attr import InputXGradient, Saliency
from scipy.stats import spearmanr
from sklearn.metrics import average_precision_score, roc_auc_score

from captum_genomics import ShuffleDeepLiftShap, compare
from captum_genomics.comparison import ComparisonWarning
from captum_genomics.comparison.registry import builtin_methods
from captum_genomics.gradients import correct_gradients
from captum_genomics.references import dinucleotide_shuffle
from captum_genomics.seq.io import random_one_hot
from captum_genomics.seq.planted import GroundTruth

pytestmark = pytest.mark.filterwarnings("ignore:Input Tensor")


def _model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv1d(4, 6, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool1d(2),
        torch.nn.Flatten(), torch.nn.Linear(6 * 12, 1)).double().eval()


@pytest.fixture(scope="module")
def study():
    x = random_one_hot(6, 24, torch.Generator().manual_seed(1)).double()
    mask = torch.zeros(6, 24, dtype=torch.bool)
    mask[:, 8:14] = True
    pwm = torch.zeros(6, 4, 24)
    pwm[:, 0, 8:14] = 0.75
    pwm[:, 1:, 8:14] = -0.25
    truth = GroundTruth(mask=mask, pwm=pwm)
    model = _model()
    result = compare(["deeplift_shap", "saliency", "grad_x_input", "ig_shuffle",
                      "saliency_corrected", "ig_zero_corrected"], model, x, ground_truth=truth,
                     n_references=4, ig_steps=64, randomization_examples=3, random_state=3)
    return model, x, truth, result


def _values(result, method, metric):
    rows = result.frame[(result.frame.method == method) & (result.frame.metric == metric)]
    return rows.sort_values("example")["value"].to_numpy()


def test_attributions_equal_direct_calls(study):
    model, x, _, result = study
    refs = dinucleotide_shuffle(x, 4, random_state=3)
    ours = ShuffleDeepLiftShap(model).attribute(x, references=refs, hypothetical=True)
    torch.testing.assert_close(result.attributions["deeplift_shap"], ours.float())
    sal = Saliency(model).attribute(x.clone(), abs=False)
    torch.testing.assert_close(result.attributions["saliency"], sal.float())
    torch.testing.assert_close(result.attributions["saliency_corrected"],
                               correct_gradients(sal).float())
    gxi = InputXGradient(model).attribute(x.clone())
    torch.testing.assert_close(result.attributions["grad_x_input"], gxi.float())


def test_convergence_delta_is_sum_of_scores_minus_output_difference(study):
    model, x, _, result = study
    refs = dinucleotide_shuffle(x, 4, random_state=3)
    with torch.no_grad():
        fx = model(x)[:, 0]
        fr = model(refs.reshape(-1, 4, 24))[:, 0].reshape(6, 4).mean(1)
        f0 = model(torch.zeros_like(x))[:, 0]
    # ours: hypothetical map, score at the observed base
    total = (result.attributions["deeplift_shap"].double() * x).sum((1, 2))
    np.testing.assert_allclose(_values(result, "deeplift_shap", "convergence_delta"),
                               (total - (fx - fr)).abs().numpy(), atol=1e-5)
    assert _values(result, "deeplift_shap", "convergence_delta").max() < 1e-5
    # IG from shuffles: a contribution map, summed over all four bases
    total = result.attributions["ig_shuffle"].double().sum((1, 2))
    np.testing.assert_allclose(_values(result, "ig_shuffle", "convergence_delta"),
                               (total - (fx - fr)).abs().numpy(), atol=1e-5)
    # the correction breaks completeness from the all-zero reference (x - 0 is off-simplex)
    total = result.attributions["ig_zero_corrected"].double().sum((1, 2))
    np.testing.assert_allclose(_values(result, "ig_zero_corrected", "convergence_delta"),
                               (total - (fx - f0)).abs().numpy(), atol=1e-5)
    assert "convergence_delta" not in set(result.frame[result.frame.method == "saliency"].metric)


def test_ground_truth_metrics_equal_sklearn(study):
    _, x, truth, result = study
    for method, hypothetical in (("saliency", True), ("ig_shuffle", False)):
        attr = result.attributions[method].double()
        scores = (attr * x).sum(1) if hypothetical else attr.sum(1)
        auroc = [roc_auc_score(truth.mask[i].numpy(), scores[i].numpy()) for i in range(6)]
        aupr = [average_precision_score(truth.mask[i].numpy(), scores[i].numpy())
                for i in range(6)]
        np.testing.assert_allclose(_values(result, method, "auroc"), auroc, atol=1e-6)
        np.testing.assert_allclose(_values(result, method, "aupr"), aupr, atol=1e-6)
    # PWM cosine of the raw map, per masked position, averaged
    attr = result.attributions["saliency"].double()
    expect = []
    for i in range(6):
        cols = [torch.nn.functional.cosine_similarity(attr[i, :, p], truth.pwm[i, :, p].double(),
                                                      dim=0).item() for p in range(8, 14)]
        expect.append(np.mean(cols))
    np.testing.assert_allclose(_values(result, "saliency", "pwm_cosine"), expect, atol=1e-5)


def test_agreement_equals_scipy(study):
    _, x, _, result = study
    a = (result.attributions["deeplift_shap"].double() * x).sum(1)
    b = result.attributions["ig_shuffle"].double().sum(1)
    rows = result.agreement[(result.agreement.method_a == "deeplift_shap")
                            & (result.agreement.method_b == "ig_shuffle")]
    rho = rows[rows.metric == "spearman"].sort_values("example")["value"].to_numpy()
    np.testing.assert_allclose(rho, [spearmanr(a[i], b[i])[0] for i in range(6)], atol=1e-6)


def test_off_simplex_angle_is_reported_for_corrected_methods(study):
    _, x, _, result = study
    sal = result.attributions["saliency"].double()
    norm = sal.norm(dim=1)
    angle = torch.rad2deg(torch.asin((sal.sum(1).abs() / (2 * norm)).clamp(0, 1)))
    np.testing.assert_allclose(_values(result, "saliency_corrected", "off_simplex_angle"),
                               angle.mean(1).numpy(), atol=1e-3)
    assert "off_simplex_angle" not in set(result.frame[result.frame.method == "saliency"].metric)


def test_randomization_and_summary(study):
    _, _, _, result = study
    assert set(result.randomization.method) == set(result.methods)
    steps = sorted(set(result.randomization.step))
    assert steps == [0, 1, 2]  # conv and linear layers, top down
    assert result.flagged == []  # every method here depends on the weights
    summary = result.summary()
    assert list(summary.index) == result.methods
    assert summary.loc["deeplift_shap", "auroc"] == pytest.approx(
        np.median(_values(result, "deeplift_shap", "auroc")))
    assert result.metadata["n_references"] == 4 and result.metadata["cpu"]


def test_model_and_inputs_unchanged_and_deterministic(study):
    model, x, truth, result = study
    state = copy.deepcopy(model.state_dict())
    x0 = x.clone()
    again = compare(["deeplift_shap", "saliency", "ig_shuffle"], model, x, ground_truth=truth,
                    n_references=4, ig_steps=64, randomization=False, random_state=3)
    for name in again.methods:
        assert torch.equal(again.attributions[name], result.attributions[name])
    assert torch.equal(x, x0)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    assert not model._forward_hooks and not model._forward_pre_hooks


def test_user_methods_attribution_and_callable_are_run_and_randomized(study):
    model, x, truth, _ = study
    calls = []

    def mine(m, inputs, target):
        calls.append(m)
        return InputXGradient(m).attribute(inputs.clone())

    result = compare({"gxi": InputXGradient(model), "mine": mine}, model, x,
                     ground_truth=truth.mask, randomization_examples=2)
    torch.testing.assert_close(result.attributions["gxi"], result.attributions["mine"])
    assert "pwm_cosine" not in set(result.frame.metric)  # a bare mask has no PWM
    assert len(calls) >= 1 + 1 + 3  # warm-up, study, three randomisation steps
    assert calls[-1] is not model  # randomised copies, never the user's model
    assert set(result.randomization.method) == {"gxi", "mine"}


def test_later_failure_is_kept_as_note_first_failure_raises(study):
    model, x, _, _ = study

    def wrong_shape(m, inputs, target):
        return inputs[:, :2]

    with pytest.warns(ComparisonWarning, match="'bad'.*shaped like `inputs`"):
        result = compare([("saliency", None), ("bad", wrong_shape)], model, x,
                         randomization=False)
    assert result.methods == ["saliency"]
    assert "'bad'" in result.metadata["notes"][0]
    with pytest.raises(ValueError, match=r"methods\['bad'\].*\(6, 4, 24\).*\(6, 2, 24\)"):
        compare({"bad": wrong_shape}, model, x, randomization=False)


def _bad_cases():
    x = random_one_hot(3, 20, torch.Generator().manual_seed(0)).double()
    model = _model()
    train = _model().train()
    train.append(torch.nn.Dropout(0.5))
    return [
        (dict(methods=["nope"], model=model, inputs=x), ValueError, "unknown method 'nope'"),
        (dict(methods=[], model=model, inputs=x), ValueError, "`methods` is empty"),
        (dict(methods=[3], model=model, inputs=x), TypeError, "`methods`"),
        (dict(methods={"u": 3}, model=model, inputs=x), TypeError, r"methods\['u'\]"),
        (dict(methods=["saliency", "saliency"], model=model, inputs=x), ValueError, "twice"),
        (dict(methods=["saliency"], model=train, inputs=x), ValueError, "training mode"),
        (dict(methods=["saliency"], model=model, inputs=x[:, :3]), ValueError, r"\(N, 4, L\)"),
        (dict(methods=["saliency"], model=model, inputs=x * 2), ValueError, "one-hot"),
        (dict(methods=["saliency"], model=model, inputs=x,
              ground_truth=torch.zeros(3, 19, dtype=torch.bool)), ValueError,
         r"ground_truth.*\(3, 20\).*\(3, 19\)"),
        (dict(methods=["saliency"], model=model, inputs=x,
              ground_truth=torch.zeros(3, 20)), TypeError, "bool"),
        (dict(methods=["saliency"], model=model, inputs=x,
              references=torch.zeros(3, 2, 4, 21)), ValueError, "references"),
        (dict(methods=["saliency"], model=model, inputs=x, batch_size=0), ValueError,
         "batch_size"),
        (dict(methods=["saliency"], model=None, inputs=x), TypeError, "`model`"),
    ]


@pytest.mark.parametrize("kwargs, error, match", _bad_cases())
def test_bad_input_names_the_argument(kwargs, error, match):
    methods = kwargs.pop("methods")
    with pytest.raises(error, match=match):
        compare(methods, **kwargs)


def test_builtin_names_cover_the_issue_methods():
    names = set(builtin_methods())
    for name in ("deeplift_shap", "saliency", "grad_x_input", "ig_zero", "ig_shuffle",
                 "gradient_shap", "ism", "captum_deeplift_shap", "saliency_corrected"):
        assert name in names


def test_peers_agree_with_ours_and_see_a_copy():
    pytest.importorskip("tangermeme")
    x = random_one_hot(3, 24, torch.Generator().manual_seed(2)).double()
    model = _model(1)
    state = copy.deepcopy(model.state_dict())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = compare(["deeplift_shap", "tangermeme_deep_lift_shap"], model, x,
                         n_references=3, randomization=False)
    torch.testing.assert_close(result.attributions["deeplift_shap"],
                               result.attributions["tangermeme_deep_lift_shap"],
                               atol=1e-5, rtol=1e-5)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    frame = result.frame
    assert isinstance(frame, pd.DataFrame) and str(frame.example.dtype) == "Int64"


def test_gradient_shap_is_seeded_and_leaves_the_global_rngs_alone(study):
    model, x, _, _ = study
    np.random.seed(123)
    torch.manual_seed(5)
    np_state, torch_state = np.random.get_state()[1].copy(), torch.get_rng_state()
    runs = [compare(["gradient_shap", "gradient_shap_corrected"], model, x, n_references=3,
                    randomization=False, random_state=7) for _ in range(2)]
    for name in runs[0].methods:
        assert torch.equal(runs[0].attributions[name], runs[1].attributions[name])
    assert (np.random.get_state()[1] == np_state).all()
    assert torch.equal(torch.get_rng_state(), torch_state)
    other = compare(["gradient_shap"], model, x, n_references=3, randomization=False,
                    random_state=8)
    assert not torch.equal(other.attributions["gradient_shap"],
                           runs[0].attributions["gradient_shap"])
