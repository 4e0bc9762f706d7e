"""``crmsync serve``: the scheduler, its HTTP endpoint, signals, and one serve per store.

:func:`serve` blocks until SIGTERM or SIGINT: the first one lets the running job finish its
batch and checkpoint, then serve exits 0; a second one stops at once (exit 130).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from crmsync.errors import ConfigError, CrmsyncError
from crmsync.unattended.endpoint import Endpoint, parse_listen
from crmsync.unattended.metrics import Metrics
from crmsync.unattended.schedule import Clock, ServeConfig
from crmsync.unattended.scheduler import EventLog, RunJob, Scheduler
from crmsync.unattended.state import StateFile, state_path

if TYPE_CHECKING:
    from crmsync.config import Config
    from crmsync.plugins import PluginRegistry


class ServeLocked(CrmsyncError):
    """Another ``crmsync serve`` already schedules jobs for this store."""


def serve_config(config: Config) -> ServeConfig:
    serve = getattr(config, "serve", None)
    if serve is None or not serve.jobs:
        raise ConfigError(
            "no jobs to schedule: add [[serve.jobs]] tables (see docs/deployment.md)",
            path="serve.jobs",
            source=str(config.path) if config.path else None,
        )
    return serve


def serve(
    config: Config,
    registry: PluginRegistry,
    *,
    listen: str | None = None,
    run_now: bool = False,
    log: EventLog | None = None,
    run_job: RunJob | None = None,
    clock: Clock | None = None,
    announce: IO[str] | None = None,
    debug: bool = False,
) -> int:
    """Schedule the configured jobs until stopped; returns the exit code (0)."""
    settings = serve_config(config)
    try:
        address = parse_listen(listen if listen is not None else settings.listen)
    except ValueError as exc:
        raise ConfigError(str(exc), path="serve.listen" if listen is None else "--listen") from None
    log = log or text_log(sys.stderr)
    if run_job is None:
        from crmsync.unattended.jobs import job_runner

        run_job = job_runner(config, registry, log)
    path = state_path(config.store_path)
    with serve_lock(path.with_suffix(".lock")):
        state = StateFile(path)
        if state.problem:
            log("serve.warning", message=state.problem)
        scheduler = Scheduler(
            settings.jobs, run_job, clock=clock, state=state, log=log, debug=debug
        )
        metrics = Metrics(scheduler, config.store_path)
        scheduler.on_finish = metrics.record
        endpoint = None
        if address is not None:
            try:
                endpoint = Endpoint(address, scheduler, metrics, store_ok=_store_ok(metrics))
            except OSError as exc:  # in use, not an address of this host, no permission
                host, port = address
                raise CrmsyncError(
                    f"cannot listen on {host}:{port}: {exc.strerror or exc}"
                    " (set [serve] listen or --listen; 'off' for no endpoint)"
                ) from None
            endpoint.start()
        try:
            url = endpoint.url if endpoint else None
            print(
                f"serve listening on {url}" if url else "serve started",
                file=announce or sys.stdout,
                flush=True,
            )
            log("serve.start", listen=url, jobs=[j.name for j in settings.jobs], pid=os.getpid())
            with stop_on_signals(scheduler, log):
                scheduler.plan_start(run_now=run_now)
                scheduler.run_forever()
        finally:
            if endpoint is not None:
                endpoint.close()
        log("serve.stop", reason="signal")
    return 0


def _store_ok(metrics: Metrics) -> Callable[[], bool]:
    def ok() -> bool:
        figures = metrics.store_figures()
        return figures is None or figures.ok

    return ok


@contextlib.contextmanager
def stop_on_signals(scheduler: Scheduler, log: EventLog) -> Iterator[None]:
    """SIGTERM/SIGINT: stop after the current batch; a second signal: stop now (exit 130)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach the main thread only; the caller stops the scheduler itself
        return
    signals = (signal.SIGTERM, signal.SIGINT)

    def handler(signum: int, frame: Any) -> None:
        if scheduler.stop_event.is_set():
            raise KeyboardInterrupt
        log("serve.stopping", signal=signal.Signals(signum).name, running=scheduler.running)
        scheduler.stop()

    previous = {s: signal.signal(s, handler) for s in signals}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@contextlib.contextmanager
def serve_lock(path: Path) -> Iterator[None]:
    """One serve per store: an exclusive ``flock`` on ``path``, released by the kernel when the
    process ends however it ends (SIGKILL too), so it is never stale."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            raise ServeLocked(
                f"another crmsync serve (pid {holder}) already runs jobs for this store"
                f" (lock {path})"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- log lines


def text_log(stream: IO[str]) -> EventLog:
    """One human line per event: ``2026-01-01T03:00:00Z job.finish job=nightly status=ok``."""

    def log(event: str, **fields: Any) -> None:
        parts = [f"{k}={_text(v)}" for k, v in fields.items() if v not in (None, [], {})]
        print(" ".join([_now(), "serve", event, *parts]), file=stream, flush=True)

    return log


def json_log(stream: IO[str]) -> EventLog:
    """One JSON object per line, for log shippers."""

    def log(event: str, **fields: Any) -> None:
        line = {"time": _now(), "source": "serve", "event": event, **fields}
        print(json.dumps(line, default=str, ensure_ascii=False), file=stream, flush=True)

    return log


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ",".join(map(str, value))
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    text = str(value)
    return json.dumps(text, ensure_ascii=False) if (" " in text or not text) else text
