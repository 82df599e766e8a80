"""docker-compose.yml, checked without a Docker engine: services, health, settings, monitoring."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from homeloop.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SETTING_NAMES = {f"HOMELOOP_{name.upper()}" for name in Settings.model_fields}
INFRA = {"kafka", "redis", "postgres", "mlflow", "prometheus", "grafana"}
HOMELOOP = {"provision", "trainer-bootstrap", "streams", "serving", "scheduler", "simulator"}
ONE_SHOT = {"provision", "trainer-bootstrap"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return dict(compose["services"])


def test_every_service_is_defined(services: dict[str, Any]) -> None:
    assert set(services) >= INFRA | HOMELOOP


def test_long_running_services_are_health_checked(services: dict[str, Any]) -> None:
    for name, service in services.items():
        if name in ONE_SHOT:
            assert service.get("restart") == "no", name
            continue
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, name


def test_dependencies_wait_for_health_or_completion(services: dict[str, Any]) -> None:
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on must name conditions"
        for target, rule in depends.items():
            assert target in services, f"{name} depends on unknown {target}"
            expected = "service_completed_successfully" if target in ONE_SHOT else "service_healthy"
            assert rule == {"condition": expected}, (name, target)


def test_homeloop_services_share_one_image_and_one_environment(services: dict[str, Any]) -> None:
    environments = [services[name]["environment"] for name in HOMELOOP]
    assert all(env == environments[0] for env in environments)
    assert {services[name]["image"] for name in HOMELOOP} == {"homeloop:latest"}
    assert all(services[name]["build"] == "." for name in HOMELOOP)


def test_settings_are_the_local_stacks_names(services: dict[str, Any]) -> None:
    env = services["serving"]["environment"]
    given = {k for k in env if k.startswith("HOMELOOP_")}
    assert given <= SETTING_NAMES, f"not settings: {given - SETTING_NAMES}"
    for needed in (
        "HOMELOOP_KAFKA_BOOTSTRAP_SERVERS",
        "HOMELOOP_REDIS_URL",
        "HOMELOOP_DATABASE_URL",
        "HOMELOOP_MLFLOW_TRACKING_URI",
        "HOMELOOP_ADMIN_TOKEN",
    ):
        assert needed in given, needed
    assert env["HOMELOOP_ENVIRONMENT"] == "production"
    assert env["HOMELOOP_KAFKA_BOOTSTRAP_SERVERS"].startswith("kafka:")
    assert "@postgres:" in env["HOMELOOP_DATABASE_URL"]
    assert env["HOMELOOP_REDIS_URL"].startswith("redis://redis:")
    assert env["HOMELOOP_MLFLOW_TRACKING_URI"] == "http://mlflow:5000"


def test_secrets_are_required_not_defaulted() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    for secret in ("POSTGRES_PASSWORD", "HOMELOOP_ADMIN_TOKEN", "GRAFANA_ADMIN_PASSWORD"):
        uses = re.findall(r"\$\{" + secret + r"([^}]*)\}", text)
        assert uses, secret
        assert all(use.startswith(":?") for use in uses), f"{secret} must use ${{VAR:?msg}}"
    example = (ROOT / ".env.example").read_text()
    assert all(s + "=" in example for s in ("POSTGRES_PASSWORD", "HOMELOOP_ADMIN_TOKEN"))


def test_kafka_runs_in_kraft_mode(services: dict[str, Any]) -> None:
    env = services["kafka"]["environment"]
    assert "controller" in env["KAFKA_PROCESS_ROLES"].split(",")
    assert "ZOOKEEPER" not in " ".join(env)
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{env['KAFKA_NODE_ID']}@")


def test_prometheus_scrapes_services_that_exist(services: dict[str, Any]) -> None:
    config = yaml.safe_load((ROOT / "monitoring/prometheus.yml").read_text())
    targets = [
        t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]
    ]
    assert targets
    for target in targets:
        host, _port = target.split(":")
        assert host in services, target
    serving_port = services["serving"]["environment"]["HOMELOOP_API_PORT"]
    assert f"serving:{serving_port}" in targets
    worker_port = services["streams"]["environment"]["HOMELOOP_WORKER_WEB_PORT"]
    assert f"streams:{worker_port}" in targets


def test_alert_rules_have_priorities_and_use_real_metrics() -> None:
    rules = yaml.safe_load((ROOT / "monitoring/alert_rules.yml").read_text())
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    assert len(alerts) >= 6
    for rule in alerts:
        assert rule["labels"]["priority"] in {"P0", "P1", "P2", "P3"}, rule["alert"]
        assert rule["expr"] and rule["annotations"]["summary"]
    exprs = " ".join(rule["expr"] for rule in alerts)
    for metric in ("homeloop_request_duration_seconds_bucket", "homeloop_requests_total"):
        assert metric in exprs


def test_grafana_dashboard_uses_the_provisioned_datasource() -> None:
    source = yaml.safe_load(
        (ROOT / "monitoring/grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    uid = source["datasources"][0]["uid"]
    dashboard = json.loads((ROOT / "monitoring/grafana/dashboards/homeloop-loop.json").read_text())
    assert dashboard["panels"]
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == uid
        assert all("homeloop_" in t["expr"] for t in panel["targets"])
