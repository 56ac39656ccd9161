"""One configuration for both deployments: environment variables, embedded defaults.

With none of the variables set, every command runs on embedded parts: a Kafka-compatible
broker on loopback, SQLite in ``var/``, e-mail written to ``var/outbox/``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

SAMPLES = Path(__file__).parent / "samples"


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap: str | None = None  # None: start the embedded broker
    database_url: str | None = None  # None: SQLite file in data_dir
    smtp_url: str | None = None  # None: write .eml files to data_dir/outbox
    schema_registry_url: str | None = None  # None: schemas/registry.json
    partitions: int = 4
    policy_file: Path = SAMPLES / "policy.yaml"
    store: str = "memory://"  # or rocksdb:// (install the `rocksdb` extra)
    data_dir: Path = Path("var")
    metrics_port: int = 0  # 0: no metrics endpoint
    metrics_host: str = "127.0.0.1"  # 0.0.0.0 to be scraped from another host or container
    log_level: str = "info"
    smtp_timeout: float = 30.0  # seconds for each step of an SMTP conversation
    sink_retry_seconds: float = 3600.0  # how long a send that may pass is tried again before it is given up

    @classmethod
    def from_env(cls, env: dict | None = None) -> "Settings":
        env = os.environ if env is None else env
        data_dir = Path(env.get("DATA_DIR", "var"))
        return cls(
            kafka_bootstrap=env.get("KAFKA_BOOTSTRAP") or None,
            database_url=env.get("DATABASE_URL") or None,
            smtp_url=env.get("SMTP_URL") or None,
            schema_registry_url=env.get("SCHEMA_REGISTRY_URL") or None,
            partitions=int(env.get("PARTITIONS", "4")),
            policy_file=Path(env.get("POLICY_FILE", SAMPLES / "policy.yaml")),
            store=env.get("STATE_STORE", "memory://"),
            data_dir=data_dir,
            metrics_port=int(env.get("METRICS_PORT", "0")),
            metrics_host=env.get("METRICS_HOST") or "127.0.0.1",  # empty would mean every interface
            log_level=env.get("LOG_LEVEL", "info"),
            smtp_timeout=float(env.get("SMTP_TIMEOUT", "30")),
            sink_retry_seconds=float(env.get("SINK_RETRY_SECONDS", "3600")),
        )

    @property
    def sqlite_url(self) -> str:
        return f"sqlite:///{self.data_dir / 'dunning.db'}"
