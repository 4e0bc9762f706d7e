"""Terminal output: rich tables and progress on a terminal, plain text otherwise.

Schedulers read plain output (quiet on success); people at a terminal get a progress bar.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from crmsync.hookspecs import Page
from crmsync.pull import ModulePull


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True, default=str))


def print_table(title: str | None, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    if stdout_is_terminal():
        table = Table(title=title, title_justify="left")
        for header in headers:
            table.add_column(header)
        for row in rows:
            # Text, not str: CRM values such as "[/x]" are data, not rich markup.
            table.add_row(*(Text("" if v is None else str(v)) for v in row))
        Console().print(table)
        return
    if title:
        print(title)
    print("\t".join(headers))
    for row in rows:
        print("\t".join("" if v is None else str(v) for v in row))


class RichPullProgress:
    """A progress bar per module on stderr, when stderr is a terminal."""

    def __init__(self) -> None:
        self.console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[calls]} calls"),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> RichPullProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def module_started(self, pull: ModulePull) -> None:
        label = f"{pull.connection}/{pull.module} ({pull.mode})"
        self._tasks[pull.module] = self.progress.add_task(label, total=None, calls=0)

    def page_committed(self, pull: ModulePull, page: Page) -> None:
        task = self._tasks[pull.module]
        total = page.total if page.total is not None else None
        self.progress.update(task, completed=pull.records, total=total, calls=pull.api_calls)

    def module_finished(self, pull: ModulePull) -> None:
        task = self._tasks[pull.module]
        self.progress.update(
            task, completed=pull.records, total=pull.records or 1, calls=pull.api_calls
        )


def pull_rows(modules: Sequence[ModulePull]) -> list[list[Any]]:
    return [
        [
            m.module,
            m.mode,
            m.records,
            m.new,
            m.changed,
            m.deleted,
            m.pages,
            m.api_calls,
            f"{m.seconds:.2f}",
        ]
        for m in modules
    ]


PULL_HEADERS = (
    "module",
    "mode",
    "records",
    "new",
    "changed",
    "deleted",
    "pages",
    "api calls",
    "seconds",
)
