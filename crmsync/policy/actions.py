"""The action registry: what a policy does to the records its filter selects.

Each action declares the JSON schema of its parameters (the keys of ``action = { type = ...,
... }`` besides ``type``), which lifecycle statuses it applies to (the compiled query selects
only those, so an archive policy never counts already-archived records), and whether it needs
approval by default. Executing actions is the engine's job, not this module's.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from crmsync.policy import classify, normalize
from crmsync.policy.model import Registry

if TYPE_CHECKING:
    from crmsync.policy.filters import SqlParams
    from crmsync.policy.model import Policy


class ActionType:
    name: str = ""
    params_schema: dict[str, Any] = {"type": "object", "additionalProperties": False}
    from_statuses: tuple[str, ...] | None = ("active",)  # None: any status
    default_require_approval = False

    def validate(self, params: dict[str, Any]) -> list[tuple[str, str]]:
        """(key under the action, message) for each problem of meaning."""
        return []

    @property
    def needs_params(self) -> bool:
        return bool(self.params_schema.get("required") or self.params_schema.get("anyOf"))

    def operation(self, params: Mapping[str, Any]) -> str:
        """The connector operation that carries this action out (its name, by default)."""
        return self.name

    def computes_values(self, params: Mapping[str, Any]) -> bool:
        """Whether each record gets values of its own (then :meth:`detail_sql` says them)."""
        return False

    def detail_sql(self, policy: Policy, now: datetime) -> SqlParams | None:
        """A SQL expression over a mirror row giving the record's per-record plan detail
        (JSON text; NULL: the record is not planned), or None when every record is changed
        alike (the default)."""
        return None


registry: Registry[ActionType] = Registry("action")
register = registry.register


@register("archive")
class Archive(ActionType):
    from_statuses = ("active",)


@register("void")
class Void(ActionType):
    from_statuses = ("active", "archived")
    default_require_approval = True  # DESIGN.md: voiding needs approval when the policy says so


@register("purge")
class Purge(ActionType):
    """Delete voided records for good. The planner ANDs retention to the filter (voided past
    ``purge_voided_after``, no legal hold, statutory floor passed: crmsync.compliance.purge);
    apply checks again and deletes only after a verified snapshot."""

    from_statuses = ("voided",)
    default_require_approval = True  # 4-eyes: the one change that cannot be undone


@register("restore")
class Restore(ActionType):
    from_statuses = ("archived", "voided")


@register("tag")
class Tag(ActionType):
    params_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["tags"],
        "properties": {
            "tags": {
                "type": "array",
                "minItems": 1,
                "uniqueItems": True,
                "items": {"type": "string", "minLength": 1},
            }
        },
    }
    from_statuses = None


@register("update")
class Update(ActionType):
    """Fixed values (``fields``) or values computed per record (``normalize``, see
    :mod:`crmsync.policy.normalize`)."""

    params_schema = {
        "type": "object",
        "additionalProperties": False,
        "anyOf": [{"required": ["fields"]}, {"required": ["normalize"]}],
        "properties": {
            "fields": {
                "type": "object",
                "minProperties": 1,
                "additionalProperties": {"type": ["string", "number", "boolean"]},
            },
            "normalize": normalize.NORMALIZE_SCHEMA,
            "default_region": {"type": "string", "minLength": 1},
        },
    }

    def validate(self, params: dict[str, Any]) -> list[tuple[str, str]]:
        out = [
            (f"fields.{key}", "field names starting with '@' are crmsync's, not the CRM's")
            for key in params.get("fields", {})
            if key.startswith("@")
        ]
        if "fields" in params and "normalize" in params:
            out.append(("normalize", "use fields (fixed values) or normalize, not both"))
        if "default_region" in params and "normalize" not in params:
            out.append(("default_region", "only normalize reads phone numbers"))
        return out + normalize.problems(params)

    def computes_values(self, params: Mapping[str, Any]) -> bool:
        return "normalize" in params

    def detail_sql(self, policy: Policy, now: datetime) -> SqlParams | None:
        if "normalize" not in policy.action.params:
            return None
        spec = normalize.spec_text(dict(policy.action.params))
        return f"{normalize.SQL_FUNCTION}(?, data)", [spec]


@register("classify")
class Classify(ActionType):
    """Rules that tag records or set fields (see :mod:`crmsync.policy.classify`)."""

    params_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["rules"],
        "properties": {
            "rules": classify.RULES_SCHEMA,
            "match": {"enum": list(classify.MATCH)},
        },
    }
    from_statuses = ("active", "archived")

    def operation(self, params: Mapping[str, Any]) -> str:
        return classify.operation(params)

    def computes_values(self, params: Mapping[str, Any]) -> bool:
        return True

    def detail_sql(self, policy: Policy, now: datetime) -> SqlParams | None:
        from crmsync.policy.filters import Scope

        mask, params = classify.mask_sql(policy.rules, now, Scope(policy.connection, policy.module))
        spec = classify.spec_text(dict(policy.action.params))
        return f"{classify.SQL_FUNCTION}(?, {mask}, data)", [spec, *params]
