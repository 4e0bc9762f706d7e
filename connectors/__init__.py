"""crmsync's built-in connector plugins (installed as ``crmsync_connectors``).

Each registers through the ``crmsync.connectors`` entry point exactly like a third-party plugin;
the core never imports this package.
"""
