"""FastSHAP.attribute vs Captum ShapleyValueSampling vs KernelShap on the same cells.

PBMC 68k reduced, 200 HVGs, the study's MLP classifier (see
:mod:`fastshap_protocol`), predicted-class probability, zero baselines, 20
held-out cells per call. FastSHAP is trained briefly here: its speed does not
depend on how long it was trained. Its accuracy is measured by
``fastshap_vs_sampling.py``: trained for 400 epochs, it matches about 19 permutations
of ShapleyValueSampling on held-out cells, so compare with the 16 and 32 rows. Divide
a call's time by 20 for seconds per cell.

Run: ``pytest benchmarks/test_fastshap_speed.py --benchmark-group-by=group``.
"""

import pytest
import torch

pytest.importorskip("scanpy", reason="scanpy is needed for the PBMC 68k data set")

import fastshap_protocol as P  # noqa: E402

from captum_genomics.methods.fast_shap import FastSHAP  # noqa: E402

N = 20
GROUP = "fastshap-pbmc-200genes-20cells"


@pytest.fixture(scope="module")
def study():
    torch.set_num_threads(1)
    setup = P.make_setup()
    fs = FastSHAP.fit(setup.model, setup.x[setup.train_idx], setup.x_explain, link="softmax",
                      explainer_kwargs={"hidden_width": 512, "n_hidden_layers": 2},
                      train_kwargs={"n_samples": 8, "max_epochs": 1})
    return setup, fs, setup.x_explain[:N], setup.target[:N]


@pytest.mark.benchmark(group=GROUP)
def test_fastshap(benchmark, study):
    _, fs, x, t = study
    benchmark.pedantic(fs.attribute, args=(x,), kwargs={"target": t}, rounds=20,
                       warmup_rounds=2)


@pytest.mark.benchmark(group=GROUP)
@pytest.mark.parametrize("permutations", [1, 2, 16, 32])
def test_shapley_value_sampling(benchmark, study, permutations):
    setup, _, x, t = study
    benchmark.pedantic(P.svs, args=(setup, x, t, permutations, 0), rounds=5, warmup_rounds=1)


@pytest.mark.benchmark(group=GROUP)
@pytest.mark.parametrize("n_samples", [300, 1000])
def test_kernel_shap(benchmark, study, n_samples):
    setup, _, x, t = study
    benchmark.pedantic(P.kernel_shap, args=(setup, x[:4], t[:4], n_samples, 0), rounds=2,
                       warmup_rounds=0)
    benchmark.extra_info["cells"] = 4  # KernelShap runs one cell at a time: 4 cells, not 20
