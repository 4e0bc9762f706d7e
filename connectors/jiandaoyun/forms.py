"""A form's widgets from ``widget/list`` (one call per form per session) and the mapping
between the names the API uses and the keys admins and policies use.

Jiandaoyun names a field by its widget id (``_widget_1432728651402``) or, when the admin set
one (数据推送 > 字段别名), by its alias: the API then uses the alias everywhere, for reads and
writes (open/10993). ``name`` below is that API name. With ``field_keys = "label"`` the mirror
keys fields by their titles instead; writes always map back to the API name. Configured field
names (``fields``, ``status.field``) may be any of widget id, alias or label.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from crmsync.errors import BadResponseError, ConnectorError
from crmsync.hookspecs import FieldInfo
from crmsync_connectors.jiandaoyun.api import JiandaoyunApi
from crmsync_connectors.jiandaoyun.settings import FormSettings

log = logging.getLogger(__name__)

ID_FIELD = "_id"
MODIFIED_FIELD = "updateTime"
#: System fields of every record (open/10993); read-only through the API.
SYSTEM_FIELDS: dict[str, str] = {
    "_id": "string",
    "appId": "string",
    "entryId": "string",
    "creator": "json",
    "updater": "json",
    "deleter": "json",
    "createTime": "datetime",
    "updateTime": "datetime",
    "deleteTime": "datetime",
    "flowState": "integer",
}

# Jiandaoyun widget type -> crmsync FieldInfo.type
_TYPES = {
    "number": "number",
    "datetime": "datetime",
    "checkboxgroup": "json",
    "combocheck": "json",
    "address": "json",
    "location": "json",
    "image": "json",
    "upload": "json",
    "subform": "json",
    "user": "json",
    "usergroup": "json",
    "dept": "json",
    "deptgroup": "json",
    "phone": "json",
    "linkdata": "json",
    "signature": "json",
}


@dataclass(frozen=True)
class Widget:
    name: str  # the API name: alias if set, else the _widget_ id
    widget_id: str  # the _widget_ id (== name when there is no alias)
    label: str
    type: str
    options: tuple[str, ...] = ()  # option texts of radiogroup / combo / checkbox widgets


class Form:
    """The widgets of one form and the key <-> API name mapping for this connection."""

    def __init__(self, settings: FormSettings, widgets: list[Widget], field_keys: str) -> None:
        self.settings = settings
        self.widgets = widgets
        self.by_name = {w.name: w for w in widgets}
        self.field_keys = field_keys
        # key (what the mirror and policies see) <-> API name
        self.key_of: dict[str, str] = {name: name for name in SYSTEM_FIELDS}
        if field_keys == "label":
            taken = set(SYSTEM_FIELDS)
            for w in widgets:
                key = w.label if w.label and w.label not in taken else w.name
                if key != w.label:
                    log.warning(
                        "form %s: label %r is not unique; field %s keeps its API name",
                        settings.name, w.label, w.name,
                    )  # fmt: skip
                taken.add(key)
                self.key_of[w.name] = key
        else:
            self.key_of.update({w.name: w.name for w in widgets})
        self.name_of = {key: name for name, key in self.key_of.items()}

    def resolve(self, ref: str, *, connection: str, what: str = "field") -> Widget:
        """A configured field reference (widget id, alias or label) -> its widget."""
        if ref in self.by_name:
            return self.by_name[ref]
        matches = [w for w in self.widgets if ref in (w.widget_id, w.label)]
        if len(matches) == 1:
            return matches[0]
        known = ", ".join(f"{w.label} ({w.name})" for w in self.widgets) or "none"
        why = "is ambiguous: several widgets have that label" if matches else "is not on the form"
        raise ConnectorError(
            f"{what} {ref!r} {why} (app_id {self.settings.app_id}, entry_id "
            f"{self.settings.entry_id}; widgets: {known})",
            connection=connection,
            module=self.settings.name,
        )

    def api_names(self, refs: Iterable[str], *, connection: str) -> list[str]:
        return [self.resolve(r, connection=connection).name for r in refs]

    def key(self, api_name: str) -> str:
        return self.key_of.get(api_name, api_name)

    def to_api(self, key: str, *, connection: str) -> str | None:
        """The API name a mirror key writes to; None for a read-only system field. An unknown
        key is a ConnectorError naming the module and the form's widgets."""
        if key in SYSTEM_FIELDS:
            return None
        if key in self.name_of:
            return self.name_of[key]
        return self.resolve(key, connection=connection).name

    def field_infos(self) -> tuple[FieldInfo, ...]:
        infos = [FieldInfo(k, t, k) for k, t in SYSTEM_FIELDS.items()]
        infos += [
            FieldInfo(self.key(w.name), _TYPES.get(w.type, "string"), w.label) for w in self.widgets
        ]
        return tuple(infos)

    def record_data(self, record: Mapping[str, Any]) -> dict[str, Any]:
        if self.field_keys == "name":
            return dict(record)
        return {self.key(k): v for k, v in record.items()}


def parse_widgets(body: Mapping[str, Any], *, connection: str, module: str) -> list[Widget]:
    items = body.get("widgets")
    if not isinstance(items, list):
        raise BadResponseError(
            "widget/list answered without a widget list", connection=connection, module=module
        )
    widgets = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise BadResponseError(
                f"widget/list answered a widget without a name: {str(item)[:100]}",
                connection=connection,
                module=module,
            )
        options = []
        for opt in item.get("items") or ():
            # Assumption: option items are {"text", "value"} (or plain strings in old forms).
            text = opt.get("value", opt.get("text")) if isinstance(opt, dict) else opt
            if isinstance(text, str):
                options.append(text)
        name = item["name"]
        widgets.append(
            Widget(
                name=name,
                widget_id=str(item.get("widgetName") or name),
                label=str(item.get("label") or name),
                type=str(item.get("type") or "text"),
                options=tuple(options),
            )
        )
    return widgets


class Forms:
    """``form(module)``: widget/list fetched once per module per session."""

    def __init__(self, api: JiandaoyunApi, modules: Mapping[str, FormSettings], field_keys: str):
        self.api = api
        self.modules = modules
        self.field_keys = field_keys
        self._forms: dict[str, Form] = {}
        self._lock = threading.Lock()

    def form(self, module: str) -> Form:
        with self._lock:
            cached = self._forms.get(module)
        if cached is not None:
            return cached
        spec = self.modules[module]
        body, _, _ = self.api.call(
            "metadata",
            "widget/list",
            {"app_id": spec.app_id, "entry_id": spec.entry_id},
            module=module,
        )
        widgets = parse_widgets(body, connection=self.api.name, module=module)
        form = Form(spec, widgets, self.field_keys)
        self._check_status(form)
        with self._lock:
            self._forms[module] = form
        return form

    def _check_status(self, form: Form) -> None:
        status = form.settings.status
        if status is None:
            return
        widget = form.resolve(status.field, connection=self.api.name, what="status field")
        if widget.options:
            missing = [v for v in status.values.values() if v not in widget.options]
            if missing:
                raise ConnectorError(
                    f"status field {status.field!r} ({widget.name}) has no option "
                    f"{', '.join(repr(m) for m in missing)} (options: "
                    f"{', '.join(widget.options)}); add it to the widget or fix status.values",
                    connection=self.api.name,
                    module=form.settings.name,
                )
