"""docker-compose.yml cannot be run here (no Docker engine), so its shape is checked instead."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def test_compose_defines_the_production_services() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "prefect-server", "worker", "simlab", "migrate"} <= set(services)
    worker = services["worker"]
    assert worker["command"] == ["serve"]
    assert worker["environment"]["MATLOOP_DATABASE_URL"].startswith("postgresql://")
    assert worker["environment"]["PREFECT_API_URL"] == "http://prefect-server:4200/api"
    assert services["migrate"]["command"] == ["db", "upgrade"]
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown service {dependency}"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in compose["volumes"], f"{name} uses undeclared volume {source}"


def test_the_image_installs_every_package_the_services_import() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    for package in ["matloop", "agent", "generators", "surrogates", "lab_adapters", "flows", "migrations"]:
        assert f"COPY {package} ./{package}" in dockerfile
