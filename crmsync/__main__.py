"""``python -m crmsync`` runs the CLI (same as the ``crmsync`` console script)."""

from crmsync.cli import main

if __name__ == "__main__":
    main()
