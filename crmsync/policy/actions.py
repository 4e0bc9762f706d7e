"""The action registry: what a policy does to the records its filter selects.

Each action declares the JSON schema of its parameters (the keys of ``action = { type = ...,
... }`` besides ``type``), which lifecycle statuses it applies to (the compiled query selects
only those, so an archive policy never counts already-archived records), and whether it needs
approval by default. Executing actions is the engine's job, not this module's.
"""

from __future__ import annotations

from typing import Any

from crmsync.policy.model import Registry


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
        return bool(self.params_schema.get("required"))


registry: Registry[ActionType] = Registry("action")
register = registry.register


@register("archive")
class Archive(ActionType):
    from_statuses = ("active",)


@register("void")
class Void(ActionType):
    from_statuses = ("active", "archived")
    default_require_approval = True  # DESIGN.md: voiding needs approval when the policy says so


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
    params_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["fields"],
        "properties": {
            "fields": {
                "type": "object",
                "minProperties": 1,
                "additionalProperties": {"type": ["string", "number", "boolean"]},
            }
        },
    }

    def validate(self, params: dict[str, Any]) -> list[tuple[str, str]]:
        return [
            (f"fields.{key}", "field names starting with '@' are crmsync's, not the CRM's")
            for key in params.get("fields", {})
            if key.startswith("@")
        ]
