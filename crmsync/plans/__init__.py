"""Plan -> approve -> apply -> restore: the record lifecycle engine."""
