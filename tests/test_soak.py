"""The fault-injection soak of issue 8, at CI size: `crmsync run` against a sandbox that
answers 5xx, rate-limits in bursts with Retry-After, drops connections (before and after doing
the write), and expires the OAuth token mid-run ends, after as many runs as a scheduler needs,
with every record the policy matched written exactly once and nothing else written — 0 lost,
0 duplicated, by the sandbox's per-record write counts. benches/soak.py runs it at 100k."""

from __future__ import annotations

from crmsync.sandbox import SandboxCRM
from tests.soak_support import FAULTS, soak

TOKEN = "soak-static-token"


def test_a_run_under_faults_loses_nothing_and_writes_nothing_twice(tmp_path):
    # small pages and batches: enough requests (~400) for every kind of fault to strike
    faults = {**FAULTS, "rate_limit_every": 61, "expire_tokens_every": 90}
    with SandboxCRM(records=6000, seed=8, token=TOKEN) as crm:
        figures = soak(crm.base_url, TOKEN, tmp_path, faults=faults, batch_size=10, page_size=50)
    print("\n" + "\n".join(figures.lines()))

    assert figures.runs[-1] == "ok", figures.errors
    assert figures.records == 6000 and 300 <= figures.expected <= 800
    assert figures.lost == []
    assert figures.duplicated == {}
    assert figures.unexpected == [] and figures.changed == []
    assert figures.writes == figures.expected  # each one once
    # every fault the issue names was injected, and crmsync got through them
    for kind in ("error", "rate_limit", "drop", "drop_after", "token_expiry"):
        assert figures.faults.get(kind, 0) >= 1, (kind, figures.faults)
    assert figures.retries >= figures.faults["error"] and figures.refreshes >= 1
