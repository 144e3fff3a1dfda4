"""The head-ablation API's old ``progress`` keyword, kept for one release as ``show_progress``.

Passing ``progress`` warns (``DeprecationWarning`` naming ``show_progress``,
pointing at the caller) and gives the same results as ``show_progress``;
passing both with different values is a ``TypeError``.
"""

from __future__ import annotations

import warnings

import pandas as pd
import pytest
import torch

from captum_genomics.heads import (
    MultiheadAttentionAdapter,
    ablated_forward,
    keep_masks,
)
from captum_genomics.methods import HeadAblationExplainedVariance
from captum_genomics.workflows.head_ablation_pbmc import (
    run_head_ablation_job,
    run_head_ablation_on_data,
)
from head_models import NeighbourModel

DT = torch.float64
pytestmark = pytest.mark.usefixtures("one_thread")


def _data(n=24, k=4, genes=6, types=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    nb = torch.randn(n, k, genes, generator=g, dtype=DT)
    ct = torch.arange(n) % types
    obs = torch.randn(n, genes, generator=g, dtype=DT)
    return nb, ct, obs


def _deprecations(record) -> list:
    return [w for w in record if issubclass(w.category, DeprecationWarning)
            and "`progress`" in str(w.message)]


def _check_warning(record) -> None:
    found = _deprecations(record)
    assert len(found) == 1
    assert "show_progress" in str(found[0].message)
    assert found[0].filename == __file__


# ----------------------------------------------------------------------------- ablated_forward
@pytest.mark.parametrize("value", [False, True])
def test_ablated_forward_progress_warns_same_result(value):
    model = NeighbourModel()
    nb, ct, _ = _data()
    adapter = MultiheadAttentionAdapter(model.attention, "attention")
    keep = keep_masks([4], [(0, h) for h in range(4)])
    expected = ablated_forward(model, [adapter], keep, (nb, ct), batch_size=7,
                               show_progress=value)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        got = ablated_forward(model, [adapter], keep, (nb, ct), batch_size=7, progress=value)
    _check_warning(record)
    assert torch.equal(got, expected)


def test_ablated_forward_show_progress_does_not_warn():
    model = NeighbourModel()
    nb, ct, _ = _data()
    adapter = MultiheadAttentionAdapter(model.attention, "attention")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        ablated_forward(model, [adapter], keep_masks([4], [(0, 1)]), (nb, ct),
                        show_progress=False)
    assert not _deprecations(record)


def test_ablated_forward_both_keywords_differ():
    model = NeighbourModel()
    nb, ct, _ = _data()
    adapter = MultiheadAttentionAdapter(model.attention, "attention")
    with pytest.raises(TypeError, match="show_progress"):
        ablated_forward(model, [adapter], keep_masks([4], [(0, 1)]), (nb, ct),
                        show_progress=True, progress=False)


# ----------------------------------------------------------------------------- attribute
def test_attribute_progress_warns_same_result():
    model = NeighbourModel()
    nb, ct, obs = _data()
    explainer = HeadAblationExplainedVariance(model, "attention")
    expected = explainer.attribute((nb, ct), ct, obs, n_permutations=20, batch_size=10,
                                   show_progress=False)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        got = explainer.attribute((nb, ct), ct, obs, n_permutations=20, batch_size=10,
                                  progress=False)
    _check_warning(record)
    pd.testing.assert_frame_equal(got.to_frame(), expected.to_frame())
    pd.testing.assert_frame_equal(got.head_table(), expected.head_table())
    torch.testing.assert_close(got.full_ev_gene, expected.full_ev_gene, rtol=0, atol=0,
                               equal_nan=True)


def test_attribute_both_keywords_differ():
    model = NeighbourModel()
    nb, ct, obs = _data()
    explainer = HeadAblationExplainedVariance(model, "attention")
    with pytest.raises(TypeError, match="show_progress"):
        explainer.attribute((nb, ct), ct, obs, n_permutations=20, show_progress=True,
                            progress=False)


# ----------------------------------------------------------------------------- workflows
def test_run_on_data_progress_warns_same_result(tmp_path):
    model = NeighbourModel()
    nb, ct, obs = _data()
    kw = dict(n_permutations=20, plot=False, verbose=False)
    expected = run_head_ablation_on_data(model, (nb, ct), ct, obs, tmp_path / "new",
                                         show_progress=False, **kw)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        got = run_head_ablation_on_data(model, (nb, ct), ct, obs, tmp_path / "old",
                                        progress=False, **kw)
    _check_warning(record)
    for name in ("ev_table.csv", "head_table.csv"):
        assert (tmp_path / "old" / name).read_bytes() == (tmp_path / "new" / name).read_bytes()
    assert got["head_table"] == expected["head_table"]
    with pytest.raises(TypeError, match="show_progress"):
        run_head_ablation_on_data(model, (nb, ct), ct, obs, tmp_path / "both",
                                  show_progress=True, progress=False, **kw)


def test_run_job_both_keywords_differ(tmp_path):
    with pytest.raises(TypeError, match="show_progress"):
        run_head_ablation_job(tmp_path, show_progress=True, progress=False)
    assert not (tmp_path / "ev_table.csv").exists()


def test_run_job_progress_warns_same_result(tmp_path):
    pytest.importorskip("scanpy")
    kw = dict(cells="test", n_permutations=10, plot=False, verbose=False)
    expected = run_head_ablation_job(tmp_path / "new", show_progress=False, **kw)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        got = run_head_ablation_job(tmp_path / "old", progress=False, **kw)
    _check_warning(record)
    for name in ("ev_table.csv", "head_table.csv"):
        assert (tmp_path / "old" / name).read_bytes() == (tmp_path / "new" / name).read_bytes()
    assert got["head_table"] == expected["head_table"]
