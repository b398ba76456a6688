"""docker-compose.yml and the Dockerfile hold together: health checks, profiles, GPUs, no
volume shared by the API and the workers, and settings that Capas reads."""

import re

import pytest
import yaml

from core.settings import Settings
from tests.conftest import ROOT

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict] = COMPOSE["services"]
CAPAS = {name: service for name, service in SERVICES.items()
         if service.get("image", "").startswith("capas:")}
WORKERS = ("worker", "worker-cuda")


def one_shot(name: str) -> bool:
    """A service that others wait on to have finished, not to be healthy."""
    return any(condition == {"condition": "service_completed_successfully"}
               for service in SERVICES.values()
               for needed, condition in service.get("depends_on", {}).items() if needed == name)


def test_the_services_and_the_cuda_profile():
    assert set(SERVICES) == {"postgres", "redis", "s3", "s3-bucket", "migrate", "api", "worker",
                             "worker-cuda"}
    assert {name: service.get("profiles") for name, service in SERVICES.items()
            if service.get("profiles")} == {"worker-cuda": ["cuda"]}
    assert set(CAPAS) == {"migrate", "api", "worker", "worker-cuda"}


def test_every_long_running_service_has_a_health_check():
    for name, service in SERVICES.items():
        assert one_shot(name) or "healthcheck" in service, name
        assert one_shot(name) == (name in ("s3-bucket", "migrate")), name
    assert "/readyz" in " ".join(SERVICES["api"]["healthcheck"]["test"])
    assert "inspect ping -d capas@$$HOSTNAME" in SERVICES["worker"]["healthcheck"]["test"][1]


def test_what_a_service_waits_for_exists_and_says_when_it_is_ready():
    for name, service in SERVICES.items():
        for needed, condition in service.get("depends_on", {}).items():
            assert needed in SERVICES and not SERVICES[needed].get("profiles"), (name, needed)
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in SERVICES[needed], (name, needed)
    for name in ("api", *WORKERS):
        assert set(SERVICES[name]["depends_on"]) == {"migrate", "redis", "s3-bucket"}


def test_the_api_and_the_workers_share_no_volume():
    mounted = {name: {str(volume).split(":")[0] for volume in SERVICES[name].get("volumes", [])}
               for name in ("api", *WORKERS)}
    for name in WORKERS:
        assert not mounted["api"] & mounted[name], name
    environment = SERVICES["api"]["environment"]
    assert environment["CAPAS_ARTIFACT_URL"].startswith("s3://")
    assert all(SERVICES[name]["environment"] == environment for name in CAPAS)
    assert "s3" in SERVICES and "s3data" in COMPOSE["volumes"]


def test_the_cuda_worker_reserves_the_gpus_and_runs_one_worker_per_gpu():
    service = SERVICES["worker-cuda"]
    assert service["build"] == {"context": ".", "target": "cuda"}
    assert service["image"] != SERVICES["worker"]["image"]
    devices = service["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]
    script = service["command"][-1]
    assert "for gpu in" in script and 'capas worker -Q cuda --gpu "$$gpu" &' in script
    assert service["stop_grace_period"] == SERVICES["worker"]["stop_grace_period"]


def test_every_variable_set_for_capas_is_a_setting():
    names = {f"CAPAS_{field.upper()}" for field in Settings.model_fields}
    names |= {field.validation_alias for field in Settings.model_fields.values()
              if isinstance(field.validation_alias, str)}
    for name, service in CAPAS.items():
        assert set(service["environment"]) <= names, name


@pytest.mark.parametrize("target", ["cpu", "cuda"])
def test_the_dockerfile_has_each_target_compose_builds(target):
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM \S+ AS (\S+)$", dockerfile, re.MULTILINE)
    assert target in stages
    assert stages[-1] == "cpu"  # `docker build .` without a target: the CPU image
    builds = [service["build"]["target"] for service in CAPAS.values()]
    assert target in builds
