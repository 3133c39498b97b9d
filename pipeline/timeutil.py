"""Event time as integer microseconds since the Unix epoch, UTC.

Integers keep window arithmetic exact and cheap; strings are parsed once at the edge.
"""

from datetime import UTC, datetime, timedelta

__all__ = ["DAY", "HOUR", "MINUTE", "SECOND", "format_time", "parse_time", "to_datetime"]

SECOND = 1_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MICROSECOND = timedelta(microseconds=1)


def parse_time(text: str) -> int:
    """Parse an RFC 3339 / ISO 8601 timestamp with an explicit offset into epoch microseconds.

    >>> parse_time("2018-04-01T00:00:31Z")
    1522540831000000
    >>> parse_time("2018-04-01T08:00:31+08:00")
    1522540831000000
    """
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no timezone offset")
    return (moment - _EPOCH) // _ONE_MICROSECOND


def to_datetime(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def format_time(micros: int) -> str:
    """Format epoch microseconds as an RFC 3339 UTC string.

    >>> format_time(1522540831000000)
    '2018-04-01T00:00:31Z'
    >>> format_time(1522540831000250)
    '2018-04-01T00:00:31.000250Z'
    """
    moment = to_datetime(micros)
    if moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
