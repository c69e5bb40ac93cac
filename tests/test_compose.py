"""The operator's kit: docker-compose.yml is valid for the compose tool, every long-running service is
healthchecked and starts only once what it needs is healthy, and the images run as a non-root user."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from tests.fixtures.infrastructure import ROOT

COMPOSE_FILE = ROOT / "docker-compose.yml"
NON_ROOT_STAGES = ("api", "worker-cpu")  # the GPU worker's image starts from a TensorRT base of its own


def _compose() -> list[str]:
    """`docker compose` where the plugin is installed, else the standalone `docker-compose`."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    if standalone := shutil.which("docker-compose"):
        return [standalone]
    pytest.fail("no compose tool: scripts/test-prereqs.sh installs Debian's docker-compose")


def _config(*args: str) -> subprocess.CompletedProcess[str]:
    # The file refuses to start without a database password; any value makes it complete.
    # AWS_* of this process (the SeaweedFS fixture sets them) would override the file's defaults.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["POSTGRES_PASSWORD"] = "not-a-secret"
    command = [*_compose(), "-f", str(COMPOSE_FILE), "--profile", "gpu", "config", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    """The services as the compose tool resolves them (anchors, interpolation and defaults applied)."""
    resolved = _config()
    assert resolved.returncode == 0, resolved.stderr
    return dict(yaml.safe_load(resolved.stdout)["services"])


def test_compose_config_is_valid() -> None:
    checked = _config("-q")

    assert checked.returncode == 0, checked.stderr


def test_every_long_running_service_has_a_healthcheck(services: dict[str, Any]) -> None:
    one_shot = {
        name
        for service in services.values()
        for name, needs in (service.get("depends_on") or {}).items()
        if needs["condition"] == "service_completed_successfully"
    }
    unchecked = [
        name
        for name, service in services.items()
        if name not in one_shot and not (service.get("healthcheck") or {}).get("test")
    ]

    assert one_shot == {"migrate"}
    assert not unchecked, f"services without a healthcheck: {unchecked}"


def test_services_start_once_what_they_need_is_healthy(services: dict[str, Any]) -> None:
    started_only = [
        f"{name} -> {needed}"
        for name, service in services.items()
        for needed, needs in (service.get("depends_on") or {}).items()
        if needs["condition"] not in ("service_healthy", "service_completed_successfully")
        or (needs["condition"] == "service_healthy" and "healthcheck" not in services[needed])
    ]

    assert not started_only, f"dependencies not waited for until healthy: {started_only}"
    assert set(services["api"]["depends_on"]) >= {"migrate", "postgres", "redis"}


def test_the_api_and_the_cpu_workers_run_as_a_non_root_user() -> None:
    stages = re.split(r"^FROM ", (ROOT / "Dockerfile").read_text(), flags=re.MULTILINE)
    users = {}
    for stage in stages[1:]:
        name = re.match(r"\S+ AS (\S+)", stage)
        found = re.findall(r"^USER (\S+)", stage, flags=re.MULTILINE)
        if name and found:
            users[name.group(1)] = found[-1]

    for stage in NON_ROOT_STAGES:
        assert users.get(stage, "root") not in ("root", "0", "0:0"), f"stage {stage} runs as root"


def test_the_first_key_command_is_documented() -> None:
    command = "docker compose run --rm api modelpress keys create --tenant"

    assert command in (ROOT / "README.md").read_text()
    assert command in COMPOSE_FILE.read_text()


def test_the_api_and_workers_share_no_disk_only_the_s3_store(services: dict[str, Any]) -> None:
    store = services["seaweedfs"]
    users = ["api", "worker-cpu", "worker-gpu", "worker-webhooks", "sweeper", "migrate"]

    assert store["healthcheck"]["test"] and "8333" in " ".join(store["healthcheck"]["test"])
    for name in users:
        env = services[name]["environment"]
        assert env["MODELPRESS_STORAGE_URL"].startswith("s3://"), name
        assert env["AWS_ENDPOINT_URL"] == "http://seaweedfs:8333", name
        assert "MODELPRESS_STORAGE_DIR" not in env, name
        assert not services[name].get("volumes"), f"{name} mounts a volume: workers must not share disk"
        if name != "migrate":
            assert services[name]["depends_on"]["seaweedfs"]["condition"] == "service_healthy", name
