"""docker-compose.yml is valid and has the topology the deployment needs, checked by Compose
itself (``docker compose`` or Debian's ``docker-compose``; no Docker engine is needed)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]


def compose_command() -> list[str]:
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"],
                                                 capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.skip("neither `docker compose` nor `docker-compose` is installed "
                "(apt-get install docker-compose)")


def compose_config(**env: str) -> subprocess.CompletedProcess:
    return subprocess.run([*compose_command(), "config"], cwd=REPO, capture_output=True, text=True,
                          env={"PATH": "/usr/local/bin:/usr/bin:/bin", **env})


def test_compose_starts_without_tokens_on_the_generated_one_bound_to_this_machine():
    result = compose_config()
    assert result.returncode == 0, result.stderr
    api = yaml.safe_load(result.stdout)["services"]["api"]
    assert api["environment"]["LOOKUPS_API_TOKENS"] == "[]"
    assert api["command"][-2:] == ["--token-file", "/data/api-token"]
    (port,) = api["ports"]  # docker-compose v1 writes it short, Compose v2 long
    if isinstance(port, str):
        assert port.startswith("127.0.0.1:8000:8000")
    else:
        assert port["host_ip"] == "127.0.0.1" and str(port["published"]) == "8000"


def test_compose_config_validates_with_the_whole_topology():
    result = compose_config(LOOKUPS_API_TOKENS='["secret"]')
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]

    assert set(services) == {"redis", "postgres", "api", "orchestrator", "gpu-worker",
                             "llm-worker", "flower"}
    assert "--appendonly" in services["redis"]["command"]
    for name in ("redis", "postgres"):
        assert services[name]["healthcheck"]["test"]
    for name in ("api", "orchestrator", "gpu-worker", "llm-worker"):
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert services[name]["environment"]["LOOKUPS_BROKER_URL"] == "redis://redis:6379/0"
    (device,) = services["gpu-worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert services["gpu-worker"]["command"][-4:-2] == ["--concurrency", "1"]
    assert "cpu" in services["api"]["build"]["args"]["TORCH_INDEX_URL"]
    assert services["api"]["environment"]["LOOKUPS_API_TOKENS"] == '["secret"]'
    assert services["api"]["environment"]["LOOKUPS_BROKER_URL"] == "redis://redis:6379/0"
