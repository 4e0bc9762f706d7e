"""The fake Zoho org's modules and fields (what ``/settings/modules`` and ``/settings/fields``
answer, and what writes are validated against).

Field api_names, data types and picklist values follow Zoho CRM's standard modules. Leads has
more than 50 fields (so a v8 client needs field groups); ``Site_Visits`` is a custom module
without ``Modified_Time`` (so a client needs its full-pull fallback).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# The org's users; records are owned by them. The first is the API user (writes are by it).
USERS: tuple[dict[str, str], ...] = (
    {"name": "Patricia Boyle", "id": "5725767000000411001", "email": "patricia.boyle@fake.zoho"},
    {"name": "张敏", "id": "5725767000000411002", "email": "zhang.min@fake.zoho"},
    {"name": "李强", "id": "5725767000000411003", "email": "li.qiang@fake.zoho"},
    {"name": "Emily Chen", "id": "5725767000000411004", "email": "emily.chen@fake.zoho"},
    {"name": "David Wilson", "id": "5725767000000411005", "email": "david.wilson@fake.zoho"},
)
API_USER = USERS[0]

NONE = "-None-"
LEAD_STATUS = (NONE, "Attempted to Contact", "Contact in Future", "Contacted", "Junk Lead",
               "Lost Lead", "Not Contacted", "Pre-Qualified", "Not Qualified")  # fmt: skip
LEAD_SOURCE = (NONE, "Advertisement", "Cold Call", "Employee Referral", "External Referral",
               "Online Store", "X (Twitter)", "Facebook", "Partner", "Public Relations",
               "Sales Email Alias", "Seminar Partner", "Internal Seminar", "Trade Show",
               "Web Download", "Web Research", "Chat")  # fmt: skip
INDUSTRY = (NONE, "ASP (Application Service Provider)", "Data/Telecom OEM",
            "ERP (Enterprise Resource Planning)", "Government/Military", "Large Enterprise",
            "ManagementISV", "MSP (Management Service Provider)", "Network Equipment Enterprise",
            "Non-management ISV", "Optical Networking", "Service Provider",
            "Small/Medium Enterprise", "Storage Equipment", "Storage Service Provider",
            "Systems Integrator", "Wireless Industry")  # fmt: skip
RATING = (NONE, "Acquired", "Active", "Market Failed", "Project Cancelled", "Shut Down")
SALUTATION = (NONE, "Mr.", "Mrs.", "Ms.", "Dr.", "Prof.")
ACCOUNT_TYPE = (NONE, "Analyst", "Competitor", "Customer", "Distributor", "Integrator",
                "Investor", "Other", "Partner", "Press", "Prospect", "Reseller",
                "Vendor")  # fmt: skip
OWNERSHIP = (NONE, "Other", "Private", "Public", "Subsidiary", "Partnership", "Government")
DEAL_STAGE = ("Qualification", "Needs Analysis", "Value Proposition", "Identify Decision Makers",
              "Proposal/Price Quote", "Negotiation/Review", "Closed Won", "Closed Lost",
              "Closed Lost to Competition")  # fmt: skip
DEAL_TYPE = (NONE, "Existing Business", "New Business")
RECORD_STATUS = (NONE, "Active", "Archived", "Void")  # the custom write-back picklist
LANGUAGES = (NONE, "中文", "English", "日本語", "Deutsch")
BUDGET = (NONE, "< 10k", "10k-50k", "50k-200k", "> 200k")
VISIT_TYPE = (NONE, "On-site", "Remote", "Trade Show")

# data_type -> json_type, as Zoho's fields metadata pairs them
JSON_TYPES = {
    "text": "string", "textarea": "string", "email": "string", "phone": "string",
    "website": "string", "picklist": "string", "date": "string", "datetime": "string",
    "autonumber": "string", "integer": "integer", "bigint": "integer", "currency": "double",
    "double": "double", "boolean": "boolean", "ownerlookup": "jsonobject",
    "lookup": "jsonobject", "userlookup": "jsonobject", "multiselectpicklist": "jsonarray",
    "tag": "jsonarray",
}  # fmt: skip


@dataclass(frozen=True)
class Field:
    api_name: str
    data_type: str = "text"
    label: str = ""
    length: int = 255
    mandatory: bool = False  # system_mandatory
    read_only: bool = False
    custom: bool = False
    picklist: tuple[str, ...] = ()
    lookup: str | None = None  # the module a lookup points at

    @property
    def json_type(self) -> str:
        return JSON_TYPES[self.data_type]

    def metadata(self, index: int, module_index: int) -> dict[str, Any]:
        label = self.label or self.api_name.replace("_", " ")
        meta: dict[str, Any] = {
            "api_name": self.api_name,
            "id": str(5725767000000500000 + module_index * 1000 + index),
            "field_label": label,
            "display_label": label,
            "data_type": self.data_type,
            "json_type": self.json_type,
            "length": self.length,
            "system_mandatory": self.mandatory,
            "read_only": self.read_only,
            "field_read_only": self.read_only,
            "custom_field": self.custom,
            "visible": True,
            "sortable": self.api_name in ("Created_Time", "Modified_Time"),
            "pick_list_values": [
                {
                    "display_value": v,
                    "actual_value": v,
                    "id": str(5725767000000600000 + module_index * 10000 + index * 100 + i),
                    "sequence_number": i + 1,
                    "type": "used",
                }
                for i, v in enumerate(self.picklist)
            ],
            "lookup": {},
        }
        if self.lookup:
            meta["lookup"] = {
                "module": {"api_name": self.lookup, "id": MODULE_IDS.get(self.lookup, "")},
                "display_label": label,
                "api_name": self.api_name,
            }
        return meta


def _f(api_name: str, data_type: str = "text", **kw: Any) -> Field:
    return Field(api_name, data_type, **kw)


def _sys() -> tuple[Field, ...]:
    """The system fields every standard module has."""
    return (
        _f("Owner", "ownerlookup", label="Record Owner", mandatory=True),
        _f("Created_By", "userlookup", read_only=True),
        _f("Modified_By", "userlookup", read_only=True),
        _f("Created_Time", "datetime", read_only=True),
        _f("Modified_Time", "datetime", read_only=True),
        _f("Last_Activity_Time", "datetime", read_only=True),
        _f("Tag", "tag", read_only=True),
        _f("Record_Status", "picklist", label="Record Status", custom=True, picklist=RECORD_STATUS),
    )


def _address(prefix: str = "") -> tuple[Field, ...]:
    return tuple(
        _f(prefix + name, length=ln)
        for name, ln in (
            ("Street", 250),
            ("City", 100),
            ("State", 100),
            ("Zip_Code", 30),
            ("Country", 100),
        )
    )


# Leads: the standard layout plus custom fields, 60 in all (so > 50: field groups needed).
_LEADS = (
    *_sys(),
    _f("Salutation", "picklist", picklist=SALUTATION),
    _f("First_Name", length=40),
    _f("Last_Name", length=80, mandatory=True),
    _f("Full_Name", read_only=True),
    _f("Company", length=200),
    _f("Designation", label="Title", length=100),
    _f("Email", "email", length=100),
    _f("Secondary_Email", "email", length=100),
    _f("Phone", "phone", length=30),
    _f("Mobile", "phone", length=30),
    _f("Fax", "phone", length=30),
    _f("Website", "website"),
    _f("Lead_Source", "picklist", picklist=LEAD_SOURCE),
    _f("Lead_Status", "picklist", picklist=LEAD_STATUS),
    _f("Industry", "picklist", picklist=INDUSTRY),
    _f("No_of_Employees", "integer", length=9),
    _f("Annual_Revenue", "currency", length=16),
    _f("Rating", "picklist", picklist=RATING),
    _f("Email_Opt_Out", "boolean"),
    _f("Skype_ID", length=50),
    _f("Twitter", length=50),
    *_address(),
    _f("Description", "textarea", length=32000),
    _f("Converted__s", "boolean", read_only=True),
    _f("Lead_Conversion_Time", "integer", read_only=True),
    _f(
        "Unsubscribed_Mode",
        "picklist",
        read_only=True,
        picklist=(NONE, "Consent form", "Manual", "Unsubscribe link", "Zoho campaigns"),
    ),
    _f("Unsubscribed_Time", "datetime", read_only=True),
    _f("Change_Log_Time__s", "datetime", read_only=True),
    _f("Data_Processing_Basis", "picklist", read_only=True, picklist=(NONE, "Consent")),
    _f("Enrich_Status__s", "picklist", read_only=True, picklist=(NONE, "Enriched")),
    _f("Locked__s", "boolean", read_only=True),
    _f("Preferred_Language", "picklist", custom=True, picklist=LANGUAGES),
    _f("Budget_Range", "picklist", custom=True, picklist=BUDGET),
    _f("WeChat_ID", custom=True, length=50),
    _f("Province", custom=True, length=50),
    _f("District", custom=True, length=50),
    _f("Campaign_Code", custom=True, length=30),
    _f("Referral_Code", custom=True, length=30),
    _f("Decision_Maker", "boolean", custom=True),
    _f("Follow_Up_Date", "date", custom=True),
    _f("Score", "integer", custom=True, length=9),
    _f("Expected_Revenue", "currency", custom=True, length=16),
    _f("Product_Interest", custom=True),
    _f("Competitor", custom=True, length=100),
    _f("Notes_Internal", "textarea", custom=True, length=2000),
    _f("Event_Name", custom=True, length=100),
    _f("Linkedin_URL", "website", custom=True),
    _f("Partner_Name", custom=True, length=100),
    _f("Region", custom=True, length=50),
    _f("Source_Detail", custom=True, length=100),
)
_CONTACTS = (
    *_sys(),
    _f("Salutation", "picklist", picklist=SALUTATION),
    _f("First_Name", length=40),
    _f("Last_Name", length=80, mandatory=True),
    _f("Full_Name", read_only=True),
    _f("Account_Name", "lookup", lookup="Accounts"),
    _f("Title", length=100),
    _f("Department", length=100),
    _f("Email", "email", length=100),
    _f("Secondary_Email", "email", length=100),
    _f("Phone", "phone", length=30),
    _f("Mobile", "phone", length=30),
    _f("Lead_Source", "picklist", picklist=LEAD_SOURCE),
    _f("Date_of_Birth", "date"),
    _f("Email_Opt_Out", "boolean"),
    *_address("Mailing_"),
    _f("Description", "textarea", length=32000),
    _f("WeChat_ID", custom=True, length=50),
)
_ACCOUNTS = (
    *_sys(),
    _f("Account_Name", length=200, mandatory=True),
    _f("Account_Number", "bigint", length=40),
    _f("Account_Type", "picklist", picklist=ACCOUNT_TYPE),
    _f("Industry", "picklist", picklist=INDUSTRY),
    _f("Ownership", "picklist", picklist=OWNERSHIP),
    _f("Rating", "picklist", picklist=RATING),
    _f("Phone", "phone", length=30),
    _f("Website", "website"),
    _f("Employees", "integer", length=9),
    _f("Annual_Revenue", "currency", length=16),
    *_address("Billing_"),
    _f("Description", "textarea", length=32000),
)
_DEALS = (
    *_sys(),
    _f("Deal_Name", length=120, mandatory=True),
    _f("Account_Name", "lookup", lookup="Accounts"),
    _f("Contact_Name", "lookup", lookup="Contacts"),
    _f("Amount", "currency", length=16),
    _f("Closing_Date", "date", mandatory=True),
    _f("Stage", "picklist", mandatory=True, picklist=DEAL_STAGE),
    _f("Type", "picklist", picklist=DEAL_TYPE),
    _f("Probability", "integer", length=3),
    _f("Expected_Revenue", "currency", read_only=True, length=16),
    _f("Lead_Source", "picklist", picklist=LEAD_SOURCE),
    _f("Next_Step", length=100),
    _f("Description", "textarea", length=32000),
)
# A custom module with no Modified_Time: If-Modified-Since cannot work, a full pull must.
_SITE_VISITS = (
    _f("Owner", "ownerlookup", label="Record Owner", mandatory=True),
    _f("Name", label="Site Visit Name", length=120, mandatory=True),
    _f("Created_By", "userlookup", read_only=True),
    _f("Created_Time", "datetime", read_only=True),
    _f("Account", "lookup", lookup="Accounts", custom=True),
    _f("Visit_Date", "date", custom=True),
    _f("Visit_Type", "picklist", custom=True, picklist=VISIT_TYPE),
    _f("Notes", "textarea", custom=True, length=2000),
    _f("Record_Status", "picklist", label="Record Status", custom=True, picklist=RECORD_STATUS),
)


@dataclass(frozen=True)
class Module:
    api_name: str
    singular: str
    fields: tuple[Field, ...]
    custom: bool = False
    name_field: str = "Full_Name"  # the display_name of deleted records
    by_name: Mapping[str, Field] = field(default_factory=dict, compare=False)

    @property
    def has_modified_time(self) -> bool:
        return "Modified_Time" in self.by_name


def _module(api_name: str, singular: str, fields: tuple[Field, ...], **kw: Any) -> Module:
    return Module(api_name, singular, fields, by_name={f.api_name: f for f in fields}, **kw)


MODULES: dict[str, Module] = {
    m.api_name: m
    for m in (
        _module("Leads", "Lead", _LEADS),
        _module("Contacts", "Contact", _CONTACTS),
        _module("Accounts", "Account", _ACCOUNTS, name_field="Account_Name"),
        _module("Deals", "Deal", _DEALS, name_field="Deal_Name"),
        _module("Site_Visits", "Site Visit", _SITE_VISITS, custom=True, name_field="Name"),
    )
}
MODULE_NAMES: tuple[str, ...] = tuple(MODULES)
MODULE_IDS = {name: str(5725767000000002175 + i * 2) for i, name in enumerate(MODULE_NAMES)}
# Listed by /settings/modules but not usable through the records API (api_supported false).
_UNSUPPORTED = ("Home", "Feeds")


def module_metadata() -> list[dict[str, Any]]:
    """The ``modules`` array of ``GET /crm/v8/settings/modules``."""
    out = []
    for i, m in enumerate(MODULES.values()):
        plural = m.api_name.replace("_", " ")
        out.append(
            {
                "api_name": m.api_name,
                "module_name": m.api_name,
                "id": MODULE_IDS[m.api_name],
                "singular_label": m.singular,
                "plural_label": plural,
                "api_supported": True,
                "generated_type": "custom" if m.custom else "default",
                "creatable": True,
                "editable": True,
                "deletable": True,
                "viewable": True,
                "visible": True,
                "sequence_number": i + 2,
                "modified_time": None,
            }
        )
    for j, name in enumerate(_UNSUPPORTED):
        out.append(
            {
                "api_name": name,
                "module_name": name,
                "id": str(5725767000000003001 + j),
                "singular_label": name,
                "plural_label": name,
                "api_supported": False,
                "generated_type": "default",
                "creatable": False,
                "editable": False,
                "deletable": False,
                "viewable": True,
                "visible": True,
                "sequence_number": 100 + j,
                "modified_time": None,
            }
        )
    return out


def field_metadata(module: str) -> list[dict[str, Any]]:
    """The ``fields`` array of ``GET /crm/v8/settings/fields?module=<module>``."""
    index = MODULE_NAMES.index(module)
    return [f.metadata(i, index) for i, f in enumerate(MODULES[module].fields)]
