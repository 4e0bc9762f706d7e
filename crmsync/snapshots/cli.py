"""``crmsync snapshot {init,create,list,show,diff,restore,forget,prune,verify,passwd}``.

Thin over :mod:`crmsync.snapshots`: parse, call the repository, render. The repository, its
passphrase (a secret reference), cache and ``forget`` defaults come from ``[snapshots]`` in the
config. Like ``crmsync.audit_cli``, the group finds the config and store through the click
context object, so it never imports crmsync.cli.

Exit codes: 0 ok; 1 failure (a damaged repository, a failed write, a lock held by another
process); 2 bad usage or config (unknown snapshot id, wrong or missing passphrase, no
repository yet, bad options). Errors are one line on stderr; passphrases are never printed.
"""

from __future__ import annotations

import json
import os
import secrets as pysecrets
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import click
import orjson

from crmsync.config import KEEP_RULES, Config, SnapshotsConfig
from crmsync.errors import EXIT_FAILURE, EXIT_USAGE, CrmsyncError
from crmsync.snapshots import crypto
from crmsync.snapshots import format as fmt
from crmsync.snapshots.configured import (
    NoRepository,
    init_configured,
    open_configured,
    repository_exists,
)
from crmsync.snapshots.crypto import WrongPassphrase
from crmsync.snapshots.errors import (
    RepositoryWriteError,
    SnapshotError,
    SnapshotNotFound,
)
from crmsync.snapshots.repository import Repository, SnapshotInfo
from crmsync.snapshots.source import mirror_modules, snapshot_mirror
from crmsync.store.base import Store
from crmsync.ui import print_json, print_table

SHORT = 8  # characters of a snapshot id shown in tables (any unique prefix of 4+ is accepted)


class SnapshotUsageError(CrmsyncError):
    """Bad usage of a snapshot command (exit 2), e.g. a record the snapshot does not hold."""

    exit_code = EXIT_USAGE


class SnapshotGroup(click.Group):
    """Gives repository errors the documented exit codes; crmsync's root group prints them."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (WrongPassphrase, SnapshotNotFound) as exc:
            exc.exit_code = EXIT_USAGE  # the user gave the wrong secret or id
            raise
        except OSError as exc:  # e.g. an unreadable repository directory or output file
            where = f" {exc.filename}" if exc.filename else ""
            raise CrmsyncError(f"cannot access{where}: {exc.strerror or exc}") from None


@click.group("snapshot", cls=SnapshotGroup)
def snapshot_group() -> None:
    """Snapshots of the mirror: deduplicated, compressed, optionally encrypted.

    The repository is [snapshots] repository in the config (default: snapshots/ beside the
    store); set [snapshots] passphrase = "env:VAR" or "keyring:SERVICE/NAME" to encrypt it."""


# --------------------------------------------------------------------------- plumbing


def _app() -> Any:
    app = click.get_current_context().obj
    if app is None or not hasattr(app, "store"):
        raise click.UsageError("the snapshot commands need crmsync's CLI context (a config)")
    return app


def _config() -> Config:
    return _app().config  # type: ignore[no-any-return]


@contextmanager
def _store() -> Iterator[Store]:
    store = _app().store()
    try:
        yield store
    finally:
        store.close()


def _passphrase(settings: SnapshotsConfig) -> str | None:
    return settings.passphrase.reveal() if settings.passphrase else None


def _init(settings: SnapshotsConfig) -> Repository:
    repo = init_configured(settings)
    how = f"encrypted, passphrase from {settings.passphrase}" if repo.encrypted else "unencrypted"
    click.echo(f"created snapshot repository at {settings.repository} ({how})", err=True)
    return repo


def _open(*, create: bool = False) -> Repository:
    """The configured repository; with ``create``, initialised on first use."""
    settings = _config().snapshots
    if create and not repository_exists(settings):
        return _init(settings)
    try:
        repo = open_configured(settings)
    except SnapshotError as exc:
        # no repository yet, or an encrypted one and no passphrase configured
        if type(exc) in (SnapshotError, NoRepository):
            exc.exit_code = EXIT_USAGE
        raise
    if settings.passphrase and not repo.encrypted:
        click.echo(
            f"warning: [snapshots] passphrase is set, but the repository at "
            f"{settings.repository} is not encrypted (it was created without one)",
            err=True,
        )
    return repo


def _when(iso: str) -> str:
    return iso[:19].replace("T", " ")


def _size(n: int) -> str:
    for unit, scale in (("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} B"


def _record_key(value: str, option: str = "--record") -> tuple[str, str]:
    module, sep, record_id = value.partition("/")
    if not (sep and module and record_id):
        raise click.BadParameter(f"{value!r}: expected MODULE/RECORD_ID", param_hint=option)
    return module, record_id


def _check_tags(tags: Iterable[str]) -> None:
    for tag in tags:
        if not tag.strip() or "," in tag:
            raise click.BadParameter(
                f"{tag!r}: a tag is non-empty and has no comma", param_hint="--tag"
            )


def _summary_text(info: SnapshotInfo) -> str:
    s = info.summary
    return (
        f"{info.records} records: {s.get('added', 0)} added, {s.get('changed', 0)} changed, "
        f"{s.get('removed', 0)} removed, {s.get('unchanged', 0)} unchanged; "
        f"{s.get('new_blobs', 0)} new versions, {_size(s.get('new_bytes', 0))} stored"
    )


# --------------------------------------------------------------------------- init, create


@snapshot_group.command("init")
def init_command() -> None:
    """Create the snapshot repository (encrypted when [snapshots] passphrase is set)."""
    settings = _config().snapshots
    if repository_exists(settings):
        raise SnapshotUsageError(f"a snapshot repository already exists at {settings.repository}")
    _init(settings)


@snapshot_group.command("create")
@click.argument("connection", required=False)
@click.option("-m", "--module", "modules", multiple=True, help="Only this module (repeatable).")
@click.option("--tag", "tags", multiple=True, help="Tag the snapshot (repeatable).")
@click.option(
    "--pull/--no-pull",
    default=False,
    show_default=True,
    help="Pull (incrementally) before taking the snapshot.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def create_command(
    connection: str | None, modules: Sequence[str], tags: Sequence[str], pull: bool, as_json: bool
) -> None:
    """Snapshot what the mirror holds: one snapshot per connection (default: all of them).

    Records deleted in the CRM are left out (older snapshots keep them). Unchanged records
    cost nothing: only new and changed versions are stored."""
    from crmsync.plans.planner import current_operator

    app = _app()
    config = app.config
    names = [connection] if connection else sorted(config.connections)
    if not names:
        raise click.UsageError("no connections configured")
    for name in names:
        config.connection(name)
    _check_tags(tags)
    # Unlock first, so a wrong passphrase fails before any pull; a new repository is made
    # only when there is something to put in it.
    settings = config.snapshots
    repo = _open() if repository_exists(settings) else None
    if repo is None:
        _passphrase(settings)  # a missing secret fails now, not after the pull
    infos: list[SnapshotInfo] = []
    with _store() as store:
        if pull:
            _pull(app, store, names, modules)
        chosen: list[tuple[str, list[str]]] = []
        for name in names:
            held = mirror_modules(store, name)
            missing = [m for m in modules if m not in held]
            if missing:
                raise SnapshotUsageError(
                    f"connection {name!r} has no module {missing[0]!r} in the mirror (it holds: "
                    f"{', '.join(held) or 'nothing'}); pull it first, or pass --pull"
                )
            if not held:
                if connection:
                    raise CrmsyncError(
                        f"the mirror holds nothing of connection {name!r}; run "
                        f"`crmsync pull {name}` first, or pass --pull"
                    )
                click.echo(f"skipped {name}: nothing in the mirror yet", err=True)
                continue
            chosen.append((name, sorted(set(modules)) if modules else held))
        if not chosen:
            raise CrmsyncError("the mirror is empty; run `crmsync pull` first, or pass --pull")
        if repo is None:
            repo = _open(create=True)
        for name, mods in chosen:
            # reads only what changed since the last snapshot when the store can tell
            info = snapshot_mirror(
                repo, store, name, mods, tags=tags, operator=current_operator(),
                reason="crmsync snapshot create",
            )  # fmt: skip
            infos.append(info)
            if not as_json:
                click.echo(
                    f"snapshot {info.id[:SHORT]} of {name} ({', '.join(mods)}): "
                    + _summary_text(info)
                )
    if as_json:
        print_json([i.as_dict() for i in infos])


def _pull(app: Any, store: Store, names: list[str], modules: Sequence[str]) -> None:
    from crmsync.connections import open_session
    from crmsync.pull import pull_connection

    for name in names:
        session = open_session(app.config, app.registry, name)
        try:
            summary = pull_connection(session, store, name, modules=modules or None)
        finally:
            session.close()
        click.echo(
            f"pulled {name}: {summary.total('records')} records "
            f"({summary.total('new')} new, {summary.total('changed')} changed, "
            f"{summary.total('deleted')} deleted)",
            err=True,
        )


# --------------------------------------------------------------------------- list, show


LIST_HEADERS = (
    "id", "time", "connection", "modules", "tags", "records", "added", "changed", "removed",
)  # fmt: skip


@snapshot_group.command("list")
@click.option("--connection", help="Only snapshots of this connection.")
@click.option(
    "--tag", "tags", multiple=True, help="Only snapshots with this tag (repeatable: all)."
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_command(connection: str | None, tags: Sequence[str], as_json: bool) -> None:
    """List snapshots, oldest first."""
    repo = _open()
    snaps = [
        s
        for s in repo.list()
        if (connection is None or s.connection == connection) and set(tags) <= set(s.tags)
    ]
    if as_json:
        print_json([s.as_dict() for s in snaps])
        return
    print_table(
        None,
        LIST_HEADERS,
        [
            (
                s.id[:SHORT],
                _when(s.time),
                s.connection,
                ",".join(s.modules),
                ",".join(s.tags),
                s.records,
                s.summary.get("added", 0),
                s.summary.get("changed", 0),
                s.summary.get("removed", 0),
            )
            for s in snaps
        ],
    )


def module_counts(repo: Repository, snapshot_id: str) -> dict[str, int]:
    """Records per module of a snapshot, from its manifest (no pack is read)."""
    info = repo.show(snapshot_id)
    counts = dict.fromkeys(info.modules, 0)
    for pack_id, bits in repo.manifest(info.id).packs:
        module = repo.catalog.packs[pack_id].module
        counts[module] = counts.get(module, 0) + int(bits.sum())
    return counts


@snapshot_group.command("show")
@click.argument("snapshot_id")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def show_command(snapshot_id: str, as_json: bool) -> None:
    """Show one snapshot (an id, a unique prefix of 4+ characters, or `latest`)."""
    repo = _open()
    info = repo.show(snapshot_id)
    counts = module_counts(repo, info.id)
    if as_json:
        print_json({**info.as_dict(), "module_records": counts})
        return
    s = info.summary
    for label, value in (
        ("snapshot", info.id),
        ("time", info.time),
        ("connection", info.connection),
        ("modules", ", ".join(info.modules)),
        ("tags", ", ".join(info.tags) or "-"),
        ("parent", info.parent or "-"),
        ("operator", info.operator),
        ("reason", info.reason),
        ("records", info.records),
        (
            "vs parent",
            f"{s.get('added', 0)} added, {s.get('changed', 0)} changed, "
            f"{s.get('removed', 0)} removed, {s.get('unchanged', 0)} unchanged",
        ),
        ("stored", f"{s.get('new_blobs', 0)} new versions, {_size(s.get('new_bytes', 0))}"),
    ):
        click.echo(f"{label + ':':<12}{value}")
    click.echo()
    print_table(None, ("module", "records"), sorted(counts.items()))


# --------------------------------------------------------------------------- diff


@snapshot_group.command("diff")
@click.argument("a")
@click.argument("b")
@click.option("--record", "record", metavar="MODULE/ID", help="Field-level changes of one record.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def diff_command(a: str, b: str, record: str | None, as_json: bool) -> None:
    """What changed from snapshot A to snapshot B: records added, changed, removed.

    With --record MODULE/ID, the fields of that record that differ, before and after."""
    repo = _open()
    ida, idb = repo.resolve(a), repo.resolve(b)
    if record is not None:
        _diff_record(repo, ida, idb, *_record_key(record), as_json=as_json)
        return
    counts = {"added": 0, "changed": 0, "removed": 0}
    entries = []
    sign = {"added": "+", "changed": "M", "removed": "-"}
    for e in repo.diff(ida, idb):
        counts[e.kind] += 1
        if as_json:
            entries.append({"kind": e.kind, "module": e.module, "record_id": e.record_id})
        else:
            click.echo(f"{sign[e.kind]}  {e.module}/{e.record_id}")
    if as_json:
        print_json({"a": ida, "b": idb, "summary": counts, "records": entries})
    else:
        click.echo(
            f"{ida[:SHORT]} -> {idb[:SHORT]}: {counts['added']} added, "
            f"{counts['changed']} changed, {counts['removed']} removed"
        )


def _diff_record(
    repo: Repository, ida: str, idb: str, module: str, record_id: str, *, as_json: bool
) -> None:
    from crmsync.snapshots.diff import MISSING, field_changes

    before, after = repo.get(ida, module, record_id), repo.get(idb, module, record_id)
    if before is None and after is None:
        raise SnapshotUsageError(
            f"neither snapshot {ida[:SHORT]} nor {idb[:SHORT]} holds {module}/{record_id}"
        )
    kind = "added" if before is None else "removed" if after is None else "changed"
    changes = field_changes(before, after)
    if kind == "changed" and not changes:
        kind = "unchanged"
    if as_json:
        fields = []
        for c in changes:  # "before" / "after" are left out where the field was absent
            item = {"field": c.field, "before": c.before, "after": c.after}
            fields.append({k: v for k, v in item.items() if v is not MISSING})
        print_json(
            {"a": ida, "b": idb, "module": module, "record_id": record_id, "kind": kind,
             "fields": fields}
        )  # fmt: skip
        return

    def show(v: Any) -> str:
        return "(absent)" if v is MISSING else json.dumps(v, ensure_ascii=False)

    click.echo(f"{module}/{record_id}: {kind} ({ida[:SHORT]} -> {idb[:SHORT]})")
    for c in changes:
        click.echo(f"  {c.field}: {show(c.before)} -> {show(c.after)}")


# --------------------------------------------------------------------------- restore


@snapshot_group.command("restore")
@click.argument("snapshot_id")
@click.option(
    "--record", "records", multiple=True, metavar="MODULE/ID", help="Only this record (repeatable)."
)
@click.option("--module", help="Only this module.")
@click.option(
    "--to",
    "target",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the records to this JSON Lines file.",
)
@click.option("--force", is_flag=True, help="Overwrite the --to file if it exists.")
@click.option(
    "--to-crm",
    "to_crm",
    is_flag=True,
    help="Put the snapshot's field values back in the CRM, as a restore plan (drift check, "
    "audit, pre-change snapshot).",
)
@click.option("--yes", is_flag=True, help="With --to-crm: apply the restore plan right away.")
@click.option("--operator", help="With --to-crm: who restores (default: the OS user).")
@click.option("--json", "as_json", is_flag=True, help="With --to-crm: JSON output.")
def restore_command(
    snapshot_id: str,
    records: Sequence[str],
    module: str | None,
    target: Path | None,
    force: bool,
    to_crm: bool,
    yes: bool,
    operator: str | None,
    as_json: bool,
) -> None:
    """Write records of a snapshot to a file, one JSON object per line
    ({"connection", "module", "record_id", "data"}), or put them back in the CRM (--to-crm)."""
    if (target is None) == (not to_crm):
        raise click.UsageError("give either --to FILE.jsonl or --to-crm")
    keys = [_record_key(r) for r in records]
    if module is not None and any(m != module for m, _ in keys):
        raise click.BadParameter(
            f"every --record must be of module {module!r}", param_hint="--record"
        )
    if to_crm:
        _restore_to_crm(snapshot_id, keys, module, yes=yes, operator=operator, as_json=as_json)
        return
    assert target is not None
    if target.exists() and not force:
        raise click.UsageError(f"{target} exists; pass --force to overwrite it")
    repo = _open()
    info = repo.show(snapshot_id)
    if module is not None and module not in info.modules:
        raise SnapshotUsageError(
            f"snapshot {info.id[:SHORT]} has no module {module!r} (it has: "
            f"{', '.join(info.modules)})"
        )
    wanted: dict[str, set[str]] = {}
    for m, rid in keys:
        wanted.setdefault(m, set()).add(rid)
    # Beside the target, then renamed: a failed restore never leaves half a file. Owner-only,
    # like the store: the file holds CRM records.
    partial = target.with_name(f".{target.name}.{pysecrets.token_hex(4)}.partial")
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with open(fd, "wb") as out:
            count, found = 0, set()
            selections: list[tuple[str | None, set[str] | None]] = (
                [(m, ids) for m, ids in sorted(wanted.items())] if wanted else [(module, None)]
            )
            for sel_module, ids in selections:
                for rec in repo.records(info.id, sel_module, ids):
                    out.write(
                        _json_line(
                            {
                                "connection": info.connection,
                                "module": rec.module,
                                "record_id": rec.record_id,
                                "data": rec.data,
                            }
                        )
                    )
                    if keys:
                        found.add((rec.module, rec.record_id))
                    count += 1
            out.flush()
            os.fsync(out.fileno())
        missing = sorted(set(keys) - found)
        if missing:
            shown = ", ".join(f"{m}/{r}" for m, r in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise SnapshotUsageError(
                f"snapshot {info.id[:SHORT]} does not hold {shown}{more}; nothing written"
            )
        if target.exists() and not force:
            raise click.UsageError(f"{target} exists; pass --force to overwrite it")
        partial.replace(target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    click.echo(f"restored {count} records of snapshot {info.id[:SHORT]} to {target}")


def _restore_to_crm(
    snapshot_id: str,
    keys: list[tuple[str, str]],
    module: str | None,
    *,
    yes: bool,
    operator: str | None,
    as_json: bool,
) -> None:
    """A restore plan from a snapshot: archived/voided records get their status and fields
    back (action restore), edited active ones their fields (action update); records deleted in
    the CRM since are reported (re-creating them is not supported)."""
    from crmsync.plans import restore
    from crmsync.plans.apply import apply_plan
    from crmsync.plans.cli import _exit_for, plan_dict, render_plan
    from crmsync.plans.planner import current_operator

    app, repo = _app(), _open()
    info = repo.show(snapshot_id)
    modules = sorted({m for m, _ in keys} or ([module] if module else info.modules))
    unknown = [m for m in modules if m not in info.modules]
    if unknown:
        raise SnapshotUsageError(
            f"snapshot {info.id[:SHORT]} has no module {unknown[0]!r} (it has: "
            f"{', '.join(info.modules)})"
        )
    who = current_operator(operator)
    with _store() as store:
        # the mirror must show the CRM as it is now, or the comparison would be stale
        everything = restore.Selection({(info.connection, m): {} for m in modules})
        infos = restore.refresh(app.config, app.registry, store, everything)
        found = restore.SnapshotSelection(restore.Selection({}), info.id)
        chosen: dict[tuple[str, str], dict[str, str | None]] = {}
        for m in modules:
            ids = [r for km, r in keys if km == m] or None
            meta = infos[(info.connection, m)]
            part = restore.select_from_snapshot(
                store, repo, info.id, module=m, record_ids=ids,
                ignore=[f for f in (meta.id_field, meta.modified_field) if f],
            )  # fmt: skip
            chosen.update(part.selection.records)
            found.unchanged += part.unchanged
            found.gone += part.gone
        missing = sorted(set(keys) - {(m, r) for (_, m), ids in chosen.items() for r in ids}
                         - set(found.gone))  # fmt: skip
        missing = [k for k in missing if _holds(repo, info.id, k) is False]
        if missing:
            raise SnapshotUsageError(
                f"snapshot {info.id[:SHORT]} does not hold "
                + ", ".join(f"{m}/{r}" for m, r in missing[:5])
            )
        selection = restore.Selection(chosen)
        plan = restore.make_restore_plan(
            app.config, store, selection, operator=who, with_data=True, revert_active=True
        )
        note = (
            f"{found.unchanged} records already match the snapshot"
            + (f"; {len(found.gone)} were deleted in the CRM since and are not re-created"
               f" ({', '.join(f'{m}/{r}' for m, r in found.gone[:5])})" if found.gone else "")
        )  # fmt: skip
        if not yes:
            data = plan_dict(plan)
            data["snapshot"] = {"id": info.id, "unchanged": found.unchanged,
                                "gone": [f"{m}/{r}" for m, r in found.gone]}  # fmt: skip
            if as_json:
                print_json(data)
            else:
                render_plan(data)
                click.echo(note)
            return
        result = apply_plan(app.config, app.registry, store, plan.id, operator=who)
    if as_json:
        print_json({**result.as_dict(), "unchanged": found.unchanged,
                    "gone": [f"{m}/{r}" for m, r in found.gone]})  # fmt: skip
    else:
        done = sum(s.get("done", 0) for s in result.counts.values())
        click.echo(f"restore plan {plan.id}: {done} records put back from snapshot"
                   f" {info.id[:SHORT]} ({result.status}); {note}")  # fmt: skip
    _exit_for(result, plan.id)


def _holds(repo: Repository, snapshot_id: str, key: tuple[str, str]) -> bool:
    return repo.get(snapshot_id, key[0], key[1]) is not None


def _json_line(obj: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE)
    except (TypeError, orjson.JSONEncodeError):  # e.g. integers beyond 64 bits
        return (json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


# --------------------------------------------------------------------------- forget, prune


GROUP_KEYS = ("connection", "modules", "tags")


def _group_key(info: SnapshotInfo, group_by: Sequence[str]) -> tuple[object, ...]:
    parts = {"connection": info.connection, "modules": info.modules, "tags": info.tags}
    # Copies of a few records (apply's pre-change snapshots) never share a group with
    # snapshots of whole modules: a newer copy must not count as a whole module's "last".
    scope = getattr(info, "scope", "all")
    return tuple(parts[k] for k in group_by) + (() if scope == "all" else (scope,))


def _parse_group_by(value: str) -> tuple[str, ...]:
    keys = tuple(k.strip() for k in value.split(",") if k.strip())
    bad = [k for k in keys if k not in GROUP_KEYS]
    if bad:
        raise click.BadParameter(
            f"{bad[0]!r}: expected a comma-separated list of {', '.join(GROUP_KEYS)} (or '')",
            param_hint="--group-by",
        )
    return keys


def _keep_options(f: Any) -> Any:
    f = click.option(
        "--keep-tag", "keep_tags", multiple=True, metavar="TAGS",
        help="Keep snapshots with all these comma-separated tags (repeatable).",
    )(f)  # fmt: skip
    f = click.option(
        "--keep-within", metavar="DURATION",
        help="Keep snapshots newer than this before the newest one (e.g. 1y2m3d4h).",
    )(f)  # fmt: skip
    for rule in reversed(KEEP_RULES):
        what = "snapshots" if rule == "last" else f"{rule} snapshots"
        f = click.option(
            f"--keep-{rule}", type=int, metavar="N",
            help=f"Keep the last N {what} (-1: all).",
        )(f)  # fmt: skip
    return f


@snapshot_group.command("forget")
@click.argument("snapshot_ids", nargs=-1)
@_keep_options
@click.option("--connection", help="Only consider snapshots of this connection.")
@click.option(
    "--group-by",
    default="connection,modules",
    show_default=True,
    help="Apply the policy to each group of snapshots with the same of these.",
)
@click.option("--dry-run", is_flag=True, help="Only show what would be removed.")
@click.option("--prune", "then_prune", is_flag=True, help="Prune right after forgetting.")
@click.option(
    "--include-pre-change",
    is_flag=True,
    help="Let the policy remove apply's pre-change copies too (kept by default: restore "
    "--data reads them).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def forget_command(
    snapshot_ids: Sequence[str],
    keep_last: int | None,
    keep_hourly: int | None,
    keep_daily: int | None,
    keep_weekly: int | None,
    keep_monthly: int | None,
    keep_yearly: int | None,
    keep_within: str | None,
    keep_tags: Sequence[str],
    connection: str | None,
    group_by: str,
    dry_run: bool,
    then_prune: bool,
    include_pre_change: bool,
    as_json: bool,
) -> None:
    """Remove snapshots: the ones named, or those a keep policy does not keep (restic's
    rules; default policy: [snapshots.keep] in the config). Data stays until `prune`.
    apply's pre-change copies are kept unless named or --include-pre-change is given."""
    from crmsync.snapshots.retention import KeepPolicy, SnapshotRef, apply_policy

    given = {
        "last": keep_last, "hourly": keep_hourly, "daily": keep_daily, "weekly": keep_weekly,
        "monthly": keep_monthly, "yearly": keep_yearly,
    }  # fmt: skip
    flags = {k: v for k, v in given.items() if v is not None}
    if keep_within is not None:
        flags["within"] = keep_within
    if keep_tags:
        flags["tags"] = tuple(keep_tags)
    if snapshot_ids and flags:
        raise click.UsageError("give snapshot ids or --keep-* options, not both")
    keys = _parse_group_by(group_by)
    repo = _open()
    snaps = [s for s in repo.list() if connection is None or s.connection == connection]
    if snapshot_ids:
        chosen = {repo.resolve(i) for i in snapshot_ids}
        outside = sorted(chosen - {s.id for s in snaps})
        if outside:
            raise click.UsageError(
                f"snapshot {outside[0][:SHORT]} is not of --connection {connection}"
            )
        decisions = [(s, s.id not in chosen, ["named"] if s.id in chosen else []) for s in snaps]
    else:
        settings = flags or dict(_config().snapshots.keep)
        if "tags" in settings:
            settings["tags"] = tuple(settings["tags"])
        try:
            policy = KeepPolicy(**settings)
            by_id = {s.id: s for s in snaps}
            ruled = [s for s in snaps if include_pre_change or s.scope != "selection"]
            refs = [
                SnapshotRef(s.id, datetime.fromisoformat(s.time), s.tags, _group_key(s, keys))
                for s in ruled
            ]
            decisions = [
                (by_id[d.snapshot.id], d.keep, list(d.reasons))
                for d in (apply_policy(refs, policy) if refs else [])
            ]
            decisions += [(s, True, ["pre-change copy"]) for s in snaps if s not in ruled]
        except ValueError as exc:
            hint = "" if flags else " (or set [snapshots.keep] in the config)"
            raise click.UsageError(f"{exc}{hint}") from None
    # [retention] snapshots_max_age and legal holds on snapshots (crmsync.compliance)
    from crmsync.compliance.snapshot_rules import overridden

    decisions = overridden(decisions, _config(), max_age=not snapshot_ids)
    removed = [s.id for s, keep, _ in decisions if not keep]
    if not dry_run and removed:
        repo.forget(removed)
    report = None
    if then_prune and not dry_run and removed:
        report = repo.prune()
    if as_json:
        print_json(
            {
                "dry_run": dry_run,
                "snapshots": [
                    {**s.as_dict(), "keep": keep, "reasons": reasons}
                    for s, keep, reasons in decisions
                ],
                "removed": removed,
                "prune": report.as_dict() if report else None,
            }
        )
        return
    print_table(
        None,
        ("id", "time", "connection", "modules", "tags", "action", "reasons"),
        [
            (
                s.id[:SHORT],
                _when(s.time),
                s.connection,
                ",".join(s.modules),
                ",".join(s.tags),
                "keep" if keep else "remove",
                ", ".join(reasons),
            )
            for s, keep, reasons in decisions
        ],
    )
    verb = "would remove" if dry_run else "removed"
    click.echo(f"{verb} {len(removed)} of {len(decisions)} snapshots")
    if report:
        for line in report.lines():
            click.echo(line)
    elif removed and not dry_run:
        click.echo("their data stays until `crmsync snapshot prune`")


@snapshot_group.command("prune")
@click.option("--dry-run", is_flag=True, help="Only show what would be removed.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def prune_command(dry_run: bool, as_json: bool) -> None:
    """Remove the stored record versions no snapshot uses any more."""
    report = _open().prune(dry_run=dry_run)
    if as_json:
        print_json(report.as_dict())
    else:
        for line in report.lines():
            click.echo(line)


# --------------------------------------------------------------------------- verify, passwd


@snapshot_group.command("verify")
@click.option(
    "--read-data", is_flag=True, help="Also read and re-hash every stored record version."
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def verify_command(read_data: bool, as_json: bool) -> None:
    """Check the repository; exit 1 naming every damaged snapshot and record."""
    report = _open().verify(read_data=read_data)
    if as_json:
        print_json(report.as_dict())
    else:
        for line in report.lines():
            click.echo(line)
    if not report.ok:
        sys.exit(EXIT_FAILURE)


@snapshot_group.command("passwd")
@click.option(
    "--new-passphrase",
    "new_ref",
    metavar="REF",
    help="Where the new passphrase is: env:VAR or keyring:SERVICE/NAME (default: prompt).",
)
def passwd_command(new_ref: str | None) -> None:
    """Change the repository passphrase (no data is rewritten).

    The old passphrase is [snapshots] passphrase; afterwards, point that key at the new one."""
    from crmsync import secrets

    settings = _config().snapshots
    repo = _open()
    if not repo.encrypted:
        raise SnapshotUsageError(
            f"the snapshot repository at {settings.repository} is not encrypted; "
            "a passphrase can only be set when it is created"
        )
    old = _passphrase(settings)
    assert old is not None  # an encrypted repository opened, so one was configured
    if new_ref is not None:
        new = secrets.resolve(new_ref, "--new-passphrase")
    else:
        new = click.prompt("new passphrase", hide_input=True, confirmation_prompt=True, err=True)
    if not new:
        raise SnapshotUsageError("the new passphrase must not be empty")
    if new == old:
        raise SnapshotUsageError("the new passphrase is the same as the old one")
    where = str(settings.repository)
    config = dict(repo.config)
    config["encryption"] = crypto.change_passphrase(config["encryption"], old, new, where)
    try:
        repo.backend.put(fmt.CONFIG_NAME, orjson.dumps(config, option=orjson.OPT_INDENT_2) + b"\n")
    except OSError as exc:
        raise RepositoryWriteError(
            f"snapshot repository {where}: writing {fmt.CONFIG_NAME} failed "
            f"({exc.strerror or exc}); the old passphrase still works"
        ) from exc
    click.echo(f"passphrase changed for the snapshot repository at {where}")
    click.echo(
        f"now point [snapshots] passphrase (currently {settings.passphrase}) at the new one",
        err=True,
    )
