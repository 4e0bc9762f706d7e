"""Unattended operation: ``crmsync run`` (one scheduled pass) and ``crmsync serve`` (a
long-running scheduler with health and Prometheus metrics endpoints)."""
