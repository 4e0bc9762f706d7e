"""The steps of one unattended run, in order (see :mod:`crmsync.unattended.run`):

1. **Resume**: the run's own plans (``created_by`` the run's operator) of the selected policies
   that an earlier run left ``applying`` are applied first (apply resumes them: nothing lost,
   nothing written twice).
2. **Pull**, incrementally: every connection (with ``--policy``: the modules those use). A
   connection that fails is skipped by the later steps; the others go on.
3. **Plan** each selected policy, one plan each, so one policy's guard never holds back
   another. Then per plan: a guard stopped it -> error (exit 3); nothing matched -> closed; it
   needs approval -> left waiting (notified once; a person approves and applies it);
   ``auto_apply`` (which config validation allows only without ``require_approval``) ->
   **apply**; otherwise it is left for a person to review and apply. A policy whose earlier
   waiting plan is still valid (not expired, same config) is not planned again.
4. **Snapshot** the mirror (``[run] snapshot``) of each connection pulled without error, then
   **retention** (``[run] retention``): forget by ``[snapshots.keep]`` and prune.

Drift (records changed in the CRM since the plan) is counted, not an error: the next run plans
them again if they still match.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from crmsync.config import Config
from crmsync.errors import EXIT_FAILURE, EXIT_GUARD, EXIT_TEMPFAIL, CrmsyncError
from crmsync.hookspecs import Page
from crmsync.plans.model import APPLIED, APPLYING, PLANNED, PlanInfo
from crmsync.plans.planner import config_hash, iso, make_plan
from crmsync.plugins import PluginRegistry
from crmsync.policy.model import Policy
from crmsync.pull import ModulePull
from crmsync.store import Store
from crmsync.unattended.lock import LockHolder
from crmsync.unattended.run import RUN_KIND, RunOptions, RunOutcome, status_and_code
from crmsync.unattended.runlog import RunLog

PULL_FAILED = "its pull failed"
PLAN_SCAN = 500  # how many recent plans are searched for the run's own open ones
STATE_COUNTS = ("done", "failed", "drift", "gone")


class RunInterrupted(CrmsyncError):
    """A stop was requested; raised at a checkpoint (after a committed page or batch)."""

    exit_code = EXIT_TEMPFAIL

    def __init__(self) -> None:
        super().__init__("stopped on request; the next run resumes")


class _StopAtCheckpoints:
    """A PullProgress that ends the pull after a committed page once a stop is requested."""

    def __init__(self, stop: threading.Event):
        self.stop = stop

    def module_started(self, pull: ModulePull) -> None:
        if self.stop.is_set():
            raise RunInterrupted()

    def page_committed(self, pull: ModulePull, page: Page) -> None:
        if self.stop.is_set():
            raise RunInterrupted()

    def module_finished(self, pull: ModulePull) -> None:
        pass


class RunSteps:
    def __init__(
        self,
        config: Config,
        registry: PluginRegistry,
        store: Store,
        options: RunOptions,
        policies: Sequence[Policy],
        log: RunLog,
        stop: threading.Event,
        run_id: int,
    ):
        self.config, self.registry, self.store = config, registry, store
        self.options, self.policies, self.log = options, list(policies), log
        self.stop, self.run_id = stop, run_id
        self.now = datetime.now(UTC)
        self.errors: list[tuple[int, str]] = []
        self.counts: dict[str, int] = {}
        self.steps: list[dict[str, Any]] = []
        self.awaiting: list[PlanInfo] = []  # plans waiting for approval (new and earlier)
        self.new_waiting: list[PlanInfo] = []  # of those, made by this run (to notify)
        self.snapshot_ids: list[str] = []
        self.blocked: dict[str, str] = {}  # connection -> why later steps leave it alone
        self.write_calls: dict[str, int] = {}
        self.errors_by_connection: dict[str, int] = {}
        self.interrupted = False
        self._open: dict[str, PlanInfo] = {}  # policy -> its still-valid waiting plan

    # ------------------------------------------------------------------ bookkeeping

    def record(self, step: str, status: str, started: float, **fields: Any) -> dict[str, Any]:
        entry = {"step": step, "status": status, "seconds": round(time.monotonic() - started, 3)}
        entry.update({k: v for k, v in fields.items() if v is not None})
        self.steps.append(entry)
        self.log.step(self.run_id, entry)
        return entry

    def fail(self, step: str, exc: BaseException, started: float, **fields: Any) -> dict[str, Any]:
        if isinstance(exc, CrmsyncError):
            code, message = exc.exit_code, str(exc)
        else:  # a bug: name it, never dump its internals (they may hold secrets)
            code, message = EXIT_FAILURE, f"{step}: unexpected {type(exc).__name__}"
        return self.error(step, code, message, started, **fields)

    def error(
        self, step: str, code: int, message: str, started: float, **fields: Any
    ) -> dict[str, Any]:
        """An error of the run; with ``connection``, one of that connection's errors."""
        self.errors.append((code, message))
        connection = fields.get("connection")
        if connection:
            self.errors_by_connection[connection] = self.errors_by_connection.get(connection, 0) + 1
        status = fields.pop("status", "guard" if code == EXIT_GUARD else "failed")
        return self.record(step, status, started, error=message, **fields)

    def add(self, key: str, n: int) -> None:
        self.counts[key] = self.counts.get(key, 0) + n

    def checkpoint(self) -> None:
        if self.stop.is_set():
            raise RunInterrupted()

    def took_over(self, holder: LockHolder) -> None:
        """The lock was left by a run that died: say so, and close its rows in the history."""
        started = time.monotonic()
        if holder.run_id is not None:
            note = f"the process died ({holder.describe()}); run {self.run_id} took over its lock"
            for row in self.store.runs(limit=200):
                if holder.run_id <= row.id < self.run_id and row.status == "running":
                    self.store.finish_run(row.id, "killed", row.summary, note)
        self.record("lock", "took_over", started, stale_holder=holder.describe())

    # ------------------------------------------------------------------ the run

    def execute(self) -> None:
        try:
            if self.options.apply:
                self.resume()
            if self.options.pull:
                self.pull()
            if self.options.apply:
                self.plan_and_apply()
            self.maintain()
        except RunInterrupted:
            self.interrupted = True
            self.record("run", "interrupted", time.monotonic())
        except Exception as exc:  # a bug in a step must not leave the run unrecorded
            self.fail("run", exc, time.monotonic())

    def resume(self) -> None:
        chosen = {p.name for p in self.policies}
        by_name = {p.name: p for p in self.config.policies}
        current = config_hash(self.config)
        for plan in reversed(self._own_plans()):  # oldest first
            names = [pp.policy for pp in plan.policies]
            if not names or not set(names) <= chosen:
                continue
            if plan.config_hash != current:  # apply refuses it: a person decides
                if plan.status == APPLYING:
                    why = "made under another config; `crmsync apply` refuses it"
                    self.record("resume", "skipped", time.monotonic(), plan=plan.id, reason=why)
                continue
            if plan.status == APPLYING:
                self.apply(plan, "resume")
            elif (
                iso(self.now) < plan.expires_at
                and not any(pp.guard for pp in plan.policies)
                and len(names) == 1
                and not by_name[names[0]].auto_apply
            ):
                # a plan waiting for a person (approval, or an apply by hand): kept, so the
                # policy is not planned again while it waits (the newest wins)
                self._open[names[0]] = plan

    def _own_plans(self) -> list[PlanInfo]:
        return [
            p
            for p in self.store.list_plans(PLAN_SCAN)
            if p.created_by == self.options.operator
            and p.kind == "policy"
            and p.status in (PLANNED, APPLYING)
        ]

    def pull(self) -> None:
        from crmsync.connections import open_session
        from crmsync.pull import pull_connection

        wanted: dict[str, set[str] | None] = {}
        if self.options.policies:
            for p in self.policies:
                wanted.setdefault(p.connection, set()).add(p.module)  # type: ignore[union-attr]
        else:
            wanted = {name: None for name in self.config.connections}
        progress = _StopAtCheckpoints(self.stop)
        for name, modules in sorted(wanted.items()):
            self.checkpoint()
            started = time.monotonic()
            try:
                session = open_session(self.config, self.registry, name)
            except Exception as exc:
                self.blocked.setdefault(name, PULL_FAILED)
                self.fail("pull", exc, started, connection=name)
                continue
            try:
                summary = pull_connection(
                    session,
                    self.store,
                    name,
                    modules=sorted(modules) if modules else None,
                    progress=progress,
                )
            except RunInterrupted:
                self.record("pull", "interrupted", started, connection=name)
                raise
            except Exception as exc:
                self.blocked.setdefault(name, PULL_FAILED)
                self.fail("pull", exc, started, connection=name)
                continue
            finally:
                session.close()
            counts = {k: summary.total(k) for k in ("records", "new", "changed", "deleted")}
            for key, value in counts.items():
                self.add("pulled" if key == "records" else key, value)
            self.record(
                "pull",
                "ok",
                started,
                connection=name,
                modules=[m.module for m in summary.modules],
                counts=counts,
                api_calls=summary.total("api_calls"),
            )

    def plan_and_apply(self) -> None:
        unfinished = self.unfinished()
        for policy in self.policies:
            self.checkpoint()
            started = time.monotonic()
            why = self.blocked.get(policy.connection)
            if why is None and policy.name in unfinished:
                why = "an earlier apply of it is unfinished"  # planned again once it is done
            if why is not None:
                self.record("plan", "skipped", started, policy=policy.name, reason=why)
                continue
            waiting = self._open.get(policy.name)
            if waiting is not None:
                self._keep_waiting(policy, waiting, started)
                continue
            try:
                plan = make_plan(
                    self.config,
                    self.store,
                    [policy],
                    operator=self.options.operator,
                    ttl=self.config.plan_ttl,
                )
            except Exception as exc:
                self.fail("plan", exc, started, policy=policy.name)
                continue
            self._decide(policy, plan, started)

    def _keep_waiting(self, policy: Policy, plan: PlanInfo, started: float) -> None:
        needs = plan.policies[0].require_approval and not plan.approvals
        if needs:
            self.awaiting.append(plan)
        status = "awaiting_approval" if needs else "planned"
        self.record("plan", status, started, policy=policy.name, plan=plan.id, reused=True)

    def _decide(self, policy: Policy, plan: PlanInfo, started: float) -> None:
        pp = plan.policies[0]
        self.add("planned", pp.matched)
        fields: dict[str, Any] = {"policy": policy.name, "plan": plan.id, "records": pp.matched}
        if pp.guard:
            message = (
                f"policy {policy.name!r}: blast radius exceeded ({pp.guard}); nothing was "
                f"changed. Review plan {plan.id}; narrow the filter or raise the limits."
            )
            self.error("plan", EXIT_GUARD, message, started, **fields)
        elif pp.matched == 0:
            self.store.set_plan_status(plan.id, APPLIED)  # nothing to do
            self.record("plan", "ok", started, **fields)
        elif pp.require_approval:
            self.awaiting.append(plan)
            self.new_waiting.append(plan)
            self.record("plan", "awaiting_approval", started, **fields)
        elif policy.auto_apply:
            self.record("plan", "ok", started, **fields)
            self.apply(plan, "apply")
        else:
            self.add("planned_for_review", pp.matched)
            self.record("plan", "planned", started, **fields)

    def apply(self, plan: PlanInfo, step: str) -> None:
        from crmsync.plans.apply import apply_plan

        self.checkpoint()
        started = time.monotonic()
        connections = sorted({pp.connection for pp in plan.policies})
        fields: dict[str, Any] = {
            "plan": plan.id,
            "policy": ",".join(pp.policy for pp in plan.policies),
            "connection": connections[0] if len(connections) == 1 else None,
        }
        blocked = [c for c in connections if c in self.blocked]
        if blocked:
            why = f"connection {blocked[0]!r}: {self.blocked[blocked[0]]}"
            self.record(step, "skipped", started, reason=why, **fields)
            return

        def on_batch(policy: str, records: int) -> None:
            self.log.batch(self.run_id, policy, records)
            self.checkpoint()

        try:
            result = apply_plan(
                self.config,
                self.registry,
                self.store,
                plan.id,
                operator=self.options.operator,
                on_batch=on_batch,
            )
        except RunInterrupted:
            self.record(step, "interrupted", started, **fields)
            raise
        except Exception as exc:
            for c in connections:
                self.blocked.setdefault(c, "an apply failed")
            self.fail(step, exc, started, **fields)
            return
        states = {s: sum(c.get(s, 0) for c in result.counts.values()) for s in STATE_COUNTS}
        for state, n in states.items():
            self.add(state, n)
        for c in connections:
            self.write_calls[c] = self.write_calls.get(c, 0) + result.api_calls
        fields.update(counts=states, write_calls=result.api_calls, snapshots=result.snapshot_ids)
        if states["failed"]:
            message = (
                f"policy {fields['policy']!r}: the CRM refused {states['failed']} record(s); "
                f"see `crmsync audit log --plan {plan.id} --outcome failed`"
            )
            self.error(step, EXIT_FAILURE, message, started, **fields)
        else:
            self.record(step, "ok" if result.status == APPLIED else "partial", started, **fields)

    def maintain(self) -> None:
        from crmsync.unattended import maintenance

        wanted = self.options.snapshot
        if wanted is None:
            wanted = self.config.run.snapshot
        snapshot_ok = True
        if wanted:
            self.checkpoint()
            started = time.monotonic()
            fresh = [c for c in self.config.connections if self.blocked.get(c) != PULL_FAILED]
            names = sorted(fresh)  # a connection that could not be pulled: no stale snapshot
            try:
                infos = maintenance.take_snapshots(
                    self.config, self.store, names, operator=self.options.operator
                )
            except Exception as exc:
                snapshot_ok = False
                self.fail("snapshot", exc, started)
            else:
                self.snapshot_ids += [i.id for i in infos]
                self.add("snapshots", len(infos))
                self.record(
                    "snapshot",
                    "ok",
                    started,
                    snapshots=[
                        {"id": i.id, "connection": i.connection, "records": i.records}
                        for i in infos
                    ],
                )
        retention = self.options.retention
        if retention is None:
            retention = self.config.run.retention
        if retention and snapshot_ok:
            self.checkpoint()
            started = time.monotonic()
            try:
                kept = maintenance.apply_retention(self.config)
            except Exception as exc:
                self.fail("retention", exc, started)
            else:
                self.add("forgotten", len(kept.forgotten))
                self.record("retention", "ok", started, **kept.as_dict())

    # ------------------------------------------------------------------ the end

    def api_calls(self) -> dict[str, int]:
        """Requests per connection: every pull of this run (apply's refreshes included, from
        the runs history) plus apply's write calls."""
        calls = dict(self.write_calls)
        for row in self.store.runs(limit=1000, kind="pull"):
            if row.id > self.run_id and row.connection:
                n = int(row.summary.get("api_calls") or 0)
                calls[row.connection] = calls.get(row.connection, 0) + n
        return calls

    def unfinished(self) -> set[str]:
        """Policies of this operator's plans left part-way (the next run resumes them)."""
        current = config_hash(self.config)
        return {
            pp.policy
            for p in self._own_plans()
            if p.status == APPLYING and p.config_hash == current
            for pp in p.policies
        }

    def outcome(self, started: str) -> RunOutcome:
        status, code = status_and_code(
            self.errors,
            resumable=bool(self.errors) and bool(self.unfinished()),
            awaiting=bool(self.awaiting),
            interrupted=self.interrupted,
        )
        calls = self.api_calls()
        return RunOutcome(
            run_id=self.run_id,
            status=status,
            exit_code=code,
            started=started,
            finished="",
            counts=dict(self.counts),
            api_calls=sum(calls.values()),
            errors=[m for _, m in self.errors],
            awaiting_plans=[p.id for p in self.awaiting],
            snapshot_ids=list(self.snapshot_ids),
            steps=list(self.steps),
            api_calls_by_connection=calls,
            errors_by_connection=dict(self.errors_by_connection),
        )

    def notify(self, outcome: RunOutcome) -> None:
        from crmsync.unattended import notify

        started = time.monotonic()
        previous = notify.previous_status(self.store, self.run_id, RUN_KIND)
        events = notify.events_for(outcome, previous, self.new_waiting, socket.gethostname())
        for event in events:
            for result in notify.send(self.registry, self.config, event):
                status = result.pop("status")
                self.record("notify", status, started, **result)
        outcome.steps = list(self.steps)
