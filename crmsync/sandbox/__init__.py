"""The sandbox CRM: a small, real HTTP CRM with seeded data, for the demo, tests and benches.

    with SandboxCRM(records=500) as crm:
        requests.get(crm.api_url + "Leads", headers={"Authorization": f"Bearer {crm.token}"})

The HTTP API is documented in ``API.md`` beside this file.
"""

from crmsync.sandbox.clock import SandboxClock
from crmsync.sandbox.server import SandboxCRM

__all__ = ["SandboxCRM", "SandboxClock"]
