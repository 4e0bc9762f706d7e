"""The compliance code (issue 9) reaches local state only through the Store interface, so a
server-database store can implement it: no SQLite connection, SQL statement or private store
attribute in crmsync/compliance, and every method it calls on a store or its transaction is
declared by :class:`Store` / :class:`StoreTransaction`."""

from __future__ import annotations

import ast
import pathlib
import re

from crmsync.store.base import Store, StoreTransaction

ROOT = pathlib.Path(__file__).resolve().parent.parent
# the compliance report (compliance/report/) is checked where it is built
MODULES = sorted((ROOT / "crmsync" / "compliance").glob("*.py"))

REACHING_IN = re.compile(r"\bsqlite3\b|\._db\b|_db\(|_conn\(\)|\.execute(many)?\(|executescript")


def test_compliance_modules_hold_no_connection_and_run_no_statement():
    found = [
        f"{path.name}:{n}: {line.strip()}"
        for path in MODULES
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if REACHING_IN.search(line)
    ]
    assert MODULES and not found, "\n".join(found)


def _calls_on(name: str) -> set[tuple[str, str]]:
    out = set()
    for path in MODULES:
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == name
            ):
                out.add((path.name, node.func.attr))
    return out


def test_every_store_call_in_compliance_is_part_of_the_store_interface():
    store_calls = _calls_on("store")
    tx_calls = _calls_on("tx")
    assert store_calls and tx_calls  # the scan sees the calls it is meant to check
    missing = [f"{m}: store.{a}" for m, a in store_calls if not hasattr(Store, a)]
    missing += [f"{m}: tx.{a}" for m, a in tx_calls if not hasattr(StoreTransaction, a)]
    private = [f"{m}: .{a}" for m, a in store_calls | tx_calls if a.startswith("_")]
    assert not missing and not private, "\n".join(missing + private)
