"""What a policy *is*, once validated: plain frozen dataclasses, plus the tiny registry type
that filter ops and actions are kept in (Cloud Custodian's ``PluginRegistry``, reduced).

Nothing here parses TOML or writes SQL: :mod:`crmsync.policy.validate` builds these objects,
:mod:`crmsync.policy.sql` compiles them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Generic, TypeVar

# A policy that sets neither guard gets both (DESIGN.md "Blast radius"; Custodian's advice).
DEFAULT_MAX_PERCENT = 5.0
DEFAULT_MAX_RECORDS = 500

# Custodian's policy-name pattern, also allowing '_' as a separator.
POLICY_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9]*([-_][A-Za-z0-9]+)*$"

LIFECYCLE_STATUSES = ("active", "archived", "voided")

# Mirror columns a filter can address. '@' cannot start an ordinary field name in the CRMs we
# know (Jiandaoyun uses '_id' and '_widget_...', so '_' would clash); a CRM field that really
# starts with '@' is written with the '@' doubled ("@@odata.etag" is the data key "@odata.etag").
PSEUDO_FIELDS: dict[str, str] = {
    "@id": "record_id",
    "@status": "status",
    "@modified_at": "modified_at",
}
DEFAULT_TIME_FIELD = "@modified_at"

DURATION_PATTERN = r"^([0-9]+)\s*([smhdwy])$"
_DURATION_UNITS = {
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
    "y": timedelta(days=365),  # a fixed 365 days: no calendar arithmetic in a retention rule
}


def parse_duration(text: str) -> timedelta:
    """``"365d"`` -> 365 days. Units: s, m (minutes), h, d, w, y (= 365 d). Raises ValueError."""
    match = re.match(DURATION_PATTERN, text.strip()) if isinstance(text, str) else None
    if not match:
        raise ValueError(
            f"expected a duration such as '30d' (units s, m, h, d, w, y), got {text!r}"
        )
    return int(match.group(1)) * _DURATION_UNITS[match.group(2)]


# --------------------------------------------------------------------------- filters


@dataclass(frozen=True)
class FieldRef:
    """Where a condition looks: a mirror column (``column``) or a path of keys into ``data``.

    ``path`` has one key for ``field = "Name"`` (dots are part of the name, never a path) and
    several for ``field = ["Owner", "name"]``.
    """

    path: tuple[str, ...] = ()
    column: str | None = None

    @property
    def label(self) -> str:
        if self.column:
            return next(k for k, v in PSEUDO_FIELDS.items() if v == self.column)
        return self.path[0] if len(self.path) == 1 else ".".join(self.path)

    @classmethod
    def parse(cls, spec: str | list[str]) -> FieldRef:
        if isinstance(spec, str):
            if spec in PSEUDO_FIELDS:
                return cls(column=PSEUDO_FIELDS[spec])
            if spec.startswith("@@"):
                return cls(path=(spec[1:],))
            return cls(path=(spec,))
        return cls(path=tuple(spec))


@dataclass(frozen=True)
class Condition:
    field: FieldRef
    op: str
    value: Any = None


@dataclass(frozen=True)
class All:
    items: tuple[Filter, ...]


@dataclass(frozen=True)
class AnyOf:
    items: tuple[Filter, ...]


@dataclass(frozen=True)
class Not:
    item: Filter


Filter = Condition | All | AnyOf | Not


# --------------------------------------------------------------------------- policies


@dataclass(frozen=True)
class Action:
    type: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Policy:
    name: str
    connection: str
    module: str
    action: Action
    filter: Filter
    enabled: bool = True
    description: str = ""
    max_records: int | None = None
    max_percent: float | None = None
    require_approval: bool = False
    auto_apply: bool = False
    rules: tuple[Any, ...] = ()  # classify: crmsync.policy.classify.Rule, in order


# --------------------------------------------------------------------------- registry

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> element. ``@registry.register("name")`` on a class registers an instance of it.

    Plugins extend the language the same way the built-ins are defined, e.g.::

        from crmsync.policy import filters

        @filters.registry.register("longer_than")
        class LongerThan(filters.FilterOp): ...
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, *, replace: bool = False) -> Callable[[type], type]:
        def decorate(cls: type) -> type:
            if name in self._items and not replace:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            cls.name = name
            self._items[name] = cls()
            return cls

        return decorate

    def unregister(self, name: str) -> None:
        self._items.pop(name, None)

    def get(self, name: str) -> T | None:
        return self._items.get(name)

    def __getitem__(self, name: str) -> T:
        return self._items[name]

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def names(self) -> list[str]:
        return sorted(self._items)
