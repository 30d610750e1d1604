"""Reading and writing MACE model files without running code from them unless the user says it is trusted.

A campaign file names a model file (``model_path``), so the file is untrusted input. ``torch.load`` with
``weights_only=False`` unpickles arbitrary objects, which can run any code on the worker. So:

- matloop writes its own MACE models (the committee's members) as *weights files*: the constructor arguments as
  plain data and the ``state_dict`` as tensors. They load with ``weights_only=True`` and are rebuilt here from a
  fixed list of MACE building blocks (``build_mace``): nothing in the file chooses code.
- A model saved whole (``torch.save(model)``, e.g. a MACE-MP foundation model or one from ``mace_run_train``)
  is a pickle of Python objects. It is refused with one sentence unless the MLIP settings say
  ``trust_model_file: true``; then, and only then, it is loaded with ``weights_only=False``.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

#: The ``format`` of a weights file written by :func:`save_mace_weights`.
WEIGHTS_FORMAT = "matloop.mace-weights/1"
#: The setting that allows a pickled model file (named in every refusal).
TRUST_SETTING = "trust_model_file: true"

_INTERACTIONS = ("RealAgnosticResidualInteractionBlock", "RealAgnosticInteractionBlock")
_GATES = {"silu": torch.nn.functional.silu, "tanh": torch.tanh, "none": None}


class ModelFileError(ValueError):
    """A model file that cannot be used, said in one sentence."""


def _import_mace() -> tuple[Any, Any]:
    torch.serialization.add_safe_globals([slice])  # e3nn 0.4.4 vs torch's weights_only default
    from e3nn import o3
    from mace import modules

    return o3, modules


def build_mace(config: dict[str, Any]) -> torch.nn.Module:
    """A ``mace.modules.MACE`` from plain constructor arguments (irreps as strings, classes by name)."""
    o3, modules = _import_mace()
    interaction = config.get("interaction", "RealAgnosticResidualInteractionBlock")
    gate = config.get("gate", "silu")
    if interaction not in _INTERACTIONS or gate not in _GATES:
        raise ModelFileError(
            f"interaction {interaction!r} / gate {gate!r} is not one matloop builds "
            f"(interactions {list(_INTERACTIONS)}, gates {sorted(_GATES)})"
        )
    block = modules.interaction_classes[interaction]
    return modules.MACE(
        r_max=float(config["r_max"]),
        num_bessel=int(config["num_bessel"]),
        num_polynomial_cutoff=int(config["num_polynomial_cutoff"]),
        max_ell=int(config["max_ell"]),
        interaction_cls=block,
        interaction_cls_first=block,
        num_interactions=int(config["num_interactions"]),
        num_elements=len(config["atomic_numbers"]),
        hidden_irreps=o3.Irreps(str(config["hidden_irreps"])),
        MLP_irreps=o3.Irreps(str(config["MLP_irreps"])),
        atomic_energies=[float(e) for e in config["atomic_energies"]],
        avg_num_neighbors=float(config["avg_num_neighbors"]),
        atomic_numbers=[int(z) for z in config["atomic_numbers"]],
        correlation=int(config["correlation"]),
        gate=_GATES[gate],
    )


def save_mace_weights(model: torch.nn.Module, config: dict[str, Any], path: str | Path) -> Path:
    """Write ``model`` as a weights file: ``config`` (the :func:`build_mace` arguments) and its tensors."""
    path = Path(path)
    torch.save({"format": WEIGHTS_FORMAT, "config": config, "state_dict": model.state_dict()}, path)
    return path


def load_mace_model(path: str | Path, trust_model_file: bool = False) -> torch.nn.Module:
    """The MACE model in ``path``: a weights file always; a whole pickled model only when trusted."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MACE model file {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        if not trust_model_file:
            raise ModelFileError(
                f"MACE model file {path} is a pickled Python object (a model saved whole), which could run code "
                f"when loaded; set `{TRUST_SETTING}` in the MLIP settings only if you trust where it came from"
            ) from None
        payload = _load(path, weights_only=False)
    except Exception as exc:
        raise ModelFileError(f"MACE model file {path} cannot be read: {type(exc).__name__}: {_short(exc)}") from None
    if isinstance(payload, torch.nn.Module):
        return payload
    if isinstance(payload, dict) and payload.get("format") == WEIGHTS_FORMAT:
        try:
            model = build_mace(payload["config"])
            missing, unexpected = model.load_state_dict(payload["state_dict"], strict=False)
            if missing or unexpected:
                raise KeyError(
                    f"{len(missing)} tensors missing (e.g. {missing[:2]}), {len(unexpected)} unexpected "
                    f"(e.g. {unexpected[:2]})"
                )
        except ModelFileError as exc:
            raise ModelFileError(f"MACE weights file {path}: {exc}") from None
        except Exception as exc:  # a missing key, a wrong shape: the file, not the code, is at fault
            raise ModelFileError(
                f"MACE weights file {path} does not fit its own configuration: {type(exc).__name__}: {_short(exc)}"
            ) from None
        return model.eval()
    raise ModelFileError(
        f"MACE model file {path} holds neither a model nor matloop MACE weights ({WEIGHTS_FORMAT}); "
        "a bare state_dict cannot be used without the model's configuration"
    )


def _load(path: Path, weights_only: bool) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as exc:
        raise ModelFileError(f"MACE model file {path} cannot be read: {type(exc).__name__}: {_short(exc)}") from None


def _short(exc: BaseException, limit: int = 300) -> str:
    """torch's messages run over many lines; one line, cut, is what a person needs here."""
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
