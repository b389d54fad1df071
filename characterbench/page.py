"""The board's static page: sortable tables (a small inline script; readable without it), a preview strip
per row and one bar chart per metric (inline SVG, no script needed)."""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

from characterbench.leaderboard import (
    _UNVERIFIED_TEXT, NOT_REPRODUCED, _fmt, _is_board_file, _is_web_url, _sections,
)
from characterbench.metric_specs import METRICS

_SORT_SCRIPT = """
// Click a column header to sort by it; click again to reverse. The table reads fine without this.
document.querySelectorAll("table.board").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, col) {
    th.style.cursor = "pointer";
    th.title = "sort";
    th.addEventListener("click", function () {
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var asc = th.getAttribute("aria-sort") !== "ascending";
      table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", asc ? "ascending" : "descending");
      rows.sort(function (a, b) {
        var x = a.cells[col].getAttribute("data-sort"), y = b.cells[col].getAttribute("data-sort");
        var nx = parseFloat(x), ny = parseFloat(y);
        var cmp = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : String(x).localeCompare(String(y));
        return asc ? cmp : -cmp;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _html_table(frame, caption: str) -> str:
    if frame.empty:
        return f"<p><em>{html.escape(caption)}: no entries yet.</em></p>\n"
    cols = [c for c in frame.columns if c != "URL"]
    out = [f'<table class="board">', f"<caption>{html.escape(caption)}</caption>", "<thead><tr>"]
    out += [f'<th scope="col">{html.escape(c)}</th>' for c in cols]
    out.append("</tr></thead>\n<tbody>")
    for _, row in frame.iterrows():
        out.append("<tr>")
        for c in cols:
            value = row[c]
            sort = "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
            text = html.escape(_fmt(value))
            if c == "Preview":
                text = (f'<img src="{html.escape(value, quote=True)}" alt="the 9 views of one sample" height="48">'
                        if _is_board_file(value, "previews", "png") else "–")
                sort = ""
            elif c == "4D viewer":
                text = (f'<a href="{html.escape(value, quote=True)}">open</a>'
                        if _is_board_file(value, "viewers", "html") else "–")
                sort = ""
            elif c == "Method" and "URL" in frame.columns and _is_web_url(row["URL"]):
                text = f'<a href="{html.escape(row["URL"], quote=True)}">{text}</a>'
            numeric = isinstance(value, (int, float)) or (isinstance(value, str) and _is_number(value))
            cls = ' class="num"' if numeric and c not in ("Method", "Date", "Commit") else ""
            out.append(f'<td{cls} data-sort="{html.escape(sort, quote=True)}">{text}</td>')
        out.append("</tr>")
    out.append("</tbody></table>\n")
    return "\n".join(out)


def bar_chart(frame, column: str, caption: str) -> str:
    """One metric of a table as an inline SVG bar chart (one bar per row, its value written beside it).

    Bars are proportional to the value from 0 (all metrics here are >= 0); rows without a value get no
    bar. Plain SVG: shown without JavaScript, and its ``<title>`` and text read without graphics.
    """
    values = [(str(m), v) for m, v in zip(frame["Method"], frame[column]) if isinstance(v, (int, float)) and math.isfinite(v)]
    if not values:
        return ""
    top = max(abs(v) for _, v in values) or 1.0
    row_h, label_w, bar_w, width = 18, 190, 260, 540
    height = row_h * len(values) + 24
    out = [f'<figure class="chart"><svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'role="img" aria-label="{html.escape(caption, quote=True)}"><title>{html.escape(caption)}</title>']
    for i, (method, value) in enumerate(values):
        y = 20 + i * row_h
        w = max(bar_w * abs(value) / top, 1.0)
        out.append(f'<text x="{label_w - 6}" y="{y + 12}" text-anchor="end" font-size="12">{html.escape(method[:28])}</text>')
        out.append(f'<rect class="bar" x="{label_w}" y="{y + 2}" width="{w:.1f}" height="{row_h - 5}" fill="#4a7fb5"><title>{html.escape(method)}: {html.escape(_fmt(value))}</title></rect>')
        out.append(f'<text x="{label_w + w + 4:.1f}" y="{y + 12}" font-size="12">{html.escape(_fmt(value))}</text>')
    out.append(f'<text x="0" y="13" font-size="12" font-weight="bold">{html.escape(column)}</text></svg>'
               f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    return "".join(out)


def _charts(frame, title: str) -> str:
    metric_columns = [c for c in frame.columns if c.endswith(("↑", "↓"))]
    charts = [bar_chart(frame, c, f"{title}: {c}") for c in metric_columns]
    charts = [c for c in charts if c]
    return f'<details open><summary>Bar charts</summary><div class="charts">{"".join(charts)}</div></details>\n' if charts else ""


def render_html(board_dir: str | Path) -> str:
    """The board's static ``index.html`` (sortable with a small inline script, readable without it)."""
    board, ours, apart, paper = _sections(board_dir)
    body = [
        f"<h1>{html.escape(board.name)}</h1>",
        f"<p>Protocol <code>{html.escape(board.protocol_version)}</code> (fingerprint "
        f"<code>{board.protocol_fingerprint[:16]}</code>); ground truth <code>{html.escape(board.gt_manifest_hash or 'not registered yet')}</code> "
        f"({html.escape(board.gt_description)}).</p>",
        "<p>Every number in the first section was re-computed by <code>characterbench submit</code> from the entry's "
        "predictions on that ground truth. FVD is biased upwards on few samples: compare rows only at equal N, and read "
        "the 95% bootstrap intervals. CLIP-S and FID count as protocol values only with the pinned official weights.</p>",
        "<h2>Reproduced with characterbench</h2>",
    ]
    body += [_html_table(frame, title) + ("" if frame.empty else _charts(frame, title)) for title, frame, _ in ours]
    if apart:
        body += ["<h2>Unverified</h2>", f"<p>{html.escape(_UNVERIFIED_TEXT)}</p>"]
        body += [_html_table(frame, title) for title, frame, _ in apart]
    body.append("<h2>Reported in papers, not reproduced</h2>")
    if not paper:
        body.append("<p><em>No paper tables transcribed yet.</em></p>")
    for title, frame, table in paper:
        body.append(
            f"<p>Task <code>{html.escape(table['task'])}</code>. {NOT_REPRODUCED.capitalize()}: not comparable with the "
            f"rows above. Source: {html.escape(table['source'])}.</p>"
        )
        if table.get("notes"):
            body.append(f"<p><small>Notes: {html.escape(table['notes'])}</small></p>")
        body.append(_html_table(frame, title))
    style = (
        "body{font-family:sans-serif;margin:2em;max-width:80em}table{border-collapse:collapse;margin:1em 0}"
        "th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left}td.num{text-align:right}"
        "caption{text-align:left;font-weight:bold;padding:.3em 0}th[aria-sort=ascending]::after{content:' ▲'}"
        "th[aria-sort=descending]::after{content:' ▼'}.charts{display:flex;flex-wrap:wrap;gap:1em}"
        "figure.chart{margin:.5em 0}figcaption{font-size:small;color:#555}"
    )
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{html.escape(board.name)}</title>\n<!-- Generated by `characterbench leaderboard build`; do not edit. -->\n"
        f"<style>{style}</style>\n</head>\n<body>\n" + "\n".join(body) + f"\n<script>{_SORT_SCRIPT}</script>\n</body>\n</html>\n"
    )


