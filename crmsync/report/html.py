"""The report as one self-contained HTML page (``crmsync report --html FILE``).

No external CSS, script, image or font: styles are inline, charts are SVG drawn by
:mod:`crmsync.report.svg`, text uses the system's fonts (CJK ones listed, UTF-8 declared).
Every value from the CRM is escaped. The page is written to a temporary file beside the target
and renamed over it, so a reader never sees half a page; like the store, it is readable by its
owner only (it holds CRM data).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from crmsync import __version__
from crmsync.errors import CrmsyncError
from crmsync.report.document import totals
from crmsync.report.model import LIFECYCLE_STATUSES, ModuleReport, Report
from crmsync.report.svg import columns, donut, esc, hbars

STATUS_COLOURS = {
    "active": "#10b981",
    "archived": "#3b82f6",
    "voided": "#f59e0b",
    "purged": "#64748b",
}
OTHER_COLOUR = "#a855f7"
MUTED_LABELS = frozenset({"(other)", "(none)"})

CSS = """
:root { color-scheme: light; }
body { font: 14px/1.5 system-ui, -apple-system, "Segoe UI", "PingFang SC", "Hiragino Sans GB",
  "Microsoft YaHei", "Noto Sans CJK SC", "Source Han Sans SC", "WenQuanYi Micro Hei",
  Roboto, Helvetica, Arial, sans-serif; margin: 0; background: #f6f7f9; color: #1f2933; }
header, main, footer { max-width: 1080px; margin: 0 auto; padding: 16px 24px; }
header h1 { margin: 8px 0 4px; font-size: 24px; }
.zh { color: #52606d; font-weight: normal; margin-left: .4em; }
.muted { color: #616e7c; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 12px 0; }
.card { background: #fff; border: 1px solid #e4e7eb; border-radius: 8px; padding: 10px 16px; }
.card b { display: block; font-size: 22px; }
section.module { background: #fff; border: 1px solid #e4e7eb; border-radius: 10px;
  margin: 20px 0; padding: 8px 20px 20px; }
section.module h2 { font-size: 19px; margin: 12px 0 4px; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(460px, 1fr));
  gap: 12px 28px; }
h3 { font-size: 15px; margin: 16px 0 6px; }
h4 { font-size: 13px; margin: 10px 0 2px; color: #3e4c59; }
.chart text { font-size: 12px; fill: #323f4b; }
.chart text.n { fill: #616e7c; }
.chart text.centre { font-size: 16px; font-weight: 600; }
.chart .ring { fill: none; stroke: #e4e7eb; stroke-width: 22; }
.chart .axis { stroke: #cbd2d9; }
.status { display: flex; gap: 16px; align-items: center; flex-wrap: wrap; }
.legend { list-style: none; padding: 0; margin: 0; }
.legend li { margin: 2px 0; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px;
  margin-right: 6px; }
table { border-collapse: collapse; font-size: 13px; }
th, td { text-align: left; padding: 3px 10px 3px 0; border-bottom: 1px solid #eef0f3;
  vertical-align: top; }
td.num, th.num { text-align: right; }
code { font-size: 12px; background: #f1f3f5; padding: 0 3px; border-radius: 3px;
  word-break: break-all; }
"""


class ReportWriteError(CrmsyncError):
    """The HTML page could not be written (exit 1)."""


def render_html(report: Report) -> str:
    t = totals(report.modules)
    generated = report.now.strftime("%Y-%m-%d %H:%M UTC")
    body = [
        "<header>",
        '<h1>crmsync report<span class="zh" lang="zh-CN">数据质量报告</span></h1>',
        f'<div class="muted">{esc(generated)} · connections: '
        f"{esc(', '.join(report.connections) or 'none')} · crmsync {esc(__version__)}</div>",
        '<div class="cards">',
        _card("records", "记录", t["records"]),
        _card("in use (active + archived)", "在用", t["in_use"]),
        _card("deleted in CRM", "已在CRM删除", t["deleted_in_crm"]),
        _card("modules", "模块", t["modules"]),
        "</div></header><main>",
    ]
    if not report.modules:
        body.append("<p>Nothing mirrored yet: run <code>crmsync pull</code> first.</p>")
    body += [_module(m, report.stale_field) for m in report.modules]
    body.append(
        '</main><footer class="muted">Quality sections count the records in use: in the CRM'
        " and active or archived. Duplicate keys are normalised as the duplicate policies"
        " normalise them.</footer>"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>crmsync report {esc(generated)}</title>\n<style>{CSS}</style>\n</head>\n"
        f"<body>\n{''.join(body)}\n</body>\n</html>\n"
    )


def _card(en: str, zh: str, value: object) -> str:
    return (
        f'<div class="card"><b>{esc(value)}</b>{esc(en)}'
        f'<span class="zh" lang="zh-CN">{esc(zh)}</span></div>'
    )


def _heading(level: int, en: str, zh: str) -> str:
    return f'<h{level}>{esc(en)}<span class="zh" lang="zh-CN">{esc(zh)}</span></h{level}>'


def _module(m: ModuleReport, stale_field: str) -> str:
    parts = [
        '<section class="module">',
        f"<h2>{esc(m.connection)} / {esc(m.module)}</h2>",
        f'<div class="muted">{m.records} records · {m.in_use} in use · '
        f"{m.deleted_in_crm} deleted in the CRM</div>",
        '<div class="grid"><div>',
        _heading(3, "Lifecycle status", "生命周期状态"),
        _status(m),
        _heading(3, f"Age by {stale_field} time", "记录时效"),
        columns(
            [(b.value, b.records) for b in m.stale.buckets]
            + ([("no time", m.stale.unknown)] if m.stale.unknown else []),
            label=f"records in use by age of their {stale_field} time",
        ),
        _heading(3, "Missing key fields", "关键字段缺失"),
        _missing(m),
        "</div><div>",
        _heading(3, "Duplicate clusters", "重复记录"),
        _duplicates(m),
        _heading(3, "Categories", "分类"),
        _categories(m),
        "</div></div></section>",
    ]
    return "".join(parts)


def _status(m: ModuleReport) -> str:
    names = [*LIFECYCLE_STATUSES, *sorted(set(m.status) - set(LIFECYCLE_STATUSES))]
    items = [(s, m.status.get(s, 0), STATUS_COLOURS.get(s, OTHER_COLOUR)) for s in names]
    legend = "".join(
        f'<li><span class="swatch" style="background:{colour}"></span>{esc(name)} <b>{n}</b></li>'
        for name, n, colour in items
    )
    legend += f'<li class="muted">deleted in CRM <b>{m.deleted_in_crm}</b></li>'
    chart = donut(items, label=f"records of {m.module} by status", centre=str(m.records))
    return f'<div class="status">{chart}<ul class="legend">{legend}</ul></div>'


def _missing(m: ModuleReport) -> str:
    if not m.missing:
        return '<p class="muted">no key fields</p>'
    return hbars(
        [(f.field, f.records) for f in m.missing],
        label="records in use with no value, per key field",
        total=m.in_use,
        colour="#ef4444",
    )


def _duplicates(m: ModuleReport) -> str:
    if not m.duplicates:
        return '<p class="muted">no duplicate key fields in this module</p>'
    rows = []
    for d in m.duplicates:
        largest = ", ".join(
            f"<code>{esc(v.value)}</code>&nbsp;&times;{v.records}" for v in d.largest[:5]
        )
        how = d.mode if d.field == d.key else f"{d.field}, {d.mode}"
        rows.append(
            f'<tr><td>{esc(d.key)} <span class="muted">({esc(how)})</span>'
            f'</td><td class="num">{d.clusters}</td><td class="num">{d.records}</td>'
            f'<td class="num">{d.surplus}</td><td>{largest}</td></tr>'
        )
    chart = hbars(
        [(d.key, d.records) for d in m.duplicates],
        label="records in duplicate clusters, per key",
        total=m.in_use,
        colour="#f59e0b",
    )
    return (
        '<table><tr><th>key</th><th class="num">clusters</th><th class="num">records</th>'
        '<th class="num">surplus</th><th>largest</th></tr>' + "".join(rows) + "</table>" + chart
    )


def _categories(m: ModuleReport) -> str:
    if not m.categories:
        return '<p class="muted">no category fields</p>'
    out = []
    for c in m.categories:
        items = [(_label(v.value), v.records) for v in c.values]
        if c.other:
            items.append(("(other)", c.other))
        if c.none:
            items.append(("(none)", c.none))
        out.append(f'<h4>{esc(c.field)} <span class="muted">· {c.distinct} distinct</span></h4>')
        out.append(hbars(items, label=f"records in use by {c.field}", muted=MUTED_LABELS))
    return "".join(out)


def _label(value: object) -> str:
    text = " ".join(str(value).split())
    return text or repr(str(value))


# --------------------------------------------------------------------------- writing


def check_writable(path: Path) -> str | None:
    """Why the page cannot be written at ``path`` (checked before the report is gathered),
    or None."""
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        return f"{path} is a directory"
    if not parent.is_dir():
        return f"directory {parent} does not exist"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"directory {parent} is not writable"
    if path.exists() and not os.access(path, os.W_OK):
        return f"{path} is not writable"
    return None


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to a temporary file beside ``path``, fsync, rename over it."""
    fd, tmp = -1, ""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            fd = -1
            f.write(text.encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = ""
    except OSError as exc:
        raise ReportWriteError(
            f"cannot write the report to {path}: {exc.strerror or exc}"
        ) from None
    finally:
        if fd != -1:
            os.close(fd)
        if tmp:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
