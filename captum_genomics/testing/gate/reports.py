"""The gate's reports: a table for the log, JSON for scripts, JUnit XML for CI systems.

All three read a :class:`~captum_genomics.testing.gate.core.GateReport` and
show the same figures. Files are written atomically (a temporary file in the
target's directory, then :func:`os.replace`): a CI job writes its report to
the same path on every run, so an existing report at that path is replaced,
never left half-written.
"""

from __future__ import annotations

import json
import math
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from captum_genomics._utils.files import write_bytes_atomic
from captum_genomics.testing.gate.core import CheckResult, GateReport

__all__ = ["format_table", "junit_tree", "report_to_dict", "verdict", "write_json",
           "write_junit_xml"]

_HEADER = ("check", "figure", "bound", "verdict", "seconds")


def verdict(result: CheckResult) -> str:
    """``"pass"``, ``"FAIL"`` or ``"skip"``."""
    return "skip" if result.passed is None else ("pass" if result.passed else "FAIL")


def _number(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return "0" if value == 0 else f"{value:.3g}"


def _culprit_line(row: dict) -> str:
    where = row.get("caller") or "?"
    rule = row.get("rule")
    rule_text = "no rule" if not rule else f"rule {rule}"
    violation = row.get("violation")
    violation = _number(float(violation)) if isinstance(violation, (int, float)) else violation
    note = f"; {row['note']}" if row.get("note") else ""
    return (f"culprit: op #{row.get('index')} {row.get('op')} at {where} ({rule_text}), "
            f"violation {violation}{note}")


def _notes(result: CheckResult) -> list[str]:
    """The indented lines under a row: why it skipped, what failed, where additivity breaks."""
    if result.skipped:
        return [f"skipped: {result.reason}"]
    if result.passed:
        return []
    lines = []
    culprits = result.details.get("culprits")
    if culprits:
        lines.append(_culprit_line(culprits[0]))
    if "attribution_sum" in result.details and "output_difference" in result.details:
        d = result.details
        lines.append(f"worst {d.get('per', 'example')} #{d.get('worst_index')}: attributions "
                     f"sum to {_number(d['attribution_sum'])}, the output difference is "
                     f"{_number(d['output_difference'])}")
    for key in ("error", "problem", "culprits_error"):
        if result.details.get(key):
            lines.append(f"{key}: {result.details[key]}")
    problems = result.details.get("problems")
    if problems:
        lines.extend(f"problem: {p}" for p in problems[:3])
    return lines


def format_table(report: GateReport) -> str:
    """The report as a plain-text table: one row per check, with its figure and bound.

    Parameters
    ----------
    report : GateReport

    Returns
    -------
    str
        Columns ``check | figure | bound | verdict | seconds``; under a
        skipped row its reason, under a failed row its error or problems and,
        for additivity, the top culprit op (``details["culprits"][0]``); a
        last line counts passed, failed and skipped checks. No trailing newline.
    """
    rows = [(r.name, _number(r.figure), _number(r.bound), verdict(r), f"{r.seconds:.2f}")
            for r in report.results]
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h)
              for i, h in enumerate(_HEADER)]

    def line(cells) -> str:
        return " | ".join(c.ljust(w) if i == 0 else c.rjust(w)
                          for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    out = [f"captum-genomics validate: {report.method} on {report.model}", line(_HEADER),
           "-+-".join("-" * w for w in widths)]
    for result, row in zip(report.results, rows):
        out.append(line(row))
        out.extend(f"    {note}" for note in _notes(result))
    n_pass = sum(r.passed is True for r in report.results)
    n_fail = len(report.failed)
    n_skip = sum(r.skipped for r in report.results)
    seconds = report.metadata.get("seconds")
    total = f" in {seconds:.1f} s" if isinstance(seconds, (int, float)) else ""
    status = "PASSED" if report.passed else "FAILED"
    out.append(f"{status}: {n_pass} passed, {n_fail} failed, {n_skip} skipped{total}")
    return "\n".join(out)


def _jsonable(value: Any) -> Any:
    """JSON-safe copy: nan -> None, +-inf -> "inf"/"-inf", tensors/arrays -> lists."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((_jsonable(v) for v in value), key=str)
    tolist = getattr(value, "tolist", None)  # numpy and torch scalars and arrays
    if callable(tolist):
        return _jsonable(tolist())
    return str(value)


def report_to_dict(report: GateReport) -> dict:
    """The report as JSON-safe data (what :func:`write_json` writes).

    Returns
    -------
    dict
        ``method``, ``model``, ``passed``, ``metadata`` and ``checks``: one
        dict per check with ``name``, ``figure``, ``bound``, ``verdict``
        (``"pass"``/``"FAIL"``/``"skip"``), ``passed`` (bool or None),
        ``seconds``, ``reason`` and ``details``. Non-finite numbers: ``nan``
        (a skipped figure) becomes ``null``, infinities the strings
        ``"inf"``/``"-inf"``.
    """
    checks = [{"name": r.name, "figure": r.figure, "bound": r.bound, "verdict": verdict(r),
               "passed": r.passed, "seconds": r.seconds, "reason": r.reason,
               "details": r.details} for r in report.results]
    return _jsonable({"method": report.method, "model": report.model, "passed": report.passed,
                      "metadata": report.metadata, "checks": checks})


def write_json(report: GateReport, path: str | os.PathLike) -> Path:
    """Write :func:`report_to_dict` as indented JSON, atomically.

    An existing file at ``path`` is replaced (a CI job writes its report to
    the same path on every run); a reader never sees a half-written file.

    Parameters
    ----------
    report : GateReport
    path : str or PathLike
        The file to write; its folder must exist.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    FileNotFoundError
        If the folder of ``path`` does not exist.
    IsADirectoryError
        If ``path`` is a folder.
    """
    text = json.dumps(report_to_dict(report), indent=2, allow_nan=False) + "\n"
    return write_bytes_atomic(path, text.encode("utf-8"))


def _value(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value)


def junit_tree(report: GateReport) -> ET.ElementTree:
    """The report as a JUnit XML tree (what :func:`write_junit_xml` writes)."""
    results = report.results
    suites = ET.Element("testsuites", name="captum-genomics validate")
    suite = ET.SubElement(suites, "testsuite", {
        "name": f"captum-genomics validate {report.method}",
        "tests": str(len(results)),
        "failures": str(len(report.failed)),
        "errors": "0",
        "skipped": str(sum(r.skipped for r in results)),
        "time": f"{sum(r.seconds for r in results):.3f}",
    })
    props = ET.SubElement(suite, "properties")
    meta = {"model": report.model, "method": report.method, **report.metadata}
    for key, value in meta.items():
        ET.SubElement(props, "property", name=str(key),
                      value=value if isinstance(value, str) else json.dumps(_jsonable(value)))
    classname = f"captum_genomics.validate.{report.method}"
    for r in results:
        case = ET.SubElement(suite, "testcase", name=r.name, classname=classname,
                             time=f"{r.seconds:.3f}")
        case_props = ET.SubElement(case, "properties")
        for key, value in (("figure", r.figure), ("bound", r.bound), ("verdict", verdict(r)),
                           ("reason", r.reason)):
            ET.SubElement(case_props, "property", name=key, value=_value(value))
        if r.passed is False:
            message = f"{r.name}: {_number(r.figure)} > bound {_number(r.bound)}"
            failure = ET.SubElement(case, "failure", message=message, type="CheckFailed")
            failure.text = "\n".join([message, r.reason, *_notes(r),
                                      json.dumps(_jsonable(r.details), indent=2)])
        elif r.skipped:
            ET.SubElement(case, "skipped", message=r.reason)
    ET.indent(suites)
    return ET.ElementTree(suites)


def write_junit_xml(report: GateReport, path: str | os.PathLike) -> Path:
    """Write the report as JUnit XML, atomically.

    One ``<testsuite>`` with the metadata as ``<properties>``; one
    ``<testcase>`` per check (``classname`` ``captum_genomics.validate.METHOD``,
    ``name`` the check, ``time`` its seconds) carrying ``figure``, ``bound``,
    ``verdict`` and ``reason`` as ``<properties>``, with ``<failure>`` for a
    failed check (figure, bound, notes and details in its text) and
    ``<skipped>`` (the reason) for a skipped one. An existing file at
    ``path`` is replaced atomically.

    Parameters
    ----------
    report : GateReport
    path : str or PathLike
        The file to write; its folder must exist.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    FileNotFoundError
        If the folder of ``path`` does not exist.
    IsADirectoryError
        If ``path`` is a folder.
    """
    tree = junit_tree(report)
    data = ET.tostring(tree.getroot(), encoding="utf-8", xml_declaration=True) + b"\n"
    return write_bytes_atomic(path, data)
