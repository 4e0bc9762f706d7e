"""``python -m crmsync.sandbox``: the ``crmsync sandbox`` command, without the main CLI."""

from crmsync.sandbox.cli import sandbox_command

if __name__ == "__main__":
    sandbox_command(prog_name="python -m crmsync.sandbox")
