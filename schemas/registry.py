"""Schema source backed by a Confluent-compatible schema registry, through confluent-kafka's
``SchemaRegistryClient`` (basic auth, TLS, caching of ids and schemas).

Two calls are needed: registering a subject's schema (which returns its id, the existing
one when it is already registered) and fetching a schema by id for decoding. Errors name the
registry by its address without credentials; a registry out of reach or answering 5xx is
``transient`` (tried again later), any other refusal is not.
"""

from __future__ import annotations

import json
from typing import Optional
from urllib.parse import unquote, urlsplit, urlunsplit

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from schemas import catalog
from schemas.source import SchemaSourceError

# The stages retry with their own growing pause (streams.kafka.faults); the client's own
# retries would only hold a batch longer before that.
CLIENT_RETRIES = 1


def without_credentials(url: str) -> str:
    """``url`` with any user and password removed: what logs and errors may show."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def credentials_of(url: str) -> tuple[str, str] | None:
    """The user and password written into ``url``, percent-decoded; None when there are none."""
    userinfo, at, _ = urlsplit(url).netloc.rpartition("@")
    if not at:
        return None
    user, _, password = userinfo.partition(":")
    return unquote(user), unquote(password)


class SchemaRegistry:
    def __init__(self, url: str, *, user: Optional[str] = None, password: Optional[str] = None,
                 timeout: float = 10.0):
        self._url = url.rstrip("/")
        self.address = without_credentials(url).rstrip("/")
        # The client is given the address without credentials, and the credentials apart: its
        # HTTP library logs every request's URL.
        config = {"url": self.address, "timeout": timeout, "max.retries": CLIENT_RETRIES,
                  "retries.wait.ms": 200, "retries.max.wait.ms": 1000}
        given = (user, password or "") if user is not None else credentials_of(url)
        if given is not None:
            config["basic.auth.user.info"] = f"{given[0]}:{given[1]}"
        self._client = SchemaRegistryClient(config)
        self._own: dict[int, dict] = {}

    def __repr__(self) -> str:
        return f"SchemaRegistry({self.address})"

    def id_for(self, subject: str, schema: dict) -> int:
        schema_id = self._call(
            lambda: self._client.register_schema(subject, Schema(catalog.canonical(schema), "AVRO")), subject)
        self._own.setdefault(schema_id, schema)  # a reader of what this process wrote needs no request
        return schema_id

    def schema_for(self, schema_id: int) -> dict | None:
        if schema_id in self._own:
            return self._own[schema_id]
        try:
            found = self._call(lambda: self._client.get_schema(schema_id), f"schema id {schema_id}")
        except _NotFound:
            return None  # an id the registry does not know: the codec says so
        try:
            return json.loads(found.schema_str)
        except ValueError as exc:
            raise SchemaSourceError(f"schema id {schema_id}: schema registry {self.address} sent no JSON schema: "
                                    f"{exc}", transient=True) from None

    def _safe(self, exc: BaseException) -> str:
        """The error's text, with the configured URL (which may hold credentials) replaced."""
        return (str(exc) or "no answer").replace(self._url, self.address)

    def _call(self, call, what: str):
        try:
            return call()
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404 and what.startswith("schema id "):
                raise _NotFound() from None
            raise SchemaSourceError(
                f"{what}: schema registry {self.address} answered {exc.http_status_code}: {exc.error_message}",
                transient=exc.http_status_code >= 500 or exc.http_status_code == 429,  # 429: too many requests
            ) from None
        except ValueError as exc:  # an answer that is not the JSON the client expects
            raise SchemaSourceError(f"{what}: schema registry {self.address} sent an answer that is not its JSON: "
                                    f"{type(exc).__name__}", transient=True) from None
        except Exception as exc:  # noqa: BLE001 - transport errors are told apart below
            if not _is_transport_error(exc):
                raise
            raise SchemaSourceError(
                f"{what}: schema registry {self.address} unreachable: {type(exc).__name__}: {self._safe(exc)}",
                transient=True) from None


class _NotFound(Exception):
    pass


def _is_transport_error(error: BaseException) -> bool:
    """The registry out of reach: a socket error, or one of the HTTP client's transport
    errors (the client uses httpx, or its successor httpx2, depending on the Python)."""
    return isinstance(error, OSError) or type(error).__module__.split(".")[0] in {"httpx", "httpx2", "httpcore",
                                                                                    "httpcore2"}
