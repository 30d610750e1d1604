"""What one fit hands the next: the model choice, the recalibration and the GP's hyperparameters (the memo).

Cross-validating a GP and a deep ensemble on every fit is what made an ask slow (5 folds x 2 kinds + the
final model, every iteration), yet between two asks a campaign usually adds one batch to a hundred results:
the verdict and the std map it produced rarely change. So a fit may start from the previous fit's memo:

* **The verdict** (which kind, the std map, the cross-validated metrics) is kept until the evidence changes:
  the rows of an output grew by ``REDECIDE_GROWTH`` since the verdict (``CLOSE_GROWTH`` when the two kinds'
  cv-NLLs were within ``CLOSE_NLL`` nats per point), the rows shrank, or the request changed (kind, settings,
  folds, seed, outputs). Then cross-validation and recalibration run again, exactly as without a memo (the
  GP's folds with the hyperparameters of the GP fitted on all rows, warm-started from the memo's: see ``api``).
* **The GP's hyperparameters** start from the previous optimum (a warm start, whose L-BFGS-B stops at
  ``surrogates.gp.WARM_FTOL``, not at scipy's tolerance for a start from the priors). They are re-optimised when
  the verdict is re-run or an output grew by ``REOPTIMISE_GROWTH`` since they were last optimised; in
  between, the GP is only conditioned on the new rows with the kept hyperparameters, as most BO libraries
  do between hyperparameter refits.
* **The ensemble's members** are in the memo too (their weights, as float32 bytes in base64, never a pickle). A
  kept ensemble is fine-tuned from them for a fifth of a fresh fit's steps (``surrogates.ensemble``), unless it
  has been fine-tuned ``MAX_WARM`` times in a row, or the fine-tuned members disagree less than
  ``MIN_SPREAD_RATIO`` times as much as the last freshly trained ones did (the recalibration, fitted on fresh
  members, would then make them over-confident): then it is trained afresh, and the reason says why.

The memo is plain JSON (Python floats round-trip exactly), so a fit gives the same model whether the memo
came from the previous fit in this process or was read back from the database after a restart. It comes
from outside (a database row a person may edit), so anything unusable in it is a reason to decide afresh,
said in one sentence, never an error.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

FORMAT = "matloop-fit-memo/1"
#: Re-run the cross-validated verdict when an output's rows grew by this share since it was made.
REDECIDE_GROWTH = 0.5
#: A verdict this close (difference of the summed cv-NLLs, nats per held-out point and output) is re-run sooner.
CLOSE_NLL = 0.02
CLOSE_GROWTH = 0.2
#: Re-optimise a kept GP's hyperparameters (warm-started) when an output's rows grew by this share since.
REOPTIMISE_GROWTH = 0.10
#: A kept ensemble is trained afresh after this many fine-tunings in a row (drift from the verdict's members).
MAX_WARM = 10
#: ... or when fine-tuning left its members disagreeing less than this share of the fresh members' spread.
MIN_SPREAD_RATIO = 0.7


def request_key(kind: str, cv_folds: int, seed: int, settings: dict[str, Any], m: int) -> str:
    """A digest of what was asked for: a memo made for another request is not reused."""
    text = json.dumps({"kind": kind, "folds": int(cv_folds), "seed": int(seed), "m": int(m), "settings": settings},
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class Plan:
    """Whether to re-run the verdict, why, and the previous fit's usable parts."""

    redecide: bool
    why: str
    memo: dict[str, Any] = field(default_factory=dict)

    def output(self, c: int) -> dict[str, Any]:
        return (self.memo.get("outputs") or {}).get(str(c)) or {}


def plan(memo: Any, *, key: str, rows: dict[int, int], learnable: list[int]) -> Plan:
    """Decide from the previous fit's ``memo`` whether this fit re-runs the verdict (rows: each output's n)."""
    if memo is None:
        return Plan(True, "no previous fit")
    problem = _check(memo, key, learnable)
    if problem:
        return Plan(True, f"previous fit not reusable ({problem})")
    verdict = memo["verdict"]
    growth = CLOSE_GROWTH if _is_close(verdict) else REDECIDE_GROWTH
    for c in learnable:
        before, now = int(memo["outputs"][str(c)]["verdict_n"]), rows[c]
        if now < before:
            return Plan(True, f"output {c} has fewer results ({now}) than at the verdict ({before})", memo)
        if now >= before * (1 + growth):
            close = " (a close verdict)" if growth == CLOSE_GROWTH else ""
            return Plan(True, f"output {c} grew from {before} to {now} results since the verdict{close}, "
                              f">= {growth:.0%}", memo)
    grown = max((rows[c] / int(memo["outputs"][str(c)]["verdict_n"]) - 1 for c in learnable), default=0.0)
    return Plan(False, f"kept from the verdict on {_verdict_rows(memo, learnable)} results "
                       f"(data grew {grown:.0%} since, re-decided at {growth:.0%})", memo)


def needs_reoptimising(plan: Plan, c: int, n: int) -> tuple[bool, str]:
    """Whether output ``c``'s GP re-optimises its (warm-started) hyperparameters at ``n`` rows, and why."""
    previous = plan.output(c)
    if not previous.get("hyper"):
        return True, "hyperparameters fitted from the priors"
    try:
        before = int(previous.get("hyper_n", 0))
    except (TypeError, ValueError):
        before = 0
    if plan.redecide:
        return True, f"hyperparameters re-optimised from the fit on {before} results"
    if before <= 0 or n >= before * (1 + REOPTIMISE_GROWTH) or n < before:
        return True, f"hyperparameters re-optimised from the fit on {before} results (data grew >= " \
                     f"{REOPTIMISE_GROWTH:.0%})"
    return False, f"hyperparameters of the fit on {before} results kept (data grew {n / before - 1:.0%})"


def hyper_init(plan: Plan, c: int, expected: dict[str, Tensor]) -> dict[str, Tensor] | None:
    """The previous fit's GP hyperparameters for output ``c``, if they fit this GP's parameters exactly."""
    stored = plan.output(c).get("hyper")
    if not isinstance(stored, dict) or set(stored) != set(expected):
        return None
    out = {}
    for name, shape_like in expected.items():
        try:
            value = torch.tensor(stored[name], dtype=shape_like.dtype)
        except (TypeError, ValueError):
            return None
        if value.shape != shape_like.shape or not bool(torch.isfinite(value).all()):
            return None
        out[name] = value
    return out


def hyper_json(hyper: dict[str, Tensor]) -> dict[str, Any]:
    return {name: value.detach().to(torch.double).cpu().tolist() for name, value in hyper.items()}


def tensors_json(state: dict[str, Tensor]) -> dict[str, Any]:
    """Tensors as JSON: shape plus float32 bytes in base64 (a tenth of the size of a list of floats)."""
    return {name: {"shape": list(t.shape),
                   "f32": base64.b64encode(t.detach().to(torch.float32).cpu().contiguous().numpy().tobytes()).decode()}
            for name, t in state.items()}


def tensors_from_json(stored: Any, expected: dict[str, Tensor]) -> dict[str, Tensor] | None:
    """The tensors :func:`tensors_json` wrote, if they match ``expected``'s names and shapes and are finite."""
    if not isinstance(stored, dict) or set(stored) != set(expected):
        return None
    out = {}
    for name, like in expected.items():
        entry = stored[name]
        try:
            if not isinstance(entry, dict) or list(entry["shape"]) != list(like.shape):
                return None
            raw = base64.b64decode(str(entry["f32"]), validate=True)
            values = np.frombuffer(raw, dtype="<f4")
            if values.size != like.numel():
                return None
        except (KeyError, TypeError, ValueError, binascii.Error):
            return None
        value = torch.from_numpy(values.astype(np.float64)).reshape(like.shape).to(like.dtype)
        if not bool(torch.isfinite(value).all()):
            return None
        out[name] = value
    return out


def ensemble_start(plan: Plan, c: int, expected: dict[str, Tensor]) -> tuple[dict[str, Tensor] | None, str]:
    """The previous members of output ``c``'s kept ensemble to fine-tune (``expected``: a fresh one's state), or
    ``None`` and why it is trained afresh."""
    if plan.redecide:
        return None, ""
    stored = plan.output(c).get("ensemble")
    if not isinstance(stored, dict):
        return None, "ensemble trained afresh (no previous members)"
    try:
        warm = int(stored.get("warm", 0))
        ref = float(stored["spread_ref"])
        if not (math.isfinite(ref) and ref > 0):  # the fine-tuned spread is judged as a share of it
            raise ValueError(ref)
    except (KeyError, TypeError, ValueError):
        return None, "ensemble trained afresh (previous members unreadable)"
    if warm >= MAX_WARM:
        return None, f"ensemble trained afresh (fine-tuned {warm} times in a row)"
    start = tensors_from_json(stored.get("state"), expected)
    if start is None:
        return None, "ensemble trained afresh (previous members unreadable)"
    return start, ""


def ensemble_json(state: dict[str, Tensor], *, spread: float, spread_ref: float | None, warm: int) -> dict[str, Any]:
    """The memo entry of a fitted ensemble: its members, how many fine-tunings in a row, and the fresh spread."""
    return {"ensemble": {"state": tensors_json(state), "warm": int(warm),
                         "spread_ref": float(spread if spread_ref is None else spread_ref)}}


def spread_ref(plan: Plan, c: int) -> float:
    return float(plan.output(c)["ensemble"]["spread_ref"])


def warm_count(plan: Plan, c: int) -> int:
    return int(plan.output(c)["ensemble"].get("warm", 0))


def make_memo(*, key: str, kind: str, redecided: bool, previous: Plan, verdict: dict[str, Any],
              outputs: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """The memo this fit leaves for the next (plain JSON)."""
    memo = {"format": FORMAT, "key": key, "kind": kind,
            "verdict": verdict if redecided else previous.memo["verdict"],
            "outputs": {str(c): o for c, o in outputs.items()}}
    return json.loads(json.dumps(_finite(memo)))  # exactly what a database read gives back


def _finite(value: Any) -> Any:
    """JSON without NaN or infinities (PostgreSQL's JSON refuses them): those become ``None``."""
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _check(memo: Any, key: str, learnable: list[int]) -> str:
    if not isinstance(memo, dict) or memo.get("format") != FORMAT:
        return "not a fit memo"
    if memo.get("key") != key:
        return "the surrogate settings changed"
    if memo.get("kind") not in ("gp", "ensemble"):
        return "it chose no model"
    outputs = memo.get("outputs")
    if not isinstance(outputs, dict) or not isinstance(memo.get("verdict"), dict):
        return "incomplete"
    for c in learnable:
        o = outputs.get(str(c))
        if not isinstance(o, dict) or not isinstance(o.get("metrics"), dict) or not isinstance(o.get("std_map"), dict):
            return f"no verdict for output {c}"
        try:
            if int(o["verdict_n"]) < 1:
                return f"output {c}'s verdict has no rows"
            for k in ("a", "b", "sigma0"):
                if not math.isfinite(float(o["std_map"][k])) or (k != "b" and float(o["std_map"][k]) <= 0):
                    return f"output {c}'s recalibration is not finite"
            str(o["std_map"]["name"])
        except (KeyError, TypeError, ValueError):
            return f"output {c}'s verdict is malformed"
    return ""


def _is_close(verdict: dict[str, Any]) -> bool:
    nll = verdict.get("nll") or {}
    if not isinstance(nll, dict) or len(nll) != 2:
        return False
    try:
        a, b = (float(v) for v in nll.values())
        return abs(a - b) / max(int(verdict.get("outputs") or 1), 1) < CLOSE_NLL
    except (TypeError, ValueError, ZeroDivisionError):
        return False


def _verdict_rows(memo: dict[str, Any], learnable: list[int]) -> str:
    counts = sorted({int(memo["outputs"][str(c)]["verdict_n"]) for c in learnable})
    return "/".join(str(n) for n in counts)
