"""The REST connector reads each record's lifecycle status from the CRM (status_field)."""

from __future__ import annotations

from crmsync.hookspecs import SecretRef, StatusChange
from crmsync.sandbox import SandboxCRM
from crmsync.sandbox.connection import sandbox_connection_settings
from crmsync_connectors.rest.connector import RestConnector


def settings(api_url: str, **module_defaults):
    s = sandbox_connection_settings(api_url, concurrency=2)
    s["auth"]["token"] = SecretRef("env:T", "auth.token", lambda ref, path: "sandbox-token")
    s["module_defaults"].update(module_defaults)
    return s


def test_pulled_records_carry_the_crm_lifecycle_status():
    with SandboxCRM(records=200, seed=9) as crm:
        crm.start()
        session = RestConnector().open("sb", settings(crm.api_url))
        ids = sorted(crm.ids("Leads"))[:3]
        session.push("Leads", [StatusChange(ids[0], "archive"), StatusChange(ids[1], "void")])
        pulled = {r.id: r for p in session.pull("Leads") for r in p.records}
        assert pulled[ids[0]].status == "archived"
        assert pulled[ids[1]].status == "voided"
        assert pulled[ids[2]].status == "active"
        assert session.list_modules()[0].status_field == "status"
        session.close()


def test_unlisted_values_are_active_and_values_compare_as_json():
    with SandboxCRM(records=50, seed=9) as crm:
        crm.start()
        s = settings(
            crm.api_url,
            status_field="status",
            status_values={"archived": ["archived", "voided"], "voided": True},
        )
        session = RestConnector().open("sb", s)
        module = session._module("Leads")
        assert module.status_by_value == {
            '"archived"': "archived",
            '"voided"': "archived",
            "true": "voided",
        }
        statuses = {r.status for p in session.pull("Leads") for r in p.records}
        assert statuses == {"active"}
        session.close()


def test_without_status_field_status_is_unknown():
    with SandboxCRM(records=50, seed=9) as crm:
        crm.start()
        s = settings(crm.api_url)
        del s["module_defaults"]["status_field"], s["module_defaults"]["status_values"]
        session = RestConnector().open("sb", s)
        assert {r.status for p in session.pull("Leads") for r in p.records} == {None}
        session.close()
