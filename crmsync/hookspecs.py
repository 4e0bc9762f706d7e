"""The whole crmsync plugin contract, in one file.

A connector plugin is a module registered under the ``crmsync.connectors`` entry-point group
that implements :func:`crmsync_register_connectors` and calls ``register(SomeConnector())``.
A connector object satisfies :class:`Connector`; the session it opens satisfies
:class:`ConnectorSession`. The core only ever talks to connectors through these shapes, and
the values that cross the boundary are the dataclasses below.

Rules every connector follows (the contract suite in :mod:`crmsync.testing` checks them):

* ``pull`` yields pages in order; memory is bounded by a page, never by the module's size.
* A page's ``checkpoint`` is a cursor the core may store once that page is committed: resuming
  ``pull(module, since=checkpoint)`` after it must not skip any record. Connectors that cannot
  promise that mid-pull set it on the final page only.
* ``push``/``delete`` take at most ``limits().batch_size`` records and return exactly one
  :class:`RecordResult` per record asked for, in any order; a failure of one record is a result,
  not an exception. Exceptions are for the whole batch (auth, network after retries).
* Secrets arrive as :class:`SecretRef`; a connector reveals them only to send them, and never
  puts them in an exception message, a log line, a page or a result.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import pluggy

PROJECT_NAME = "crmsync"
ENTRY_POINT_GROUP = "crmsync.connectors"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

# Actions a connector may be asked to write back: the lifecycle transitions (DESIGN.md, "Record
# lifecycle"), plus field writes that leave the status alone: ``tag`` (StatusChange.fields has
# ``tags``, a list) and ``update`` (StatusChange.fields holds the values to write).
ACTIONS = ("archive", "void", "restore", "purge", "tag", "update")


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class SecretRef:
    """A reference to a secret (``env:VAR`` or ``keyring:SERVICE/NAME``), resolved on demand.

    ``repr``/``str`` show the reference, never the value, so a SecretRef can be logged safely.
    """

    ref: str
    key_path: str
    resolver: Callable[[str, str], str] = field(repr=False, compare=False)

    def reveal(self) -> str:
        """Return the secret value. Raises :class:`crmsync.errors.SecretError` if unavailable."""
        return self.resolver(self.ref, self.key_path)

    def __str__(self) -> str:
        return self.ref


@dataclass(frozen=True)
class Limits:
    """What a connection can take. The core never exceeds these."""

    page_size: int = 100
    batch_size: int = 100
    concurrency: int = 1
    max_page_size: int | None = None
    requests_per_second: float | None = None


@dataclass(frozen=True)
class FieldInfo:
    name: str
    type: str = "string"  # string | integer | number | boolean | datetime | date | json
    label: str | None = None


@dataclass(frozen=True)
class ModuleInfo:
    """A module (entity type: Leads, Contacts...) of the CRM.

    ``modified_field`` is None when the module has no modified time: it is then always pulled
    in full, and the pull summary says so.
    """

    name: str
    id_field: str = "id"
    modified_field: str | None = None
    fields: tuple[FieldInfo, ...] = ()
    actions: tuple[str, ...] = ()  # lifecycle actions this module supports for write-back
    # The field that shows a record's lifecycle status in the CRM, if the connector reads it
    # (then every PulledRecord carries ``status``).
    status_field: str | None = None
    # Records per page of this module when it differs from ``Limits.page_size`` (modules served
    # by different APIs of one CRM may have different caps); at most ``Limits.max_page_size``.
    page_size: int | None = None


@dataclass(frozen=True)
class PulledRecord:
    """One record as pulled. ``modified_at`` is ISO-8601 UTC ending in ``Z``, with or without
    microseconds (``2024-05-01T12:00:00Z``, ``...00.250000Z``), or None. The two forms do not
    sort together as text: compare them as times."""

    id: str
    data: Mapping[str, Any]
    modified_at: str | None = None
    # Lifecycle status as the CRM shows it (active | archived | voided); None: not known.
    status: str | None = None


@dataclass(frozen=True)
class Page:
    """One page of a pull. ``number`` counts from 1 within the pull.

    ``checkpoint``: cursor safe to resume from once this page is committed (see module doc).
    ``deleted_ids``: ids the CRM reports as deleted, to be dropped from the mirror.
    ``api_calls``: requests spent to produce this page (retries included).
    ``total``: the connector's estimate of records in this pull, when the API says (progress).
    """

    number: int
    records: Sequence[PulledRecord]
    checkpoint: str | None = None
    deleted_ids: Sequence[str] = ()
    api_calls: int = 1
    total: int | None = None


@dataclass(frozen=True)
class StatusChange:
    """Ask the CRM to apply ``action`` (one of :data:`ACTIONS`) to one record.

    ``fields`` are extra field values the action writes (e.g. a reason), ``data`` the record as
    the mirror knows it (restore from a local copy needs it).
    """

    record_id: str
    action: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    data: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class RecordResult:
    """The CRM's answer for one record of a batch."""

    record_id: str
    ok: bool
    error: str | None = None  # short machine-readable code or message, never a secret
    retryable: bool = False
    modified_at: str | None = None  # the record's new modified time when the CRM says


@dataclass(frozen=True)
class Notification:
    """What an unattended run (``crmsync run``, ``crmsync serve``) tells a person.

    ``kind``: ``failure`` (the run failed or a guard stopped it), ``awaiting_approval`` (a plan
    it made waits for a person; sent once per plan) or ``recovery`` (the first good run after
    a failed one). ``title`` is one line, ``text`` a few plain-text lines for a chat message;
    the rest is the same as data. Nothing in it is a secret.
    """

    kind: str
    title: str
    text: str
    run_id: int
    status: str  # the run's: ok | failed | partial | awaiting_approval
    exit_code: int
    started: str  # ISO-8601 UTC
    finished: str
    host: str
    errors: tuple[str, ...] = ()
    # awaiting_approval: {"id", "policy", "action", "connection", "module", "records",
    # "expires_at"} per plan
    plans: tuple[Mapping[str, Any], ...] = ()
    counts: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "title": self.title, "text": self.text, "run_id": self.run_id,
            "status": self.status, "exit_code": self.exit_code, "started": self.started,
            "finished": self.finished, "host": self.host, "errors": list(self.errors),
            "plans": [dict(p) for p in self.plans], "counts": dict(self.counts),
        }  # fmt: skip


@dataclass(frozen=True)
class Setting:
    """One configuration key a connector accepts (documentation and `crmsync connectors`)."""

    name: str
    help: str
    type: str = "string"
    required: bool = False
    secret: bool = False
    default: Any = None


# --------------------------------------------------------------------------- objects


@runtime_checkable
class ConnectorSession(Protocol):
    """An open connection to one CRM account. Owns its pooled HTTP session; close() frees it."""

    def check(self) -> str:
        """Prove reachability and auth with one cheap call; return a short human description."""

    def limits(self) -> Limits: ...

    def list_modules(self) -> list[ModuleInfo]: ...

    def pull(self, module: str, since: str | None = None) -> Iterator[Page]:
        """Yield pages of ``module``: all records if ``since`` is None, else those changed since
        that cursor (a checkpoint this connector produced earlier)."""

    def push(self, module: str, changes: Sequence[StatusChange]) -> list[RecordResult]:
        """Write lifecycle status for at most ``limits().batch_size`` records."""

    def delete(self, module: str, record_ids: Sequence[str]) -> list[RecordResult]:
        """Delete records for good (purge); at most ``limits().batch_size`` ids."""

    def close(self) -> None: ...

    # Optional (not part of the protocol check, so older connectors still conform):
    #   def stats(self) -> dict[str, Any]
    # counters the connector keeps (calls by kind, credits left...); summaries print them.


@runtime_checkable
class Connector(Protocol):
    """A kind of CRM. ``name`` is what ``connector = "..."`` in config refers to."""

    name: str
    description: str

    def settings_schema(self) -> dict[str, Any]:
        """JSON Schema (draft 2020-12) of a connection's settings.

        Mark a secret-valued key with ``"secret": true``: the core then refuses a literal value
        and hands the connector a :class:`SecretRef`.
        """

    def settings(self) -> list[Setting]:
        """The keys, documented (for `crmsync connectors --json` and `crmsync init`)."""

    def open(self, name: str, settings: Mapping[str, Any]) -> ConnectorSession:
        """Open a session for connection ``name``. Must not touch the network before use."""


# --------------------------------------------------------------------------- hooks


@hookspec
def crmsync_register_connectors(register: Callable[[Connector], None]) -> None:
    """Register connector types: call ``register(connector)`` once per connector."""


@hookspec
def crmsync_register_commands(cli: Any) -> None:
    """Add click commands to the ``crmsync`` command group (``cli`` is a ``click.Group``)."""


@hookspec
def crmsync_notify(notification: Notification, config: Any) -> str | None:
    """Tell a person about an unattended run. ``config`` is the loaded crmsync config: a
    notifier reads its settings from ``config.notify.tables[NAME]`` (the ``[notify.NAME]``
    table) and resolves secret references with :func:`crmsync.secrets.resolve`.

    Return a short description of what was sent (for the run's log), or None when there was
    nothing to send. Raise when sending failed: the failure is logged (the message of a
    :class:`crmsync.errors.CrmsyncError`, only the type of any other exception, which may quote
    a secret) and never fails the run or stops the other notifiers. Keep it bounded (timeouts):
    a run waits for it.
    """
