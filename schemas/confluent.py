"""Schema source backed by a Confluent-compatible schema registry, over its REST API.

Only two calls are needed: registering a subject's schema (which returns its id, the existing
one when it is already registered) and fetching a schema by id for decoding. Both answers never
change, so both are cached for the life of the process.
"""

from __future__ import annotations

import json
import threading
from urllib.parse import quote

import httpx

from schemas import catalog
from schemas.source import SchemaSourceError

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class ConfluentRegistry:
    def __init__(self, url: str, *, timeout: float = 10.0):
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url,
            timeout=timeout,
            headers={"Accept": f"{CONTENT_TYPE}, application/json", "Content-Type": CONTENT_TYPE},
        )
        self._ids: dict[tuple[str, str], int] = {}
        self._schemas: dict[int, dict] = {}
        self._lock = threading.Lock()  # the codec may be shared by producer threads

    def id_for(self, subject: str, schema: dict) -> int:
        text = catalog.canonical(schema)
        key = (subject, text)
        if key not in self._ids:
            with self._lock:
                if key not in self._ids:
                    body = self._call("POST", f"/subjects/{quote(subject, safe='')}/versions", {"schema": text}, subject)
                    schema_id = int(body["id"])
                    self._schemas.setdefault(schema_id, schema)
                    self._ids[key] = schema_id
        return self._ids[key]

    def schema_for(self, schema_id: int) -> dict | None:
        if schema_id not in self._schemas:
            with self._lock:
                if schema_id not in self._schemas:
                    body = self._call("GET", f"/schemas/ids/{schema_id}", None, f"schema id {schema_id}")
                    if body is None:
                        return None
                    self._schemas[schema_id] = json.loads(body["schema"])
        return self._schemas[schema_id]

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, payload: dict | None, what: str) -> dict | None:
        try:
            response = self._http.request(method, path, json=payload)
        except httpx.HTTPError as exc:
            raise SchemaSourceError(f"{what}: schema registry {self.url} unreachable: {exc}", transient=True) from exc
        if response.status_code == 404 and method == "GET":
            return None
        if response.status_code >= 400:
            raise SchemaSourceError(
                f"{what}: schema registry answered {response.status_code}: {_message(response)}",
                transient=response.status_code >= 500,
            )
        try:
            return response.json()
        except ValueError as exc:
            raise SchemaSourceError(f"{what}: schema registry sent no JSON: {exc}", transient=True) from exc


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("message", response.text))
    except ValueError:
        return response.text[:200]
