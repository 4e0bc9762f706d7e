"""crmsync: keep external CRMs tidy and safe."""

__version__ = "0.1.0"
