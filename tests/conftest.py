"""Fixtures the whole suite shares: databases (SQLite and a real PostgreSQL) and CI strictness."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.postgres import PostgresServer, start_postgres

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(autouse=True)
def _isolated_matloop_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own data dir, so nothing touches the user's real campaigns."""
    home = tmp_path_factory.mktemp("matloop-home")
    monkeypatch.setenv("MATLOOP_DATA_DIR", str(home))
    monkeypatch.delenv("MATLOOP_DATABASE_URL", raising=False)
    from matloop.settings import reload_settings

    reload_settings()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL for the session; skipped (a failure under CI=true) when it is not installed."""
    try:
        server = start_postgres()
    except FileNotFoundError as exc:
        pytest.skip(f"no PostgreSQL here: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty PostgreSQL database for one test."""
    return postgres_server.create_database()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'matloop.sqlite'}"


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Both backends, with the same code: the store must behave identically on each."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'matloop.sqlite'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def migrated_db_url(db_url: str) -> str:
    from agent.store.migrate import upgrade

    upgrade(db_url)
    return db_url


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prefect server (Prefect's test harness, its own SQLite) shared by every flow test."""
    saved = {k: os.environ.get(k) for k in ("PREFECT_HOME", "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS")}
    os.environ["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect-home"))
    os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "120"
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    try:
        with prefect_test_harness(server_startup_timeout=120):
            yield str(PREFECT_API_URL.value())
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"the shared datasets are not at {SHARED_DATA}")
    return SHARED_DATA


def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """Under CI=true a skipped test is a failure: CI installs every real component, so a skip hides a gap."""
    if not IN_CI or call.excinfo is None or not call.excinfo.errisinstance(pytest.skip.Exception):
        return None
    if item.get_closest_marker("allow_skip_in_ci"):
        return None
    report = pytest.TestReport.from_item_and_call(item, call)
    report.outcome = "failed"
    report.longrepr = f"skipped under CI=true, which counts as a failure: {call.excinfo.value}"
    return report


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "allow_skip_in_ci: a skip that is legitimate even in CI")
