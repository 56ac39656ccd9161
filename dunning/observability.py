"""JSON logs through structlog and a Prometheus endpoint, the same for every process."""

from __future__ import annotations

import logging
import sys

import structlog
from prometheus_client import start_http_server


def configure_logging(level: str = "info", process: str = "dunning") -> None:
    numeric = getattr(logging, level.upper(), logging.INFO)
    logging.basicConfig(format="%(message)s", stream=sys.stderr, level=numeric)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(process=process)


def serve_metrics(port: int) -> None:
    """Expose /metrics on the port; 0 means no endpoint."""
    if port:
        start_http_server(port, addr="0.0.0.0")
        structlog.get_logger(__name__).info("metrics endpoint", port=port)
