"""Prefect's ephemeral API server, tied to the life of the ``matloop`` process that started it.

Without ``PREFECT_API_URL``, Prefect 3 starts its API as a uvicorn subprocess
(``prefect.server.api.server.SubprocessASGIServer``) and stops it from an
``atexit`` hook.  A process ended by SIGTERM runs no ``atexit`` hook, and one ended
by SIGKILL runs nothing at all: either way the server lived on as an orphan.
Two measures fix that:

* :func:`terminate_gracefully` turns SIGTERM into Prefect's ``TerminationSignal``,
  so the run is recorded as interrupted (paused, resumable) and the ``atexit``
  hook stops the server, as Ctrl-C already did;
* :func:`ephemeral_server_dies_with_us` starts the server itself before Prefect
  would, as the same singleton Prefect then reuses, with the Linux parent-death
  signal set in the child (``prctl(PR_SET_PDEATHSIG, SIGTERM)``): the kernel stops
  the server when this process dies, even by SIGKILL.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import signal
import subprocess
import sys
import threading
import types
from collections.abc import Iterator
from typing import Any

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the forked child, before exec: one system call, nothing else
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _tied_server_class() -> type:
    from prefect.server.api import server as prefect_server

    class TiedServer(prefect_server.SubprocessASGIServer):  # type: ignore[misc, valid-type]
        """Prefect's subprocess server, its uvicorn child started with the parent-death signal set."""

        def _run_uvicorn_command(self) -> subprocess.Popen[Any]:
            tied = types.SimpleNamespace(**{
                **vars(subprocess), "Popen": functools.partial(subprocess.Popen, preexec_fn=_die_with_parent)})
            real = prefect_server.subprocess
            prefect_server.subprocess = tied  # type: ignore[assignment]
            try:
                return super()._run_uvicorn_command()
            finally:
                prefect_server.subprocess = real

    return TiedServer


@contextlib.contextmanager
def ephemeral_server_dies_with_us() -> Iterator[None]:
    """Start Prefect's ephemeral API (when no ``PREFECT_API_URL`` is set) so that it cannot outlive us."""
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value() or not sys.platform.startswith("linux"):
        yield
        return
    from prefect.server.api.server import SubprocessASGIServer

    if None not in SubprocessASGIServer._instances:  # Prefect's own singleton per port; None: "any free port"
        # Registered as that singleton, Prefect's get_client() reuses it.  Started here, from the main thread:
        # the parent-death signal fires when the *thread* that started the child ends.
        _tied_server_class()().start()
    yield


@contextlib.contextmanager
def terminate_gracefully() -> Iterator[None]:
    """While the block runs, SIGTERM raises Prefect's ``TerminationSignal`` (in the main thread) instead of
    killing the process outright, so ``finally`` blocks and ``atexit`` hooks run."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    from prefect.exceptions import TerminationSignal

    def raise_termination(signum: int, frame: Any) -> None:
        raise TerminationSignal(signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, raise_termination)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
