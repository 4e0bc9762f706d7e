"""What an admin meets using retention, purge and erasure from the README: plans that delete for
good always need a second person (whatever [plans] allow_self_approval says), and bad arguments
to `crmsync purge` and `crmsync erase` exit 2 naming what was wrong."""

from __future__ import annotations

import json

import pytest

from tests.lifecycle_support import TOKEN, run, write_config
from tests.test_purge import POLICIES, RETENTION, SEEDED_VOIDED, age, alive


@pytest.fixture
def self_approving(tmp_path, lc_sandbox, monkeypatch):
    """[plans] allow_self_approval = true, pulled, the sandbox's voided Leads aged past 30d."""
    monkeypatch.setenv("LC_TOKEN", TOKEN)
    path = write_config(tmp_path, lc_sandbox.api_url, policies=POLICIES, allow_self_approval=True)
    path.write_text(path.read_text() + RETENTION)
    assert run(path, "pull").exit_code == 0
    age(path, days=31)
    return path


def test_allow_self_approval_does_not_let_the_maker_approve_a_purge(self_approving, lc_sandbox):
    made = run(self_approving, "purge", "--json", "--operator", "alice")
    plan = json.loads(made.stdout)["plan"]
    own = run(self_approving, "approve", plan, "--operator", "alice")
    assert own.exit_code == 3
    assert "always needs another operator" in own.stderr
    refused = run(self_approving, "apply", plan, "--operator", "alice")
    assert refused.exit_code == 3 and "requires approval" in refused.stderr
    assert alive(lc_sandbox, SEEDED_VOIDED) == set(SEEDED_VOIDED)
    assert run(self_approving, "approve", plan, "--operator", "bob").exit_code == 0
    assert run(self_approving, "apply", plan, "--operator", "alice").exit_code == 0
    assert alive(lc_sandbox, SEEDED_VOIDED) == set()


def test_allow_self_approval_does_not_let_the_maker_approve_an_erasure(self_approving, lc_sandbox):
    rid = SEEDED_VOIDED[0]
    made = run(
        self_approving, "erase", "--record", f"sandbox:Leads:{rid}", "--basis", "GDPR-17-1-b",
        "--no-pull", "--json", "--operator", "alice",
    )  # fmt: skip
    assert made.exit_code == 0, made.stderr
    plan = json.loads(made.stdout)["id"]
    shown = run(self_approving, "plans", "show", plan).stdout
    assert f"Apply with: crmsync erase --apply {plan}" in shown
    assert run(self_approving, "approve", plan, "--operator", "alice").exit_code == 3
    refused = run(self_approving, "erase", "--apply", plan, "--operator", "alice")
    assert refused.exit_code == 3 and "requires approval" in refused.stderr
    assert alive(lc_sandbox, [rid]) == {rid}
    assert run(self_approving, "approve", plan, "--operator", "bob").exit_code == 0
    done = run(self_approving, "erase", "--apply", plan, "--operator", "alice")
    assert done.exit_code == 0, done.stderr
    assert f"erasure plan {plan}: 1 record erased, 0 restricted, 0 failed (applied);" in done.stdout
    assert alive(lc_sandbox, [rid]) == set()


@pytest.mark.parametrize(
    ("args", "phrase"),
    [
        (["--record", "nope:Leads:1"], "no connection named 'nope'"),
        (["--module", "leads", "--dry-run"], "the mirror holds no module 'leads'"),
    ],
)
def test_bad_purge_arguments_exit_2_naming_them(self_approving, args, phrase):
    result = run(self_approving, "purge", "--operator", "alice", *args)
    assert result.exit_code == 2, result.stderr
    assert phrase in result.stderr
    assert json.loads(run(self_approving, "plans", "--json").stdout) == []


def test_erase_max_above_the_configured_limit_exits_2_instead_of_being_capped(self_approving):
    result = run(
        self_approving, "erase", "--record", f"sandbox:Leads:{SEEDED_VOIDED[0]}",
        "--basis", "GDPR-17-1-b", "--no-pull", "--max", "21",
    )  # fmt: skip
    assert result.exit_code == 2, result.stderr
    assert "--max 21 is above [erasure] max_records (20)" in result.stderr
    assert json.loads(run(self_approving, "plans", "--json").stdout) == []


def test_hold_list_json_gives_no_record_count_for_holds_that_name_no_records(self_approving):
    run(self_approving, "hold", "add", "--tag", "VIP", "--reason", "case 9")
    run(self_approving, "hold", "add", "--record", "sandbox:Leads:1", "--reason", "case 10")
    listed = json.loads(run(self_approving, "hold", "list", "--json").stdout)
    assert [(h["kind"], h["records"]) for h in listed] == [("tag", None), ("records", 1)]


def test_a_retention_rule_for_a_module_the_mirror_lacks_stops_purge_naming_it(
    self_approving, lc_sandbox
):
    # A typo: without the check, the connection-wide rule would purge Leads past 30d, ignoring
    # the 10-year floor meant for them.
    text = self_approving.read_text().replace(
        'module = "Leads"\npurge_voided_after', "purge_voided_after"
    )
    self_approving.write_text(
        text + '\n[[retention.rules]]\nconnection = "sandbox"\nmodule = "leads"\n'
        'purge_voided_after = "30d"\nkeep_at_least = "10y"\nkeep_basis = "HGB-257"\n'
    )
    result = run(self_approving, "purge", "--dry-run")
    assert result.exit_code == 2, result.stderr
    assert (
        "retention.rules[1].module: the mirror of sandbox holds no module 'leads'" in result.stderr
    )
    planned = run(self_approving, "plan", "--policy", "purge-voided-leads")  # action = "purge"
    assert planned.exit_code == 2 and "retention.rules[1].module" in planned.stderr
    assert alive(lc_sandbox, SEEDED_VOIDED) == set(SEEDED_VOIDED)


def test_hold_add_says_how_many_records_it_covers_and_warns_when_none(self_approving):
    tagged = run(self_approving, "hold", "add", "--tag", "vip", "--reason", "case 9")
    assert tagged.exit_code == 0 and "it covers " in tagged.stdout
    assert int(tagged.stdout.split("it covers ")[1].split()[0]) > 0
    typo = run(
        self_approving, "hold", "add", "--connection", "sandbox", "--module", "Leads",
        "--filter", '{"field": "contry", "op": "eq", "value": "DE"}', "--reason", "case 10",
    )  # fmt: skip
    assert typo.exit_code == 0
    assert "warning: it covers no record in the mirror now" in typo.stderr


def test_hold_expiring_at_once_exits_2(self_approving):
    result = run(self_approving, "hold", "add", "--tag", "VIP", "--expires", "0d", "--reason", "x")
    assert result.exit_code == 2 and "would end the hold at once" in result.stderr
    assert json.loads(run(self_approving, "hold", "list", "--json").stdout) == []


def test_hold_add_snapshot_keeps_the_full_id_and_refuses_an_unknown_one(self_approving):
    created = json.loads(run(self_approving, "snapshot", "create", "--json").stdout)[0]["id"]
    unknown = run(self_approving, "hold", "add", "--snapshot", "deadbeef", "--reason", "audit")
    assert unknown.exit_code == 2 and "no snapshot 'deadbeef'" in unknown.stderr
    held = run(self_approving, "hold", "add", "--snapshot", created[:6], "--reason", "audit")
    assert held.exit_code == 0 and f"snapshots {created[:8]} (audit)" in held.stdout
    listed = json.loads(run(self_approving, "hold", "list", "--json").stdout)
    assert [h["spec"] for h in listed] == [{"snapshots": [created]}]


def test_erase_of_a_named_id_crmsync_never_saw_says_to_check_the_id(self_approving):
    result = run(
        self_approving, "erase", "--record", "sandbox:Leads:999", "--basis", "GDPR-17-1-b",
        "--no-pull", "--operator", "alice",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "999  absent  not in the mirror or any snapshot (named by --record; check the id)" in (
        result.stdout
    )
