"""What every benchmark result records about the machine it ran on."""

from __future__ import annotations

import datetime
import os
import platform
import sys


def cpu_model() -> str:
    """``model name (family F, model M), N logical CPUs`` from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo") as fh:
            info = fh.read()
    except OSError:
        return platform.processor() or "unknown"
    fields: dict[str, str] = {}
    for line in info.splitlines():
        if ":" in line:
            k, v = (s.strip() for s in line.split(":", 1))
            fields.setdefault(k, v)
    return (f"{fields.get('model name', 'unknown')} (family {fields.get('cpu family', '?')}, "
            f"model {fields.get('model', '?')}), {info.count('processor')} logical CPUs")


def environment() -> dict:
    """CPU model, thread count, torch/python versions, date and command line."""
    import torch

    return {"cpu_model": cpu_model(), "torch_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(), "torch": torch.__version__,
            "python": platform.python_version(), "date": datetime.date.today().isoformat(),
            "command": "python " + " ".join(sys.argv)}
