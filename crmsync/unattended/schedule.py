"""The ``[serve]`` config table: jobs on cron schedules in named time zones.

```toml
[serve]
listen = "127.0.0.1:9464"      # the /healthz, /readyz and /metrics endpoint ("off": none)
timezone = "Asia/Shanghai"     # default zone of every job (UTC if unset)

[[serve.jobs]]
name = "nightly"               # metric label and state key: letters, digits, - and _
cron = "0 3 * * *"             # five fields, or @hourly @daily @weekly @monthly @yearly
timezone = "Asia/Shanghai"     # this job's zone (DST handled by croniter + zoneinfo)
kind = "run"                   # run | pull | snapshot | retention
policies = ["stale-leads"]     # kind = "run" only; default: every auto_apply policy
catch_up = true                # run once at start if a scheduled time passed while down
```

Every problem is a :class:`~crmsync.errors.ConfigError` naming its key path (a job by its name:
``serve.jobs.nightly.cron``), so ``crmsync serve`` exits 2 before it schedules anything.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from jsonschema import Draft202012Validator

from crmsync.errors import ConfigError
from crmsync.schema_text import describe

JOB_KINDS = ("run", "pull", "snapshot", "retention")
DEFAULT_LISTEN = "127.0.0.1:9464"
DEFAULT_TIMEZONE = "UTC"
JOB_NAME_PATTERN = "^[A-Za-z][A-Za-z0-9_-]*$"
CRON_ALIASES = ("@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually")

_JOB_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "cron"],
    "properties": {
        "name": {"type": "string", "pattern": JOB_NAME_PATTERN},
        "cron": {"type": "string", "minLength": 1},
        "timezone": {"type": "string", "minLength": 1},
        "kind": {"enum": list(JOB_KINDS)},
        "policies": {"type": "array", "items": {"type": "string", "minLength": 1}},
        "catch_up": {"type": "boolean"},
    },
}

SERVE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "listen": {"type": "string", "minLength": 1},
        "timezone": {"type": "string", "minLength": 1},
        "jobs": {"type": "array", "items": {"type": "object"}},  # each: _JOB_SCHEMA
    },
}


@dataclass(frozen=True)
class Job:
    """One scheduled job. Times in and out are aware datetimes; results are in UTC."""

    name: str
    cron: str
    timezone: str = DEFAULT_TIMEZONE
    kind: str = "run"
    policies: tuple[str, ...] = ()
    catch_up: bool = True

    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def fixed_hour(self) -> bool:
        """Runs at set hours (``0 3 * * *``, ``@daily``), not every hour or every few."""
        fields = self.cron.split()
        return len(fields) != 5 or "*" not in fields[1]

    def next_after(self, moment: datetime) -> datetime:
        """The first scheduled time strictly after ``moment``. A job at set hours runs once
        when clocks fall back and its time comes twice (as cron does); hourly jobs run in both."""
        nxt = self._local(croniter(self.cron, self._local(moment)).get_next(datetime))
        while self.fixed_hour and nxt.fold == 1:
            nxt = self._local(croniter(self.cron, nxt).get_next(datetime))
        return nxt.astimezone(UTC)

    def last_at_or_before(self, moment: datetime) -> datetime:
        """The latest scheduled time at or before ``moment``."""
        local = self._local(moment)
        if not (croniter.match(self.cron, local) and local.second == local.microsecond == 0):
            local = self._local(croniter(self.cron, local).get_prev(datetime))
        while self.fixed_hour and local.fold == 1:  # the repeat of an hour: not a time of its own
            local = self._local(croniter(self.cron, local).get_prev(datetime))
        return local.astimezone(UTC)

    def _local(self, moment: datetime) -> datetime:
        """``moment`` in the job's zone, ``fold`` set as the zone says (through UTC: croniter's
        arithmetic can leave a stray fold on a time that is not ambiguous)."""
        return moment.astimezone(UTC).astimezone(self.zone)


@dataclass(frozen=True)
class ServeConfig:
    listen: str = DEFAULT_LISTEN
    timezone: str = DEFAULT_TIMEZONE
    jobs: tuple[Job, ...] = ()


def parse_serve(
    table: Mapping[str, Any],
    *,
    policies: Mapping[str, bool] | None = None,
    source: str | None = None,
) -> ServeConfig:
    """Validate the ``[serve]`` table. ``policies``: policy name -> auto_apply, to check the
    names a job lists (None: not checked)."""
    _first_error(Draft202012Validator(SERVE_SCHEMA), table, "serve", source)
    zone = table.get("timezone", DEFAULT_TIMEZONE)
    _check_zone(zone, "serve.timezone", source)
    jobs: list[Job] = []
    for i, item in enumerate(table.get("jobs", [])):
        name = item.get("name")
        named = isinstance(name, str) and Draft202012Validator(
            _JOB_SCHEMA["properties"]["name"]
        ).is_valid(name)
        prefix = f"serve.jobs.{name}" if named else f"serve.jobs[{i}]"
        _first_error(Draft202012Validator(_JOB_SCHEMA), item, prefix, source)
        if any(j.name == name for j in jobs):
            raise ConfigError("two jobs have this name", path=f"{prefix}.name", source=source)
        jobs.append(_job(item, prefix, zone, policies, source))
    return ServeConfig(listen=table.get("listen", DEFAULT_LISTEN), timezone=zone, jobs=tuple(jobs))


def _job(
    item: Mapping[str, Any],
    prefix: str,
    default_zone: str,
    policies: Mapping[str, bool] | None,
    source: str | None,
) -> Job:
    cron = " ".join(item["cron"].split())
    problem = cron_error(cron)
    if problem:
        raise ConfigError(problem, path=f"{prefix}.cron", source=source)
    zone = item.get("timezone", default_zone)
    _check_zone(zone, f"{prefix}.timezone", source)
    kind = item.get("kind", "run")
    names = tuple(item.get("policies", ()))
    if names and kind != "run":
        raise ConfigError(
            f"only a job of kind 'run' applies policies (this one is {kind!r})",
            path=f"{prefix}.policies",
            source=source,
        )
    if policies is not None:
        _check_policies(names, policies, f"{prefix}.policies", source)
    return Job(
        name=item["name"],
        cron=cron,
        timezone=zone,
        kind=kind,
        policies=names,
        catch_up=item.get("catch_up", True),
    )


def cron_error(cron: str) -> str | None:
    """Why ``cron`` is not a schedule crmsync accepts, or None."""
    fields = cron.split()
    if cron.lower() in CRON_ALIASES:
        return None
    if len(fields) != 5:
        return (
            f"expected a cron expression of five fields (minute hour day-of-month month"
            f" day-of-week) or one of {', '.join(CRON_ALIASES)}; got {cron!r}"
        )
    if not croniter.is_valid(cron):
        return f"not a valid cron expression: {cron!r}"
    try:  # valid syntax that never fires (e.g. 30 February) is still a mistake
        croniter(cron, datetime(2000, 1, 1, tzinfo=UTC)).get_next(datetime)
    except Exception:  # croniter raises its own CroniterBadDateError (and others) here
        return f"cron expression {cron!r} never fires"
    return None


def _check_zone(zone: str, path: str, source: str | None) -> None:
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"unknown time zone {zone!r}; expected an IANA name such as 'UTC' or 'Asia/Shanghai'",
            path=path,
            source=source,
        ) from None


def _check_policies(
    names: Sequence[str], policies: Mapping[str, bool], path: str, source: str | None
) -> None:
    for i, name in enumerate(names):
        if name not in policies:
            known = ", ".join(sorted(policies)) or "none configured"
            raise ConfigError(
                f"no policy named {name!r} (configured: {known})",
                path=f"{path}[{i}]",
                source=source,
            )


def _first_error(validator: Any, instance: Any, prefix: str, source: str | None) -> None:
    errors = sorted(validator.iter_errors(instance), key=lambda e: len(e.absolute_path))
    if errors:
        path, message = describe(errors[0], prefix)
        if errors[0].validator == "pattern" and errors[0].validator_value == JOB_NAME_PATTERN:
            message = "a job name starts with a letter and uses only letters, digits, - and _"
        raise ConfigError(message, path=path, source=source)


# --------------------------------------------------------------------------- clocks


class Clock(Protocol):
    """What the scheduler asks of time: now (aware, UTC), and a wait that an Event can end."""

    def now(self) -> datetime: ...

    def wait(self, event: threading.Event, seconds: float) -> bool:
        """Wait up to ``seconds`` or until ``event`` is set; True if it is set."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def wait(self, event: threading.Event, seconds: float) -> bool:
        return event.wait(max(0.0, seconds))


class ManualClock:
    """A clock for tests: time moves only by :meth:`advance`, or by a :meth:`wait` (which
    returns at once, as if the time had passed)."""

    def __init__(self, start: datetime) -> None:
        self._now = start.astimezone(UTC)
        self.waits: list[float] = []

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> datetime:
        self._now += timedelta(seconds=seconds)
        return self._now

    def wait(self, event: threading.Event, seconds: float) -> bool:
        self.waits.append(seconds)
        if not event.is_set():
            self.advance(max(0.0, seconds))
        return event.is_set()


def policy_auto_apply(policies: Collection[Any]) -> dict[str, bool]:
    """policy name -> auto_apply, for :func:`parse_serve`."""
    return {p.name: bool(getattr(p, "auto_apply", False)) for p in policies}
