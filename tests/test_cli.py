"""The command line as a user meets it: mistakes get one line and exit status 2, never a
traceback; help names the environment; ``dunning broker`` is a broker others can share."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from harness import SAMPLE_POLICY
from schemas import topics

REPO = Path(__file__).resolve().parents[1]
CLEAN_ENV = {key: value for key, value in os.environ.items()
             if key not in {"KAFKA_BOOTSTRAP", "KAFKA_PROFILE", "DATABASE_URL", "SMTP_URL", "SCHEMA_REGISTRY_URL"}}


def dunning(*args: str, env: dict | None = None, cwd: Path | None = None, timeout: float = 120,
            stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dunning.cli", *args], capture_output=True, text=True,
                          env={**CLEAN_ENV, **(env or {})}, cwd=cwd or REPO, timeout=timeout, input=stdin)


def one_line_refusal(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize("variable, value, expected", [
    ("METRICS_PORT", "abc", "METRICS_PORT='abc'"),
    ("METRICS_PORT", "70000", "METRICS_PORT='70000'"),
    ("PARTITIONS", "0", "PARTITIONS='0'"),
    ("LOG_LEVEL", "verbose", "LOG_LEVEL='verbose'"),
    ("STATE_STORE", "redis://", "STATE_STORE"),
    ("KAFKA_PROFILE", "fast", "KAFKA_PROFILE"),
    ("KAFKA_BOOTSTRAP", "localhost", "KAFKA_BOOTSTRAP"),
    ("SMTP_TIMEOUT", "-1", "SMTP_TIMEOUT"),
])
def test_a_bad_setting_is_refused_in_one_line_naming_the_variable(variable, value, expected):
    line = one_line_refusal(dunning("sample", "--days", "1", env={variable: value}))
    assert expected in line and "bad setting" in line, line


def test_a_bad_setting_that_may_hold_a_password_is_not_repeated():
    line = one_line_refusal(dunning("worker", env={"KAFKA_BOOTSTRAP": "127.0.0.1:1",
                                                   "SCHEMA_REGISTRY_URL": "ftp://ops:s3cr3t@registry"}))
    assert "SCHEMA_REGISTRY_URL" in line and "s3cr3t" not in line, line


@pytest.mark.parametrize("args", [
    ("publish", "no-such-file.jsonl"),
    ("simulate", "no-such-file.jsonl"),
    ("check-policy", "no-such-policy.yaml"),
    ("simulate", "README.md", "--policy", "no-such-policy.yaml"),
])
def test_a_missing_file_is_one_line(args):
    env = {"KAFKA_BOOTSTRAP": "127.0.0.1:1"} if args[0] == "publish" else {}
    line = one_line_refusal(dunning(*args, env=env))
    assert "no-such" in line and "No such file" in line, line


def test_a_bad_policy_is_one_line_with_its_place(tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(SAMPLE_POLICY.read_text(encoding="utf-8").replace("collection_costs: true",
                                                                        "collection_cost: true", 1))
    for args in (("check-policy", str(policy)), ("simulate", "README.md", "--policy", str(policy))):
        line = one_line_refusal(dunning(*args))
        assert "collection_cost" in line and "did you mean collection_costs" in line, line
    line = one_line_refusal(dunning("worker", env={"POLICY_FILE": str(policy), "KAFKA_BOOTSTRAP": "127.0.0.1:1"}))
    assert "did you mean collection_costs" in line


def test_check_policy_passes_the_sample_and_counts_its_parts():
    result = dunning("check-policy", str(SAMPLE_POLICY), "--strict")
    assert result.returncode == 0, result.stderr
    assert "3 segments, 3 workflows" in result.stdout and "0 warnings" in result.stdout


def test_a_closed_pipe_ends_quietly():
    command = f"{sys.executable} -m dunning.cli sample --days 90 | head -n 1"
    result = subprocess.run(command, shell=True, capture_output=True, text=True, env=CLEAN_ENV, cwd=REPO,
                            timeout=120)
    assert result.stdout.count("\n") == 1 and result.stdout.startswith('{"type": ')
    assert result.stderr == "", result.stderr


def test_abbreviations_are_not_taken_for_options():
    result = dunning("demo", "--day", "5")
    assert result.returncode == 2 and "unrecognized arguments: --day 5" in result.stderr
    assert "Traceback" not in result.stderr


def test_version():
    result = dunning("--version")
    assert result.returncode == 0 and result.stdout.startswith("dunning ") and result.stdout.strip() != "dunning"


@pytest.mark.parametrize("command, variables", [
    ("worker", ["KAFKA_BOOTSTRAP", "KAFKA_PROFILE", "POLICY_FILE", "STATE_STORE", "DATA_DIR", "METRICS_PORT"]),
    ("sink", ["KAFKA_BOOTSTRAP", "DATABASE_URL", "SMTP_URL", "MAIL_FROM", "SINK_RETRY_SECONDS"]),
    ("project", ["KAFKA_BOOTSTRAP", "DATABASE_URL", "METRICS_PORT"]),
    ("publish", ["KAFKA_BOOTSTRAP", "SCHEMA_REGISTRY_URL"]),
])
def test_help_names_the_environment_and_shows_an_example(command, variables):
    result = dunning(command, "--help")
    assert result.returncode == 0
    environment = result.stdout.split("environment:", 1)[1]
    for name in variables:
        assert f"  {name} " in environment, name
    assert "example:\n  " in result.stdout


@pytest.mark.parametrize("command", ["publish", "worker", "sink", "project", "clock", "replay-dead-letters"])
def test_a_command_that_needs_kafka_refuses_without_it_and_says_how_to_get_one(command, tmp_path):
    events = tmp_path / "events.jsonl"
    events.write_text("")
    args = (command, str(events)) if command == "publish" else (command,)
    line = one_line_refusal(dunning(*args, env={"DATA_DIR": str(tmp_path / "var")}))
    assert "KAFKA_BOOTSTRAP is not set" in line and "dunning broker" in line, line


def test_data_dir_is_created(tmp_path):
    data_dir = tmp_path / "deep" / "var"
    # The sink creates DATA_DIR before it needs Kafka; without a broker it stops there.
    result = dunning("sink", env={"DATA_DIR": str(data_dir)})
    assert result.returncode == 2
    assert data_dir.is_dir()


@pytest.mark.broker
def test_dunning_broker_is_a_broker_that_separate_parts_share(tmp_path):
    process = subprocess.Popen([sys.executable, "-m", "dunning.cli", "broker"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=CLEAN_ENV, cwd=REPO)
    try:
        bootstrap_line = process.stdout.readline().strip()
        profile_line = process.stdout.readline().strip()
        assert bootstrap_line.startswith("KAFKA_BOOTSTRAP=127.0.0.1:"), bootstrap_line
        assert profile_line == "KAFKA_PROFILE=embedded"
        bootstrap = bootstrap_line.split("=", 1)[1]
        listed = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10).topics
        assert topics.LEDGER.name in listed  # created for the parts that join

        events = tmp_path / "events.jsonl"
        events.write_text(dunning("sample", "--days", "1").stdout)
        published = dunning("publish", str(events), env={"KAFKA_BOOTSTRAP": bootstrap, "KAFKA_PROFILE": "embedded"})
        assert published.returncode == 0, published.stderr
        assert '"records_failed": 0' in published.stdout
        assert process.poll() is None  # still serving after the publisher went away
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr


@pytest.mark.broker
def test_the_demo_prints_only_its_summary_and_every_process_logs_json_to_its_file(tmp_path):
    import json

    result = dunning("demo", "--days", "3", env={"DATA_DIR": str(tmp_path)}, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.startswith("Demo finished in ") and f"logs in {tmp_path}/demo/*.log" in result.stdout
    assert "Dunning actions:" in result.stdout and "{" not in result.stdout  # a summary, no log line
    logs = sorted((tmp_path / "demo").glob("*.log"))
    assert {path.name for path in logs} == {"demo.log", "worker.log", "sink.log", "project.log"}
    for path in logs:
        lines = path.read_text(encoding="utf-8").splitlines()
        assert lines, path.name
        for number, line in enumerate(lines, 1):
            assert isinstance(json.loads(line), dict), f"{path.name}:{number}: {line[:80]}"


@pytest.mark.broker
def test_dunning_broker_on_a_taken_port_is_one_line():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        line = one_line_refusal(dunning("broker", "--port", str(taken.getsockname()[1]), timeout=60))
    assert "cannot start the embedded broker" in line, line


def test_reference_prints_the_reference_for_an_invoice_number_and_checks_one():
    made = dunning("reference", "12345678")
    assert (made.returncode, made.stdout, made.stderr) == (0, "4812345678\n", "")
    assert dunning("reference", "--scheme", "rf", "539007547034").stdout == "RF18539007547034\n"
    checked = dunning("reference", "--check", "5000056789012346")
    assert (checked.returncode, checked.stdout.strip()) == (
        1, "5000056789012346: not valid: betalingskenmerk whose check digit or length code fails")
    assert dunning("reference", "--check", "RF18539007547034").returncode == 0
    assert "more than the 21" in one_line_refusal(dunning("reference", "1" * 25))
