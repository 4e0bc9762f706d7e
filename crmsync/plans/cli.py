"""CLI commands for the plan → approve → apply workflow (thin: parse, call, render)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import click

from crmsync.audit.model import AuditEntry
from crmsync.errors import GuardError
from crmsync.plans.apply import ApplyResult, PlanError, apply_plan, four_eyes, unapproved
from crmsync.plans.model import APPLIED, APPLYING, PENDING, PLANNED, SENDING, PlanInfo
from crmsync.plans.planner import (
    NAME_FIELDS,
    current_operator,
    iso,
    make_plan,
    sample_view,
    select_policies,
)
from crmsync.store import Store
from crmsync.ui import print_json, print_table


def _app() -> object:
    return click.get_current_context().obj


CLUSTERS_SHOWN = 10
CHANGES_SHOWN = 5


def plan_extras(store: Store, plan: PlanInfo) -> dict[str, dict[str, list[dict]]]:
    """Per policy: duplicate clusters (key, survivor, records to void) and before -> after of
    records whose values the policy computed, as stored with the plan."""
    out: dict[str, dict[str, list[dict]]] = {}
    for p in plan.policies:
        clusters = [
            {"key": key, "survivor": survivor, "void": ids}
            for key, survivor, ids in store.plan_clusters(plan.id, p.policy, CLUSTERS_SHOWN)
        ]
        changes = [
            {"record_id": rid, "before": d.get("before", {}), "after": d["fields"]}
            for rid, d in store.plan_details(plan.id, p.policy, CHANGES_SHOWN)
            if "fields" in d
        ]
        out[p.policy] = {"clusters": clusters, "changes": changes}
    return out


def plan_dict(
    plan: PlanInfo,
    samples: dict[str, list[dict]] | None = None,
    extras: dict[str, dict[str, list[dict]]] | None = None,
    states: dict[str, dict[str, int]] | None = None,
    now: datetime | None = None,
) -> dict:
    """The plan as shown and as ``--json`` prints it. ``states``: items per state and policy
    (``Store.plan_item_states``), shown as what was done once apply has started."""
    waiting = {p.policy for p in unapproved(plan)} if plan.status == PLANNED else set()
    return {
        "id": plan.id,
        "kind": plan.kind,
        "created_at": plan.created_at,
        "created_by": plan.created_by,
        "expires_at": plan.expires_at,
        "status": plan.status,
        "expired": plan.status == PLANNED and iso(now or datetime.now(UTC)) >= plan.expires_at,
        "approvals": [{"approver": a, "at": t} for a, t in plan.approvals],
        "policies": [
            {
                "policy": p.policy,
                "connection": p.connection,
                "module": p.module,
                "action": p.action,
                "records": p.matched,
                "module_records": p.module_total,
                "percent": round(p.percent, 2),
                "max_records": p.max_records,
                "max_percent": p.max_percent,
                "guard": "exceeded: " + p.guard if p.guard else "ok",
                "requires_approval": p.require_approval,
                "needs_approval": p.policy in waiting,  # required and not given (yet)
                "samples": (samples or {}).get(p.policy, []),
                **(extras or {}).get(p.policy, {}),
                **({"items": states.get(p.policy, {})} if states is not None else {}),
            }
            for p in plan.policies
        ],
    }


# Item states in the order they are shown; any other state follows, by name.
STATE_ORDER = ("done", "failed", "drift", "gone", "held", "restricted", "deleted")
NOT_YET = (PENDING, SENDING)


def _state_text(counts: dict[str, int]) -> str:
    shown = [s for s in STATE_ORDER if counts.get(s)]
    shown += sorted(s for s in counts if s not in STATE_ORDER and s not in NOT_YET and counts[s])
    text = ", ".join(f"{s} {counts[s]}" for s in shown) or "nothing done"
    left = sum(counts.get(s, 0) for s in NOT_YET)
    return text + (f"; {left} not yet applied" if left else "")


def render_plan(data: dict) -> None:
    started = data["status"] in (APPLIED, APPLYING)
    if data["status"] == APPLIED:
        state = "applied"
    elif data["status"] == APPLYING:
        state = "partly applied"
    elif data.get("expired"):
        state = f"expired {data['expires_at']}, not applied"
    else:
        state = f"expires {data['expires_at']}"
    click.echo(f"plan {data['id']} by {data['created_by']} ({state})")
    if data["approvals"]:
        click.echo(
            "approved by " + ", ".join(f"{a['approver']} ({a['at']})" for a in data["approvals"])
        )
    for p in data["policies"]:
        flags = []
        if p["guard"] != "ok":
            flags.append(f"STOPPED BY GUARD ({p['guard'][10:]})")
        if p.get("needs_approval", p["requires_approval"]) and not started:
            flags.append("needs approval")
        limits = [
            f"{p['max_records']} records" if p["max_records"] else "",
            f"{p['max_percent']:g}% of the module" if p["max_percent"] else "",
        ]
        click.echo(
            f"\n  {p['policy']}: {p['action']} {p['records']} of {p['module_records']} "
            f"{p['connection']}/{p['module']} ({p['percent']:.1f}%; limit "
            f"{' and '.join(x for x in limits if x) or 'none'})"
            + (f"  [{'; '.join(flags)}]" if flags else "")
        )
        if started and "items" in p:
            click.echo(f"      {_state_text(p['items'])}")
        _render_details(p)
    total = sum(p["records"] for p in data["policies"])
    # an erasure plan has its own apply (`crmsync apply` refuses it)
    how = "crmsync erase --apply" if data.get("kind") == "erasure" else "crmsync apply"
    if started:
        counts: dict[str, int] = {}
        for p in data["policies"]:
            for s, n in p.get("items", {}).items():
                counts[s] = counts.get(s, 0) + n
        tail = f" Finish with: {how} {data['id']}" if data["status"] == APPLYING else ""
        click.echo(f"\n{state}: {_state_text(counts)}.{tail}")
    elif data.get("expired"):
        click.echo(f"\n{total} records would have changed; the plan expired: plan again.")
    else:
        click.echo(f"\n{total} records would change. Apply with: {how} {data['id']}")


def _render_details(p: dict) -> None:
    """Clusters, before -> after, or plain samples: what the plan will do to which records."""
    shown = 0
    if p.get("clusters"):
        for c in p["clusters"]:
            click.echo(
                f"      cluster {_key_text(c['key'])}: keep {c['survivor']}, "
                f"{p['action']} {', '.join(c['void'])}"
            )
            shown += len(c["void"])
    elif p.get("changes"):
        for c in p["changes"]:
            diffs = "; ".join(
                f"{k}: {_short(c['before'].get(k))} -> {_short(v)}" for k, v in c["after"].items()
            )
            click.echo(f"      ~ {c['record_id']}  {diffs}")
        shown = len(p["changes"])
    else:
        for s in p["samples"]:
            fields = ", ".join(f"{k}={v}" for k, v in s["fields"].items())
            click.echo(f"      ~ {s['record_id']}  {fields}")
        shown = len(p["samples"])
    if p["records"] > shown:
        click.echo(f"      ... and {p['records'] - shown} more")


def _key_text(key: object) -> str:
    parts = key if isinstance(key, list) else [key]
    return " + ".join(_short(part, 30) for part in parts)


def _short(value: object, width: int = 40) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"


@click.command("plan")
@click.option("-p", "--policy", "policies", multiple=True, help="Only this policy (repeatable).")
@click.option("--out", type=click.Path(path_type=Path), help="Also write the plan as JSON here.")
@click.option("--operator", help="Who is planning (default: the OS user).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plan_command(
    policies: Sequence[str], out: Path | None, operator: str | None, as_json: bool
) -> None:
    """Evaluate policies over the mirror and store a plan to review, approve and apply."""
    app = _app()
    config = app.config  # type: ignore[attr-defined]
    chosen = select_policies(config, policies or None)
    with app.store() as store:  # type: ignore[attr-defined]
        plan = make_plan(
            config, store, chosen, operator=current_operator(operator), ttl=config.plan_ttl
        )
        samples = {
            p.name: [
                sample_view(p, rid, data) for rid, data in store.plan_samples(plan.id, p.name, 5)
            ]
            for p in chosen
        }
        extras = plan_extras(store, plan)
    data = plan_dict(plan, samples, extras)
    if out:
        out.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
    if as_json:
        print_json(data)
    else:
        render_plan(data)
    if any(p.guard for p in plan.policies):
        sys.exit(GuardError.exit_code)


@click.command("approve")
@click.argument("plan_id")
@click.option("--operator", help="Who approves (default: the OS user).")
def approve_command(plan_id: str, operator: str | None) -> None:
    """Approve a plan (required for policies with require_approval, and for every erasure plan).

    Not by the plan's maker unless [plans] allow_self_approval; purge and erasure plans never."""
    app = _app()
    config = app.config  # type: ignore[attr-defined]
    approver = current_operator(operator)
    with app.store() as store:  # type: ignore[attr-defined]
        plan = store.get_plan(plan_id)
        if plan is None:
            raise PlanError(f"no plan {plan_id!r}", path="PLAN_ID")
        if approver == plan.created_by and four_eyes(plan):
            raise GuardError(
                f"{approver} made {plan.kind} plan {plan_id} and cannot approve it too: a plan "
                "that deletes for good always needs another operator (`crmsync approve "
                f"{plan_id} --operator NAME`, run by them; [plans] allow_self_approval does "
                "not apply)"
            )
        if approver == plan.created_by and not config.allow_self_approval:
            raise GuardError(
                f"{approver} made plan {plan_id} and cannot approve it too; another operator "
                "must (or set allow_self_approval = true under [plans])"
            )
        store.approve_plan(plan_id, approver, AuditEntry("plan.approve", approver, plan_id=plan_id))
    click.echo(f"plan {plan_id} approved by {approver}")


@click.command("apply")
@click.argument("plan_id", required=False)
@click.option(
    "-p",
    "--policy",
    "policies",
    multiple=True,
    help="Without PLAN_ID: plan these policies and apply at once (needs --yes).",
)
@click.option("--yes", is_flag=True, help="With --policy: no separate review step.")
@click.option("--operator", help="Who applies (default: the OS user).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def apply_command(
    plan_id: str | None, policies: Sequence[str], yes: bool, operator: str | None, as_json: bool
) -> None:
    """Apply a plan: guards, drift check, snapshot, then write back in batches (resumable).

    `crmsync apply PLAN_ID` applies a reviewed plan; `crmsync apply --policy P --yes` plans and
    applies in one step (guards and approvals still hold)."""
    app = _app()
    if plan_id and policies:
        raise click.UsageError("give either PLAN_ID or --policy, not both")
    if not plan_id:
        if not policies:
            raise click.UsageError("give a PLAN_ID (see `crmsync plans`) or --policy P --yes")
        if not yes:
            raise click.UsageError("--policy without a plan id needs --yes (no review step)")
    with app.store() as store:  # type: ignore[attr-defined]
        if not plan_id:
            config = app.config  # type: ignore[attr-defined]
            plan_id = make_plan(
                config,
                store,
                select_policies(config, policies),
                operator=current_operator(operator),
                ttl=config.plan_ttl,
            ).id
        result = apply_plan(
            app.config,  # type: ignore[attr-defined]
            app.registry,  # type: ignore[attr-defined]
            store,
            plan_id,
            operator=current_operator(operator),
        )
        head = store.audit_head()
    if as_json:
        print_json(result.as_dict())
    else:
        _render_apply(result, plan_id, head)
    _exit_for(result, plan_id)


def _exit_for(result: ApplyResult, plan_id: str) -> None:
    """Loud on partial success: 1 if the CRM refused records, 3 if some drifted."""
    failed = sum(s.get("failed", 0) for s in result.counts.values())
    drift = sum(s.get("drift", 0) for s in result.counts.values())
    held = sum(s.get("held", 0) for s in result.counts.values())
    if failed:
        click.echo(
            f"error: the CRM refused {failed} record(s); see "
            f"`crmsync audit log --plan {plan_id} --outcome failed`",
            err=True,
        )
        sys.exit(1)
    if drift:
        click.echo(
            f"stopped: {drift} record(s) changed in the CRM since the plan and were "
            "skipped; plan again to include them",
            err=True,
        )
        sys.exit(GuardError.exit_code)
    if held:  # a legal hold or statutory floor found at apply time (crmsync.compliance)
        click.echo(
            f"stopped: {held} record(s) are under a legal hold or statutory minimum and were"
            " not purged (restricted instead)",
            err=True,
        )
        sys.exit(GuardError.exit_code)


def _render_apply(result: ApplyResult, plan_id: str, head: object) -> None:
    rows = [
        [policy, *(states.get(s, 0) for s in ("done", "failed", "drift", "gone"))]
        for policy, states in result.counts.items()
    ]
    print_table(
        f"applied plan {plan_id}: {result.status}",
        ("policy", "done", "failed", "drift", "gone"),
        rows,
    )
    if head is not None:  # worth writing down: `crmsync audit verify --expect-head` checks it
        click.echo(f"audit log head: seq {head.seq} {head.hash}")  # type: ignore[attr-defined]


@click.group("plans", invoke_without_command=True)
@click.option("-n", "--limit", default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def plans_command(ctx: click.Context, limit: int, as_json: bool) -> None:
    """List recent plans (`crmsync plans show PLAN_ID` for one)."""
    if ctx.invoked_subcommand is not None:
        return
    app = _app()
    with app.store() as store:  # type: ignore[attr-defined]
        plans = store.list_plans(limit)
    if as_json:
        print_json([plan_dict(p) for p in plans])
        return
    print_table(
        None,
        ("id", "created by", "expires", "status", "records", "approved by"),
        [
            (
                p.id,
                p.created_by,
                p.expires_at,
                p.status,
                sum(x.matched for x in p.policies),
                ", ".join(a for a, _ in p.approvals),
            )
            for p in plans
        ],
    )


@click.command("restore")
@click.option(
    "--record",
    "records",
    multiple=True,
    help="Record id (repeatable); needs --connection and --module.",
)
@click.option("--connection", help="Connection of --record.")
@click.option("--module", help="Module of --record.")
@click.option("--plan", "plan_id", help="Undo everything this plan archived or voided.")
@click.option(
    "--run", "run_id", type=int, help="Undo everything this apply run archived or voided."
)
@click.option("--policy", help="Undo what this policy archived or voided (see --since/--until).")
@click.option("--since", help="With --policy: changed at or after (ISO time, or 7d / 12h ago).")
@click.option("--until", help="With --policy: changed before.")
@click.option(
    "--data",
    "with_data",
    is_flag=True,
    help="Also put field values back from the copy kept before the change.",
)
@click.option("--yes", is_flag=True, help="Apply the restore plan right away.")
@click.option("--operator", help="Who restores (default: the OS user).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def restore_command(
    records: Sequence[str],
    connection: str | None,
    module: str | None,
    plan_id: str | None,
    run_id: int | None,
    policy: str | None,
    since: str | None,
    until: str | None,
    with_data: bool,
    yes: bool,
    operator: str | None,
    as_json: bool,
) -> None:
    """Restore archived or voided records (a restore plan; --yes applies it at once)."""
    from crmsync.audit.model import parse_time
    from crmsync.plans import restore

    chosen = [bool(records), bool(plan_id), run_id is not None, bool(policy)]
    if sum(chosen) != 1:
        raise click.UsageError("choose exactly one of --record, --plan, --run, --policy")
    if records and not (connection and module):
        raise click.UsageError("--record needs --connection and --module")
    app = _app()
    config = app.config  # type: ignore[attr-defined]
    who = current_operator(operator)
    with app.store() as store:  # type: ignore[attr-defined]
        if records:
            selection = restore.select_by_ids(store, connection, module, records)  # type: ignore[arg-type]
        elif plan_id:
            selection = restore.select_by_plan(store, plan_id)
        else:
            selection = restore.select_from_audit(
                store,
                policy=policy,
                run_id=run_id,
                since=parse_time(since) if since else None,
                until=parse_time(until) if until else None,
            )
        restore.refresh(config, app.registry, store, selection)  # type: ignore[attr-defined]
        plan = restore.make_restore_plan(
            config, store, selection, operator=who, with_data=with_data
        )
        if not yes:
            data = plan_dict(plan)
            print_json(data) if as_json else render_plan(data)
            return
        result = apply_plan(config, app.registry, store, plan.id, operator=who)  # type: ignore[attr-defined]
    if as_json:
        print_json(result.as_dict())
    else:
        done = sum(s.get("done", 0) for s in result.counts.values())
        click.echo(f"restore plan {plan.id}: {done} records restored ({result.status})")
    _exit_for(result, plan.id)


@plans_command.command("show")
@click.argument("plan_id")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plans_show_command(plan_id: str, as_json: bool) -> None:
    """Show a stored plan: its policies, duplicate clusters and survivors, computed changes."""
    app = _app()
    with app.store() as store:  # type: ignore[attr-defined]
        plan = store.get_plan(plan_id)
        if plan is None:
            raise PlanError(f"no plan {plan_id!r}; `crmsync plans` lists them", path="PLAN_ID")
        samples = {
            p.policy: [
                {"record_id": rid, "fields": {k: data[k] for k in NAME_FIELDS if k in data}}
                for rid, data in store.plan_samples(plan.id, p.policy, 5)
            ]
            for p in plan.policies
        }
        states = store.plan_item_states(plan.id)
        data = plan_dict(plan, samples, plan_extras(store, plan), states)
    if as_json:
        print_json(data)
    else:
        render_plan(data)
