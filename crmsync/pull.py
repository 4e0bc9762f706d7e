"""Pull: stream a connector's pages into the mirror.

The cursor only moves past committed data: each page and the checkpoint that comes with it are
one store transaction, and the final cursor is stored only when the pull completes. A failed pull
keeps every complete page, records the run as failed, and the next run starts from the last
committed cursor, so nothing is skipped.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from crmsync.errors import BadResponseError, ConfigError, ConnectorError, CrmsyncError
from crmsync.hookspecs import ConnectorSession, ModuleInfo, Page
from crmsync.store import PageStats, Store

FULL = "full"
INCREMENTAL = "incremental"
FULL_NO_MODIFIED = "full (module has no modified time)"
FULL_FIRST = "full (first pull)"

# Records committed per store transaction. Memory is bounded by this batch (a few pages).
COMMIT_EVERY = 2000


@dataclass
class ModulePull:
    connection: str
    module: str
    mode: str
    records: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    deleted: int = 0
    pages: int = 0
    api_calls: int = 0
    seconds: float = 0.0
    cursor: str | None = None
    run_id: int | None = None
    status: str = "running"
    error: str | None = None

    def add(self, pages: Sequence[Page], stats: PageStats) -> None:
        self.pages += len(pages)
        self.records += sum(len(p.records) for p in pages)
        self.api_calls += sum(p.api_calls for p in pages)
        self.new += stats.new
        self.changed += stats.changed
        self.unchanged += stats.unchanged
        self.deleted += stats.deleted


@dataclass
class PullSummary:
    connection: str
    modules: list[ModulePull] = field(default_factory=list)
    connector_stats: dict[str, Any] = field(default_factory=dict)  # ConnectorSession.stats()

    def total(self, attr: str) -> Any:
        return sum(getattr(m, attr) for m in self.modules)

    def as_dict(self) -> dict[str, Any]:
        return {
            "connection": self.connection,
            "records": self.total("records"),
            "pages": self.total("pages"),
            "api_calls": self.total("api_calls"),
            "seconds": round(self.total("seconds"), 3),
            "modules": [asdict(m) for m in self.modules],
            "connector": self.connector_stats,
        }


class PullProgress(Protocol):
    """What the CLI (or a scheduler) hears while a pull runs."""

    def module_started(self, pull: ModulePull) -> None: ...

    def page_committed(self, pull: ModulePull, page: Page) -> None: ...

    def module_finished(self, pull: ModulePull) -> None: ...


class _Silent:
    def module_started(self, pull: ModulePull) -> None:
        pass

    def page_committed(self, pull: ModulePull, page: Page) -> None:
        pass

    def module_finished(self, pull: ModulePull) -> None:
        pass


def select_modules(
    session: ConnectorSession, connection: str, wanted: Sequence[str] | None
) -> list[ModuleInfo]:
    available = {m.name: m for m in session.list_modules()}
    if not wanted:
        return list(available.values())
    missing = [m for m in wanted if m not in available]
    if missing:
        raise ConfigError(
            f"unknown module {missing[0]!r} for connection {connection!r};"
            f" available: {', '.join(sorted(available)) or 'none'}",
            path="--module",
        )
    return [available[m] for m in wanted]


def pull_module(
    session: ConnectorSession,
    store: Store,
    connection: str,
    module: ModuleInfo,
    *,
    full: bool = False,
    progress: PullProgress | None = None,
    commit_every: int = COMMIT_EVERY,
) -> ModulePull:
    progress = progress or _Silent()
    state = store.cursor(connection, module.name)
    if module.modified_field is None:
        since, mode = None, FULL_NO_MODIFIED
    elif full:
        since, mode = None, FULL
    elif state is None or state.cursor is None:
        since, mode = None, FULL_FIRST
    else:
        since, mode = state.cursor, INCREMENTAL

    result = ModulePull(connection, module.name, mode, cursor=since)
    result.run_id = store.start_run("pull", connection, module.name)
    progress.module_started(result)
    started = time.perf_counter()
    page_number: int | None = None
    batch = _Batch(store, connection, module.name, result, progress)
    try:
        for page in session.pull(module.name, since=since):
            page_number = page.number
            for rec in page.records:
                if not isinstance(rec.id, str) or not rec.id:
                    raise BadResponseError(
                        f"a record has no usable id ({module.id_field!r}: {rec.id!r})",
                        connection=connection,
                        module=module.name,
                        page=page.number,
                    )
            batch.add(page)
            if batch.size >= commit_every:
                batch.commit()
        batch.commit()
        result.deleted += store.finish_pull(
            connection, module.name, result.run_id, full=since is None, checkpoint=result.cursor
        )
        result.status = "ok"
    except CrmsyncError as exc:
        batch.salvage()
        if isinstance(exc, ConnectorError):  # the page being fetched: one past the last committed
            exc.located(connection=connection, module=module.name, page=(page_number or 0) + 1)
        _fail(store, result, started, str(exc))
        raise
    except Exception as exc:
        batch.salvage()
        # A connector bug: say where, without dumping its internals (they may hold secrets).
        message = f"connector failed unexpectedly: {type(exc).__name__}"
        _fail(store, result, started, message)
        raise ConnectorError(
            message, connection=connection, module=module.name, page=(page_number or 0) + 1
        ) from exc
    result.seconds = time.perf_counter() - started
    store.finish_run(result.run_id, "ok", _summary(result))
    progress.module_finished(result)
    return result


class _Batch:
    """Pages received but not yet committed; committed together (one transaction per batch
    instead of per page: the commit is a large share of a page's cost)."""

    def __init__(
        self,
        store: Store,
        connection: str,
        module: str,
        result: ModulePull,
        progress: PullProgress,
    ):
        self.store, self.connection, self.module = store, connection, module
        self.result, self.progress = result, progress
        self.pages: list[Page] = []
        self.size = 0
        self.failed = False

    def add(self, page: Page) -> None:
        self.pages.append(page)
        self.size += len(page.records)

    def commit(self) -> None:
        if not self.pages:
            return
        pages = self.pages
        records = pages[0].records if len(pages) == 1 else [r for p in pages for r in p.records]
        deleted = [i for p in pages for i in p.deleted_ids]
        checkpoint = next((p.checkpoint for p in reversed(pages) if p.checkpoint), None)
        try:
            stats = self.store.commit_page(
                self.connection, self.module, self.result.run_id, records, deleted, checkpoint
            )
        except BaseException:
            self.failed = True
            raise
        if checkpoint is not None:
            self.result.cursor = checkpoint
        self.result.add(pages, stats)
        self.pages, self.size = [], 0
        for page in pages:
            self.progress.page_committed(self.result, page)

    def salvage(self) -> None:
        """After a failure elsewhere, keep the complete pages already received."""
        if not self.failed:
            self.commit()


def _summary(result: ModulePull) -> dict[str, Any]:
    keep = ("mode", "records", "new", "changed", "unchanged", "deleted", "pages", "api_calls")
    out = {k: getattr(result, k) for k in keep}
    out["seconds"] = round(result.seconds, 3)
    return out


def _fail(store: Store, result: ModulePull, started: float, message: str) -> None:
    result.seconds = time.perf_counter() - started
    result.status, result.error = "failed", message
    store.finish_run(result.run_id, "failed", _summary(result), message)


def pull_connection(
    session: ConnectorSession,
    store: Store,
    connection: str,
    *,
    modules: Sequence[str] | None = None,
    full: bool = False,
    progress: PullProgress | None = None,
) -> PullSummary:
    """Pull the selected (default: all) modules of one connection, one after another."""
    summary = PullSummary(connection)
    for module in select_modules(session, connection, modules):
        summary.modules.append(
            pull_module(session, store, connection, module, full=full, progress=progress)
        )
    stats = getattr(session, "stats", None)
    if callable(stats):
        summary.connector_stats = dict(stats())
    return summary
