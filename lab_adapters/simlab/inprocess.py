"""Start the simulated lab in this process, on a free loopback port, for the demo and the tests.

It is the real service (uvicorn serving the FastAPI app over TCP), only started
from a background thread: a client talks to it exactly as it would to
``matloop simlab serve``.  The socket is bound here before uvicorn starts, so the
port is known and cannot be taken by someone else in between.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from lab_adapters.simlab.lab import Lab, LabConfig
from lab_adapters.simlab.server import create_app


@dataclass(frozen=True)
class SimLabHandle:
    """Where a running lab listens and the token it wants; ``lab`` is the live object (read-only use)."""

    url: str
    token: str
    lab: Lab


def bind_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening TCP socket (port 0: a free one), with SO_REUSEADDR so a restarted lab can take it back."""
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted sockets only when proto says TCP,
    # and without it every response waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


@contextlib.contextmanager
def running_simlab(
    scenarios: list[str] | None = None,
    token: str | None = None,
    state_path: Path | str | None = None,
    time_scale: float = 1e-4,
    seed: int = 0,
    **options: Any,
) -> Iterator[SimLabHandle]:
    """Run a lab on ``127.0.0.1:<free port>`` for the duration of the ``with`` block.

    ``options`` are further :class:`LabConfig` fields (``failure_rate``,
    ``error_rate``, ``noise_scale``, ...).  A token is generated when none is given.
    """
    token = token or secrets.token_urlsafe(16)
    config = LabConfig(
        scenarios=scenarios,
        token=token,
        state_path=Path(state_path) if state_path is not None else None,
        time_scale=time_scale,
        seed=seed,
        **options,
    )
    lab = Lab(config)
    app = create_app(lab=lab)
    sock = bind_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="simlab-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("the simulated lab did not start (see the log above)")
        time.sleep(0.01)
    try:
        yield SimLabHandle(url=f"http://127.0.0.1:{port}", token=token, lab=lab)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        lab.close()
