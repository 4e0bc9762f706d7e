"""The generic REST connector: a CRM described entirely in config (see README.md here).

Modelled on dlt's ``rest_api`` source and Airbyte's low-code connectors, plus the write side
they lack: declarative ``operations`` for archive / void / restore / purge.
"""

from crmsync_connectors.rest.connector import RestConnector, RestSession

__all__ = ["RestConnector", "RestSession"]
