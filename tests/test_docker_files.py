"""Static checks of the container stack in docker/: no Docker engine needed.

The stack is checked against the code it runs: the environment variables the code
reads, the ``dunning`` subcommands, the metrics the code defines, and against itself
(addresses, ports, mounts and health conditions that must agree across files).
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import promql_parser
import pytest
import yaml
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.metrics import MetricWrapperBase
from sqlalchemy.engine import make_url

import connectors.clock
import projections.metrics
import sinks.metrics
import streams.kafka.metrics
import streams.worker.metrics
from dunning.cli import build_parser
from dunning.settings import Settings, load_settings
from projections.db import migrate
from tests.support import free_port

REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / "docker"
CODE_PACKAGES = ("dunning", "harness", "streams", "schemas", "connectors", "projections", "sinks")
PLATFORM_ROLES = {"worker", "sink", "project", "clock"}


# ----------------------------------------------------------------------------- helpers


def load_yaml(path: Path):
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_yaml(DOCKER / "compose.yaml")


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def platform(services) -> dict:
    """The services that run the platform's own image (built from this repository)."""
    return {name: service for name, service in services.items() if "build" in service}


def interpolate(value) -> str:
    """A Compose value with every ``${NAME:-default}`` at its default, as with an empty shell."""
    text = str(value)
    text = re.sub(r"(?<!\$)\$\{(\w+)(?::?-([^}]*))?\}", lambda m: m.group(2) or "", text)
    return text.replace("$$", "$")


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the KEY=VALUE list form
        env = dict(item.split("=", 1) for item in env)
    return {key: interpolate(value) for key, value in env.items()}


def variables_the_code_reads() -> set[str]:
    """The settings object is the one reader of the environment: its fields, upper-cased."""
    return {name.upper() for name in Settings.model_fields}


def exposed_metric_names() -> set[str]:
    """Every sample name the code's metrics expose, suffixes included (counters get _total)."""
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"),
                "gauge": ("",), "summary": ("", "_count", "_sum", "_created")}
    names = set()
    for module in (streams.worker.metrics, streams.kafka.metrics, sinks.metrics, projections.metrics, connectors.clock):
        for value in vars(module).values():
            if isinstance(value, MetricWrapperBase):
                for family in value.describe():
                    names.update(family.name + suffix for suffix in suffixes[family.type])
    return names


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of docker/Dockerfile, continuation lines joined."""
    logical, pending = [], ""
    for line in (DOCKER / "Dockerfile").read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1] if " " in text else "") for text in logical]


def compose_specification_schema() -> Path:
    """The Compose specification's JSON schema, as check-jsonschema ships it. Found without
    importing the package: only its data is needed, not its command line."""
    spec = importlib.util.find_spec("check_jsonschema")
    assert spec is not None and spec.submodule_search_locations, "install the test extra"
    return Path(spec.submodule_search_locations[0]) / "builtin_schemas" / "vendor" / "compose-spec.json"


def command_of(service: dict) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def scrape_targets(prometheus: dict) -> dict[str, set[tuple[str, int]]]:
    """Job name -> (host, port) it scrapes, from static and DNS service discovery."""
    jobs = {}
    for job in prometheus["scrape_configs"]:
        targets = set()
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, port = target.rsplit(":", 1)
                targets.add((host, int(port)))
        for dns in job.get("dns_sd_configs", []):
            targets.update((name, int(dns["port"])) for name in dns["names"])
        jobs[job["job_name"]] = targets
    return jobs


def serves_metrics(command: list[str]) -> bool:
    """Whether the subcommand's function calls serve_metrics, directly or through a helper in cli.py."""
    tree = ast.parse((REPO / "dunning" / "cli.py").read_text(encoding="utf-8"))
    calls = {
        function.name: {ast.unparse(node.func) for node in ast.walk(function) if isinstance(node, ast.Call)}
        | {node.id for node in ast.walk(function) if isinstance(node, ast.Name)}
        for function in tree.body
        if isinstance(function, ast.FunctionDef)
    }

    def reaches(name: str, seen: set[str]) -> bool:
        if name in seen or name not in calls:
            return False
        seen.add(name)
        return "serve_metrics" in calls[name] or any(reaches(called, seen) for called in calls[name])

    return reaches(build_parser().parse_args(command).func.__name__, set())




def run_healthcheck(service: dict, env: dict[str, str]) -> int:
    test = service["healthcheck"]["test"]
    assert test[0] == "CMD" and test[1] == "python", test
    return subprocess.run([sys.executable, *test[2:]], env=env, capture_output=True, timeout=30).returncode


# ----------------------------------------------------------------------------- compose


def test_compose_follows_the_compose_specification(compose):
    schema = json.loads(compose_specification_schema().read_text(encoding="utf-8"))
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in validator.iter_errors(compose)]
    assert errors == []


def test_the_platform_services_are_the_four_roles_built_from_the_repository(platform):
    assert set(platform) == PLATFORM_ROLES
    for name, service in platform.items():
        context = (DOCKER / service["build"]["context"]).resolve()
        assert context == REPO, name
        assert (context / service["build"]["dockerfile"]).resolve() == DOCKER / "Dockerfile", name
    assert len({service["image"] for service in platform.values()}) == 1, "one image for every role"


def test_the_worker_runs_more_than_once(platform):
    assert platform["worker"]["deploy"]["replicas"] >= 2


def test_platform_environment_uses_only_variables_the_code_reads(platform):
    read = variables_the_code_reads()
    assert {"KAFKA_BOOTSTRAP", "DATABASE_URL", "METRICS_PORT", "MAIL_FROM", "SCHEMA_REGISTRY_URL"} <= read
    for name, service in platform.items():
        unknown = set(environment(service)) - read
        assert not unknown, f"{name} sets variables no code reads: {sorted(unknown)}"


def test_platform_environment_is_what_the_settings_accept(platform):
    for name, service in platform.items():
        settings = load_settings(environment(service))  # ints and paths parse
        assert settings.partitions == 4, name
        assert settings.state_store in {"memory://", "rocksdb://"}, name


def test_every_role_shares_broker_registry_and_partitions(platform, services):
    shared = {"KAFKA_BOOTSTRAP": "kafka:9092", "SCHEMA_REGISTRY_URL": "http://schema-registry:8081", "PARTITIONS": "4"}
    for name, service in platform.items():
        env = environment(service)
        assert {key: env.get(key) for key in shared} == shared, name
    kafka = environment(services["kafka"])
    assert "PLAINTEXT://kafka:9092" in kafka["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert urlsplit(environment(services["schema-registry"])["SCHEMA_REGISTRY_LISTENERS"]).port == 8081


def test_database_url_matches_the_postgres_service(platform, services):
    postgres = environment(services["postgres"])
    for name in ("sink", "project"):
        url = make_url(environment(platform[name])["DATABASE_URL"])
        assert url.drivername == "postgresql+psycopg"
        assert (url.host, url.port) == ("postgres", 5432)
        assert (url.username, url.password, url.database) == (
            postgres["POSTGRES_USER"], postgres["POSTGRES_PASSWORD"], postgres["POSTGRES_DB"],
        )
    assert environment(platform["project"])["DATABASE_URL"] == "postgresql+psycopg://dunning:dunning@postgres:5432/dunning"


def test_service_addresses_name_services_of_the_stack(platform, services):
    for name, service in platform.items():
        for key, value in environment(service).items():
            if "://" in value and key != "STATE_STORE":
                host = urlsplit(value).hostname
                assert host in services, f"{name} {key} points at {host}, not a service"
    assert urlsplit(environment(platform["sink"])["SMTP_URL"]).hostname == "mailpit"


def test_platform_commands_are_dunning_subcommands(platform):
    parser = build_parser()
    for name, service in platform.items():
        args = parser.parse_args(command_of(service))  # exits on an unknown command or option
        assert args.command == name


def test_healthy_conditions_wait_on_services_with_healthchecks(services):
    for name, service in services.items():
        depends_on = service.get("depends_on") or {}
        for target, condition in (depends_on.items() if isinstance(depends_on, dict) else []):
            assert target in services, f"{name} depends on unknown {target}"
            if condition.get("condition") == "service_healthy":
                check = services[target].get("healthcheck") or {}
                enabled = check.get("test") not in (None, ["NONE"], "NONE") and not check.get("disable")
                assert enabled, f"{name} waits for {target} to be healthy, it has no healthcheck"


def test_the_metrics_healthcheck_probes_the_metrics_endpoint(platform):
    port = free_port()
    env = {**environment(platform["worker"]), "METRICS_PORT": str(port)}
    assert run_healthcheck(platform["worker"], env) != 0  # nothing listens yet
    server, thread = start_http_server(port, addr="127.0.0.1", registry=CollectorRegistry())
    try:
        assert run_healthcheck(platform["worker"], env) == 0
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_the_projector_is_healthy_only_once_the_schema_is_migrated(platform, tmp_path):
    port = free_port()
    database = f"sqlite:///{tmp_path / 'read-models.db'}"
    env = {**environment(platform["project"]), "METRICS_PORT": str(port), "DATABASE_URL": database}
    server, thread = start_http_server(port, addr="127.0.0.1", registry=CollectorRegistry())
    try:
        assert run_healthcheck(platform["project"], env) != 0
        migrate(database)
        assert run_healthcheck(platform["project"], env) == 0
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# ----------------------------------------------------------------------------- prometheus


def test_prometheus_scrapes_every_process_at_its_metrics_port(platform):
    prometheus = load_yaml(DOCKER / "prometheus.yml")
    scraped = set().union(*scrape_targets(prometheus).values())
    for name, service in platform.items():
        env = environment(service)
        if serves_metrics(command_of(service)):
            assert "METRICS_PORT" in env, f"{name} serves metrics only with METRICS_PORT set"
        if "METRICS_PORT" in env:
            assert (name, int(env["METRICS_PORT"])) in scraped, f"{name} is not scraped"
            assert load_settings(env).metrics_host == "0.0.0.0", f"{name} serves metrics on loopback only"
    for host, port in scraped:
        if host in platform:
            assert environment(platform[host]).get("METRICS_PORT") == str(port), f"{host}:{port} serves nothing"


def test_prometheus_runs_with_the_file_of_this_folder(services):
    prometheus = services["prometheus"]
    mounts = {target: source for source, target, *_ in (volume.split(":") for volume in prometheus["volumes"])}
    config_flag = next(arg for arg in prometheus["command"] if arg.startswith("--config.file="))
    config_path = config_flag.split("=", 1)[1]
    assert (DOCKER / mounts[config_path]).resolve() == DOCKER / "prometheus.yml"


def test_every_metric_serving_role_really_serves_metrics():
    # The check above relies on this reading of cli.py; keep it honest.
    assert serves_metrics(["worker"]) and serves_metrics(["sink"]) and serves_metrics(["project"])
    assert serves_metrics(["clock"])
    assert not serves_metrics(["sample"])


# ----------------------------------------------------------------------------- grafana


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads((DOCKER / "grafana" / "dashboards" / "dunning.json").read_text(encoding="utf-8"))


def dashboard_queries(dashboard: dict) -> list[str]:
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def test_dashboard_queries_only_metrics_the_code_defines(dashboard):
    exposed = exposed_metric_names()
    assert {"dunning_events_in_total", "dunning_sink_messages_total", "dunning_batch_seconds_bucket"} <= exposed
    referenced = {name for expr in dashboard_queries(dashboard) for name in re.findall(r"\bdunning_[a-z0-9_]+", expr)}
    assert referenced, "the dashboard queries no platform metric"
    assert referenced <= exposed, f"unknown metrics: {sorted(referenced - exposed)}"


@pytest.mark.parametrize(
    "pattern",
    [
        r"sum by \(type\) \(rate\(dunning_events_in_total\[",
        r"rate\(dunning_dead_letters_total\[",
        r"sum by \(channel\) \(rate\(dunning_actions_total\[",
        r"histogram_quantile\(0\.99, sum by \(le\) \(rate\(dunning_batch_seconds_bucket\[",
        r"histogram_quantile\(0\.99, sum by \(le\) \(rate\(dunning_event_lag_seconds_bucket\[",
        r"dunning_open_amount_minor",
        r"dunning_overdue_amount_minor",
    ],
)
def test_dashboard_shows_the_operational_questions(dashboard, pattern):
    assert any(re.search(pattern, expr) for expr in dashboard_queries(dashboard)), pattern


def test_dashboard_panels_use_the_provisioned_datasource(dashboard, services):
    datasources = load_yaml(DOCKER / "grafana" / "provisioning" / "datasources" / "prometheus.yaml")["datasources"]
    (datasource,) = datasources
    address = urlsplit(datasource["url"])
    assert address.hostname == "prometheus" and address.hostname in services
    assert services["prometheus"]["ports"][0].split(":")[-1] == str(address.port)
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == datasource["uid"], panel["title"]
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])


def test_grafana_mounts_what_its_provisioning_names(services):
    grafana = services["grafana"]
    mounts = {}
    for volume in grafana["volumes"]:
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            assert (DOCKER / source).is_dir(), source
            mounts[target] = (DOCKER / source).resolve()
    assert mounts.get("/etc/grafana/provisioning") == DOCKER / "grafana" / "provisioning"
    providers = load_yaml(DOCKER / "grafana" / "provisioning" / "dashboards" / "dunning.yaml")["providers"]
    for provider in providers:
        folder = mounts[provider["options"]["path"]]
        assert list(folder.glob("*.json")), f"no dashboard in {folder}"
    home = environment(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    directory, file_name = home.rsplit("/", 1)
    assert (mounts[directory] / file_name).is_file()


# ----------------------------------------------------------------------------- Dockerfile


def test_dockerfile_builds_on_python_3_11_slim():
    instructions = dockerfile_instructions()
    arguments = dict(arg.split("=", 1) for kind, arg in instructions if kind == "ARG" and "=" in arg)
    bases = {re.sub(r"\$\{?(\w+)\}?", lambda m: arguments.get(m.group(1), m.group(0)), arg.split()[0])
             for kind, arg in instructions if kind == "FROM"}
    assert bases == {"python:3.11-slim"}


def test_dockerfile_installs_the_project_from_pyproject():
    instructions = dockerfile_instructions()
    runs = [arg for kind, arg in instructions if kind == "RUN"]
    assert any(re.search(r"\bpip install\b.*\s[\"']?\.(\[[\w,]+\])?[\"']?(\s|$)", run) for run in runs), runs
    copied = {source for kind, arg in instructions if kind == "COPY" and "--from" not in arg for source in arg.split()[:-1]}
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    packages = {pattern.rstrip("*") for pattern in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    missing = (packages | {"pyproject.toml", project["project"]["readme"]}) - copied
    assert not missing, f"the build does not see {sorted(missing)}"


def test_dockerfile_installs_the_rocksdb_extra_when_a_worker_uses_rocksdb(platform):
    uses_rocksdb = any(environment(s).get("STATE_STORE", "").startswith("rocksdb") for s in platform.values())
    installs_extra = any(kind == "RUN" and re.search(r"pip install\b.*\.\[[\w,]*rocksdb", arg)
                         for kind, arg in dockerfile_instructions())
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert "rocksdb" in project["project"]["optional-dependencies"]
    assert installs_extra or not uses_rocksdb


def test_dockerfile_runs_dunning_as_a_non_root_user():
    instructions = dockerfile_instructions()
    final_stage = instructions[max(i for i, (kind, _) in enumerate(instructions) if kind == "FROM"):]
    users = [arg.split(":")[0] for kind, arg in final_stage if kind == "USER"]
    assert users and users[-1] not in {"root", "0"}
    entrypoint = [json.loads(arg) for kind, arg in final_stage if kind == "ENTRYPOINT"]
    assert entrypoint[-1] == ["dunning"]
    command = [json.loads(arg) for kind, arg in final_stage if kind == "CMD"][-1]
    assert command == ["worker"]
    assert build_parser().parse_args(command).command == "worker"


def test_dockerfile_environment_is_read_by_the_code():
    runtime_only = re.compile(r"^(PATH|PYTHON\w*|PIP_\w+)$")
    names = set()
    for kind, arg in dockerfile_instructions():
        if kind == "ENV":
            names.update(re.findall(r"(\w+)=", arg))
    unknown = {name for name in names if not runtime_only.match(name)} - variables_the_code_reads()
    assert not unknown, sorted(unknown)
    assert "DATA_DIR" in names  # the worker's data directory must exist and be writable


# ----------------------------------------------------------------------------- alert rules


@pytest.fixture(scope="module")
def alert_rules() -> list[dict]:
    groups = yaml.safe_load((DOCKER / "alerts.yml").read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_alert_rules_are_loaded_by_the_compose_prometheus(services):
    config = yaml.safe_load((DOCKER / "prometheus.yml").read_text(encoding="utf-8"))
    mounts = {target: source for source, target, *_ in (volume.split(":") for volume in services["prometheus"]["volumes"])}
    assert config["rule_files"], "prometheus.yml loads no rules"
    for path in config["rule_files"]:
        assert (DOCKER / mounts[path]).resolve() == DOCKER / "alerts.yml"


def test_alert_rules_parse_and_name_only_metrics_the_code_defines(alert_rules):
    exposed = exposed_metric_names()
    for rule in alert_rules:
        expression = promql_parser.parse(rule["expr"])  # raises on a PromQL syntax error
        named = set(re.findall(r"\bdunning_\w+", expression.prettify()))
        assert named, f"{rule['alert']} names no platform metric"
        assert named <= exposed, f"{rule['alert']}: unknown metrics {sorted(named - exposed)}"
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]


def test_alert_rules_cover_what_an_operator_must_hear_of(alert_rules):
    watched = {name for rule in alert_rules for name in re.findall(r"\bdunning_\w+", rule["expr"])}
    assert {"dunning_dead_letters_total", "dunning_batch_failures_total", "dunning_consumer_lag",
            "dunning_clock_business_date_timestamp_seconds", "dunning_sink_messages_total"} <= watched
    no_tick = next(rule for rule in alert_rules if "dunning_clock_business_date_timestamp_seconds" in rule["expr"])
    assert "26 * 3600" in no_tick["expr"] and not no_tick["for"].endswith("h")  # 26 h in all, not twice
