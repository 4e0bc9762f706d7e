"""A fake Zoho CRM (REST API v8) over real HTTP on 127.0.0.1, for tests and benches.

    from crmsync_connectors.zoho.fake import FakeZoho

    with FakeZoho(records={"Leads": 3000, "Contacts": 50}) as zoho:
        token = requests.post(zoho.accounts_url + "/oauth/v2/token", params={
            "grant_type": "refresh_token", "refresh_token": zoho.refresh_token,
            "client_id": zoho.client_id, "client_secret": zoho.client_secret}).json()
        requests.get(token["api_domain"] + "/crm/v8/Leads",
                     params={"fields": "Last_Name,Email", "per_page": 200},
                     headers={"Authorization": "Zoho-oauthtoken " + token["access_token"]})

Python API (``FakeZoho``)
-------------------------
``FakeZoho(records=500, seed=42, *, client_id="1000.FAKEZOHOCLIENTID",
client_secret="fake-zoho-client-secret", refresh_token="1000.fake-zoho-refresh-token",
scopes=("ZohoCRM.modules.ALL", "ZohoCRM.settings.ALL", "ZohoCRM.bulk.read"),
daily_credits=None, credits_header="half", edition="enterprise", concurrency=None,
token_ttl=3600, token_throttle_status=400, not_modified_status=304, clock_start=None,
tz_offset="+05:30", db_path=None, verbose=False)``

- ``records``: an int gives EVERY module that many records; a dict (``{"Leads": 100_000}``)
  gives exactly the listed modules records (others empty). Modules: ``Leads`` (62 fields: more
  than 50, so field groups are needed), ``Contacts``, ``Accounts``, ``Deals``, and the custom
  module ``Site_Visits`` (no ``Modified_Time``: If-Modified-Since is ignored there, and
  ``sort_by=Modified_Time`` is a 400). Data is a pure function of (seed, sizes, clock_start,
  tz_offset); 100k Leads build in a few seconds (SQLite file in a temp dir).
- ``daily_credits``: API credit budget per rolling 24 h of fake time (None = unlimited). Every
  ``/crm/`` call that passes auth costs 1 credit; past the budget -> 429 TOO_MANY_REQUESTS.
  Header ``X-API-CREDITS-REMAINING`` is sent once half the budget is used
  (``credits_header="half"``; or ``"always"`` / ``"never"``).
- ``edition`` -> concurrency limit (free 5, standard 10, professional 15, enterprise 20,
  ultimate 25); ``concurrency`` overrides. More API calls in flight -> 429 TOO_MANY_REQUESTS.
- ``token_throttle_status``: HTTP status of the "Access Denied" answer past 10 tokens per
  refresh token per 10 min (400 as singer-io sees it; 200 as Kaizen #43 describes).
- ``not_modified_status``: 304 (default) or 204, for an If-Modified-Since read with no match.
- ``clock_start``: fake now at start (default 2026-01-01T00:00:00Z); seed records were created
  and modified in the 3 years before it. ``tz_offset``: the org's offset in every time string.

Lifecycle: ``start()`` (also ``with FakeZoho(...) as zoho``), ``stop()``, ``close()``.
URLs (after start): ``accounts_url`` (``http://127.0.0.1:P1``; serves ``/oauth/v2/token``),
``api_domain`` (``http://127.0.0.1:P2``; serves ``/crm/...``, and is the token answer's
``api_domain``), ``api_url`` (``api_domain + "/crm/v8/"``). The two hosts are different ports:
``/crm`` on the accounts port (or ``/oauth`` on the API port) is a 404.
Credentials: ``client_id``, ``client_secret``, ``refresh_token``, ``scopes``.

Control (Python):
- ``access_token(refresh_token=None) -> str``: a token minted without HTTP (not counted).
- ``grant_code(scopes=None, ttl=180) -> str``: a single-use self-client grant code.
- ``add_refresh_token(scopes, token=None) -> str``: another refresh token (other scopes).
- ``revoke_refresh_token(token=None)``; ``expire_tokens()`` (all access tokens invalid now).
- ``advance(seconds) -> str`` / ``now() -> str``: the fake clock (tokens expire by it, writes
  stamp Modified_Time with it, the token and credit windows run on it).
- ``set_faults(**keys)`` / ``clear_faults()``: keys ``latency_ms``, ``error_rate``,
  ``error_status`` (500), ``burst_every`` + ``burst_length`` (of every N /crm requests the
  last K get 429), ``drop_rate``, ``drop_next``, ``fail_next`` ([{"status", "count",
  "path_prefix" ("/crm/"; "/oauth/" for the token endpoint), "code", "body"}]),
  ``reject_ids`` ({"<id>": "RECORD_LOCKED"} or [ids]: per-record write failures).
  Deterministic (seeded, reset on every set_faults).
- ``touch(module, count=None, ids=None) -> list[str]``: user edits (Modified_Time = now;
  not counted as writes). ``edit(module, id, **fields) -> dict``: a user edit of fields.
- ``delete(module, ids) -> list[str]``: user deletes (to the recycle bin, not counted).
- ``empty_recycle_bin(module=None) -> int``: recycle entries become ``permanent``.
- ``stats() -> dict``: requests, by_route (e.g. "GET /crm/v8/{module}"), by_kind,
  record_calls (GET /crm/v8/{module} and /{module}/{id}), metadata_calls (settings/*),
  write_calls (PUT, DELETE, add/remove_tags), deleted_calls, token_requests, by_status,
  writes ({"Leads/<id>": n}), triggers ({"workflow": n, "<default>": n, "[]": n}),
  max_in_flight, max_batch, records_served, tokens_issued, tokens_issued_by_refresh_token,
  token_requests_throttled, credits_used, credits_remaining, now. ``reset_stats()``.
- ``write_count(module, id) -> int``: successful API writes (update, tag change, delete).
- ``record(module, id) -> dict | None`` (every field), ``ids(module)``, ``deleted_ids(module)``,
  ``count(module)``, ``modules()``, ``field_names(module)``.

HTTP control: ``/_fake/faults`` (GET; POST = set_faults body), ``/_fake/clock`` (GET; POST
{"advance_seconds"}), POST ``/_fake/touch`` {"module", "count"|"ids"}, POST ``/_fake/delete``
{"module", "ids"}, POST ``/_fake/revoke`` {"token"?}, POST ``/_fake/grant_code`` {"scopes"?},
POST ``/_fake/tokens/expire``, POST ``/_fake/recycle_bin/empty`` {"module"?}, GET
``/_fake/stats``, POST ``/_fake/stats/reset``. On both ports; no auth, not counted.

HTTP behaviour (Zoho v8 as in /work/shared/reference/zoho-crm-api.md)
--------------------------------------------------------------------
Accounts: ``POST /oauth/v2/token`` with params in the query string and/or a form body.
``grant_type=refresh_token`` -> ``{"access_token","scope","api_domain","token_type":"Bearer",
"expires_in":3600}``; ``grant_type=authorization_code&code=`` -> the same plus
``refresh_token``. Errors (HTTP 200): ``{"error":"invalid_client"}`` (wrong id/secret),
``{"error":"invalid_code"}`` (unknown/revoked refresh token; unknown/used/expired code). 11th
token for one refresh token within 10 fake minutes -> ``{"error":"Access Denied",
"error_description":...}`` (HTTP ``token_throttle_status``). The 16th active access token of
a refresh token invalidates the oldest. ``POST /oauth/v2/token/revoke?token=`` revokes.

API auth: ``Authorization: Zoho-oauthtoken <t>`` (``Bearer <t>`` accepted). No/garbled header
-> 401 AUTHENTICATION_FAILURE; unknown/expired/revoked -> 401 INVALID_TOKEN; scope not covering
the call -> 401 OAUTH_SCOPE_MISMATCH. Modules need ``ZohoCRM.modules.ALL`` or
``ZohoCRM.modules.{READ|UPDATE|DELETE|WRITE}`` or ``ZohoCRM.modules.<Module>.<op>``; metadata
needs ``ZohoCRM.settings.ALL|READ`` or ``ZohoCRM.settings.{modules|fields}.{ALL|READ}``.
Errors are ``{"code","details","message","status":"error"}``. Unknown module -> 400
INVALID_MODULE; unknown path -> 404 INVALID_URL_PATTERN. Order of checks: injected fault,
auth, route, concurrency, credits.

- ``GET /crm/v8/settings/modules`` -> ``{"modules":[{api_name, module_name, api_supported,
  generated_type, ...}]}`` (also lists Home/Feeds with api_supported false).
- ``GET /crm/v8/settings/fields?module=Leads`` -> ``{"fields":[{api_name, data_type,
  json_type, field_label, length, system_mandatory, read_only, custom_field,
  pick_list_values:[{display_value, actual_value, ...}], lookup}]}``.
- ``GET /crm/v8/{Module}``: ``fields`` required (400 REQUIRED_PARAM_MISSING
  details.param_name "fields"), <= 50 (400 LIMIT_EXCEEDED {"limit":50,"param_name":"fields"}),
  unknown name -> 400 INVALID_DATA {"param_name":"fields","api_name":...}. Answers only the
  requested fields plus ``id``. ``per_page`` 1..200 (default 200; else 400 INVALID_DATA);
  ``sort_by`` id|Created_Time|Modified_Time (default id), ``sort_order`` asc|desc (default
  desc); ties broken by id in the same direction. ``page`` (1-based): a page STARTING at or
  past record 2,000 -> 400 DISCRETE_PAGINATION_LIMIT_EXCEEDED {"limit":2000}; a page straddling
  2,000 is cut there. Every answer with ``more_records`` true carries ``next_page_token``
  (also on page-mode answers, so page 10 -> token works); a token is a keyset position in
  one query (module, sort, If-Modified-Since), can be replayed (e.g. for the next field
  group) and expires after 24 fake hours; sending ``page_token`` ignores ``page``; a token from
  another module/sort/If-Modified-Since -> 400 INVALID_DATA param_name "page_token"; a token
  at record 100,000 -> 400 PAGINATION_LIMIT_EXCEEDED. ``ids=a,b`` filters by id.
  ``If-Modified-Since`` (ISO 8601 with offset, or an HTTP date) keeps records with
  Modified_Time >= it (INCLUSIVE, whole seconds); no match -> 304 (or 204, see
  ``not_modified_status``), no body. Empty without the header -> 204, no body.
  200 body: ``{"data":[...],"info":{"call","per_page","next_page_token","count","sort_by",
  "page","previous_page_token","page_token_expiry","sort_order","email","more_records"}}``.
- ``GET /crm/v8/{Module}/{id}`` (``fields`` optional) -> ``{"data":[record]}``; 204 if absent.
- ``PUT /crm/v8/{Module}`` ``{"data":[{"id",...}], "trigger":[...]}``: > 100 items -> 400
  LIMIT_EXCEEDED; results in input order: success ``{"code":"SUCCESS","details":{
  "Modified_Time","Modified_By","Created_Time","id","Created_By","$approval_state"},
  "message":"record updated","status":"success"}``; errors ``INVALID_DATA`` (unknown id,
  unknown field, bad picklist value / type / length / email; details api_name + json_path),
  ``MANDATORY_NOT_FOUND`` (id missing, or a mandatory field set empty/null/"-None-"), or the
  injected ``reject_ids`` code. Read-only fields in the item are ignored. HTTP 200 all ok,
  207 mixed, 400 all failed. Modified_Time = fake now.
- ``POST /crm/v8/{Module}/actions/add_tags`` and ``remove_tags``: body ``{"tags":[{"name"}],
  "ids":[...], "over_write": false}`` (v2 query form ``?ids=&tag_names=`` also accepted);
  <= 100 ids, <= 10 tags; per-record ``{"code":"SUCCESS","details":{"id","tags":[names]},
  "message":"tags updated successfully","status":"success"}``; 200/207/400 as PUT. A tag
  change sets Modified_Time.
- ``DELETE /crm/v8/{Module}?ids=a,b`` (<= 100) and ``DELETE /crm/v8/{Module}/{id}``:
  per-record ``{"code":"SUCCESS","details":{"id"},"message":"record deleted",...}`` or
  INVALID_DATA; records go to the recycle bin.
- ``GET /crm/v8/{Module}/deleted?type=all|recycle|permanent&page&per_page`` (+
  If-Modified-Since on deleted_time, inclusive): items ``{"deleted_by":{name,id},"id",
  "display_name","type","created_by","deleted_time"}``, newest deletion first; ``info``
  ``{per_page,count,page,more_records}``; empty -> 204.
- ``GET /crm/v8/{Module}/actions/count`` -> ``{"count": n}`` (kind ``count``).
- Bulk Read: ``POST /crm/bulk/v8/read``, ``GET /crm/bulk/v8/read/{id}`` and ``.../result``
  (zipped CSV); constructor keys ``bulk_page_size`` (200,000), ``bulk_job_polls`` (1),
  ``bulk_job_seconds`` (30), ``bulk_downloads_per_minute`` (10), ``bulk_job_credits`` (50);
  ``fail_bulk_jobs(n)``, ``bulk_jobs()``; stats ``bulk_calls``. Details and the CSV
  conventions: the docstring of ``fake/bulk.py``.
- 429 answers (bursts, concurrency, credits) are ``{"code":"TOO_MANY_REQUESTS",...}`` with no
  Retry-After header; injected 5xx are ``{"code":"INTERNAL_ERROR",...}``.
"""

from crmsync_connectors.zoho.fake.faults import FAULT_KEYS
from crmsync_connectors.zoho.fake.oauth import DEFAULT_SCOPES
from crmsync_connectors.zoho.fake.server import FakeZoho, Stats

__all__ = ["DEFAULT_SCOPES", "FAULT_KEYS", "FakeZoho", "Stats"]
