"""Test support that crmsync ships for connector authors: the connector contract suite and an
in-memory keyring backend."""
