"""Where the read models live: the database URL, engines and schema migrations."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
MIGRATION_LOCK_KEY = 0x64756E6E  # any constant the platform's processes agree on


def is_transient_database_error(error: BaseException) -> bool:
    """The database out of reach, a login refused for now, SQLite locked by another writer:
    the same statement may succeed later. A value the database refuses to store does not."""
    if isinstance(error, (OperationalError, InterfaceError)):
        return True
    return isinstance(error, DBAPIError) and error.connection_invalidated


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite files get their folder and settings for one writer, many readers."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url)
    event.listen(engine, "connect", _tune_sqlite)
    event.listen(engine, "begin", _begin_sqlite)
    return engine


def _tune_sqlite(dbapi_connection, _record) -> None:
    # The sqlite3 module would only BEGIN at the first write, leaving earlier reads of
    # a transaction outside it; turn that off and BEGIN ourselves in _begin_sqlite.
    dbapi_connection.isolation_level = None
    # WAL lets the dashboard read while the projector writes; the timeout waits out a
    # concurrent writer instead of failing with "database is locked".
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _begin_sqlite(connection) -> None:
    connection.exec_driver_sql("BEGIN " + connection.get_execution_options().get("sqlite_begin", "DEFERRED"))


def for_writing(engine: Engine) -> Engine:
    """The engine as a writer uses it. On SQLite its transactions take the write lock up
    front (BEGIN IMMEDIATE), so two writers (projector and outbox) queue on busy_timeout
    instead of one failing with "database is locked" when its read snapshot went stale.
    Other databases ignore the option."""
    return engine.execution_options(sqlite_begin="IMMEDIATE")


def alembic_config():
    """Alembic's configuration, built in code so an installed package needs no alembic.ini."""
    from alembic.config import Config  # imported when migrating only: the sink's channels need no Alembic

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def migrate(url: str | Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (``alembic upgrade head`` by default)."""
    from alembic import command

    engine = url if isinstance(url, Engine) else make_engine(url)
    config = alembic_config()
    try:
        with for_writing(engine).begin() as connection:
            if connection.dialect.name == "postgresql":
                # The sink and the projector both migrate when they start: one waits for
                # the other here instead of failing on a half-created schema.
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            # env.py runs on this connection, so the URL never passes through the
            # ini parser (which would choke on a '%' in a password).
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        if engine is not url:
            engine.dispose()
