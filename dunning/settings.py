"""The platform's settings: the only reader of the environment.

Every value is checked when a command starts; a bad one is refused in one line that names
the variable and what it accepts (``SettingsError``). With no variable set, the defaults
are the embedded ones: SQLite in ``DATA_DIR``, e-mail written as files, the schema
registry file next to the schemas. Kafka has no embedded default here: ``dunning broker``
starts one to share, ``dunning demo`` and ``dunning bench`` start their own.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, Optional
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from harness import SAMPLE_POLICY

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_LEVEL_ALIASES = {"warn": "warning", "fatal": "critical"}
# Settings whose value may carry a password: an error about them never repeats the value.
SECRET_VALUED = {"database_url", "smtp_url", "schema_registry_url", "schema_registry_password",
                 "psd2_base_url", "psd2_token"}  # a base URL refused for holding user:password@ is not repeated
PSD2 = ("psd2_base_url", "psd2_account_id", "psd2_consent_id", "psd2_token")  # what poll-psd2 needs


class SettingsError(ValueError):
    """A setting is missing or wrong; the message is one line that names the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, env_ignore_empty=True, extra="ignore",
                                      hide_input_in_errors=True)

    kafka_bootstrap: Optional[str] = Field(None, description="Kafka bootstrap servers, host:port[,host:port]")
    kafka_profile: Literal["kafka", "embedded"] = Field(
        "kafka", description="client timeouts: kafka (a real cluster) or embedded (dunning broker)")
    database_url: Optional[str] = Field(None, repr=False, description="read models and the outbox")
    smtp_url: Optional[str] = Field(None, repr=False, description="smtp://, smtps:// or smtp+starttls://")
    mail_from: str = Field("debiteurenbeheer@localhost", description="sender address of e-mails")
    schema_registry_url: Optional[str] = Field(None, repr=False, description="a Confluent-compatible registry")
    schema_registry_user: Optional[str] = Field(None, description="basic-auth user of the registry")
    schema_registry_password: Optional[str] = Field(None, repr=False, description="basic-auth password")
    partitions: int = Field(4, ge=1, le=10_000, description="partitions of every debtor-keyed topic")
    policy_file: Path = Field(SAMPLE_POLICY, description="the credit policy (YAML)")
    state_store: str = Field("memory://", description="Faust table store: memory:// or rocksdb://")
    data_dir: Path = Field(Path("var"), description="local files: Faust data, SQLite, the outbox folder")
    metrics_port: int = Field(0, ge=0, le=65535, description="Prometheus endpoint port; 0: none")
    metrics_host: str = Field("127.0.0.1", min_length=1, description="address the metrics endpoint listens on")
    log_level: str = Field("info", description="debug, info, warning (warn), error or critical")
    smtp_timeout: float = Field(30.0, gt=0, le=3600, description="seconds per SMTP step")
    sink_retry_seconds: float = Field(3600.0, ge=0, description="how long a send that may pass is tried again")
    psd2_base_url: Optional[str] = Field(None, description="Berlin Group NextGenPSD2 API base, the part before /v1")
    psd2_account_id: Optional[str] = Field(None, description="the account's resourceId at the bank")
    psd2_consent_id: Optional[str] = Field(None, description="the AIS consent (Consent-ID header)")
    psd2_token: Optional[str] = Field(None, repr=False, description="OAuth2 access token (Authorization: Bearer)")
    # PSD2 RTS art. 36(5)(b): without the account holder present, four reads a day.
    psd2_poll_seconds: float = Field(21600.0, gt=0, description="seconds between the polls of poll-psd2")
    psd2_retry_seconds: float = Field(120.0, gt=0, description="how long poll-psd2 asks again (429, 5xx, no answer)")

    @field_validator("psd2_base_url")
    @classmethod
    def _psd2_base_url(cls, value: Optional[str]) -> Optional[str]:
        if value is None:
            return None
        parts = _http_url(value)
        if parts is None or parts.username or parts.password or parts.query or parts.fragment:
            raise ValueError("one http:// or https:// URL without user, query or fragment (the token goes in "
                             "PSD2_TOKEN)")
        return value

    @field_validator("psd2_account_id", "psd2_consent_id")
    @classmethod
    def _psd2_id(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and not (len(value) <= 256 and value.isprintable() and value.strip() == value
                                      and " " not in value):
            raise ValueError("an id of at most 256 printable characters without spaces")
        return value

    @field_validator("psd2_token")
    @classmethod
    def _psd2_token(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and not (value.isascii() and value.isprintable() and " " not in value):
            raise ValueError("printable ASCII without spaces, the token itself (no 'Bearer ' before it)")
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        level = LOG_LEVEL_ALIASES.get(value.lower(), value.lower())
        if level not in LOG_LEVELS:
            raise ValueError(f"one of {', '.join(LOG_LEVELS)}")
        return level

    @field_validator("state_store")
    @classmethod
    def _state_store(cls, value: str) -> str:
        if value not in ("memory://", "rocksdb://"):
            raise ValueError("memory:// or rocksdb:// (with the rocksdb extra)")
        return value

    @field_validator("kafka_bootstrap")
    @classmethod
    def _bootstrap(cls, value: Optional[str]) -> Optional[str]:
        if value is None:
            return None
        for server in value.split(","):
            host, _, port = server.strip().rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError("host:port, several separated by commas")
        return value

    @field_validator("schema_registry_url")
    @classmethod
    def _registry_url(cls, value: Optional[str]) -> Optional[str]:
        if value is None:
            return None
        if _http_url(value) is None or "," in value:
            # Never quote the value or the parser's message: both may hold the password.
            raise ValueError("one http:// or https:// URL (percent-encode a / @ : , in the user name or password)")
        return value

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and urlsplit(value).scheme not in ("smtp", "smtps", "smtp+starttls"):
            raise ValueError("an smtp://, smtps:// or smtp+starttls:// URL")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: Optional[str]) -> Optional[str]:
        if value is None:
            return None
        from sqlalchemy.engine import make_url  # only when a URL is given: most commands need no SQLAlchemy

        try:
            make_url(value).get_dialect()  # the driver too: postgres:// or a missing driver fails here
        except Exception:  # noqa: BLE001 - any parse or dialect error; its text may hold the password
            raise ValueError("an SQLAlchemy URL such as postgresql+psycopg://user:password@host/db or "
                             "sqlite:///var/dunning.db") from None
        return value

    @model_validator(mode="after")
    def _registry_password_needs_a_user(self) -> "Settings":
        if self.schema_registry_password is not None and self.schema_registry_user is None:
            raise ValueError("SCHEMA_REGISTRY_PASSWORD is set without SCHEMA_REGISTRY_USER")
        return self

    @property
    def profile(self):
        """The Kafka client profile (``streams.kafka.clients``), imported when a command needs
        Kafka: reading the settings loads no Kafka client."""
        from streams.kafka.clients import PROFILES

        return PROFILES[self.kafka_profile]

    @property
    def sqlite_url(self) -> str:
        return f"sqlite:///{self.data_dir / 'dunning.db'}"

    @property
    def read_model_url(self) -> str:
        """Where the read models and the outbox live: ``DATABASE_URL``, or SQLite in ``DATA_DIR``."""
        return self.database_url or self.sqlite_url

    def require_kafka(self, command: str) -> str:
        """The bootstrap servers, or a one-line refusal that says how to get a broker."""
        if not self.kafka_bootstrap:
            raise SettingsError(
                "KAFKA_BOOTSTRAP is not set; start a broker with `dunning broker` "
                "(it prints what to export) or point KAFKA_BOOTSTRAP at your Kafka cluster")
        return self.kafka_bootstrap

    def require_psd2(self) -> tuple[str, str, str, str]:
        """Base URL, account id, consent id and token, or a one-line refusal naming what is missing."""
        missing = [name.upper() for name in PSD2 if getattr(self, name) is None]
        if missing:
            raise SettingsError(f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set; poll-psd2 "
                                "needs the bank's API base URL, the account id, the AIS consent id and an access token")
        return self.psd2_base_url, self.psd2_account_id, self.psd2_consent_id, self.psd2_token

    def prepare_data_dir(self) -> Path:
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SettingsError(f"DATA_DIR={self.data_dir}: cannot create it: {exc.strerror or exc}") from exc
        return self.data_dir


def _http_url(value: str):
    """The parts of an http:// or https:// URL with a host and a numeric port (if any), or None."""
    parts = urlsplit(value)
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        return None
    return parts if parts.scheme in ("http", "https") and parts.hostname else None


class _Given(Settings):
    """Settings from a given mapping only (tests, child processes), not the environment."""

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings):
        return (init_settings,)


def load_settings(environ: Optional[dict] = None) -> Settings:
    """The settings from the environment (or ``environ``), checked; ``SettingsError`` names
    the first variable that is wrong and what it accepts."""
    try:
        if environ is None:
            return Settings()
        given = {key.upper(): value for key, value in environ.items()}  # names in any case, as from the environment
        return _Given(**{name: given[name.upper()] for name in Settings.model_fields
                         if given.get(name.upper(), "") != ""})
    except ValidationError as exc:
        raise SettingsError(_one_line(exc, environ)) from None


def _one_line(exc: ValidationError, environ: Optional[dict]) -> str:
    environ = os.environ if environ is None else environ
    error = exc.errors()[0]
    message = error["msg"].removeprefix("Value error, ")
    more = f" ({len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    if not error["loc"]:  # a rule across settings; its message names them
        return f"bad setting: {message}{more}"
    name = str(error["loc"][0])
    variable = name.upper()
    value = next((v for k, v in environ.items() if k.upper() == variable), "")
    given = "" if name in SECRET_VALUED else f"={value!r}"
    field = Settings.model_fields.get(name)
    accepts = field.description if field is not None else ""
    return f"bad setting {variable}{given}: {message}; expected {accepts}{more}"


def variables() -> list[tuple[str, str, str]]:
    """Each variable, its default and what it means: for the commands' help."""
    out = []
    for name, field in Settings.model_fields.items():
        default = "" if field.default is None else str(field.default)
        out.append((name.upper(), default, field.description or ""))
    return out
