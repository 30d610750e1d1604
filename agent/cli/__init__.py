"""The ``matloop`` command.

The main app is assembled from small modules, one per concern, each exposing a
``register(app)`` function (commands on the main app) or an ``app`` (a sub-app
mounted under its own name, e.g. ``matloop simlab serve``).
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="matloop",
    help="An autonomous active-learning controller for materials discovery.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

#: Modules that add commands to the main app through ``register(app)``.
_COMMAND_MODULES = ["agent.cli.campaign_files", "agent.cli.database", "agent.cli.history", "agent.cli.running",
                    "agent.cli.pending"]
#: Modules exposing a sub-app ``app``, mounted under the given name.
_SUB_APPS = {"simlab": "agent.cli.simlab"}


def _assemble() -> None:
    for module_name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue  # that part of the CLI is not built yet
            raise
        module.register(app)
    for name, module_name in _SUB_APPS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue
            raise
        app.add_typer(module.app, name=name)


_assemble()


def main() -> None:
    """Entry point of the ``matloop`` console script.

    Commands turn database problems into one sentence themselves (``agent.cli.common.plain_store_errors``); this
    is the net under any path that opens the database before reaching one (a bad ``MATLOOP_DATABASE_URL`` seen
    by ``matloop run``), so the user never gets a traceback for a :class:`~agent.store.StoreError`.
    """
    from agent.store import StoreError

    try:
        app()
    except StoreError as exc:
        from agent.cli.common import EXIT_FAILURE, fail

        fail(str(exc))
        raise SystemExit(EXIT_FAILURE) from None
