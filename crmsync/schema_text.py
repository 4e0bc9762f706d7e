"""Turn JSON Schema errors into what an admin reads: a key path and what was expected.

Shared by the config loader and policy validation, so every error has the same shape
(``connections.sales.paginator.type: expected one of ...``). A value whose schema says
``"secret": true`` is never echoed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, time
from typing import Any

from jsonschema import ValidationError


def key_path(prefix: str, parts: Iterable[Any]) -> str:
    """``key_path("connections.x", ["auth", "token"])`` -> ``connections.x.auth.token``;
    list positions render as ``[2]``."""
    out = prefix
    for part in parts:
        out = f"{out}[{part}]" if isinstance(part, int) else (f"{out}.{part}" if out else part)
    return out


def type_name(value: Any) -> str:
    """A TOML user's name for a value's type ("a table", not "dict")."""
    for py, name in (
        (bool, "a boolean"),
        (int, "an integer"),
        (float, "a number"),
        (str, "a string"),
        (list, "an array"),
        (dict, "a table"),
        (datetime, "a TOML date-time"),
        (date, "a TOML date"),
        (time, "a TOML time"),
    ):
        if isinstance(value, py):
            return name
    return type(value).__name__


def describe(error: ValidationError, prefix: str) -> tuple[str, str]:
    """(key path, message) for one schema error."""
    path = key_path(prefix, error.absolute_path)
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    secret = bool(schema.get("secret"))
    shown = "<hidden>" if secret else repr(error.instance)
    v = error.validator
    if v == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        key = key_path(path, [extra[0]]) if extra else path
        return key, f"unknown key; expected one of: {', '.join(allowed)}"
    if v == "required":
        missing = error.message.split("'")[1] if "'" in error.message else "?"
        return key_path(path, [missing]), "required key is missing"
    if v == "enum":
        choices = ", ".join(repr(c) for c in error.validator_value)
        return path, f"expected one of {choices}; got {shown}"
    if v == "const":
        return path, f"expected {error.validator_value!r}; got {shown}"
    if v == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        return path, f"expected {expected}, got {type_name(error.instance)}"
    if secret:
        return path, f"invalid value <hidden> ({v})" if v != "secret" else error.message
    return path, error.message
