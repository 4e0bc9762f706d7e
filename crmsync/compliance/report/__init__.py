"""``crmsync compliance report``: what is held, past retention, purged, erased (filled in below)."""
