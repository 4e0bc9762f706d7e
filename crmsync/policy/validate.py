"""Turn the ``[[policies]]`` tables of a config into :class:`Policy` objects, or say exactly
what is wrong: structure first (JSON Schema from the registries), then meaning (each op's and
action's ``validate()``, connections, fields known to the mirror).

Every problem names its key path. A policy is addressed by its name when it has a usable one
(``policies.stale-leads.filter.all[0].op``) — stable when policies are reordered — and by its
position otherwise (``policies[2].name``).
"""

from __future__ import annotations

import difflib
import itertools
import math
import re
import sqlite3
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from jsonschema import Draft202012Validator, ValidationError

from crmsync.errors import ConfigError
from crmsync.policy import actions, classify, filters
from crmsync.policy.classify import Rule
from crmsync.policy.model import (
    DEFAULT_MAX_PERCENT,
    DEFAULT_MAX_RECORDS,
    DEFAULT_TIME_FIELD,
    POLICY_NAME_PATTERN,
    PSEUDO_FIELDS,
    Action,
    All,
    AnyOf,
    Condition,
    FieldRef,
    Filter,
    Not,
    Policy,
)
from crmsync.policy.sql import path_quotable
from crmsync.schema_text import describe, key_path, type_name

KnownFields = Mapping[tuple[str, str], Collection[str]]

# Action parameters that may also be written at the policy level, next to ``action = "..."``
# (``[[policies.rules]]`` reads better than ``[[policies.action.rules]]``).
HOISTED_PARAMS = ("rules", "match", "normalize", "default_region")

POLICY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "connection", "module", "action"],
    "properties": {
        "name": {"type": "string", "pattern": POLICY_NAME_PATTERN},
        "connection": {"type": "string", "minLength": 1},
        "module": {"type": "string", "minLength": 1},
        "action": {"type": ["string", "object"]},
        "filter": {"type": "object"},
        "enabled": {"type": "boolean"},
        "description": {"type": "string"},
        "max_records": {"type": "integer", "minimum": 1},
        "max_percent": {"type": "number", "exclusiveMinimum": 0, "maximum": 100},
        "require_approval": {"type": "boolean"},
        "auto_apply": {"type": "boolean"},
        **{key: {} for key in HOISTED_PARAMS},  # checked by the action's own schema
    },
}
# Actions whose policies may leave out ``filter`` (their rules say which records).
FILTER_OPTIONAL = ("classify",)

LOGICAL_KEYS = ("all", "any", "not")
TIME_OPS = ("older_than", "newer_than")
CONDITION_KEYS = ("field", "op", "value", *TIME_OPS)


@dataclass(frozen=True)
class Problem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


# --------------------------------------------------------------------------- entry points


def parse_policies(
    raw: Any,
    *,
    connections: Collection[str] | None = None,
    known_fields: KnownFields | None = None,
    source: str | None = None,
) -> list[Policy]:
    """Validated policies, or ConfigError (exit 2) naming the first problem's key path."""
    policies, problems = check_policies(raw, connections=connections, known_fields=known_fields)
    if problems:
        first = problems[0]
        message = first.message
        if len(problems) > 1:
            message += " (also: " + "; ".join(map(str, problems[1:4])) + ")"
        raise ConfigError(message, path=first.path, source=source)
    return policies


def check_policies(
    raw: Any,
    *,
    connections: Collection[str] | None = None,
    known_fields: KnownFields | None = None,
) -> tuple[list[Policy], list[Problem]]:
    """All policies that are valid, and every problem found (structure before meaning).

    ``connections``: the configured connection names (None: not checked). ``known_fields``:
    field names per (connection, module); a module not in it is not checked.
    """
    if not isinstance(raw, list):
        return [], [Problem("policies", "expected an array of tables ([[policies]])")]
    problems: list[Problem] = []
    policies: list[Policy] = []
    seen: dict[str, int] = {}
    for index, table in enumerate(raw):
        prefix = f"policies[{index}]"
        name = table.get("name") if isinstance(table, dict) else None
        if isinstance(name, str) and re.match(POLICY_NAME_PATTERN, name):
            if name in seen:
                problems.append(
                    Problem(
                        f"{prefix}.name",
                        f"duplicate policy name {name!r} (also policies[{seen[name]}])",
                    )
                )
            else:
                seen[name] = index
                prefix = f"policies.{name}"
        checker = _PolicyChecker(prefix, connections, known_fields)
        policy = checker.check(table)
        problems += checker.problems
        if policy is not None and not checker.problems:
            policies.append(policy)
    return policies, problems


# --------------------------------------------------------------------------- one policy


class _PolicyChecker:
    def __init__(
        self,
        prefix: str,
        connections: Collection[str] | None,
        known_fields: KnownFields | None,
    ):
        self.prefix = prefix
        self.connections = connections
        self.known_fields = known_fields
        self.problems: list[Problem] = []
        self.fields: Collection[str] | None = None

    def problem(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    def check(self, table: Any) -> Policy | None:
        if not isinstance(table, dict):
            self.problem(self.prefix, f"expected a table, got {type_name(table)}")
            return None
        self.schema(POLICY_SCHEMA, table, self.prefix)
        if self.problems:  # structure first: meaning checks would only add noise
            return None
        if self.connections is not None and table["connection"] not in self.connections:
            known = ", ".join(sorted(self.connections)) or "none configured"
            self.problem(
                f"{self.prefix}.connection",
                f"no connection named {table['connection']!r} (configured: {known})",
            )
        if self.known_fields is not None:
            self.fields = self.known_fields.get((table["connection"], table["module"]))
        hoisted = {k: table[k] for k in HOISTED_PARAMS if k in table}
        action = self.action(table["action"], f"{self.prefix}.action", hoisted)
        if "filter" in table:
            node = self.filter(table["filter"], f"{self.prefix}.filter")
        elif action is not None and action.type in FILTER_OPTIONAL:
            node = All(())
        else:
            self.problem(f"{self.prefix}.filter", "required key is missing")
            node = None
        rules = self.rules(action, hoisted) if action is not None else ()
        if action is None or node is None or rules is None:
            return None

        action_type = actions.registry[action.type]
        require_approval = table.get("require_approval", action_type.default_require_approval)
        auto_apply = table.get("auto_apply", False)
        if auto_apply and require_approval:
            why = "" if "require_approval" in table else f" (the default for {action.type})"
            self.problem(
                f"{self.prefix}.auto_apply",
                f"cannot apply automatically a policy that requires approval{why};"
                " set require_approval = false to allow it",
            )
        max_records, max_percent = table.get("max_records"), table.get("max_percent")
        if max_records is None and max_percent is None:
            max_records, max_percent = DEFAULT_MAX_RECORDS, DEFAULT_MAX_PERCENT
        return Policy(
            name=table["name"],
            connection=table["connection"],
            module=table["module"],
            action=action,
            filter=node,
            enabled=table.get("enabled", True),
            description=table.get("description", ""),
            max_records=max_records,
            max_percent=None if max_percent is None else float(max_percent),
            require_approval=require_approval,
            auto_apply=auto_apply,
            rules=rules,
        )

    # ------------------------------------------------------------------ structure helpers

    def schema(self, schema: Mapping[str, Any], instance: Any, path: str) -> bool:
        errors = sorted(
            Draft202012Validator(schema).iter_errors(instance),
            key=lambda e: [str(p) for p in e.absolute_path],
        )
        for error in errors:
            self.problem(*_describe(error, path))
        return not errors

    # ------------------------------------------------------------------ action

    def action(self, spec: Any, path: str, hoisted: dict[str, Any]) -> Action | None:
        if isinstance(spec, str):
            kind, params = spec, {}
            type_path = path
        else:
            if "type" not in spec:
                self.problem(f"{path}.type", "required key is missing")
                return None
            kind = spec["type"]
            params = {k: v for k, v in spec.items() if k != "type"}
            type_path = f"{path}.type"
        action_type = actions.registry.get(kind) if isinstance(kind, str) else None
        if action_type is None:
            self.problem(type_path, _unknown("action", kind, actions.registry.names()))
            return None
        for key in sorted(set(hoisted) & set(params)):
            self.problem(f"{self.prefix}.{key}", f"given twice: here and in action.{key}")
        params = {**params, **hoisted}

        def where(key: str) -> str:  # hoisted keys are reported where they were written
            return self.prefix if key in hoisted else path

        if isinstance(spec, str) and action_type.needs_params and not hoisted:
            needed = " or ".join(_needed(action_type.params_schema))
            self.problem(
                path,
                f"action {kind!r} needs {needed}: write action = {{ type = {kind!r}, {needed}"
                " = ... }",
            )
            return None
        errors = sorted(
            Draft202012Validator(action_type.params_schema).iter_errors(params),
            key=lambda e: [str(p) for p in e.absolute_path],
        )
        for error in errors:
            top = str(error.absolute_path[0]) if error.absolute_path else ""
            self.problem(*_describe(error, where(top)))
        if errors:
            return None
        for sub, message in action_type.validate(params):
            self.problem(f"{where(sub.split('.')[0].split('[')[0])}.{sub}", message)
        return Action(kind, params)

    def rules(self, action: Action, hoisted: dict[str, Any]) -> tuple[Rule, ...] | None:
        """Classify rules, their ``when`` filters checked like a policy's; None on problems."""
        if "rules" not in action.params:
            return ()
        base = self.prefix if "rules" in hoisted else f"{self.prefix}.action"
        out = []
        for i, raw in enumerate(action.params["rules"]):
            path = f"{base}.rules[{i}]"
            if not isinstance(raw, dict):
                self.problem(path, f"expected a table (when, tags, set), got {type_name(raw)}")
                continue
            if not self.schema(classify.RULE_SCHEMA, raw, path):
                continue
            for sub, message in classify.rule_problems(raw):
                self.problem(f"{path}.{sub}", message)
            when = self.filter(raw["when"], f"{path}.when") if "when" in raw else All(())
            if when is not None:
                out.append(
                    classify.Rule(
                        when=when,
                        tags=tuple(raw.get("tags") or ()),
                        set=dict(raw.get("set") or {}),
                        name=raw.get("name", ""),
                    )
                )
        if len(out) != len(action.params["rules"]):
            return None
        return tuple(out)

    # ------------------------------------------------------------------ filter

    def filter(self, node: Any, path: str) -> Filter | None:
        if not isinstance(node, dict):
            self.problem(
                path, f"expected a table (a condition, or all/any/not), got {type_name(node)}"
            )
            return None
        logical = [k for k in LOGICAL_KEYS if k in node]
        if logical:
            key = logical[0]
            if len(node) > 1:
                others = ", ".join(sorted(k for k in node if k != key))
                self.problem(path, f"a table with {key!r} cannot have other keys (found {others})")
                return None
            return self.logical(key, node[key], f"{path}.{key}")
        standalone = [k for k in node if getattr(filters.registry.get(k), "standalone", False)]
        if standalone:
            return self.standalone(standalone[0], node, path)
        return self.condition(node, path)

    def standalone(self, name: str, node: dict[str, Any], path: str) -> Condition | None:
        """``{ <op> = ..., <options> }``: the whole table is the op's value; field ``@id``."""
        op = filters.registry[name]
        if not self.schema(op.value_schema or {}, node, path):
            return None
        refs = [self.field(spec, f"{path}.{sub}") for sub, spec in op.field_specs(node).items()]
        problems = op.table_problems(node)
        for sub, message in problems:
            self.problem(f"{path}.{sub}", message)
        if problems or any(ref is None for ref in refs):
            return None
        return Condition(FieldRef.parse("@id"), name, node)

    def logical(self, key: str, value: Any, path: str) -> Filter | None:
        if key == "not":
            inner = self.filter(value, path)
            return None if inner is None else Not(inner)
        if not isinstance(value, list):
            self.problem(path, f"expected an array of conditions, got {type_name(value)}")
            return None
        items = [self.filter(item, f"{path}[{i}]") for i, item in enumerate(value)]
        if any(item is None for item in items):
            return None
        return All(tuple(items)) if key == "all" else AnyOf(tuple(items))

    def condition(self, node: dict[str, Any], path: str) -> Condition | None:
        unknown = sorted(k for k in node if k not in CONDITION_KEYS)
        if unknown:
            self.problem(
                f"{path}.{unknown[0]}",
                "unknown key; a condition has field, op, value (or older_than/newer_than),"
                " and all/any/not combine conditions",
            )
            return None
        timed = [k for k in TIME_OPS if k in node]
        if timed:
            if len(timed) > 1 or "op" in node or "value" in node:
                self.problem(path, "use one of older_than, newer_than or op/value in a condition")
                return None
            op_name, value, value_path = timed[0], node[timed[0]], f"{path}.{timed[0]}"
            field_spec = node.get("field", DEFAULT_TIME_FIELD)
        else:
            for key in ("field", "op"):
                if key not in node:
                    self.problem(f"{path}.{key}", "required key is missing")
                    return None
            op_name, value, value_path = node["op"], node.get("value"), f"{path}.value"
            field_spec = node["field"]

        ref = self.field(field_spec, f"{path}.field")
        op = filters.registry.get(op_name) if isinstance(op_name, str) else None
        if op is not None and op.standalone:
            self.problem(f"{path}.op", f"{op_name} is a table of its own: {{ {op_name} = ... }}")
            return None
        if op is None:
            ops = [n for n in filters.registry.names() if not filters.registry[n].standalone]
            self.problem(f"{path}.op", _unknown("op", op_name, ops))
            return None
        if ref is None:
            return None
        if op.value_schema is None:
            if "value" in node:
                self.problem(value_path, f"op {op_name!r} takes no value")
                return None
        elif not timed and "value" not in node:
            self.problem(value_path, f"required key is missing (op {op_name!r} needs a value)")
            return None
        elif not self.schema(op.value_schema, value, value_path):
            return None
        else:
            problem = op.validate(value, ref)
            if problem:
                self.problem(value_path, problem)
                return None
        return Condition(ref, op_name, value)

    def field(self, spec: Any, path: str) -> FieldRef | None:
        if isinstance(spec, str):
            keys = [spec]
        elif isinstance(spec, list) and spec and all(isinstance(k, str) for k in spec):
            keys = spec
        else:
            self.problem(path, "expected a field name, or an array of keys for a nested field")
            return None
        if any(k == "" or "\x00" in k for k in keys):
            self.problem(path, "a field name cannot be empty or contain NUL")
            return None
        if len(keys) > 1 and not all(path_quotable(k) for k in keys):
            self.problem(
                path, "a nested field path cannot contain quotes, backslashes or control characters"
            )
            return None
        pseudo = isinstance(spec, str) and spec.startswith("@") and not spec.startswith("@@")
        if pseudo and spec not in PSEUDO_FIELDS:
            self.problem(
                path,
                _unknown("record field", spec, sorted(PSEUDO_FIELDS))
                + " (write '@@name' for a CRM field named '@name')",
            )
            return None
        ref = FieldRef.parse(spec)
        if self.fields is not None and ref.path and ref.path[0] not in self.fields:
            hint = difflib.get_close_matches(ref.path[0], list(self.fields), n=1)
            maybe = f"; did you mean {hint[0]!r}?" if hint else ""
            self.problem(path, f"unknown field {ref.path[0]!r} for this module{maybe}")
            return None
        return ref


# --------------------------------------------------------------------------- fields


def mirror_fields(
    source: sqlite3.Connection | Any, connection: str, module: str, *, limit: int = 10_000
) -> set[str] | None:
    """Top-level field names of up to ``limit`` live mirrored records; None when there are none.

    ``source`` is a sqlite3 connection to the store, or a Store (read through its public
    ``iter_records``). A field present in none of the sampled records counts as unknown.
    """
    if isinstance(source, sqlite3.Connection):
        rows = source.execute(
            "SELECT DISTINCT j.key FROM (SELECT data FROM mirror WHERE connection = ?"
            " AND module = ? AND crm_deleted_at IS NULL LIMIT ?) AS m, json_each(m.data) AS j",
            (connection, module, limit),
        ).fetchall()
        if rows:
            return {key for (key,) in rows}
        any_row = source.execute(
            "SELECT 1 FROM mirror WHERE connection = ? AND module = ?"
            " AND crm_deleted_at IS NULL LIMIT 1",
            (connection, module),
        ).fetchone()
        return set() if any_row else None
    keys: set[str] = set()
    seen = False
    for record in itertools.islice(source.iter_records(connection, module), limit):
        seen = True
        keys.update(record.data)
    return keys if seen else None


# --------------------------------------------------------------------------- messages


def _needed(schema: Mapping[str, Any]) -> list[str]:
    if schema.get("required"):
        return [", ".join(schema["required"])]
    return [", ".join(alt["required"]) for alt in schema.get("anyOf", [])]


def _unknown(kind: str, got: Any, known: list[str]) -> str:
    hint = difflib.get_close_matches(got, known, n=1) if isinstance(got, str) else []
    maybe = f"did you mean {hint[0]!r}? " if hint else ""
    return f"unknown {kind} {got!r}; {maybe}expected one of: {', '.join(known)}"


def _describe(error: ValidationError, prefix: str) -> tuple[str, str]:
    path = key_path(prefix, error.absolute_path)
    v = error.validator
    if v == "type" and isinstance(error.instance, date | datetime):
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        return path, (
            f"expected {expected}, got {type_name(error.instance)} (quote it as a string, or"
            " use older_than/newer_than for relative times)"
        )
    if v == "pattern" and error.validator_value == POLICY_NAME_PATTERN:
        return path, (
            f"policy name {error.instance!r} must start with a letter and use letters and"
            " digits separated by single - or _"
        )
    if v == "pattern" and "smhdwy" in str(error.validator_value):
        return path, (
            f"expected a duration such as '365d' (units s, m = minutes, h, d, w, y), got"
            f" {error.instance!r}"
        )
    if isinstance(error.instance, float) and not math.isfinite(error.instance):
        return path, "value must be a finite number"
    return describe(error, prefix)
