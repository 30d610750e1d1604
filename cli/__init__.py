"""The ``matloop`` command.

The main app is assembled from small modules, one per concern, each exposing a
``register(app)`` function (commands on the main app) or an ``app`` (a sub-app
mounted under its own name, e.g. ``matloop simlab serve``).
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import typer

#: Modules that add commands to the main app through ``register(app)``.
_COMMAND_MODULES = ["cli.campaign_files", "cli.database", "cli.history", "cli.running",
                    "cli.pending", "cli.budget"]
#: Modules exposing a sub-app ``app``, mounted under the given name.
_SUB_APPS = {"simlab": "cli.simlab"}
#: Commands run with only their own module loaded (see :func:`main`): ``matloop history`` with 10^5 rows
#: spent a fifth of its time importing what the other commands need (the campaign spec's models, alembic,
#: rich's progress display). The module must register at least two commands: typer runs an app of one
#: command as that command itself.
_OWN_MODULE = {"history": "cli.history", "campaigns": "cli.history", "show": "cli.history"}


def _new_app() -> typer.Typer:
    return typer.Typer(
        name="matloop",
        help="An autonomous active-learning controller for materials discovery.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_show_locals=False,
    )


def _import(module_name: str) -> Any:
    """The module, or None when that part of the CLI is not built yet."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return None
        raise


def _assemble(modules: list[str] | None = None) -> typer.Typer:
    """The app with every command (or only those of ``modules``, and then no sub-apps)."""
    assembled = _new_app()
    for module_name in _COMMAND_MODULES if modules is None else modules:
        module = _import(module_name)
        if module is not None:
            module.register(assembled)
    for name, module_name in ({} if modules is not None else _SUB_APPS).items():
        module = _import(module_name)
        if module is not None:
            assembled.add_typer(module.app, name=name)
    return assembled


def __getattr__(name: str) -> Any:
    """``cli.app``, the whole CLI, assembled on first use (the tests' CliRunner runs it)."""
    if name == "app":
        return _whole_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _whole_app() -> typer.Typer:
    if "app" not in globals():
        globals()["app"] = _assemble()
    return globals()["app"]


def _app_for(args: list[str]) -> typer.Typer:
    """The app to run ``matloop ARGS``: only the command's own module for the commands of :data:`_OWN_MODULE`.

    The main app has no options of its own (but --help), so the first argument is the command's name.
    """
    module = _OWN_MODULE.get(args[0]) if args else None
    if module is not None:
        partial = _assemble([module])
        if len(partial.registered_commands) >= 2:
            return partial
    return _whole_app()


def main() -> None:
    """Entry point of the ``matloop`` console script.

    Commands turn database problems into one sentence themselves (``cli.common.plain_store_errors``); this
    is the net under any path that opens the database before reaching one (a bad ``MATLOOP_DATABASE_URL`` seen
    by ``matloop run``), so the user never gets a traceback for a :class:`~agent.store.StoreError`.
    """
    from agent.store import StoreError

    try:
        _app_for(sys.argv[1:])()
    except StoreError as exc:
        from cli.common import EXIT_FAILURE, fail

        fail(str(exc))
        raise SystemExit(EXIT_FAILURE) from None
