"""Modules and fields from Zoho's metadata APIs, cached for the session (one call each)."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from crmsync.errors import BadResponseError, ConnectorError
from crmsync.hookspecs import FieldInfo
from crmsync.http import json_body
from crmsync_connectors.zoho.api import ZohoApi

MODIFIED_FIELD = "Modified_Time"

# Zoho data_type -> crmsync FieldInfo.type
_TYPES = {
    "integer": "integer",
    "bigint": "integer",
    "autonumber": "string",
    "double": "number",
    "currency": "number",
    "decimal": "number",
    "percent": "number",
    "boolean": "boolean",
    "datetime": "datetime",
    "date": "date",
    "lookup": "json",
    "ownerlookup": "json",
    "multiselectpicklist": "json",
    "multiselectlookup": "json",
    "subform": "json",
    "userlookup": "json",
    "profileimage": "string",
}


@dataclass(frozen=True)
class ZohoField:
    api_name: str
    data_type: str
    label: str | None = None

    def info(self) -> FieldInfo:
        return FieldInfo(self.api_name, _TYPES.get(self.data_type, "string"), self.label)


class Metadata:
    """``modules()`` and ``fields(module)``, each fetched once per session."""

    def __init__(self, api: ZohoApi) -> None:
        self.api = api
        self._modules: dict[str, dict] | None = None
        self._fields: dict[str, list[ZohoField]] = {}
        self._lock = threading.Lock()

    def modules(self) -> dict[str, dict]:
        with self._lock:
            if self._modules is None:
                response, _ = self.api.request("metadata", "GET", "/settings/modules")
                body = json_body(response) if response.status_code != 204 else {}
                items = body.get("modules") if isinstance(body, dict) else None
                if not isinstance(items, list):
                    raise BadResponseError(
                        "GET /settings/modules answered without a module list",
                        connection=self.api.name,
                    )
                self._modules = {
                    str(m["api_name"]): m for m in items if isinstance(m, dict) and "api_name" in m
                }
            return self._modules

    def require_module(self, module: str) -> dict:
        known = self.modules()
        if module not in known:
            raise ConnectorError(
                f"Zoho has no module {module!r} (API names are case-sensitive; the org has: "
                f"{', '.join(sorted(known)) or 'none'})",
                connection=self.api.name,
                module=module,
            )
        meta = known[module]
        if meta.get("api_supported") is False:
            raise ConnectorError(
                f"Zoho module {module!r} is not available through the API (api_supported false)",
                connection=self.api.name,
                module=module,
            )
        return meta

    def fields(self, module: str) -> list[ZohoField]:
        with self._lock:
            cached = self._fields.get(module)
        if cached is not None:
            return cached
        response, _ = self.api.request(
            "metadata", "GET", "/settings/fields", module=module, params={"module": module}
        )
        items: list = []
        if response.status_code != 204:
            body = json_body(response, {"connection": self.api.name, "module": module})
            items = body.get("fields") if isinstance(body, dict) else None
            if not isinstance(items, list):
                raise BadResponseError(
                    "GET /settings/fields answered without a field list",
                    connection=self.api.name,
                    module=module,
                )
        fields = [
            ZohoField(
                str(f["api_name"]),
                str(f.get("data_type") or "text"),
                f.get("field_label") if isinstance(f.get("field_label"), str) else None,
            )
            for f in items
            if isinstance(f, dict) and f.get("api_name")
        ]
        with self._lock:
            self._fields[module] = fields
        return fields
