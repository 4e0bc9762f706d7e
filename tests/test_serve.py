"""crmsync serve: schedules, the scheduler loop (on a manual clock), metrics, the endpoint."""

from __future__ import annotations

import itertools
import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from crmsync.errors import ConfigError
from crmsync.unattended.endpoint import Endpoint, parse_listen
from crmsync.unattended.metrics import Metrics, StoreFigures, _render_store
from crmsync.unattended.schedule import Job, ManualClock, SystemClock, parse_serve
from crmsync.unattended.scheduler import JobResult, Scheduler
from crmsync.unattended.state import StateFile, state_path

T0 = datetime(2026, 3, 1, 2, 59, 0, tzinfo=UTC)


def families(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


def sample(fams: dict, name: str, **labels: str) -> float:
    for fam in fams.values():
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    raise KeyError((name, labels))


class FakeJobs:
    """Records calls; each job returns the next status from ``statuses`` (default ok)."""

    def __init__(self, clock: ManualClock | None = None, seconds: float = 0, statuses=()):
        self.clock, self.seconds = clock, seconds
        self.statuses = list(statuses)
        self.calls: list[tuple[str, datetime | None]] = []
        self.on_call = None

    def __call__(self, job: Job, stop: threading.Event) -> JobResult:
        self.calls.append((job.name, self.clock.now() if self.clock else None))
        if self.on_call:
            self.on_call(job, stop)
        if self.clock and self.seconds:
            self.clock.advance(self.seconds)
        status = self.statuses.pop(0) if self.statuses else "ok"
        if status == "raise":
            raise RuntimeError("boom")
        return JobResult(status=status, api_calls={"sales": 3}, api_errors={"sales": 1})


# --------------------------------------------------------------------------- config


def test_parse_serve_jobs_with_defaults():
    cfg = parse_serve(
        {
            "listen": "127.0.0.1:0",
            "timezone": "Asia/Shanghai",
            "jobs": [
                {"name": "nightly", "cron": "0  3 * * *", "policies": ["stale"]},
                {"name": "pull", "cron": "@hourly", "kind": "pull", "timezone": "UTC"},
            ],
        },
        policies={"stale": True},
    )
    nightly, pull = cfg.jobs
    assert (nightly.cron, nightly.timezone, nightly.kind, nightly.policies) == (
        "0 3 * * *",
        "Asia/Shanghai",
        "run",
        ("stale",),
    )
    assert nightly.catch_up and pull.timezone == "UTC" and pull.kind == "pull"


@pytest.mark.parametrize(
    ("table", "path", "words"),
    [
        ({"jobs": [{"name": "n", "cron": "61 * * * *"}]}, "serve.jobs.n.cron", "not a valid"),
        ({"jobs": [{"name": "n", "cron": "* * * *"}]}, "serve.jobs.n.cron", "five fields"),
        ({"jobs": [{"name": "n", "cron": "0 0 30 2 *"}]}, "serve.jobs.n.cron", "never fires"),
        (
            {"jobs": [{"name": "n", "cron": "@daily", "timezone": "Mars/Olympus"}]},
            "serve.jobs.n.timezone",
            "unknown time zone",
        ),
        ({"timezone": "Nowhere"}, "serve.timezone", "unknown time zone"),
        ({"jobs": [{"cron": "@daily"}]}, "serve.jobs[0].name", "required"),
        ({"jobs": [{"name": "9x", "cron": "@daily"}]}, "serve.jobs[0].name", "letter"),
        ({"jobs": [{"name": "n", "cron": "@daily", "kind": "x"}]}, "serve.jobs.n.kind", "one of"),
        ({"jobs": [{"name": "n", "cron": "@daily", "when": 1}]}, "serve.jobs.n.when", "unknown"),
        ({"port": 1}, "serve.port", "unknown key"),
        (
            {"jobs": [{"name": "n", "cron": "@daily", "policies": ["nope"]}]},
            "serve.jobs.n.policies[0]",
            "no policy named 'nope'",
        ),
        (
            {"jobs": [{"name": "n", "cron": "@daily", "kind": "pull", "policies": ["p"]}]},
            "serve.jobs.n.policies",
            "only a job of kind 'run'",
        ),
        (
            {"jobs": [{"name": "n", "cron": "@daily"}, {"name": "n", "cron": "@hourly"}]},
            "serve.jobs.n.name",
            "two jobs",
        ),
    ],
)
def test_bad_serve_config_names_the_key(table, path, words):
    with pytest.raises(ConfigError) as info:
        parse_serve(table, policies={"p": True})
    assert info.value.path == path
    assert words in str(info.value)
    assert info.value.exit_code == 2


def test_bad_cron_exits_2_naming_the_key(tmp_path: Path):
    from click.testing import CliRunner

    from crmsync.cli import cli

    config = tmp_path / "crmsync.toml"
    config.write_text('[[serve.jobs]]\nname = "nightly"\ncron = "0 25 * * *"\n')
    result = CliRunner().invoke(cli, ["-c", str(config), "serve", "--listen", "off"])
    assert result.exit_code == 2
    assert "serve.jobs.nightly.cron" in result.stderr and "0 25 * * *" in result.stderr
    config.write_text('[[serve.jobs]]\nname = "n"\ncron = "@daily"\ntimezone = "Europe/Nowhere"\n')
    result = CliRunner().invoke(cli, ["-c", str(config), "serve"])
    assert result.exit_code == 2 and "serve.jobs.n.timezone" in result.stderr
    config.write_text(
        '[serve]\nlisten = "127.0.0.1"\n[[serve.jobs]]\nname = "n"\ncron = "@daily"\n'
    )
    result = CliRunner().invoke(cli, ["-c", str(config), "serve"])
    assert result.exit_code == 2 and "serve.listen" in result.stderr
    config.write_text('[serve]\nlisten = "off"\n')
    result = CliRunner().invoke(cli, ["-c", str(config), "serve"])
    assert result.exit_code == 2 and "serve.jobs: no jobs" in result.stderr


def test_parse_listen():
    assert parse_listen("127.0.0.1:9464") == ("127.0.0.1", 9464)
    assert parse_listen("[::1]:80") == ("::1", 80)
    assert parse_listen(":9") == ("0.0.0.0", 9)
    assert parse_listen("off") is None
    for bad in ("localhost", "a:b", "1.2.3.4:70000"):
        with pytest.raises(ValueError):
            parse_listen(bad)


# --------------------------------------------------------------------------- cron times


def test_cron_in_a_time_zone_across_dst():
    job = Job("n", "30 2 * * *", timezone="America/New_York")
    # 2026-03-08 02:30 does not exist in New York (clocks jump 02:00 -> 03:00)
    before = datetime(2026, 3, 8, 6, 0, tzinfo=UTC)  # 01:00 EST
    assert job.next_after(before) == datetime(2026, 3, 8, 7, 0, tzinfo=UTC)  # 03:00 EDT
    after = job.next_after(job.next_after(before))
    assert after == datetime(2026, 3, 9, 6, 30, tzinfo=UTC)  # 02:30 EDT
    shanghai = Job("n", "0 3 * * *", timezone="Asia/Shanghai")
    assert shanghai.next_after(T0) == datetime(2026, 3, 1, 19, 0, tzinfo=UTC)
    on_time = datetime(2026, 3, 1, 19, 0, tzinfo=UTC)
    assert shanghai.last_at_or_before(on_time) == on_time
    assert shanghai.last_at_or_before(on_time - timedelta(seconds=1)) == on_time - timedelta(1)


def test_fall_back_runs_a_set_hour_job_once_and_an_hourly_one_in_both_hours():
    at = datetime(2026, 11, 1, 4, 50, tzinfo=UTC)  # New York: 01:30 comes twice that night

    def times(cron: str, n: int) -> list[datetime]:
        job, out, t = Job("n", cron, timezone="America/New_York"), [], at
        for _ in range(n):
            t = job.next_after(t)
            out.append(t)
        return out

    daily = times("30 1 * * *", 2)
    assert daily[1] - daily[0] == timedelta(hours=25)  # not again an hour later
    half_hourly = times("*/30 * * * *", 5)
    assert all(b - a == timedelta(minutes=30) for a, b in itertools.pairwise(half_hourly))
    repeat = datetime(2026, 11, 1, 6, 40, tzinfo=UTC)  # 01:40 the second time
    job = Job("n", "30 1 * * *", timezone="America/New_York")
    assert job.last_at_or_before(repeat) == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)


# --------------------------------------------------------------------------- scheduler


def make(jobs, tmp_path, clock, fake, **kw) -> Scheduler:
    state = StateFile(tmp_path / "state.json")
    return Scheduler(jobs, fake, clock=clock, state=state, **kw)


def test_jobs_run_at_their_times_one_at_a_time(tmp_path):
    clock = ManualClock(T0)  # 02:59 UTC
    fake = FakeJobs(clock, seconds=90)  # each job takes 90 s
    a = Job("a", "0 3 * * *")
    b = Job("b", "0 3 * * *")
    s = make([a, b], tmp_path, clock, fake)
    assert s.plan_start() == {}  # never run before: wait for the schedule
    assert s.tick() == [] and fake.calls == []
    assert s.seconds_to_next() == 60
    clock.advance(60)
    assert s.tick() == ["a", "b"]  # both due at 03:00: in config order, b after a ends
    assert [c[1] for c in fake.calls] == [T0 + timedelta(seconds=60), T0 + timedelta(seconds=150)]
    assert s.next_due["a"] == s.next_due["b"] == datetime(2026, 3, 2, 3, 0, tzinfo=UTC)
    assert s.state.get("a").last_status == "ok" and s.state.get("a").last_success


def test_a_long_job_coalesces_missed_times(tmp_path):
    clock = ManualClock(datetime(2026, 3, 1, 3, 0, tzinfo=UTC))
    fake = FakeJobs(clock, seconds=3 * 3600 + 5)  # runs over three hourly slots
    s = make([Job("h", "@hourly")], tmp_path, clock, fake)
    s.plan_start(run_now=True)
    s.tick()
    assert len(fake.calls) == 1
    assert s.next_due["h"] == datetime(2026, 3, 1, 7, 0, tzinfo=UTC)  # not 04, 05, 06


def test_start_catches_up_missed_and_resumes_unfinished(tmp_path):
    path = tmp_path / "state.json"
    clock = ManualClock(datetime(2026, 3, 1, 2, 0, tzinfo=UTC))
    fake = FakeJobs(clock)
    jobs = [
        Job("missed", "0 3 * * *"),
        Job("no-catch-up", "0 3 * * *", catch_up=False),
        Job("on-time", "0 3 * * *"),
        Job("killed", "0 3 * * *"),
        Job("new", "0 3 * * *"),
    ]
    state = StateFile(path)
    for name in ("missed", "no-catch-up"):  # last ran two days ago
        state.started(name, clock.now() - timedelta(days=2))
        state.finished(name, clock.now() - timedelta(days=2), "ok", duration=1)
    state.started("on-time", datetime(2026, 2, 28, 3, 0, 1, tzinfo=UTC))
    state.finished("on-time", datetime(2026, 2, 28, 3, 5, tzinfo=UTC), "failed", duration=1)
    state.started("killed", datetime(2026, 2, 28, 3, 0, 1, tzinfo=UTC))  # never finished
    s = Scheduler(jobs, fake, clock=clock, state=StateFile(path))
    due = s.plan_start()
    assert sorted(due) == ["killed", "missed"]
    assert due["killed"].startswith("resume") and due["missed"].startswith("catch-up")
    assert s.tick() == ["missed", "killed"]
    assert s.state.get("killed").last_status == "ok"
    # an interrupted (SIGTERM) run also resumes at the next start
    s.state.started("on-time", clock.now())
    s.state.finished("on-time", clock.now(), "interrupted", duration=1)
    assert "on-time" in Scheduler(jobs, fake, clock=clock, state=StateFile(path)).plan_start()


def test_failures_are_recorded_and_the_loop_goes_on(tmp_path):
    clock = ManualClock(datetime(2026, 3, 1, 0, 0, 30, tzinfo=UTC))
    fake = FakeJobs(clock, seconds=1, statuses=["raise", "failed", "ok"])
    s = make([Job("m", "* * * * *")], tmp_path, clock, fake)

    def stop_after_three(job, stop):
        if len(fake.calls) == 3:
            s.stop()

    fake.on_call = stop_after_three
    s.run_forever()  # the manual clock's waits pass at once
    assert [c[1].minute for c in fake.calls] == [1, 2, 3]
    assert s.state.get("m").last_status == "ok"
    assert s.loop_alive is False


def test_stop_ends_the_wait_at_once(tmp_path):
    s = Scheduler([Job("d", "@yearly")], FakeJobs(), clock=SystemClock(), max_wait=3600)
    thread = threading.Thread(target=s.run_forever)
    t0 = time.monotonic()
    thread.start()
    while not s.loop_alive:
        time.sleep(0.01)
    s.stop()
    thread.join(5)
    assert not thread.is_alive() and time.monotonic() - t0 < 3


def test_stop_during_a_job_starts_no_other(tmp_path):
    clock = ManualClock(T0)
    fake = FakeJobs(clock)
    s = make([Job("a", "@daily"), Job("b", "@daily")], tmp_path, clock, fake)

    def stop_now(job, stop):
        s.stop()
        assert stop.is_set()  # the job sees the stop event: it finishes its batch

    fake.on_call = stop_now
    s.plan_start(run_now=True)
    s.run_forever()
    assert [c[0] for c in fake.calls] == ["a"]


def test_state_survives_a_bad_file(tmp_path):
    path = tmp_path / "s.json"
    path.write_text("{not json")
    st = StateFile(path)
    assert st.problem and st.get("x").last_status is None
    st.started("x", T0)
    assert StateFile(path).get("x").unfinished
    assert state_path(tmp_path / "crmsync.db") == tmp_path / "crmsync.serve.json"


# --------------------------------------------------------------------------- metrics


def test_metrics_parse_with_prometheus_parser(tmp_path):
    clock = ManualClock(T0)
    fake = FakeJobs(clock, statuses=["ok", "failed"])
    s = make([Job('we"ird\\job', "@daily"), Job("b", "@daily")], tmp_path, clock, fake)
    m = Metrics(s, store_path=tmp_path / "absent.db", wall=lambda: 1000.0)
    s.on_finish = m.record
    s.plan_start(run_now=True)
    s.tick()
    fams = families(m.render())
    assert sample(fams, "crmsync_job_runs_total", job='we"ird\\job', outcome="ok") == 1
    assert sample(fams, "crmsync_job_runs_total", job="b", outcome="failed") == 1
    assert sample(fams, "crmsync_api_calls_total", connection="sales") == 6
    assert sample(fams, "crmsync_api_errors_total", connection="sales") == 2
    assert sample(fams, "crmsync_job_last_success_timestamp_seconds", job="b") == 0
    ok_at = sample(fams, "crmsync_job_last_success_timestamp_seconds", job='we"ird\\job')
    assert ok_at == T0.timestamp()
    assert sample(fams, "crmsync_serve_start_time_seconds") == 1000.0
    assert fams["crmsync_job_runs"].type == "counter"
    assert sample(fams, "crmsync_plans_awaiting_approval", kind="policy") == 0


def test_store_figures_render():
    from crmsync.unattended.metrics import Exposition

    out = Exposition()
    figures = StoreFigures(
        records={("s", "Leads", "active"): 5, ("s", "Leads", "archived"): 2},
        deleted={("s", "Leads"): 1},
        awaiting_approval={"policy": 3},
    )
    _render_store(out, figures)
    fams = families(out.text())
    assert sample(fams, "crmsync_records", module="Leads", status="archived") == 2
    assert sample(fams, "crmsync_records_deleted_in_crm", connection="s") == 1
    assert sample(fams, "crmsync_plans_awaiting_approval", kind="policy") == 3
    out = Exposition()
    _render_store(out, StoreFigures(ok=False, error="x"))
    assert sample(families(out.text()), "crmsync_store_up") == 0


# --------------------------------------------------------------------------- endpoint


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_endpoint_health_ready_metrics(tmp_path):
    clock = ManualClock(T0)
    fake = FakeJobs(clock, statuses=["failed", "ok"])
    s = make([Job("a", "@daily")], tmp_path, clock, fake)
    m = Metrics(s, store_path=None)
    s.on_finish = m.record
    endpoint = Endpoint(("127.0.0.1", 0), s, m).start()
    try:
        assert get(endpoint.url + "/healthz")[0] == 503  # loop not running yet
        s.loop_alive = True
        code, body = get(endpoint.url + "/healthz")
        assert code == 200 and json.loads(body)["jobs"][0]["name"] == "a"
        s.plan_start(run_now=True)
        s.tick()  # failed
        assert get(endpoint.url + "/healthz")[0] == 200  # liveness ignores job outcomes
        code, body = get(endpoint.url + "/readyz")
        assert code == 503 and json.loads(body)["failing_jobs"] == ["a"]
        s.run(s.jobs[0])  # ok again
        assert get(endpoint.url + "/readyz")[0] == 200
        code, text = get(endpoint.url + "/metrics")
        assert code == 200
        assert sample(families(text), "crmsync_job_runs_total", job="a", outcome="failed") == 1
        assert get(endpoint.url + "/nope")[0] == 404
        s.stop()
        assert get(endpoint.url + "/healthz")[0] == 503
    finally:
        endpoint.close()


# --------------------------------------------------------------------------- serve()


def test_serve_in_process_stops_on_sigterm_with_exit_0(tmp_path, registry):
    """serve() in this (main) thread; a helper scrapes, then sends SIGTERM to this process."""
    import io

    from crmsync.config import parse_config
    from crmsync.unattended.serve import serve

    config = parse_config(
        '[store]\npath = "m.db"\n[[serve.jobs]]\nname = "j"\ncron = "@daily"\n',
        registry,
        path=tmp_path / "crmsync.toml",
    )
    started, scraped = threading.Event(), {}
    announce = io.StringIO()

    def job(j: Job, stop: threading.Event) -> JobResult:
        started.set()
        assert stop.wait(10), "SIGTERM should set the stop event"
        return JobResult(status="interrupted")

    def helper() -> None:
        started.wait(10)
        url = announce.getvalue().split()[-1]
        scraped["metrics"] = get(url + "/metrics")
        scraped["health"] = get(url + "/healthz")
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=helper)
    thread.start()
    lines = []
    code = serve(
        config,
        registry,
        listen="127.0.0.1:0",
        run_now=True,
        run_job=job,
        announce=announce,
        log=lambda event, **f: lines.append((event, f)),
    )
    thread.join(5)
    assert code == 0
    assert scraped["health"][0] == 200
    assert sample(families(scraped["metrics"][1]), "crmsync_job_running", job="j") == 1
    events = [e for e, _ in lines]
    assert "serve.stopping" in events and events[-1] == "serve.stop"
    state = StateFile(state_path(tmp_path / "m.db")).get("j")
    assert state.last_status == "interrupted" and state.unfinished


# --------------------------------------------------------------------------- real jobs


def test_job_kinds_map_to_run_options():
    from crmsync.unattended.jobs import run_options

    run = run_options(Job("n", "@daily", policies=("p",)))
    assert (run.policies, run.apply, run.pull, run.snapshot, run.retention) == (
        ("p",),
        True,
        True,
        None,
        None,
    )
    pull = run_options(Job("n", "@daily", kind="pull"))
    assert (pull.apply, pull.pull, pull.snapshot, pull.retention) == (False, True, False, False)
    snap = run_options(Job("n", "@daily", kind="snapshot"))
    assert (snap.apply, snap.pull, snap.snapshot, snap.retention) == (False, True, True, False)
    keep = run_options(Job("n", "@daily", kind="retention"))
    assert (keep.apply, keep.pull, keep.snapshot, keep.retention) == (False, False, False, True)


def test_pull_job_then_locked_job_against_the_sandbox(lc_config, lc_sandbox, tmp_path):
    from crmsync.config import load_config
    from crmsync.plugins import build_registry
    from crmsync.unattended.jobs import job_runner
    from crmsync.unattended.lock import RunLock

    registry = build_registry()
    config = load_config(lc_config, registry)
    events = []
    run_job = job_runner(config, registry, lambda event, **f: events.append((event, f)))
    clock = ManualClock(T0)
    s = make([Job("pull", "@hourly", kind="pull")], tmp_path, clock, run_job)
    m = Metrics(s, config.store_path)
    s.on_finish = m.record
    result = s.run(s.jobs[0])
    assert result.status == "ok" and result.run_id
    assert [f["step"] for e, f in events if e == "run.step"] == ["pull"]
    assert lc_sandbox.stats()["writes"] == {}  # a pull job plans and applies nothing
    fams = families(m.render())
    assert sample(fams, "crmsync_api_calls_total", connection="sandbox") > 0
    leads = sample(fams, "crmsync_records", connection="sandbox", module="Leads", status="active")
    assert leads > 0
    with RunLock(config.store_path, command="crmsync run"):  # a cron run holds the lock
        result = s.run(s.jobs[0])
    assert result.status == "locked" and result.exit_code == 75
    assert not s.state.get("pull").unfinished  # nothing to resume at the next start
    assert s.unhealthy_jobs() == []


def test_one_serve_per_store(tmp_path):
    from crmsync.unattended.serve import ServeLocked, serve_lock

    with serve_lock(tmp_path / "crmsync.serve.lock"):
        with pytest.raises(ServeLocked) as info, serve_lock(tmp_path / "crmsync.serve.lock"):
            pass
        assert f"pid {os.getpid()}" in str(info.value) and info.value.exit_code == 1
    with serve_lock(tmp_path / "crmsync.serve.lock"):  # released
        pass


def test_run_job_leaves_a_plan_awaiting_approval(lc_config, lc_sandbox, tmp_path):
    from crmsync.config import load_config
    from crmsync.plugins import build_registry
    from crmsync.unattended.jobs import job_runner

    registry = build_registry()
    config = load_config(lc_config, registry)
    clock = ManualClock(T0)
    job = Job("contacts", "@daily", policies=("void-junk-contacts",))
    s = make([job], tmp_path, clock, job_runner(config, registry))
    m = Metrics(s, config.store_path)
    s.on_finish = m.record
    result = s.run(job)
    assert result.status == "awaiting_approval" and result.exit_code == 4
    assert len(result.awaiting_plans) == 1
    fams = families(m.render())
    assert sample(fams, "crmsync_plans_awaiting_approval", kind="policy") == 1
    assert sample(fams, "crmsync_job_runs_total", job="contacts", outcome="awaiting_approval") == 1
    assert s.unhealthy_jobs() == []  # waiting for a person is not a failure of serve
    assert lc_sandbox.stats()["writes"] == {}


def test_an_unexpected_error_is_named_not_quoted(tmp_path):
    """Only crmsync's own errors are shown as they are: another exception's text might hold a
    secret (a URL with a token), so the job reports its type."""
    from crmsync.errors import ConnectorError

    def job(j: Job, stop: threading.Event) -> JobResult:
        raise RuntimeError("https://hooks.example/robot?token=s3cret")

    s = make([Job("a", "@daily")], tmp_path, ManualClock(T0), job)
    result = s.run(s.jobs[0])
    assert result.status == "failed" and "s3cret" not in result.errors[0]
    assert "RuntimeError" in s.state.get("a").last_error

    def crm_down(j: Job, stop: threading.Event) -> JobResult:
        raise ConnectorError("CRM unreachable", connection="sales")

    s.run_job = crm_down
    assert "CRM unreachable" in s.run(s.jobs[0]).errors[0]


def test_lifecycle_counts_sql_agrees_with_the_default(lc_config, lc_sandbox):
    from crmsync.config import load_config
    from crmsync.plugins import build_registry
    from crmsync.store import Store, open_store
    from tests.lifecycle_support import run

    assert run(lc_config, "pull").exit_code == 0
    lc_sandbox.delete_records("Leads", lc_sandbox.ids("Leads")[:3])
    assert run(lc_config, "pull", "--full").exit_code == 0
    with open_store(load_config(lc_config, build_registry()).store_path) as store:
        counts = store.lifecycle_counts()
        assert counts == Store.lifecycle_counts(store)
    leads = counts[("sandbox", "Leads")]
    assert leads["deleted_in_crm"] == 3 and leads["other"] == 0
    assert leads["active"] + leads["archived"] + leads["voided"] == len(lc_sandbox.ids("Leads"))


def test_a_busy_port_is_a_clear_error(tmp_path, registry):
    import socket

    from click.testing import CliRunner

    from crmsync.cli import cli

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = tmp_path / "crmsync.toml"
        config.write_text(f'[serve]\nlisten = "127.0.0.1:{port}"\n[[serve.jobs]]\nname = "n"\n')
        config.write_text(config.read_text() + 'cron = "@daily"\n')
        result = CliRunner().invoke(cli, ["-c", str(config), "serve"])
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
