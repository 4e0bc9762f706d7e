"""The connector contract suite: what every connector, ours or third-party, must do.

A connector author runs it against their own live test server (a fake of their CRM's API on
127.0.0.1). Subclass :class:`ConnectorContract` in a test module and provide a ``harness``
fixture returning a :class:`ContractHarness`::

    from crmsync.testing.contract import ConnectorContract

    class TestAcmeContract(ConnectorContract):
        @pytest.fixture
        def harness(self):
            with AcmeFakeServer(records=250) as server:
                yield AcmeHarness(server)

pytest then collects every ``test_*`` method below for your connector. The harness is the only
thing you write: how to open your connector against your server, and how to make the server
change records, fail requests and report what it received. A few harness members are optional
(``expire_tokens()``, ``malformed_next(count)``, ``incomplete_next(count)``, ``empty_module``);
the tests that need them are skipped without them. docs/writing-a-connector.md walks through a
complete harness.

Added after crmsync 0.1.0 (check your harness and seeds, so they run rather than skip): void
written where a module has no archive; a lazy pull (needs more than 2 x concurrency + 1 pages);
edits during an interrupted pull not lost; no secret in reprs, pages, results or DEBUG logs;
and, with the optional members above, token expiry, malformed and incomplete answers, an empty
module.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

import pytest
from jsonschema import Draft202012Validator

from crmsync.errors import AuthError, BadResponseError, ConnectorError
from crmsync.hookspecs import (
    Connector,
    ConnectorSession,
    Limits,
    Page,
    RecordResult,
    StatusChange,
)


class ContractHarness(Protocol):
    """How the suite drives a connector and the test server behind it."""

    connector: Connector
    # A module with a modified time that supports restore, purge and archive or void (the suite
    # writes archive when the module lists it, else void: some CRMs have only a native void).
    module: str
    secret_values: list[str]  # every secret the settings resolve to (must never leak)

    def settings(self) -> Mapping[str, Any]:
        """Validated settings for ``connector.open`` (secret values as SecretRef)."""

    def bad_auth_settings(self) -> Mapping[str, Any]:
        """Settings whose credentials the server refuses."""

    def ids(self) -> set[str]:
        """The ids of every live record of ``module`` on the server."""

    def touch(self, count: int) -> list[str]:
        """Modify ``count`` records server-side (as a CRM user would); return their ids.

        Advance the server's clock first (edits come after what was pulled); ``count`` may be
        0, to let time pass."""

    def status(self, record_id: str) -> str | None:
        """The record's lifecycle status on the server (None if it no longer exists)."""

    def fail_next(self, status: int, count: int, retry_after: float | None = None) -> None:
        """Make the next ``count`` API requests fail with HTTP ``status``."""

    def reject_writes(self, ids: list[str]) -> None:
        """Make writes to these records fail per record (the rest of the batch succeeds)."""

    def write_counts(self) -> dict[str, int]:
        """How many times each record id was written."""

    def max_in_flight(self) -> int:
        """The most API requests the server saw at the same time."""

    def max_batch(self) -> int:
        """The largest write batch the server received."""

    def requests(self) -> int:
        """API requests received so far (retries included)."""

    # Optional (tests that need them are skipped when the harness lacks them):
    #   def expire_tokens(self) -> None
    #       Make every access token issued so far expired, as the CRM does when its lifetime
    #       ends (its own expiry answer: HTTP 401 or an error code in the body).
    #   def malformed_next(self, count: int) -> None
    #       Make the next ``count`` API answers HTTP 200 with a cut-off (unparseable) JSON body.
    #   def incomplete_next(self, count: int) -> None
    #       Make the next ``count`` answers to a pull well-formed JSON without their list of
    #       records (read as "no records", a full pull would drop the whole mirror).
    #   empty_module: str
    #       A configured module with no records on the server.


def _drain(session: ConnectorSession, module: str, since: str | None = None) -> list[Page]:
    return list(session.pull(module, since=since))


def _write_action(session: ConnectorSession, module: str) -> tuple[str, str]:
    """The lifecycle action the suite writes, and the status it leaves: archive, or void for a
    module that has no archive."""
    info = next((m for m in session.list_modules() if m.name == module), None)
    assert info is not None, f"list_modules() has no module {module!r}"
    if "archive" in info.actions or "void" not in info.actions:
        return "archive", "archived"
    return "void", "voided"


def _page_size(session: ConnectorSession, module: str) -> int:
    """The module's page size: its own (ModuleInfo.page_size) or the session's."""
    info = next((m for m in session.list_modules() if m.name == module), None)
    own = info.page_size if info is not None else None
    return own or session.limits().page_size


def _final_checkpoint(pages: list[Page]) -> str | None:
    checkpoint = None
    for page in pages:
        checkpoint = page.checkpoint or checkpoint
    return checkpoint


class ConnectorContract:
    """Subclass in a test module and provide a ``harness`` fixture (see module docstring)."""

    @pytest.fixture
    def session(self, harness: ContractHarness) -> Iterator[ConnectorSession]:
        session = harness.connector.open("contract", harness.settings())
        try:
            yield session
        finally:
            session.close()

    # ------------------------------------------------------------------ description

    def test_connector_describes_itself(self, harness: ContractHarness) -> None:
        connector = harness.connector
        assert isinstance(connector, Connector)
        assert connector.name and connector.name.isidentifier()
        assert connector.description
        schema = connector.settings_schema()
        Draft202012Validator.check_schema(schema)
        documented = {s.name for s in connector.settings()}
        assert set(schema.get("properties", {})) <= documented | {"connector"}, (
            "every top-level setting must be documented by settings()"
        )

    def test_session_satisfies_the_protocol_and_declares_limits(
        self, session: ConnectorSession
    ) -> None:
        assert isinstance(session, ConnectorSession)
        limits = session.limits()
        assert isinstance(limits, Limits)
        assert limits.page_size >= 1 and limits.batch_size >= 1 and limits.concurrency >= 1

    def test_check_reaches_the_server(self, session: ConnectorSession) -> None:
        assert isinstance(session.check(), str)

    def test_modules_are_listed_with_id_and_modified_fields(
        self, harness: ContractHarness, session: ConnectorSession
    ) -> None:
        modules = {m.name: m for m in session.list_modules()}
        assert harness.module in modules
        assert modules[harness.module].id_field
        assert modules[harness.module].modified_field
        own, limits = modules[harness.module].page_size, session.limits()
        assert own is None or 1 <= own <= (limits.max_page_size or own)

    # ------------------------------------------------------------------ pull

    def test_full_pull_returns_every_record_exactly_once(
        self, harness: ContractHarness, session: ConnectorSession
    ) -> None:
        pages = _drain(session, harness.module)
        ids = [r.id for p in pages for r in p.records]
        assert len(ids) == len(set(ids)), "a record was returned twice"
        assert set(ids) == harness.ids()
        assert [p.number for p in pages] == list(range(1, len(pages) + 1))
        page_size = _page_size(session, harness.module)
        assert all(len(p.records) <= page_size for p in pages)
        assert len(pages) <= math.ceil(len(ids) / page_size) + 1
        assert all(isinstance(r.id, str) and r.id for p in pages for r in p.records)
        assert _final_checkpoint(pages) is not None, "the final page must carry a checkpoint"

    def test_modified_times_are_normalised_utc(
        self, harness: ContractHarness, session: ConnectorSession
    ) -> None:
        page = next(iter(session.pull(harness.module)))
        for rec in page.records:
            assert rec.modified_at is None or rec.modified_at.endswith("Z"), rec.modified_at

    def test_incremental_pull_returns_what_changed(
        self, harness: ContractHarness, session: ConnectorSession
    ) -> None:
        checkpoint = _final_checkpoint(_drain(session, harness.module))
        changed = harness.touch(7)
        pages = _drain(session, harness.module, since=checkpoint)
        got = {r.id for p in pages for r in p.records}
        assert set(changed) <= got
        # an inclusive lower bound may re-read boundary records, never the whole module
        assert len(got) <= len(changed) + _page_size(session, harness.module)
        assert _final_checkpoint(pages) is not None

    def test_incremental_pull_with_nothing_new_is_cheap(
        self, harness: ContractHarness, session: ConnectorSession
    ) -> None:
        checkpoint = _final_checkpoint(_drain(session, harness.module))
        before = harness.requests()
        pages = _drain(session, harness.module, since=checkpoint)
        assert harness.requests() - before <= 2
        assert sum(len(p.records) for p in pages) <= _page_size(session, harness.module)

    def test_resuming_from_any_checkpoint_skips_nothing(
        self, harness: ContractHarness, session: ConnectorSession
    ) -> None:
        seen: set[str] = set()
        checkpoint = None
        for page in session.pull(harness.module):
            seen.update(r.id for r in page.records)
            if page.checkpoint is not None and page.number >= 2:
                checkpoint = page.checkpoint
                break  # "crash" after a committed page that carried a checkpoint
        if checkpoint is None:
            pytest.skip("connector sets checkpoints only on the final page")
        rest = {r.id for p in _drain(session, harness.module, since=checkpoint) for r in p.records}
        assert seen | rest == harness.ids()

    def test_records_edited_during_an_interrupted_pull_are_not_lost(
        self, harness: ContractHarness, session: ConnectorSession
    ) -> None:
        checkpoint = None
        for page in session.pull(harness.module):
            if page.checkpoint is not None and page.number >= 2:
                checkpoint = page.checkpoint
                break  # "crash" after a committed page that carried a checkpoint
        if checkpoint is None:
            pytest.skip("connector sets checkpoints only on the final page")
        edited = harness.touch(5)  # edits while the pull is stopped, read pages included
        harness.touch(0)  # time moves on before the resume (a resume must keep the old start)
        resumed = _drain(session, harness.module, since=checkpoint)
        final = _final_checkpoint(resumed)
        assert final is not None
        later = _drain(session, harness.module, since=final)
        got = {r.id for p in resumed + later for r in p.records}
        assert set(edited) <= got, "an edit made during an interrupted pull was lost"

    def test_transient_server_errors_are_retried(
        self, harness: ContractHarness, session: ConnectorSession
    ) -> None:
        harness.fail_next(503, 2)
        ids = {r.id for p in _drain(session, harness.module) for r in p.records}
        assert ids == harness.ids()

    def test_rate_limit_responses_are_retried(
        self, harness: ContractHarness, session: ConnectorSession
    ) -> None:
        harness.fail_next(429, 1, retry_after=0)
        ids = {r.id for p in _drain(session, harness.module) for r in p.records}
        assert ids == harness.ids()

    def test_pull_is_lazy_a_page_at_a_time(
        self, harness: ContractHarness, session: ConnectorSession
    ) -> None:
        before = harness.requests()
        pages = len(_drain(session, harness.module))
        full = harness.requests() - before
        # A connector may fetch a few pages ahead (up to about two per concurrent request)
        # while the core commits one: laziness shows only on a module with more pages.
        if pages <= 2 * session.limits().concurrency + 1:
            pytest.skip("too few pages to tell a lazy pull: seed the server with more records")
        before = harness.requests()
        first = next(iter(session.pull(harness.module)))
        assert first.number == 1
        # memory bounded by a page: the first page must not cost the whole module's requests
        cost = harness.requests() - before
        assert cost < full, f"the first page cost {cost} requests, the whole pull {full}"

    def test_an_expired_token_is_refreshed_and_the_pull_completes(
        self, harness: ContractHarness, session: ConnectorSession
    ) -> None:
        expire = getattr(harness, "expire_tokens", None)
        if expire is None:
            pytest.skip("the harness has no expire_tokens()")
        before = harness.requests()
        _drain(session, harness.module)
        full = harness.requests() - before
        expire()
        before = harness.requests()
        ids = {r.id for p in _drain(session, harness.module) for r in p.records}
        assert ids == harness.ids()
        # refreshed once, then carried on: each call in flight refused once, not a refresh loop
        assert harness.requests() - before <= full + session.limits().concurrency + 1

    def test_a_malformed_answer_is_a_clear_error_naming_the_connection(
        self, harness: ContractHarness, session: ConnectorSession
    ) -> None:
        malformed = getattr(harness, "malformed_next", None)
        if malformed is None:
            pytest.skip("the harness has no malformed_next()")
        malformed(1)
        with pytest.raises(BadResponseError) as err:
            _drain(session, harness.module)
        assert "'contract'" in str(err.value)
        for secret in harness.secret_values:
            assert secret not in str(err.value)

    def test_an_answer_without_its_records_is_an_error_not_an_empty_page(
        self, harness: ContractHarness, session: ConnectorSession
    ) -> None:
        incomplete = getattr(harness, "incomplete_next", None)
        if incomplete is None:
            pytest.skip("the harness has no incomplete_next()")
        incomplete(1)
        with pytest.raises(BadResponseError):
            _drain(session, harness.module)

    def test_an_empty_module_ends_with_a_checkpoint(
        self, harness: ContractHarness, session: ConnectorSession
    ) -> None:
        module = getattr(harness, "empty_module", None)
        if module is None:
            pytest.skip("the harness has no empty_module")
        pages = _drain(session, module)
        assert pages and not any(p.records for p in pages)
        checkpoint = _final_checkpoint(pages)
        assert checkpoint is not None
        again = _drain(session, module, since=checkpoint)
        assert not any(p.records for p in again) and _final_checkpoint(again) is not None

    def test_no_secret_in_reprs_pages_results_or_logs(
        self,
        harness: ContractHarness,
        session: ConnectorSession,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        caplog.set_level(logging.DEBUG)  # urllib3 quotes request lines at DEBUG
        harness.fail_next(503, 1)  # a retry logs a warning: it must not quote a secret either
        page = next(iter(session.pull(harness.module)))
        record_id = page.records[0].id if page.records else "999999999999"
        action, _ = _write_action(session, harness.module)
        results = session.push(harness.module, [StatusChange(record_id, action)])
        shown = " ".join(
            [repr(harness.connector), repr(session), repr(page), repr(results), caplog.text]
        )
        for secret in harness.secret_values:
            assert secret not in shown

    def test_concurrency_never_exceeds_the_declared_limit(
        self, harness: ContractHarness, session: ConnectorSession
    ) -> None:
        _drain(session, harness.module)
        assert harness.max_in_flight() <= session.limits().concurrency

    def test_refused_credentials_raise_auth_error_without_leaking_secrets(
        self, harness: ContractHarness
    ) -> None:
        session = harness.connector.open("contract", harness.bad_auth_settings())
        try:
            with pytest.raises(AuthError) as err:
                _drain(session, harness.module)
        finally:
            session.close()
        for secret in harness.secret_values:
            assert secret not in str(err.value) and secret not in repr(err.value)

    # ------------------------------------------------------------------ push / delete

    def _push(
        self, session: ConnectorSession, module: str, ids: list[str], action: str
    ) -> list[RecordResult]:
        results: list[RecordResult] = []
        batch = session.limits().batch_size
        for start in range(0, len(ids), batch):
            chunk = ids[start : start + batch]
            results += session.push(module, [StatusChange(i, action) for i in chunk])
        return results

    def test_push_returns_one_result_per_record_with_partial_failures(
        self, harness: ContractHarness, session: ConnectorSession
    ) -> None:
        ids = sorted(harness.ids())[:12]
        action, status = _write_action(session, harness.module)
        harness.reject_writes(ids[:2])
        results = self._push(session, harness.module, ids, action)
        assert sorted(r.record_id for r in results) == sorted(ids)
        by_id = {r.record_id: r for r in results}
        assert not by_id[ids[0]].ok and by_id[ids[0]].error
        assert not by_id[ids[1]].ok
        assert all(by_id[i].ok for i in ids[2:])
        assert harness.status(ids[0]) != status
        assert all(harness.status(i) == status for i in ids[2:])

    def test_push_writes_each_record_once_and_respects_batch_size(
        self, harness: ContractHarness, session: ConnectorSession
    ) -> None:
        ids = sorted(harness.ids())[: session.limits().batch_size * 2 + 3]
        action, _ = _write_action(session, harness.module)
        results = self._push(session, harness.module, ids, action)
        assert all(r.ok for r in results)
        counts = harness.write_counts()
        assert all(counts.get(i, 0) == 1 for i in ids)
        assert harness.max_batch() <= session.limits().batch_size

    def test_restore_undoes_archive_or_void(
        self, harness: ContractHarness, session: ConnectorSession
    ) -> None:
        ids = sorted(harness.ids())[:3]
        action, status = _write_action(session, harness.module)
        assert all(r.ok for r in self._push(session, harness.module, ids, action))
        assert all(harness.status(i) == status for i in ids)
        results = self._push(session, harness.module, ids, "restore")
        assert all(r.ok for r in results)
        assert all(harness.status(i) not in ("archived", "voided") for i in ids)

    def test_push_of_unknown_record_is_a_failed_result_not_an_exception(
        self, harness: ContractHarness, session: ConnectorSession
    ) -> None:
        action, _ = _write_action(session, harness.module)
        results = session.push(harness.module, [StatusChange("999999999999", action)])
        assert len(results) == 1 and not results[0].ok

    def test_unsupported_action_is_refused_clearly(
        self, harness: ContractHarness, session: ConnectorSession
    ) -> None:
        with pytest.raises(ConnectorError):
            session.push(harness.module, [StatusChange(next(iter(harness.ids())), "teleport")])

    def test_delete_removes_records_and_reports_each(
        self, harness: ContractHarness, session: ConnectorSession
    ) -> None:
        ids = sorted(harness.ids())[:3]
        results = session.delete(harness.module, [*ids, "999999999999"])
        by_id = {r.record_id: r for r in results}
        assert len(results) == 4
        assert all(by_id[i].ok for i in ids) and not by_id["999999999999"].ok
        assert not set(ids) & harness.ids()
