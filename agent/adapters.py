"""Building the campaign's executors (``LabAdapter`` instances) from its ``adapters`` section.

The loop only ever sees the :class:`matloop.types.LabAdapter` protocol; this
module is the one place that knows which class a typed entry names.  A ``simlab``
adapter without ``url`` uses ``MATLOOP_SIMLAB_URL`` when set, else starts the
simulated lab in-process on a free loopback port, so :func:`open_adapters` is a
context manager: the lab lives exactly as long as the campaign run that needs it.
Tokens are read here, when the run starts, never from the campaign spec.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from agent.spec import Campaign
from lab_adapters.dft.config import LocalDFTAdapter, SlurmDFTAdapter, dft_settings
from lab_adapters.mlip.config import MLIPAdapter
from lab_adapters.simlab.config import SimlabAdapter, check_lab_url
from matloop.settings import get_settings
from matloop.types import LabAdapter


class AdapterConfigError(ValueError):
    """An ``adapters`` entry that cannot be turned into an executor (a missing token, a DFT setting refused)."""


def lab_token(name: str, config: SimlabAdapter) -> str | None:
    """The simulated lab's bearer token, read now (never stored): the Prefect Secret block, else the variable.

    ``None`` when the variable is unset: the client then sends no token of its own choosing, and a
    lab that wants one answers 401, which the client reports in a sentence.
    """
    if config.token_secret is not None:
        try:
            from prefect.blocks.system import Secret

            return str(Secret.load(config.token_secret).get())
        except Exception as exc:  # no server, no such block: say which block, not a traceback
            raise AdapterConfigError(
                f"adapters.{name}.token_secret: cannot read the Prefect Secret block {config.token_secret!r}: {exc}"
            ) from exc
    return os.environ.get(config.token_env) or None


def _simlab(name: str, config: SimlabAdapter, stack: contextlib.ExitStack, scenarios: list[str]) -> LabAdapter:
    from lab_adapters.simlab.client import SimLabAdapter

    url = config.url or get_settings().simlab_url
    if url is not None:
        if config.url is None:
            try:
                check_lab_url(url)
            except ValueError as exc:
                raise AdapterConfigError(f"MATLOOP_SIMLAB_URL (for adapters.{name}): {exc}") from None
        token = lab_token(name, config)
    else:
        from lab_adapters.simlab.inprocess import running_simlab

        lab_options = config.lab.options()
        if scenarios:
            lab_options.setdefault("scenarios", scenarios)
        handle = stack.enter_context(running_simlab(**lab_options))
        url, token = handle.url, handle.token
    adapter = SimLabAdapter(url, token, name=name, **config.client_options())
    close = getattr(adapter, "close", None)
    if callable(close):
        stack.callback(close)
    return adapter


def _dft(name: str, config: LocalDFTAdapter | SlurmDFTAdapter, stack: contextlib.ExitStack) -> LabAdapter:
    from lab_adapters.dft import make_dft_adapter

    try:
        adapter = make_dft_adapter(name, config.type, dft_settings(config))
    except ValueError as exc:
        raise AdapterConfigError(f"adapters.{name}: {exc}") from exc
    close = getattr(adapter, "close", None)
    if callable(close):
        stack.callback(close)
    return adapter


@contextlib.contextmanager
def open_adapters(campaign: Campaign) -> Iterator[dict[str, LabAdapter]]:
    """Every adapter the campaign defines, by name; in-process labs stop when the block ends."""
    with contextlib.ExitStack() as stack:
        adapters: dict[str, LabAdapter] = {}
        for name, config in campaign.adapters.items():
            scenarios = sorted(
                {str(m.options["scenario"]) for m in campaign.measurements if m.adapter == name and "scenario" in m.options}
            )
            if isinstance(config, SimlabAdapter):
                adapters[name] = _simlab(name, config, stack, scenarios)
            elif isinstance(config, MLIPAdapter):
                from lab_adapters.mlip import make_mlip_adapter

                adapters[name] = make_mlip_adapter(name, config)
            else:  # the campaign format admits only these four types
                adapters[name] = _dft(name, config, stack)
        yield adapters
