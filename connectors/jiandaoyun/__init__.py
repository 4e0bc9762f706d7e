"""The 简道云 Jiandaoyun connector (open API v5): API-key bearer auth, forms as modules,
``data_id`` cursor paging with ``updateTime`` increments, a status widget for archive / void /
restore, batched write-back (``batch_update`` / ``batch_delete``, 100 ids a call) and
client-side per-endpoint rate limits.

See "Connect Jiandaoyun" in the project README and the docstrings of each module here.
"""
