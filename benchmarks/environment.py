"""What a replay's numbers depend on besides the code: package versions and the CPU's vector instructions.

Why: the same commit and seeds replayed on two 2-core AMD EPYC machines gave the same experiments-to-best on
only 41 of 105 held-out runs (`RESULTS-selection.md`, twelfth round). Floating-point results differ with the
kernels torch and MKL pick for a CPU, a GP's fit then differs in its last digits, and a campaign's later picks
follow. A per-seed file therefore says where it was measured, and ``efficiency.py --combine`` says when the
files it joins were not measured alike.
"""

from __future__ import annotations

import functools
import importlib.metadata
import platform
import sys
from pathlib import Path

#: The packages whose numerics a pick depends on (BayBE's for its own orders).
PACKAGES = ("torch", "botorch", "gpytorch", "linear_operator", "numpy", "scipy", "baybe")


@functools.cache
def _environment() -> tuple[tuple[str, str], ...]:
    """Read once per process: ``efficiency.py`` rewrites its per-seed file after every problem and batch size."""
    return tuple(_read_environment().items())


def numerics_environment() -> dict[str, str]:
    """Python, the packages' versions, the CPU's model name and the instruction set torch's kernels use."""
    return dict(_environment())


def _read_environment() -> dict[str, str]:
    import torch

    env = {"python": platform.python_version(), "cpu": _cpu_model(), "torch_cpu_capability":
           str(torch.backends.cpu.get_cpu_capability())}
    for name in PACKAGES:
        try:
            env[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            env[name] = "absent"
    return env


def _cpu_model() -> str:
    """The CPU's model name with its family and model numbers (a virtual machine's name may be only the
    vendor's), from ``/proc/cpuinfo`` on Linux, else what ``platform`` says."""
    try:
        fields: dict[str, str] = {}
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
            if not line.strip():
                break  # the first processor says it for all
        if "model name" in fields:
            return f"{fields['model name']} (family {fields.get('cpu family', '?')}, model {fields.get('model', '?')})"[:200]
    except OSError:
        pass
    return (platform.processor() or platform.machine() or sys.platform)[:200]


def describe_differences(environments: list[dict[str, str]]) -> str | None:
    """One line saying how the environments of files joined together differ, or None when they do not.

    Files written before environments were recorded have an empty one: it is said to be unknown.
    """
    distinct = [dict(e) for e in {tuple(sorted(e.items())) for e in environments}]
    if len(distinct) < 2:
        return None
    known = [e for e in distinct if e]
    keys = sorted({k for e in known for k in e})
    parts = [f"{k}: {' / '.join(sorted({e.get(k, 'absent') for e in known}))}" for k in keys
             if len({e.get(k, "absent") for e in known}) > 1]
    if len(known) < len(distinct):
        parts.append("and files that do not record theirs")
    return (f"# these runs were measured in {len(distinct)} numerical environments ({'; '.join(parts)}); the same "
            "code's picks can differ between them")
