"""The pytest plugin of the correctness gate (entry point ``pytest11: captum_genomics``).

Installed with the package, it adds the ``--cg-*`` options to every pytest run,
so that the suite in :mod:`captum_genomics.testing` runs on *your* model from
any directory::

    pytest --pyargs captum_genomics.testing --cg-model mymodels.py:build --cg-input-length 1000

It imports nothing but pytest's own API when it loads (no torch, no
captum_genomics submodule): the suite's ``conftest.py`` reads the options
when its tests run. Without ``--cg-model`` the suite runs on the built-in
models (this project's CI).
"""

from __future__ import annotations

__all__ = ["pytest_addoption", "pytest_configure", "OPTIONS"]

OPTIONS = (
    "--cg-model", "--cg-weights", "--cg-method", "--cg-input-length", "--cg-target",
    "--cg-device", "--cg-dtype", "--cg-baseline", "--cg-update-baseline", "--cg-atol",
    "--cg-n-examples", "--cg-n-references", "--cg-threads",
)
"""Every option the plugin adds."""


def pytest_addoption(parser) -> None:
    """Add the ``--cg-*`` options in one group, ``captum-genomics gate``."""
    group = parser.getgroup("captum-genomics gate",
                            "run captum-genomics' correctness gate on your model")
    group.addoption("--cg-model", default=None, metavar="MODULE_OR_FILE:NAME",
                    help="The model to check: 'pkg.module:name' or 'path/to/file.py:name', "
                         "naming an nn.Module or a callable returning one (called without "
                         "arguments). Default: the built-in models.")
    group.addoption("--cg-weights", default=None, metavar="PATH",
                    help="A state dict for --cg-model (torch.save; a checkpoint dict holding "
                         "it under 'state_dict' or 'model_state_dict' also works).")
    group.addoption("--cg-method", default="ShuffleDeepLiftShap", metavar="METHOD",
                    help="The attribution method under test (default ShuffleDeepLiftShap); a "
                         "peer such as captum:DeepLiftShap runs the completeness checks on "
                         "the peer.")
    group.addoption("--cg-input-length", type=int, default=None, metavar="L",
                    help="Sequence length the model takes (required with --cg-model).")
    group.addoption("--cg-target", default=None, metavar="T",
                    help="Output to explain: an int (output[:, T]), a comma-separated tuple "
                         "'T,P' for outputs (B, T, P), or 'none' for an output (B,). "
                         "Default: 0, or none for a (B,) output.")
    group.addoption("--cg-device", default="cpu", choices=("cpu", "cuda"),
                    help="Device of the gate's checks (default cpu); cuda also compares "
                         "with the CPU results.")
    group.addoption("--cg-dtype", default="float64", choices=("float64", "float32"),
                    help="Cast the model to this dtype (default float64, where additivity "
                         "is checked to 1e-10).")
    group.addoption("--cg-baseline", default=None, metavar="DIR",
                    help="Compare the attributions of fixed inputs with those stored in DIR "
                         "(drift between versions).")
    group.addoption("--cg-update-baseline", action="store_true", default=False,
                    help="Write (or rewrite) the baseline in --cg-baseline.")
    group.addoption("--cg-atol", type=float, default=None,
                    help="Additivity bound (default 1e-10 in float64, 1e-4 in float32).")
    group.addoption("--cg-n-examples", type=int, default=2,
                    help="Largest N of a drawn batch for --cg-model (default 2).")
    group.addoption("--cg-n-references", type=int, default=3,
                    help="Largest K of a drawn batch for --cg-model (default 3).")
    group.addoption("--cg-threads", type=int, default=None,
                    help="torch.set_num_threads for the suite. Default: 1 for the built-in "
                         "models, torch's default with --cg-model.")


def pytest_configure(config) -> None:
    """Register the suite's markers, so that runs outside this repository know them."""
    for line in (
        "builtin: runs on the built-in models only (skipped with --cg-model)",
        "cuda: needs a CUDA device",
        "slow: long studies, run with -m slow",
        "cases(tangermeme=, captum=, bitwise=, names=): restrict the `case` fixture to "
        "catalog models",
    ):
        config.addinivalue_line("markers", line)
