"""``matloop simlab serve``: run the simulated lab as an HTTP service.

Heavy imports (FastAPI, uvicorn, the scenarios) happen inside the command, so
``matloop --help`` and the other commands do not pay for them.
"""

from __future__ import annotations

import secrets
import sqlite3
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="simlab",
    help="The simulated autonomous lab (a real HTTP service over real ground-truth data).",
    no_args_is_help=True,
    add_completion=False,
)


def _parse_instruments(specs: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for spec in specs:
        name, sep, capacity = spec.partition("=")
        if not sep or not name or not capacity.isdigit() or int(capacity) < 1:
            raise typer.BadParameter(
                f"{spec!r} is not NAME=CAPACITY with a capacity of at least 1", param_hint="--instrument"
            )
        out[name] = int(capacity)
    return out


def _reason(exc: BaseException) -> str:
    """The OS's or SQLite's own words, without the errno prefix ("Address already in use")."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[0].lower() + exc.strerror[1:]
    return str(exc) or type(exc).__name__


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port; 0 picks a free one (printed)")] = 8765,
    scenario: Annotated[
        list[str] | None, typer.Option("--scenario", help="serve only these scenarios (repeat); default: all")
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(envvar="MATLOOP_SIMLAB_TOKEN", help="bearer token clients must send; default: generated"),
    ] = None,
    time_scale: Annotated[
        float, typer.Option(help="real seconds per lab second (1e-3: a 4 h step takes 14.4 s)")
    ] = 1e-3,
    failure_rate: Annotated[float, typer.Option(help="share of experiments that fail with a reason")] = 0.0,
    error_rate: Annotated[float, typer.Option(help="share of /v1/experiments requests answered 500/503")] = 0.0,
    slow_rate: Annotated[float, typer.Option(help="share of /v1/experiments requests answered slowly")] = 0.0,
    slow_seconds: Annotated[float, typer.Option(help="delay of a slow answer, seconds")] = 0.5,
    outage_rate: Annotated[float, typer.Option(help="instrument outages per instrument per 100 lab hours")] = 0.0,
    outage_hours: Annotated[float, typer.Option(help="mean outage length, lab hours")] = 8.0,
    noise_scale: Annotated[float, typer.Option(help="multiplies every scenario's measurement noise")] = 1.0,
    instrument: Annotated[
        list[str] | None, typer.Option("--instrument", help="NAME=CAPACITY, e.g. synthesis_robot=4 (repeat)")
    ] = None,
    seed: Annotated[int, typer.Option(help="seed of every random draw (faults, noise)")] = 0,
    state: Annotated[
        Path | None,
        typer.Option("--state", help="SQLite file keeping the lab's state across restarts; default: memory"),
    ] = None,
    max_body_bytes: Annotated[
        int, typer.Option(min=1, help="larger request bodies are refused with 413 before they are read")
    ] = 1024 * 1024,
) -> None:
    """Serve the simulated lab until interrupted (Ctrl-C)."""
    import uvicorn

    from lab_adapters.simlab.inprocess import bind_socket
    from lab_adapters.simlab.lab import DEFAULT_INSTRUMENTS, Lab, LabConfig
    from lab_adapters.simlab.limits import is_wellformed_token
    from lab_adapters.simlab.server import create_app

    if token is not None and not is_wellformed_token(token):
        raise typer.BadParameter(
            "the token must be 1 to 4096 visible ASCII characters without spaces (clients send it in an HTTP header)",
            param_hint="--token / MATLOOP_SIMLAB_TOKEN",
        )
    generated = token is None
    token = token or secrets.token_urlsafe(16)
    try:
        config = LabConfig(
            scenarios=scenario or None,
            token=token,
            time_scale=time_scale,
            failure_rate=failure_rate,
            error_rate=error_rate,
            slow_rate=slow_rate,
            slow_seconds=slow_seconds,
            outage_rate=outage_rate,
            outage_hours=outage_hours,
            noise_scale=noise_scale,
            seed=seed,
            state_path=state,
            instruments={**DEFAULT_INSTRUMENTS, **_parse_instruments(instrument or [])},
            max_body_bytes=max_body_bytes,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    try:
        sock = bind_socket(host, port)
    except OSError as exc:
        typer.echo(f"error: cannot listen on {host}:{port}: {_reason(exc)}", err=True)
        raise typer.Exit(1) from None
    try:
        lab = Lab(config)
    except (OSError, sqlite3.Error) as exc:
        sock.close()
        typer.echo(f"error: cannot keep the lab's state in {state}: {_reason(exc)}", err=True)
        raise typer.Exit(1) from None
    url = f"http://{host}:{sock.getsockname()[1]}"
    typer.echo(f"simlab listening on {url}")
    typer.echo(f"state: {state or 'in memory (lost on exit)'}; scenarios: {', '.join(lab.scenario_names)}")
    if generated:
        typer.echo(f"token (generated; pass --token or MATLOOP_SIMLAB_TOKEN to fix it): {token}")
    sys.stdout.flush()
    server = uvicorn.Server(uvicorn.Config(create_app(lab=lab), log_level="warning", lifespan="on"))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        lab.close()
