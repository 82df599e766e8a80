"""docker-compose.yml, checked without a Docker engine: services, health, settings, monitoring.

Names are checked against the code they must match (``Settings.model_fields``, the ``homeloop``
CLI), so a renamed setting or subcommand fails here rather than in a container at start-up.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import typer.core
import typer.main
import yaml

from homeloop.cli import app as cli_app
from homeloop.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SETTING_NAMES = {f"HOMELOOP_{name.upper()}" for name in Settings.model_fields}
INFRA = {"kafka", "redis", "postgres", "mlflow", "prometheus", "grafana"}
HOMELOOP = {"provision", "trainer-bootstrap", "trainer", "streams", "serving", "scheduler",
            "simulator"}  # fmt: skip
ONE_SHOT = {"provision", "trainer-bootstrap"}
SECRETS = ("POSTGRES_PASSWORD", "HOMELOOP_ADMIN_TOKEN", "GRAFANA_ADMIN_PASSWORD")
SERVICE_URLS = {
    "HOMELOOP_KAFKA_BOOTSTRAP_SERVERS": "kafka",
    "HOMELOOP_REDIS_URL": "redis",
    "HOMELOOP_DATABASE_URL": "postgres",
    "HOMELOOP_MLFLOW_TRACKING_URI": "mlflow",
}
# ${VAR:?message} and ${VAR:-default}, as compose interpolates them.
INTERPOLATION = re.compile(r"\$\{([A-Z0-9_]+)(?::([?-])([^}]*))?\}")


@pytest.fixture(scope="module")
def compose_text() -> str:
    return (ROOT / "docker-compose.yml").read_text()


@pytest.fixture(scope="module")
def compose(compose_text: str) -> dict[str, Any]:
    return dict(yaml.safe_load(compose_text))


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return dict(compose["services"])


def interpolate(value: str) -> str:
    """Compose's interpolation with the secrets set to placeholders and defaults applied."""

    def one(match: re.Match[str]) -> str:
        name, kind, rest = match.groups()
        return f"secret-{name.lower()}" if kind == "?" else (rest or "")

    return INTERPOLATION.sub(one, value)


def host_of(address: str) -> str:
    """The host of a URL (scheme://user:pass@host:port/...) or of a bare host:port."""
    return urlsplit(address if "://" in address else f"//{address}").hostname or ""


def test_every_service_is_defined(services: dict[str, Any]) -> None:
    assert set(services) >= INFRA | HOMELOOP


def test_long_running_services_are_health_checked(services: dict[str, Any]) -> None:
    for name, service in services.items():
        if name in ONE_SHOT:
            assert service.get("restart") == "no", name
            assert "healthcheck" not in service, f"{name} exits: nothing to health-check"
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


def test_homeloop_services_share_one_image_and_the_env_anchor(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    shared = compose["x-homeloop-env"]
    for name in HOMELOOP:
        # The alias, not a copy: PyYAML builds an anchored mapping once.
        assert services[name]["environment"] is shared, f"{name} must use *homeloop-env"
        assert services[name]["image"] == "homeloop:latest", name
        assert services[name]["build"] == ".", name
        assert services[name]["volumes"] == services["serving"]["volumes"], name


def test_homeloop_services_run_real_cli_commands(services: dict[str, Any]) -> None:
    group = typer.main.get_command(cli_app)
    assert isinstance(group, typer.core.TyperGroup)
    commands = group.commands

    def check(argv: list[str], where: str) -> None:
        assert argv[0] in commands, f"{where}: no `homeloop {argv[0]}`"
        options = {opt for param in commands[argv[0]].params for opt in param.opts}
        for arg in argv[1:]:
            if arg.startswith("--"):
                assert arg.split("=")[0] in options, f"{where}: `homeloop {argv[0]}` has no {arg}"

    for name in HOMELOOP:
        check(services[name]["command"], name)
        test = services[name].get("healthcheck", {}).get("test", [])
        if test[1:2] == ["homeloop"]:
            check(test[2:], f"{name} healthcheck")
    assert services["provision"]["command"] == ["provision"]
    assert services["trainer-bootstrap"]["command"] == ["train", "--if-missing"]


def test_settings_are_the_local_stacks_names(compose_text: str, services: dict[str, Any]) -> None:
    env = services["serving"]["environment"]
    given = {k for k in env if k.startswith("HOMELOOP_")}
    assert given <= SETTING_NAMES, f"not settings: {given - SETTING_NAMES}"
    assert set(SERVICE_URLS) | {"HOMELOOP_ADMIN_TOKEN"} <= given
    # Every HOMELOOP_* name anywhere (interpolations, .env.example, the image) is a setting.
    texts = (compose_text, (ROOT / ".env.example").read_text(), (ROOT / "Dockerfile").read_text())
    mentioned = {name for text in texts for name in re.findall(r"HOMELOOP_[A-Z0-9_]+", text)}
    assert mentioned <= SETTING_NAMES, f"not settings: {mentioned - SETTING_NAMES}"


def test_service_urls_point_at_compose_services(services: dict[str, Any]) -> None:
    env = services["serving"]["environment"]
    for setting, service in SERVICE_URLS.items():
        assert service in services, service
        assert host_of(interpolate(env[setting])) == service, setting
    assert interpolate(env["HOMELOOP_DATABASE_URL"]).startswith("postgresql+psycopg://")


def test_compose_environment_is_valid_production_settings(
    services: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(SETTING_NAMES):
        monkeypatch.delenv(name, raising=False)
    for name, value in services["serving"]["environment"].items():
        monkeypatch.setenv(name, interpolate(str(value)))
    settings = Settings()
    assert settings.environment == "production"
    # Other containers reach these ports: a loopback bind would hide them.
    assert settings.api_host == "0.0.0.0"
    assert settings.worker_web_bind == "0.0.0.0"


def test_health_checks_probe_the_configured_ports(services: dict[str, Any]) -> None:
    env = services["serving"]["environment"]
    probes = {
        "serving": f"localhost:{env['HOMELOOP_API_PORT']}/readyz",
        "streams": f"localhost:{env['HOMELOOP_WORKER_WEB_PORT']}/healthz",
    }
    for name, probe in probes.items():
        assert probe in " ".join(services[name]["healthcheck"]["test"]), name
    assert f"{env['HOMELOOP_API_PORT']}:{env['HOMELOOP_API_PORT']}" in services["serving"]["ports"]


def test_secrets_are_required_not_defaulted(compose_text: str, services: dict[str, Any]) -> None:
    for secret in SECRETS:
        uses = re.findall(r"\$\{" + secret + r"([^}]*)\}", compose_text)
        assert uses, secret
        assert all(use.startswith(":?") for use in uses), f"{secret} must use ${{VAR:?msg}}"
    holders = {
        ("serving", "environment", "HOMELOOP_ADMIN_TOKEN"),
        ("postgres", "environment", "POSTGRES_PASSWORD"),
        ("grafana", "environment", "GF_SECURITY_ADMIN_PASSWORD"),
    }
    for service, key, var in holders:
        value = str(services[service][key][var])
        assert value.startswith("${") and ":?" in value, f"{service}.{var} is a literal"
    example = (ROOT / ".env.example").read_text()
    assert all(re.search(rf"^{s}=$", example, re.M) for s in SECRETS), "secrets stay blank"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".env" in ignored, "COPY . . would bake .env into the image"


def test_kafka_runs_in_kraft_mode_on_its_volume(services: dict[str, Any]) -> None:
    kafka = services["kafka"]
    env = kafka["environment"]
    assert "controller" in env["KAFKA_PROCESS_ROLES"].split(",")
    assert not any("ZOOKEEPER" in key for key in env)
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{env['KAFKA_NODE_ID']}@")
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == 1
    mounts = [volume.split(":")[1] for volume in kafka["volumes"]]
    assert env["KAFKA_LOG_DIRS"] in mounts, "the log dirs must be the mounted volume"
    bootstrap = services["serving"]["environment"]["HOMELOOP_KAFKA_BOOTSTRAP_SERVERS"]
    assert f"PLAINTEXT://{bootstrap}" in env["KAFKA_ADVERTISED_LISTENERS"].split(",")


def test_mlflow_accepts_the_host_the_services_use(services: dict[str, Any]) -> None:
    uri = services["serving"]["environment"]["HOMELOOP_MLFLOW_TRACKING_URI"]
    netloc = urlsplit(uri).netloc
    args = dict(a.removeprefix("--").split("=", 1) for a in services["mlflow"]["command"][1:])
    # MLflow >= 3.5 answers 403 to any other Host header, except on /health.
    assert netloc in args["allowed-hosts"].split(","), netloc
    assert args["port"] == str(urlsplit(uri).port)
    assert "HOMELOOP_ADMIN_TOKEN" not in services["mlflow"].get("environment", {})


def test_prometheus_scrapes_services_that_exist(services: dict[str, Any]) -> None:
    config = yaml.safe_load((ROOT / "monitoring/prometheus.yml").read_text())
    targets = [
        t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]
    ]
    assert targets
    for target in targets:
        host, _port = target.split(":")
        assert host in services, target
    env = services["serving"]["environment"]
    assert f"serving:{env['HOMELOOP_API_PORT']}" in targets
    assert f"streams:{env['HOMELOOP_WORKER_WEB_PORT']}" in targets
    mounted = {v.split(":")[1] for v in services["prometheus"]["volumes"]}
    assert set(config["rule_files"]) <= mounted, "rule files must be mounted"


def test_alert_rules_have_priorities_and_use_real_metrics() -> None:
    rules = yaml.safe_load((ROOT / "monitoring/alert_rules.yml").read_text())
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    names = [rule["alert"] for rule in alerts]
    assert len(names) == len(set(names)), "duplicate alert names"
    for rule in alerts:
        assert rule["labels"]["priority"] in {"P0", "P1", "P2", "P3"}, rule["alert"]
        assert rule["expr"] and rule["annotations"]["summary"], rule["alert"]
    exprs = " ".join(rule["expr"] for rule in alerts)
    for metric in (
        "homeloop_request_duration_seconds_bucket",
        "homeloop_requests_total",
        "homeloop_realized_mae_manwon",
        "homeloop_ingest_runs_total",
        "homeloop_training_duration_seconds",
        "homeloop_dead_letters_total",
    ):
        assert metric in exprs, metric
    # The design's bands: errors > 10% and the API down are P0, errors 3-10% are P1.
    by_name = {rule["alert"]: rule for rule in alerts}
    assert by_name["ApiDown"]["labels"]["priority"] == "P0"
    assert by_name["ApiErrorRateHigh"]["labels"]["priority"] == "P1"


def test_grafana_dashboard_uses_the_provisioned_datasource(services: dict[str, Any]) -> None:
    source = yaml.safe_load(
        (ROOT / "monitoring/grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    datasource = source["datasources"][0]
    assert host_of(datasource["url"]) == "prometheus"
    provider = yaml.safe_load(
        (ROOT / "monitoring/grafana/provisioning/dashboards/homeloop.yml").read_text()
    )
    mounted = {v.split(":")[1] for v in services["grafana"]["volumes"]}
    assert provider["providers"][0]["options"]["path"] in mounted
    dashboard = json.loads((ROOT / "monitoring/grafana/dashboards/homeloop-loop.json").read_text())
    assert dashboard["panels"]
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])
    exprs = []
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]
        exprs += [target["expr"] for target in panel["targets"]]
    assert all("homeloop_" in expr for expr in exprs)
    for metric in ("homeloop_worker_events_total", "homeloop_predictions_published_total"):
        assert any(metric in expr for expr in exprs), metric
