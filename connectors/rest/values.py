"""Small value helpers: dotted paths into JSON, and times in the formats CRMs use."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

_MISSING = object()


def get_path(body: Any, path: str, default: Any = _MISSING) -> Any:
    """``body`` at dotted ``path`` (``""`` = the body itself; digits index lists).

    Raises KeyError when the path is absent and no default is given.
    """
    node = body
    if path:
        for part in path.split("."):
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            elif default is _MISSING:
                raise KeyError(path)
            else:
                return default
    return node


def parse_time(value: Any, fmt: str) -> datetime:
    """A record's time value in ``fmt`` (iso8601 | epoch_seconds | epoch_millis) as UTC.

    Raises ValueError when it cannot be read.
    """
    if fmt in ("epoch_seconds", "epoch_millis"):
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError(f"not an epoch number: {value!r}")
        number = float(value)
        if fmt == "epoch_millis":
            number /= 1000.0
        return datetime.fromtimestamp(number, UTC)
    if not isinstance(value, str):
        raise ValueError(f"not an ISO-8601 string: {value!r}")
    parsed = datetime.fromisoformat(value.strip().replace("z", "Z"))
    # A time without zone is taken as UTC (the usual API convention).
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


# Already in iso_z's output form: keep the string (strftime costs more than the rest of a record).
_ISO_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.(?!0{6})\d{6})?Z")


def normalised(value: Any, moment: datetime) -> str:
    """``value`` if it already is iso_z(moment)'s text, else iso_z(moment)."""
    if isinstance(value, str) and _ISO_Z.fullmatch(value):
        return value
    return iso_z(moment)


def iso_z(moment: datetime) -> str:
    """ISO-8601 UTC with ``Z``; microseconds only when present (so nothing is rounded up)."""
    moment = moment.astimezone(UTC)
    if moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def format_cursor(since: str, fmt: str, lookback_seconds: float = 0.0) -> str | int:
    """A checkpoint (ISO-8601, as this connector produces) in the API's ``fmt``."""
    moment = parse_time(since, "iso8601") - timedelta(seconds=lookback_seconds)
    if fmt == "epoch_seconds":
        return int(moment.timestamp())  # rounds down: inclusive bound stays safe
    if fmt == "epoch_millis":
        return int(moment.timestamp() * 1000)
    return iso_z(moment)
