"""docker-compose.yml checked with `docker compose config` semantics, without a Docker engine.

No Docker engine (nor the compose plugin: Debian has only the retired Python compose v1) runs on the development
machines, so this file does what `docker compose config` does that matters here: YAML anchors and merge keys,
variable interpolation from the environment (``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}``, ``$$``), and the
references between services, volumes and healthchecks. What the services read from the interpolated environment is
then handed to the real consumers: Prefect's and matloop's own settings classes, and the PostgreSQL init script runs
against a real PostgreSQL.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.support.postgres import PostgresServer, find_pg_binary

REPO = Path(__file__).resolve().parents[1]
SECRETS = ("POSTGRES_PASSWORD", "PREFECT_DB_PASSWORD", "PREFECT_API_AUTH_STRING", "MATLOOP_SIMLAB_TOKEN")
SECRET_NAME = re.compile(r"PASSWORD|TOKEN|SECRET|AUTH|KEY", re.IGNORECASE)
# A value with every character a URL or a shell could trip over: it must survive the whole stack.
AWKWARD = "p@ss:w/o'rd\"$ #%?&"

_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)


class InterpolationError(ValueError):
    """What `docker compose` prints (and refuses to start with) for a required variable that is unset."""


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """One string as compose interpolates it (the operators compose supports; nested defaults are not used here)."""

    def substitute(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["named"]
        op, arg = match["op"], match["arg"] or ""
        present = name in env
        nonempty = present and env[name] != ""
        if op in (":-", "-"):
            return env[name] if (nonempty if op == ":-" else present) else arg
        if op in (":?", "?"):
            if not (nonempty if op == ":?" else present):
                raise InterpolationError(f"required variable {name} is missing a value: {arg}")
            return env[name]
        if op in (":+", "+"):
            return arg if (nonempty if op == ":+" else present) else ""
        return env.get(name, "")

    return _VARIABLE.sub(substitute, value)


def interpolated(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [interpolated(item, env) for item in node]
    if isinstance(node, dict):
        return {key: interpolated(item, env) for key, item in node.items()}
    return node


def raw_text() -> str:
    return (REPO / "docker-compose.yml").read_text()


def strings(node: Any) -> list[str]:
    """Every string value of the YAML (what compose interpolates: not keys, not comments)."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [s for item in node for s in strings(item)]
    if isinstance(node, dict):
        return [s for item in node.values() for s in strings(item)]
    return []


def variables_used() -> dict[str, set[str]]:
    """Every variable the compose file reads, with the operators it is read with ('' for plain)."""
    used: dict[str, set[str]] = {}
    for value in strings(yaml.safe_load(raw_text())):
        for match in _VARIABLE.finditer(value):
            if not match["escaped"]:
                used.setdefault(match["braced"] or match["named"], set()).add(match["op"] or "")
    return used


def env_example() -> dict[str, str]:
    values = {}
    for line in (REPO / ".env.example").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f".env.example: {line!r} is not NAME=VALUE"
            values[name.strip()] = value.strip()
    return values


def filled_env() -> dict[str, str]:
    """.env.example with every secret filled in, as a user's .env would be."""
    env = env_example()
    env.update({name: f"{name.lower()}-{AWKWARD}" for name in SECRETS})
    env["PREFECT_API_AUTH_STRING"] = f"admin:{AWKWARD}"
    env["MATLOOP_SIMLAB_TOKEN"] = "s3cret-token_1"  # it travels in an HTTP header: visible ASCII
    return env


def config(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The model `docker compose config` would print, for this environment."""
    return interpolated(yaml.safe_load(raw_text()), filled_env() if env is None else env)


def service_env(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment", {})
    if isinstance(environment, list):
        environment = dict(item.partition("=")[::2] for item in environment)
    return {key: str(value) for key, value in environment.items()}


def test_compose_defines_the_production_services() -> None:
    compose = config()
    services = compose["services"]
    assert {"postgres", "prefect-server", "deploy", "worker", "simlab", "migrate", "dask-scheduler",
            "dask-worker"} <= set(services)
    worker = services["worker"]
    # the campaign deployment on the `matloop` process pool (`matloop deploy`), run by two Prefect workers
    assert services["deploy"]["command"] == ["deploy", "--pool", "matloop"]
    assert worker["entrypoint"] + worker["command"] == ["prefect", "worker", "start", "--pool", "matloop", "--type",
                                                        "process"]
    assert worker["deploy"]["replicas"] == 2
    assert service_env(worker)["MATLOOP_DATABASE_URL"].startswith("postgresql://")
    assert service_env(worker)["PREFECT_API_URL"] == "http://prefect-server:4200/api"
    assert service_env(services["deploy"])["PREFECT_API_URL"] == "http://prefect-server:4200/api"
    assert services["migrate"]["command"] == ["db", "upgrade"]


def test_heavy_steps_go_to_the_stacks_dask_cluster() -> None:
    services = config()["services"]
    scheduler, dask_worker = services["dask-scheduler"], services["dask-worker"]
    assert scheduler["entrypoint"] + scheduler["command"][:1] == ["dask", "scheduler"]
    port = _port_of(scheduler)
    assert dask_worker["entrypoint"] == ["dask"] and dask_worker["command"][:2] == [
        "worker", f"tcp://dask-scheduler:{port}"]
    assert dask_worker["deploy"]["replicas"] == 2
    assert dask_worker["depends_on"] == {"dask-scheduler": {"condition": "service_healthy"}}
    assert "/health" in " ".join(scheduler["healthcheck"]["test"])
    # the workers' environment, read by matloop's own setting: the scheduler of this stack
    env = {k: v for k, v in service_env(services["worker"]).items() if k.startswith("MATLOOP_COMPUTE")}
    assert env == {"MATLOOP_COMPUTE__TYPE": "dask_scheduler", "MATLOOP_COMPUTE__ADDRESS": f"tcp://dask-scheduler:{port}"}
    import matloop.settings

    if hasattr(matloop.settings, "ComputeSettings"):  # the typed setting of the Dask work (matloop/compute.py)
        with pytest.MonkeyPatch.context() as patch:
            for key, value in env.items():
                patch.setenv(key, value)
            compute = matloop.settings.ComputeSettings().compute
        assert compute.type == "dask_scheduler" and compute.address == f"tcp://dask-scheduler:{port}"
    # every Dask process runs the project image with the dask extra (it unpickles matloop's functions)
    assert scheduler["image"] == dask_worker["image"] == "matloop:latest"
    assert "dask" in services["migrate"]["build"]["args"]["MATLOOP_EXTRAS"].split(",")


@pytest.mark.parametrize("secret", SECRETS)
@pytest.mark.parametrize("how", ["unset", "empty"])
def test_the_stack_refuses_to_start_without_each_secret(secret: str, how: str) -> None:
    env = filled_env()
    if how == "unset":
        del env[secret]
    else:
        env[secret] = ""
    with pytest.raises(InterpolationError, match=rf"{secret} is missing a value: set {secret}\b.* in \.env"):
        config(env)


def test_no_secret_has_a_default_or_a_literal_value() -> None:
    for name, operators in variables_used().items():
        if SECRET_NAME.search(name):
            assert operators == {":?"}, f"{name} must be read as ${{{name}:?...}}, is read with {operators}"
    assert set(SECRETS) <= set(variables_used())
    raw = yaml.safe_load(raw_text())
    for service_name, service in raw["services"].items():
        for key, value in service_env(service).items():
            if SECRET_NAME.search(key):
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", value), f"{service_name}.{key} is a literal: {value!r}"
    assert "change-me" not in raw_text()
    for name in SECRETS:
        assert env_example()[name] == "", f".env.example must leave {name} empty (no shared default secret)"


def test_env_example_documents_every_variable_and_only_those() -> None:
    text = (REPO / ".env.example").read_text()
    assert set(env_example()) == set(variables_used())
    for name in env_example():
        comment = text.split(f"\n{name}=")[0].rstrip().splitlines()[-1]
        assert comment.startswith("#"), f".env.example: {name} has no comment saying what it is"
    for name, value in env_example().items():
        if name not in SECRETS:  # the documented default is the one the compose file uses
            assert f"${{{name}:-{value}}}" in raw_text(), f".env.example's {name}={value} is not the file's default"
    assert ".env" in (REPO / ".gitignore").read_text().splitlines()


def test_every_reference_resolves() -> None:
    compose = config()
    services, volumes = compose["services"], compose["volumes"]
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on unknown service {dependency}"
            condition = condition["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits for {dependency}'s health; it has none"
            elif condition == "service_completed_successfully":
                assert "restart" not in services[dependency], f"{dependency} is a one-shot job, not restarted"
            else:
                assert condition == "service_started", (name, dependency, condition)
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                assert (REPO / source).is_dir(), f"{name} mounts {source}, which is not in the repository"
            else:
                assert source in volumes, f"{name} uses undeclared volume {source}"
    images = {service["image"] for service in services.values() if "build" in service}
    assert images == {"matloop:latest"}, "every service built here shares one image"


def test_services_start_in_order() -> None:
    services = config()["services"]
    assert services["postgres"]["healthcheck"]["test"][-1].startswith("pg_isready -h 127.0.0.1 ")
    assert services["prefect-server"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert services["deploy"]["depends_on"] == {"prefect-server": {"condition": "service_healthy"}}
    assert services["worker"]["depends_on"] == {
        "migrate": {"condition": "service_completed_successfully"},
        "deploy": {"condition": "service_completed_successfully"},
        "prefect-server": {"condition": "service_healthy"},
        "simlab": {"condition": "service_healthy"},
        "dask-scheduler": {"condition": "service_healthy"},
    }


def test_the_worker_reads_campaign_files_from_a_mounted_folder() -> None:
    worker = config()["services"]["worker"]
    assert "./campaigns:/campaigns:ro" in worker["volumes"]
    assert (REPO / "campaigns" / "README.md").is_file()
    assert "/campaigns" in (REPO / "docs" / "deployment.md").read_text()


def _port_of(service: dict[str, Any]) -> int:
    command = service.get("entrypoint", []) + service.get("command", [])
    for i, arg in enumerate(command):
        if arg.startswith("--port="):
            return int(arg.removeprefix("--port="))
        if arg == "--port":
            return int(command[i + 1])
    raise AssertionError(f"no --port in {command}")


def test_the_prefect_server_runs_on_the_stacks_postgresql_with_a_healthcheck(monkeypatch) -> None:
    services = config()["services"]
    server = services["prefect-server"]
    for name in list(os.environ):
        if name.startswith("PREFECT_"):
            monkeypatch.delenv(name)
    for name, value in service_env(server).items():
        monkeypatch.setenv(name, value)
    from prefect.settings import Settings

    settings = Settings()  # exactly what `prefect server start` reads from this environment
    from sqlalchemy.engine import make_url

    url = make_url(settings.server.database.connection_url.get_secret_value())
    assert (url.drivername, url.host, url.port, url.username, url.database) == (
        "postgresql+asyncpg", "postgres", 5432, "prefect", "prefect"
    )
    assert url.password == f"prefect_db_password-{AWKWARD}"  # built and quoted by Prefect, never hand-written
    assert services["postgres"]["image"].startswith("postgres:")
    assert settings.server.api.auth_string.get_secret_value() == f"admin:{AWKWARD}"
    assert settings.server.analytics_enabled is False
    assert settings.server.ui.api_url == "http://localhost:4200/api"
    health = " ".join(server["healthcheck"]["test"])
    assert f"http://127.0.0.1:{_port_of(server)}/api/health" in health
    assert server["ports"] == [f"127.0.0.1:{_port_of(server)}:{_port_of(server)}"]
    # Prefect's server on PostgreSQL needs asyncpg: Prefect itself requires it, and the image installs Prefect.
    assert any(re.match(r"asyncpg\b", r) for r in importlib.metadata.requires("prefect") or [])


def test_the_worker_reaches_the_database_prefect_and_the_lab_of_the_stack(monkeypatch) -> None:
    services = config()["services"]
    env = service_env(services["worker"])
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    from matloop.settings import reload_settings

    settings = reload_settings()
    database = urlsplit(settings.resolved_database_url)
    assert (database.hostname, database.port, database.username, database.path) == (
        "postgres", 5432, "matloop", "/matloop"
    )
    assert database.password is None and env["PGPASSWORD"] == f"postgres_password-{AWKWARD}"  # libpq reads it
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == env["PGPASSWORD"]
    prefect = urlsplit(env["PREFECT_API_URL"])
    assert prefect.hostname in services and prefect.port == _port_of(services[prefect.hostname])
    assert env["PREFECT_API_AUTH_STRING"] == services["prefect-server"]["environment"]["PREFECT_SERVER_API_AUTH_STRING"]
    lab = urlsplit(env["MATLOOP_SIMLAB_URL"])
    assert lab.hostname == "simlab" and lab.port == _port_of(services["simlab"])
    assert env["MATLOOP_SIMLAB_TOKEN"] == services["simlab"]["environment"]["MATLOOP_SIMLAB_TOKEN"]
    assert service_env(services["migrate"])["MATLOOP_DATABASE_URL"] == env["MATLOOP_DATABASE_URL"]
    reload_settings()


def test_the_image_installs_every_package_the_services_import() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    for package in ["matloop", "agent", "generators", "surrogates", "lab_adapters", "flows", "migrations"]:
        assert f"COPY {package} ./{package}" in dockerfile
    assert 'ARG MATLOOP_EXTRAS="postgres,mlip"' in dockerfile
    assert 'python -c "import asyncpg, psycopg, prefect.server.api.server"' in dockerfile
    assert "\nUSER matloop\n" in dockerfile
    for line in dockerfile.splitlines():  # the image carries no secret: they come from the environment at run time
        if line.startswith(("ENV", "ARG")):
            assert not SECRET_NAME.search(line), line


@pytest.fixture
def prefect_role_cleanup(postgres_server: PostgresServer):
    import psycopg

    admin = f"host=127.0.0.1 port={postgres_server.port} user={postgres_server.user} dbname=postgres"
    yield admin
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS prefect")
        conn.execute("DROP ROLE IF EXISTS prefect")


def test_the_postgres_init_script_makes_prefects_database(postgres_server: PostgresServer, prefect_role_cleanup) -> None:
    """The script the postgres image runs on first start, run here against a real PostgreSQL."""
    import psycopg

    psql = find_pg_binary("psql")
    if psql is None:
        pytest.skip("psql is not installed")
    script = REPO / "docker" / "postgres-init" / "10-prefect-database.sh"
    postgres = config()["services"]["postgres"]
    assert "./docker/postgres-init:/docker-entrypoint-initdb.d:ro" in postgres["volumes"]
    env = {
        "PATH": f"{Path(psql).parent}:{os.environ['PATH']}",
        "PGHOST": "127.0.0.1",  # the image's entrypoint uses its socket; the rest is what it sets
        "PGPORT": str(postgres_server.port),
        "POSTGRES_USER": postgres_server.user,
        "POSTGRES_DB": "postgres",
        "PREFECT_DB_PASSWORD": postgres["environment"]["PREFECT_DB_PASSWORD"],
    }
    done = subprocess.run(["sh", str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    with psycopg.connect(prefect_role_cleanup) as conn:
        owner = conn.execute(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'prefect'"
        ).fetchone()
        assert owner == ("prefect",)
        can_login, password = conn.execute(
            "SELECT rolcanlogin, rolpassword FROM pg_authid WHERE rolname = 'prefect'"
        ).fetchone()
        assert can_login and password and password.startswith("SCRAM-SHA-256$")
    prefect_db = f"host=127.0.0.1 port={postgres_server.port} user=prefect dbname=prefect"
    with psycopg.connect(prefect_db) as conn:
        assert conn.execute("SELECT extname FROM pg_extension WHERE extname = 'pg_trgm'").fetchone() == ("pg_trgm",)
        conn.execute("CREATE TABLE owned_by_prefect (id int)")  # the role can create Prefect's schema
    unset = {key: value for key, value in env.items() if key != "PREFECT_DB_PASSWORD"}
    refused = subprocess.run(["sh", str(script)], env=unset, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "PREFECT_DB_PASSWORD" in refused.stderr


@pytest.mark.slow
def test_prefect_migrates_its_database_made_by_the_init_script(
    postgres_server: PostgresServer, prefect_role_cleanup, tmp_path: Path
) -> None:
    """Prefect's own migrations, as the prefect-server service's first start runs them, as the `prefect` role."""
    psql = find_pg_binary("psql")
    if psql is None:
        pytest.skip("psql is not installed")
    services = config()["services"]
    script_env = {
        "PATH": f"{Path(psql).parent}:{os.environ['PATH']}",
        "PGHOST": "127.0.0.1",
        "PGPORT": str(postgres_server.port),
        "POSTGRES_USER": postgres_server.user,
        "POSTGRES_DB": "postgres",
        "PREFECT_DB_PASSWORD": services["postgres"]["environment"]["PREFECT_DB_PASSWORD"],
    }
    script = REPO / "docker" / "postgres-init" / "10-prefect-database.sh"
    subprocess.run(["sh", str(script)], env=script_env, check=True, capture_output=True, timeout=60)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(service_env(services["prefect-server"]))
    env.update(PREFECT_SERVER_DATABASE_HOST="127.0.0.1", PREFECT_SERVER_DATABASE_PORT=str(postgres_server.port),
               PREFECT_HOME=str(tmp_path))
    done = subprocess.run([sys.executable, "-m", "prefect", "server", "database", "upgrade", "-y"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    import psycopg

    with psycopg.connect(f"host=127.0.0.1 port={postgres_server.port} user=prefect dbname=prefect") as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE tableowner = 'prefect'")}
    assert {"flow", "flow_run", "deployment", "alembic_version"} <= tables


def test_every_matloop_command_in_the_file_parses() -> None:
    """Each service's command, as the image's entrypoint `matloop` would get it, names real commands and options."""
    import typer

    from cli import app

    group = typer.main.get_command(app)
    checked = []
    for name, service in config()["services"].items():
        if service.get("image") != "matloop:latest" or "entrypoint" in service:
            continue
        args, command, path = list(service["command"]), group, []
        while hasattr(command, "commands"):  # a group (typer vendors its own click, so no isinstance)
            path.append(args.pop(0))
            assert path[-1] in command.commands, f"{name}: `matloop {' '.join(path)}` is not a command"
            command = command.commands[path[-1]]
        command.make_context(path[-1], args)  # parses every option, with its type and range; exits if one is bad
        checked.append((name, " ".join(path)))
    assert sorted(checked) == [("deploy", "deploy"), ("migrate", "db upgrade"), ("simlab", "simlab serve")]
