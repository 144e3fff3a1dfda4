"""DeepLIFT/SHAP on transformers: ours vs tangermeme vs Captum, correctness and speed, one run.

Models (eval mode):

- **ctcf_transformer**: :class:`captum_genomics.zoo.ctcf_transformer.CTCFTransformer`
  (conv stem, two pre-norm ``nn.TransformerEncoderLayer`` blocks, d_model 32,
  4 heads, GELU feed-forward), with the shipped weights
  (``load_ctcf_transformer()``, ``--weights shipped``, the default) or the
  ``torch.manual_seed(0)`` initialisation (``--weights random``). Shipped
  weights that are missing are an error, never a silent fallback.
- **mha**: a conv stem (``Conv1d`` + ``nn.ReLU`` + ``AvgPool1d``), one
  ``nn.MultiheadAttention`` (32 wide, 4 heads) and a linear read-out of the
  mean token, ``torch.manual_seed(0)`` initialisation. The pool is an average
  (linear) so that every tool is exact outside the attention: a peer's delta
  on this model is the attention's alone.

Inputs: the first ``--n`` held-out CTCF peaks (``ctcf_split()["test"]`` of
``load_ctcf_peaks()``, 200 bp); references: ``--k`` uniform dinucleotide
shuffles of each (``captum_genomics.references.dinucleotide_shuffle``,
``random_state=0``), the same tensors for every method.

Methods:

- ``ours``: ``ShuffleDeepLiftShap(model).attribute(x, references=refs, target=0)``;
  ``ours_pairs`` (timing only): the same with ``strategy="pairs"``.
- ``tangermeme``: ``tangermeme.deep_lift_shap.deep_lift_shap(model, x,
  references=refs)`` on the model as it is.
- ``tangermeme_ig_op``: the same with ``additional_nonlinear_ops={
  nn.TransformerEncoderLayer: integrated_gradients_op(8)}``, tangermeme's
  documented way to attribute a module it has no rule for (local integrated
  gradients over each encoder layer, 8 Gauss-Legendre nodes). On the ``mha``
  model the module is ``nn.MultiheadAttention``.
- ``tangermeme_rewritten``: ``deep_lift_shap`` on the same weights written
  with the modules tangermeme hooks: ``BilinearOp`` for ``q k^T`` and
  ``softmax(.) v``, ``nn.Softmax``, ``nn.GELU``, the layers' own
  ``nn.LayerNorm`` and linears (:class:`RewrittenCTCFTransformer`,
  :class:`RewrittenMHANet`; forward equal to the original to ~1e-16 in
  float64).
- ``captum``: Captum's ``DeepLiftShap(model).attribute(x[i:i+1],
  baselines=refs[i], target=0)``, one call per example (its baselines are
  shared by the batch, so per-example references need one call each).
- ``plain_fwd_bwd``: an ordinary forward and backward of the same pairs
  (timing only, for scale).

Measured in one run: pairs/s (example-reference pairs per second; median of
``--rounds`` interleaved timed runs after one warm-up, float32, 32 pairs per
batch where the method batches pairs; the process CPU time of the same runs is
recorded too, as it is less sensitive to other load on a shared machine);
per-pair convergence deltas ``sum(m (x - r)) - (f(x) - f(r))`` (median and max
``|delta|``, and both over the median ``|f(x) - f(r)|``) in float32 and
float64; the warnings each method emits with its default settings; agreement of
each method with ours on the per-position contributions
``mean_k sum_a m (x - r)`` (a quantity that does not depend on how a tool
spreads a position's contribution over the four bases): Pearson r and max abs
difference. tangermeme's deltas and contributions come from its multipliers
(``raw_outputs=True``); its default output summed over the bases is the same
per-position contribution.

Writes ``benchmarks/results/transformer_vs_peers_cpu<threads>.json`` (with
``--weights random``: ``transformer_vs_peers_random_cpu<threads>.json``),
atomically.

Usage::

    python benchmarks/transformer_vs_peers.py [--weights {shipped,random}] [--n 8] [--k 20]
        [--rounds 7] [--threads 2] [--out benchmarks/results]

The same timings under pytest-benchmark: ``benchmarks/test_transformer_speed.py``.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import math
import os
import platform
import re
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch
import torch.nn.functional as F
from _deeplift_setup import BATCH, plain_forward_backward
from torch import nn
from _env import cpu_model  # noqa: E402  (one copy for every benchmark)

IG_NODES = 8
LENGTH = 200


# ----------------------------------------------------------------------------- models


def load_transformer(weights: str) -> nn.Module:
    """The CTCF transformer in eval mode, float32: shipped weights or the seed-0 init."""
    from captum_genomics.zoo.ctcf_transformer import CTCFTransformer

    if weights == "random":
        torch.manual_seed(0)
        return CTCFTransformer().eval()
    try:
        from captum_genomics.zoo.ctcf_transformer import load_ctcf_transformer
    except ImportError:
        raise SystemExit(
            "--weights shipped: captum_genomics.zoo.ctcf_transformer has no "
            "load_ctcf_transformer() yet (the trained weights are not shipped); pass "
            "--weights random to benchmark the seed-0 initialisation.") from None
    try:
        model = load_ctcf_transformer()
    except FileNotFoundError as err:
        raise SystemExit(
            f"--weights shipped: the trained weights are missing ({err}); pass --weights random "
            "to benchmark the seed-0 initialisation.") from None
    return model.float().eval()


class MHANet(nn.Module):
    """Conv1d(4, 32, 15) + ReLU + AvgPool1d(4) + nn.MultiheadAttention(32, 4) + mean + Linear."""

    def __init__(self, d_model: int = 32, n_heads: int = 4):
        super().__init__()
        self.conv = nn.Conv1d(4, d_model, 15, padding="same")
        self.act = nn.ReLU()
        self.pool = nn.AvgPool1d(4)
        self.attn = nn.MultiheadAttention(d_model, n_heads, batch_first=True)
        self.linear = nn.Linear(d_model, 1)

    def forward(self, x):
        h = self.pool(self.act(self.conv(x))).transpose(1, 2)
        return self.linear(self.attn(h, h, h, need_weights=False)[0].mean(1))


def load_mha() -> nn.Module:
    torch.manual_seed(0)
    return MHANet().eval()


def _bilinear_op():
    from tangermeme.deep_lift_shap import BilinearOp

    return BilinearOp()


class _AttentionOps(nn.Module):
    """The modules tangermeme hooks inside one attention block (none has parameters)."""

    def __init__(self):
        super().__init__()
        self.scores = _bilinear_op()      # q k^T
        self.mix = _bilinear_op()         # softmax(.) v
        self.softmax = nn.Softmax(dim=-1)
        self.act = nn.GELU()              # the feed-forward's activation (F.gelu in torch)

    def attention(self, mha: nn.MultiheadAttention, h):
        """``nn.MultiheadAttention(h, h, h)[0]`` (batch first, no masks) written out."""
        n, t, e = h.shape
        heads = mha.num_heads
        d = e // heads
        qkv = F.linear(h, mha.in_proj_weight, mha.in_proj_bias)
        q, k, v = (u.reshape(n, t, heads, d).transpose(1, 2) for u in qkv.chunk(3, -1))
        w = self.softmax(self.scores(q / math.sqrt(d), k.transpose(-2, -1)))
        return mha.out_proj(self.mix(w, v).transpose(1, 2).reshape(n, t, e))


class RewrittenCTCFTransformer(nn.Module):
    """A :class:`CTCFTransformer`'s forward from modules tangermeme has rules for.

    Holds the original model (its parameters are used as they are) and one
    :class:`_AttentionOps` per encoder layer. The layers must be pre-norm
    (``norm_first=True``), batch first, GELU, in eval mode, as in the zoo model.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.ops = nn.ModuleList(_AttentionOps() for _ in model.encoder.layers)

    def forward(self, x):
        m = self.model
        h = m.pool(m.act(m.conv(x))).transpose(1, 2)
        h = h + m.positions[: h.shape[1]].to(h.dtype)
        for ops, layer in zip(self.ops, m.encoder.layers):
            h = h + ops.attention(layer.self_attn, layer.norm1(h))
            h = h + layer.linear2(ops.act(layer.linear1(layer.norm2(h))))
        return m.linear(m.norm(h).mean(1))


class RewrittenMHANet(nn.Module):
    """:class:`MHANet`'s forward with the attention written out (tangermeme-hookable)."""

    def __init__(self, model: MHANet):
        super().__init__()
        self.model = model
        self.ops = _AttentionOps()

    def forward(self, x):
        m = self.model
        h = m.pool(m.act(m.conv(x))).transpose(1, 2)
        return m.linear(self.ops.attention(m.attn, h).mean(1))


REWRITE = {"ctcf_transformer": RewrittenCTCFTransformer, "mha": RewrittenMHANet}
IG_MODULE = {"ctcf_transformer": nn.TransformerEncoderLayer, "mha": nn.MultiheadAttention}
DESCRIPTION = {
    "ctcf_transformer": "captum_genomics.zoo.ctcf_transformer.CTCFTransformer (conv stem, 2 "
                        "pre-norm nn.TransformerEncoderLayer, d_model 32, 4 heads, GELU)",
    "mha": "MHANet: Conv1d(4,32,15)+ReLU+AvgPool1d(4)+nn.MultiheadAttention(32, 4 heads)+mean+"
           "Linear, torch.manual_seed(0) init",
}


# ----------------------------------------------------------------------------- data


def make_inputs(n: int, k: int, dtype=torch.float32):
    """The first ``n`` held-out CTCF peaks ``(n, 4, 200)`` and ``k`` shuffles each."""
    from captum_genomics.references import dinucleotide_shuffle
    from captum_genomics.seq.datasets import load_ctcf_peaks
    from captum_genomics.zoo.ctcf import ctcf_split

    test = ctcf_split()["test"]
    if n > len(test):
        raise SystemExit(f"--n {n}: only {len(test)} held-out peaks.")
    x = load_ctcf_peaks(dtype).one_hot[torch.as_tensor(test[:n])]
    return x, dinucleotide_shuffle(x, k, random_state=0)


# ----------------------------------------------------------------------------- methods
# Each timed function is the ordinary call a user makes (warnings silenced). Each
# `full_*` function returns the multipliers or attributions needed for the checks.


def ours(model, x, refs):
    from captum_genomics import ShuffleDeepLiftShap

    return ShuffleDeepLiftShap(model).attribute(x, references=refs, target=0, batch_size=BATCH,
                                                warning_threshold=float("inf"))


def ours_pairs(model, x, refs):
    """Ours with ``strategy="pairs"`` (one row per pair, one backward per batch)."""
    from captum_genomics import ShuffleDeepLiftShap

    return ShuffleDeepLiftShap(model).attribute(x, references=refs, target=0, batch_size=BATCH,
                                                warning_threshold=float("inf"), strategy="pairs")


def tangermeme(model, x, refs, **kwargs):
    from tangermeme.deep_lift_shap import deep_lift_shap

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return deep_lift_shap(model, x, target=0, references=refs, batch_size=BATCH,
                              device="cpu", warning_threshold=float("inf"), **kwargs)


def _ig_ops(module_type):
    from tangermeme.deep_lift_shap import integrated_gradients_op

    return {module_type: integrated_gradients_op(IG_NODES)}


def captum_deeplift_shap(model, x, refs, return_convergence_delta=False, quiet=True):
    from captum.attr import DeepLiftShap

    out = []
    with warnings.catch_warnings():
        if quiet:
            warnings.simplefilter("ignore")
        for i in range(x.shape[0]):
            out.append(DeepLiftShap(model).attribute(
                x[i:i + 1], baselines=refs[i], target=0,
                return_convergence_delta=return_convergence_delta))
    if not return_convergence_delta:
        return torch.cat(out)
    return torch.cat([a for a, _ in out]), torch.stack([d for _, d in out])


def method_table(name: str, model: nn.Module) -> dict[str, tuple[nn.Module, Callable]]:
    """``{method: (model it runs on, timed call(model, x, refs))}``."""
    ig = _ig_ops(IG_MODULE[name])
    return {
        "ours": (model, ours),
        "ours_pairs": (model, ours_pairs),
        "tangermeme": (model, tangermeme),
        "tangermeme_ig_op": (model, lambda m, x, r: tangermeme(
            m, x, r, additional_nonlinear_ops=ig)),
        "tangermeme_rewritten": (REWRITE[name](model).eval(), tangermeme),
        "captum": (model, captum_deeplift_shap),
        "plain_fwd_bwd": (model, plain_forward_backward),
    }


def _outputs(model, x, refs):
    with torch.no_grad():
        fx = model(x)[:, 0]
        fr = model(refs.reshape(-1, *refs.shape[2:]))[:, 0].reshape(refs.shape[:2])
    return fx, fr


def full_run(method: str, name: str, model: nn.Module, x, refs):
    """``(per-position contributions (N, L), per-pair deltas (N, K))`` of one method,
    with default warning settings (warnings are recorded by the caller)."""
    from tangermeme.deep_lift_shap import deep_lift_shap

    from captum_genomics import ShuffleDeepLiftShap

    if method == "ours":
        attr, delta = ShuffleDeepLiftShap(model).attribute(
            x, references=refs, target=0, batch_size=BATCH, return_convergence_delta=True)
        return attr.sum(1), delta
    if method == "captum":
        attr, delta = captum_deeplift_shap(model, x, refs, return_convergence_delta=True,
                                           quiet=False)
        return attr.sum(1), delta.reshape(refs.shape[:2])
    kwargs = {"additional_nonlinear_ops": _ig_ops(IG_MODULE[name])} \
        if method == "tangermeme_ig_op" else {}
    mult = deep_lift_shap(model, x, target=0, references=refs, batch_size=BATCH, device="cpu",
                          raw_outputs=True, **kwargs)
    pair = mult * (x[:, None] - refs)                     # (N, K, 4, L)
    fx, fr = _outputs(model, x, refs)
    delta = pair.sum((2, 3)) - (fx[:, None] - fr)
    return pair.sum(2).mean(1), delta


# ----------------------------------------------------------------------------- measuring


def _time_interleaved(calls: dict[str, Callable], rounds: int):
    """One warm-up each, then ``rounds`` rounds, every call once per round.

    Returns wall-clock and process CPU seconds, ``{name: [seconds per round]}`` each (the
    CPU time is less sensitive to other processes on a shared machine)."""
    for fn in calls.values():
        fn()
    wall = {k: [] for k in calls}
    cpu = {k: [] for k in calls}
    for _ in range(rounds):  # interleaved so that machine noise hits all alike
        for key, fn in calls.items():
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            wall[key].append(time.perf_counter() - t0)
            cpu[key].append(time.process_time() - c0)
    return wall, cpu


def _summarise_warnings(caught) -> list[dict]:
    """Distinct warnings (numbers masked to ``#``), with counts and one full example."""
    table: dict[tuple[str, str], dict] = {}
    for w in caught:
        text = str(w.message)
        first = " ".join(text.split())
        masked = re.sub(r"tensor\(.*", "tensor(...)", first)
        key = (w.category.__name__, re.sub(r"\d+(\.\d+)?(e[-+]?\d+)?", "#", masked))
        row = table.setdefault(key, {"category": key[0], "message": key[1], "count": 0,
                                     "example": first[:300]})
        row["count"] += 1
    return list(table.values())


def _delta_stats(delta, scale) -> dict:
    d = delta.detach().abs().double().reshape(-1)
    med, mx = float(d.median()), float(d.max())
    return {"median_abs_delta": med, "max_abs_delta": mx,
            "median_abs_delta_over_median_abs_output_diff": med / scale,
            "max_abs_delta_over_median_abs_output_diff": mx / scale}


def _agreement(ours_pos, other_pos) -> dict:
    a, b = (t.detach().double().reshape(-1) for t in (ours_pos, other_pos))
    r = float(torch.corrcoef(torch.stack([a, b]))[0, 1])
    return {"pearson_r": r, "max_abs_diff": float((a - b).abs().max()),
            "max_abs_ours": float(a.abs().max())}


def correctness(name: str, model32: nn.Module, x32, refs32) -> dict:
    """Deltas, warnings and agreement with ours, float32 and float64."""
    out = {}
    for dtype in (torch.float32, torch.float64):
        model = copy.deepcopy(model32).to(dtype).eval()
        x, refs = x32.to(dtype), refs32.to(dtype)
        fx, fr = _outputs(model, x, refs)
        scale = float((fx[:, None] - fr).abs().median())
        rows, positions = {}, {}
        for method, (m, _) in method_table(name, model).items():
            if method in ("plain_fwd_bwd", "ours_pairs"):
                continue
            t0 = time.perf_counter()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    pos, delta = full_run(method, name, m, x, refs)
                except (AttributeError, NotImplementedError, RuntimeError, TypeError,
                        ValueError) as err:  # a peer that cannot run the model: record it
                    rows[method] = {"error": f"{type(err).__name__}: {err}"[:400]}
                    continue
            positions[method] = pos
            rows[method] = {**_delta_stats(delta, scale), "warnings": _summarise_warnings(caught),
                            "seconds": round(time.perf_counter() - t0, 2)}
        for method, pos in positions.items():
            if method != "ours":
                rows[method]["agreement_with_ours"] = _agreement(positions["ours"], pos)
        out[str(dtype).replace("torch.", "")] = {
            "median_abs_output_diff": scale, "methods": rows}
    return out


def speed(name: str, model: nn.Module, x, refs, rounds: int, skip=()) -> dict:
    calls = {method: (lambda m=m, fn=fn: fn(m, x, refs))
             for method, (m, fn) in method_table(name, model).items() if method not in skip}
    wall, cpu = _time_interleaved(calls, rounds)
    pairs = x.shape[0] * refs.shape[1]
    med = {k: statistics.median(v) for k, v in wall.items()}
    best = {k: min(v) for k, v in wall.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    return {"pairs": pairs, "dtype": "float32",
            "seconds": {k: [round(t, 4) for t in v] for k, v in wall.items()},
            "median_seconds": med,
            "pairs_per_s": {k: pairs / v for k, v in med.items()},
            "time_over_ours": {k: v / med["ours"] for k, v in med.items()},
            "min_seconds": best,
            "min_time_over_ours": {k: v / best["ours"] for k, v in best.items()},
            "cpu_seconds": {k: [round(t, 4) for t in v] for k, v in cpu.items()},
            "cpu_time_over_ours": {k: v / med_cpu["ours"] for k, v in med_cpu.items()}}



def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", choices=("shipped", "random"), default="shipped",
                        help="CTCF transformer weights: the shipped trained ones (default; an "
                             "error if missing) or the torch.manual_seed(0) initialisation")
    parser.add_argument("--n", type=int, default=8, help="held-out peaks (default 8)")
    parser.add_argument("--k", type=int, default=20, help="shuffles per peak (default 20)")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds (default 7)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from captum_genomics._utils.files import write_bytes_atomic

    t_start = time.perf_counter()
    load_start = [round(v, 2) for v in os.getloadavg()]
    transformer = load_transformer(args.weights)
    x, refs = make_inputs(args.n, args.k)
    report = {
        "what": "DeepLIFT/SHAP on transformers: ShuffleDeepLiftShap vs tangermeme deep_lift_shap "
                "vs Captum DeepLiftShap, same inputs and references",
        "command": " ".join(["python benchmarks/transformer_vs_peers.py",
                             *(sys.argv[1:] if argv is None else argv)]),
        "date": datetime.date.today().isoformat(),
        "cpu_model": cpu_model(), "threads": args.threads, "cpu_count": os.cpu_count(),
        "torch": torch.__version__, "captum": _version("captum"),
        "tangermeme": _version("tangermeme"), "python": platform.python_version(),
        "weights": args.weights,
        "inputs": f"first {args.n} held-out CTCF peaks (ctcf_split()['test']), 200 bp",
        "n_examples": args.n, "references_per_example": args.k,
        "references": "captum_genomics.references.dinucleotide_shuffle(x, k, random_state=0)",
        "batch_pairs": BATCH, "timing_dtype": "float32", "rounds": args.rounds,
        "ig_op_nodes": IG_NODES, "models": {},
    }
    for name, model in (("ctcf_transformer", transformer), ("mha", load_mha())):
        rec = {"description": DESCRIPTION[name]}
        rec["correctness"] = correctness(name, model, x, refs)
        failed = {m for m, row in rec["correctness"]["float32"]["methods"].items()
                  if "error" in row}
        rec["speed"] = speed(name, model, x, refs, args.rounds, skip=failed)
        report["models"][name] = rec
        _print_model(name, rec)
    report["load_average_start"] = load_start
    report["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    report["wall_seconds"] = round(time.perf_counter() - t_start, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "transformer_vs_peers" + ("_random" if args.weights == "random" else "")
    path = args.out / f"{stem}_cpu{args.threads}.json"
    write_bytes_atomic(path, (json.dumps(report, indent=1) + "\n").encode("utf-8"))
    path.chmod(0o644)  # the temporary file is created 0600
    for name, rec in report["models"].items():
        print(f"\n{name} (median |f(x)-f(r)|: float32 "
              f"{rec['correctness']['float32']['median_abs_output_diff']:.3g})\n")
        print(markdown_table(rec))
    print(f"\n{report['cpu_model']}, {args.threads} threads, torch {torch.__version__}; "
          f"{report['wall_seconds']} s; wrote {path}")
    return report


def _warning_text(row: dict) -> str:
    if not row["warnings"]:
        return "none"
    return "; ".join(f"{w['count']}x {w['category']} \"{w['message'][:60]}...\""
                     for w in row["warnings"])


def _ratios(s: dict, method: str) -> str:
    return f"{s['time_over_ours'][method]:.2f}; {s['min_time_over_ours'][method]:.2f}"


def markdown_table(rec: dict) -> str:
    """The docs table of one model: speed, deltas (float32/float64), warnings, agreement."""
    s, c32, c64 = rec["speed"], rec["correctness"]["float32"], rec["correctness"]["float64"]
    header = ("| method | pairs/s | time / ours (median; min) | median / max \\|delta\\| float32 | "
              "median / max \\|delta\\| float64 | warnings (float32) | vs ours (float64): "
              "Pearson r, max \\|diff\\| |")
    lines = [header, "|---|---|---|---|---|---|---|"]
    for method in c32["methods"]:
        r32, r64 = c32["methods"][method], c64["methods"][method]
        if "error" in r32:
            lines.append(f"| {method} | - | - | {r32['error'][:80]} | | | |")
            continue
        speed = (f"{s['pairs_per_s'][method]:.0f} | {_ratios(s, method)}"
                 if method in s["pairs_per_s"] else "- | -")
        agree = r64.get("agreement_with_ours")
        agree = "-" if agree is None else \
            f"{agree['pearson_r']:.6f}, {agree['max_abs_diff']:.1e}"
        lines.append(f"| {method} | {speed} | {r32['median_abs_delta']:.1e} / "
                     f"{r32['max_abs_delta']:.1e} | {r64['median_abs_delta']:.1e} / "
                     f"{r64['max_abs_delta']:.1e} | {_warning_text(r32)} | {agree} |")
    for method, label in (("ours_pairs", "ours, strategy=\"pairs\""),
                          ("plain_fwd_bwd", "plain forward + backward")):
        if method in s["pairs_per_s"]:
            lines.append(f"| {label} | {s['pairs_per_s'][method]:.0f} | "
                         f"{_ratios(s, method)} | | | | |")
    return "\n".join(lines)


def _print_model(name: str, rec: dict) -> None:
    s = rec["speed"]
    print(f"\n{name}: {s['pairs']} pairs, float32")
    for dt, c in rec["correctness"].items():
        print(f"  {dt}: median |f(x)-f(r)| = {c['median_abs_output_diff']:.3g}")
        for method, row in c["methods"].items():
            if "error" in row:
                print(f"    {method:>20}: error {row['error'][:100]}")
                continue
            agree = row.get("agreement_with_ours")
            extra = "" if agree is None else (
                f", vs ours r={agree['pearson_r']:.6f} max|diff|={agree['max_abs_diff']:.2g}")
            print(f"    {method:>20}: |delta| median {row['median_abs_delta']:.2g} max "
                  f"{row['max_abs_delta']:.2g} "
                  f"({row['max_abs_delta_over_median_abs_output_diff']:.2g}"
                  f" x median |f(x)-f(r)|), {sum(w['count'] for w in row['warnings'])} "
                  f"warnings{extra}")
    for method, v in s["pairs_per_s"].items():
        print(f"  {method:>20}: {v:8.1f} pairs/s  (time / ours: median "
              f"{s['time_over_ours'][method]:.2f}, min {s['min_time_over_ours'][method]:.2f}, "
              f"CPU {s['cpu_time_over_ours'][method]:.2f})")


if __name__ == "__main__":
    main()
