"""Building the campaign's executors (``LabAdapter`` instances) from its ``adapters`` section.

The loop only ever sees the :class:`matloop.types.LabAdapter` protocol; this
module is the one place that knows which class a ``type`` names.  A ``simlab``
adapter without ``url`` starts the simulated lab in-process on a free loopback
port, so :func:`open_adapters` is a context manager: the lab lives exactly as
long as the campaign run that needs it.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from typing import Any

from agent.spec import AdapterConfig, Campaign
from matloop.settings import get_settings
from matloop.types import LabAdapter


class AdapterConfigError(ValueError):
    """An ``adapters`` entry that cannot be turned into an executor."""


def _accepted(factory: Any, settings: dict[str, Any], where: str) -> dict[str, Any]:
    """``settings`` checked against ``factory``'s keyword arguments, so a typo is an error, not ignored."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return settings
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return settings
    unknown = sorted(set(settings) - set(params))
    if unknown:
        raise AdapterConfigError(f"{where}.settings: unknown keys {unknown}; accepted: {sorted(params)}")
    return settings


def _simlab(name: str, config: AdapterConfig, stack: contextlib.ExitStack, scenarios: list[str]) -> LabAdapter:
    from lab_adapters.simlab.client import SimLabAdapter

    url, token = config.url, config.token or get_settings().simlab_token
    if url is None:
        from lab_adapters.simlab.inprocess import running_simlab

        lab_options = dict(config.settings.get("lab", {}))
        if scenarios:
            lab_options.setdefault("scenarios", scenarios)
        handle = stack.enter_context(running_simlab(**lab_options))
        url, token = handle.url, handle.token
    client_settings = {k: v for k, v in config.settings.items() if k != "lab"}
    client_settings = _accepted(SimLabAdapter, client_settings, f"adapters.{name}")
    client_settings.setdefault("name", name)
    adapter = SimLabAdapter(url, token, **client_settings)
    close = getattr(adapter, "close", None)
    if callable(close):
        stack.callback(close)
    return adapter


def _dft(name: str, config: AdapterConfig, stack: contextlib.ExitStack, kind: str) -> LabAdapter:
    from pydantic import ValidationError

    from lab_adapters.dft import make_dft_adapter

    try:
        adapter = make_dft_adapter(name, kind, dict(config.settings))
    except ValidationError as exc:
        problems = "; ".join(
            f"adapters.{name}.settings.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise AdapterConfigError(problems) from exc
    except ValueError as exc:
        raise AdapterConfigError(f"adapters.{name}: {exc}") from exc
    close = getattr(adapter, "close", None)
    if callable(close):
        stack.callback(close)
    return adapter


KNOWN_TYPES = ("simlab", "slurm", "local")


@contextlib.contextmanager
def open_adapters(campaign: Campaign) -> Iterator[dict[str, LabAdapter]]:
    """Every adapter the campaign defines, by name; in-process labs stop when the block ends."""
    with contextlib.ExitStack() as stack:
        adapters: dict[str, LabAdapter] = {}
        for name, config in campaign.adapters.items():
            scenarios = sorted(
                {str(m.options["scenario"]) for m in campaign.measurements if m.adapter == name and "scenario" in m.options}
            )
            if config.type == "simlab":
                adapters[name] = _simlab(name, config, stack, scenarios)
            elif config.type in ("slurm", "local"):
                adapters[name] = _dft(name, config, stack, config.type)
            else:
                raise AdapterConfigError(
                    f"adapters.{name}.type: unknown adapter type {config.type!r}; known: {', '.join(KNOWN_TYPES)}"
                )
        yield adapters
