"""Start the platform's processes as a real deployment would: one broker, then the
stream worker, the sink and the projector as separate processes sharing its address.
Used by ``dunning demo``, ``dunning bench`` and the end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from harness.embedded import EmbeddedBroker
from streams.kafka.clients import ensure_topics

log = structlog.get_logger(__name__)

ROLES = ("worker", "sink", "project")


@dataclass
class Stack:
    data_dir: Path
    partitions: int = 4
    env: dict = field(default_factory=dict)  # DATABASE_URL, SMTP_URL, ... for the children
    bootstrap: str | None = None  # None: an embedded broker
    broker: EmbeddedBroker | None = None
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def start_broker(self) -> str:
        if self.bootstrap is None:
            self.broker = EmbeddedBroker().start()
            self.bootstrap = self.broker.bootstrap
        ensure_topics(self.bootstrap, self.partitions)
        return self.bootstrap

    def child_env(self) -> dict:
        env = dict(os.environ)
        env.update(self.env)
        env.update(KAFKA_BOOTSTRAP=self.bootstrap or "", PARTITIONS=str(self.partitions), DATA_DIR=str(self.data_dir))
        if self.broker is not None:
            env["KAFKA_PROFILE"] = "embedded"
        return env

    def start(self, role: str, name: str | None = None, extra_env: dict | None = None) -> subprocess.Popen:
        name = name or role
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = self.child_env()
        env.update(extra_env or {})
        log_file = open(self.data_dir / f"{name}.log", "ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "dunning.cli", role],
            env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.processes[name] = process
        log.info("process started", role=role, process_name=name, pid=process.pid)
        return process

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        process = self.processes.pop(name)
        if process.poll() is None:
            process.send_signal(sig)
        process.wait(timeout=30)

    def stop(self) -> None:
        for name in list(self.processes):
            process = self.processes[name]
            if process.poll() is None:
                process.terminate()
        for name in list(self.processes):
            process = self.processes.pop(name)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self.broker is not None:
            self.broker.stop()

    def __enter__(self) -> "Stack":
        self.start_broker()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
