"""The ``[erasure]`` table: limits and defaults of ``crmsync erase``.

```toml
[erasure]
max_records = 20          # an erasure matching more records is refused (exit 3); --max lowers it
default_region = "CN"     # region of --phone numbers and stored numbers written without +CC
```
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator

from crmsync.cleaning.phones import region_problem, supported_region
from crmsync.errors import ConfigError
from crmsync.schema_text import describe

DEFAULT_MAX_RECORDS = 20  # one person rarely has more; more usually means a shared address

ERASURE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "max_records": {"type": "integer", "minimum": 1, "maximum": 100000},
        "default_region": {"type": "string", "minLength": 1},
    },
}


@dataclass(frozen=True)
class ErasureConfig:
    max_records: int = DEFAULT_MAX_RECORDS
    default_region: str | None = None


def check_erasure(table: Any, source: str | None = None) -> ErasureConfig:
    """The validated ``[erasure]`` table, or ConfigError (exit 2) naming the key path."""
    errors = sorted(
        Draft202012Validator(ERASURE_SCHEMA).iter_errors(table),
        key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))),
    )
    if errors:
        path, message = describe(errors[0], "erasure")
        raise ConfigError(message, path=path, source=source)
    region = table.get("default_region")
    if region is not None and not supported_region(region):
        raise ConfigError(region_problem(region), path="erasure.default_region", source=source)
    return ErasureConfig(table.get("max_records", DEFAULT_MAX_RECORDS), region)


def erasure_of(config: Any) -> ErasureConfig:
    """The ``[erasure]`` table of a loaded :class:`~crmsync.config.Config`."""
    return check_erasure(config.raw.get("erasure", {}))
