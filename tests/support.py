"""Real servers for tests: a throw-away PostgreSQL database, an SMTP server that keeps
what it receives, and a schema registry speaking the Confluent REST API over HTTP."""

from __future__ import annotations

import email
import email.policy
import json
import threading
import time
import uuid
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator
from urllib.parse import urlsplit

from aiosmtpd.controller import Controller
from sqlalchemy import create_engine, text

from harness.embedded import free_port  # noqa: F401 - the tests take it from here

PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"


@contextmanager
def postgres_database(prefix: str = "dunning_test") -> Iterator[str]:
    """A new PostgreSQL database, dropped afterwards; yields its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class CollectingHandler:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], email.message.EmailMessage]] = []

    async def handle_DATA(self, server, session, envelope):
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append((list(envelope.rcpt_tos), parsed))
        return "250 Message accepted"


def wait_until(condition, timeout: float, what: str):
    """``condition()``'s first true value, asked every 0.1 s; an AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def log_events(path) -> list[dict]:
    """The JSON log lines a process wrote to ``path``, parsed (other lines left out)."""
    events = []
    for line in path.read_text().splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            pass
    return events




def start_smtp(port: int, **smtp_options) -> tuple[Controller, CollectingHandler]:
    handler = CollectingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=port, **smtp_options)
    controller.start()
    return controller, handler


class InMemoryRegistry:
    """Just enough of the Confluent schema registry REST API, in memory. With
    ``available`` False it answers every request with 503, as a registry that is down."""

    def __init__(self) -> None:
        self.schemas: dict[int, str] = {}
        self.subjects: dict[str, list[int]] = {}
        self.requests: list[tuple[str, str]] = []
        self.refused: list[tuple[str, str]] = []
        self.authorizations: list[str | None] = []  # the Authorization header of each request
        self.available = True
        self.lock = threading.Lock()

    def register(self, subject: str, schema: str) -> int:
        with self.lock:
            # Like the real registry: one id per distinct schema, shared across subjects.
            schema_id = next((i for i, s in self.schemas.items() if s == schema), None)
            if schema_id is None:
                schema_id = 100 + len(self.schemas)
                self.schemas[schema_id] = schema
            versions = self.subjects.setdefault(subject, [])
            if schema_id not in versions:
                versions.append(schema_id)
            return schema_id


class RegistryServer:
    def __init__(self, state: InMemoryRegistry):
        registry = state

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _down(self, method: str) -> bool:
                self.path = urlsplit(self.path).path  # the client adds query options
                registry.authorizations.append(self.headers.get("Authorization"))
                if registry.available:
                    registry.requests.append((method, self.path))
                    return False
                registry.refused.append((method, self.path))
                self._reply(503, {"error_code": 50301, "message": "down for the test"})
                return True

            def do_POST(self):  # noqa: N802 (http.server's naming)
                if self._down("POST"):
                    return
                parts = self.path.strip("/").split("/")
                if len(parts) != 3 or parts[0] != "subjects" or parts[2] != "versions":
                    return self._reply(404, {"error_code": 404, "message": "not found"})
                payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                json.loads(payload["schema"])  # a registry refuses what is not a schema
                self._reply(200, {"id": registry.register(parts[1], payload["schema"])})

            def do_GET(self):  # noqa: N802
                if self._down("GET"):
                    return
                parts = self.path.strip("/").split("/")
                if len(parts) == 3 and parts[:2] == ["schemas", "ids"] and int(parts[2]) in registry.schemas:
                    return self._reply(200, {"schema": registry.schemas[int(parts[2])]})
                self._reply(404, {"error_code": 40403, "message": "Schema not found"})

            def log_message(self, *args):  # keep test output quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def start_schema_registry() -> tuple[RegistryServer, InMemoryRegistry]:
    state = InMemoryRegistry()
    return RegistryServer(state), state
