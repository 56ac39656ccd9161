"""What every stage does with a failure: tries again what may pass, after a growing pause,
and gives up on what cannot (``streams.worker.batching`` in the worker, ``streams.kafka.consumer_loop``
in the sink and the projector)."""

from __future__ import annotations

from confluent_kafka import KafkaException

from schemas.source import SchemaError
from streams.kafka.producer import DeliveryFailed

RETRY_PAUSE_SECONDS = (0.5, 1, 2, 5, 10, 30, 60)


def retry_pause(failures: int) -> float:
    """The pause before the next try, after ``failures`` tries that failed."""
    return RETRY_PAUSE_SECONDS[min(failures, len(RETRY_PAUSE_SECONDS) - 1)]


def is_transient(error: BaseException) -> bool:
    """Whether trying again later may succeed: the schema registry or the broker out of
    reach, a socket that failed or timed out. Anything else (a value that does not fit its
    schema, a record too large for the broker, a defect that one record meets) fails again
    however often it is tried."""
    if isinstance(error, SchemaError):  # decoding or encoding: the registry out of reach or not
        return error.transient
    if isinstance(error, DeliveryFailed):
        return not error.permanent
    if isinstance(error, KafkaException):
        return bool(error.args) and error.args[0].retriable()
    return isinstance(error, (OSError, TimeoutError))


def describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"
