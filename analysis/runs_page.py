"""The report's page of every run: one self-contained HTML table, sortable and filterable
with a few lines of inline script, so that it works offline inside the Snakemake report.

    runs_page(runs_table, config) -> str
"""

from __future__ import annotations

import html
from collections.abc import Mapping

import numpy as np
import pandas as pd

from analysis.claims import flag_runs
from analysis.collect import config_columns

# result columns shown after the config columns: (column, heading, scale)
RESULT_COLUMNS = (("status", "status", None), ("outlier", "flagged", None),
                  ("test_accuracy", "test accuracy (%)", 100),
                  ("best_test_accuracy", "best test accuracy (%)", 100),
                  ("best_epoch", "best epoch", None), ("epochs_completed", "epochs", None),
                  ("params", "params", None), ("flops", "MFLOPs", 1e-6),
                  ("train_time_s", "train time (min)", 1 / 60),
                  ("images_per_s", "images/s", None))

LEADING_RESULTS = ("status", "outlier", "test_accuracy", "best_test_accuracy")

RUNS_STYLE = (
    "body{font-family:system-ui,sans-serif;font-size:12px;margin:10px;color:#222}"
    "#bar{position:sticky;top:0;background:#fff;padding:4px 0 8px;z-index:2}"
    "#filter{width:32em;font-size:13px;padding:3px 6px}#count{margin-left:1em;color:#555}"
    "table{border-collapse:collapse}th,td{padding:2px 7px;white-space:nowrap;text-align:left}"
    "th{position:sticky;top:34px;background:#eef0f3;cursor:pointer;border-bottom:1px solid #444}"
    "th[data-dir=asc]::after{content:' ▲'}th[data-dir=desc]::after{content:' ▼'}"
    "td.num{text-align:right;font-variant-numeric:tabular-nums}"
    "tr:nth-child(even){background:#f6f7f9}"
    "tr.diverged td,tr.missing td,tr.corrupt td{background:#fde8e1}tr.flagged td{background:#fff3cd}"
)

# Filtering and sorting, inline so the page works offline inside the report.
RUNS_SCRIPT = """
const table = document.getElementById("runs"), body = table.tBodies[0];
const rows = Array.from(body.rows), input = document.getElementById("filter");
const heads = Array.from(table.tHead.rows[0].cells).map(h => h.textContent.toLowerCase());
function matches(row, term) {
  const eq = term.indexOf("=");
  if (eq > 0) {
    const col = heads.indexOf(term.slice(0, eq)), want = term.slice(eq + 1);
    return col >= 0 && row.cells[col].textContent.toLowerCase() === want;
  }
  return row.textContent.toLowerCase().includes(term);
}
function update() {
  const terms = input.value.toLowerCase().split(/\\s+/).filter(Boolean);
  let shown = 0;
  for (const row of rows) {
    row.hidden = !terms.every(t => matches(row, t));
    shown += !row.hidden;
  }
  document.getElementById("count").textContent = shown + " of " + rows.length + " runs";
}
function value(row, i) {
  const cell = row.cells[i], x = parseFloat(cell.dataset.v);
  return isNaN(x) ? cell.textContent : x;
}
table.tHead.addEventListener("click", event => {
  const th = event.target.closest("th");
  if (!th) return;
  const i = th.cellIndex, dir = th.dataset.dir === "asc" ? -1 : 1;
  for (const h of table.tHead.rows[0].cells) delete h.dataset.dir;
  th.dataset.dir = dir === 1 ? "asc" : "desc";
  rows.sort((a, b) => {
    const x = value(a, i), y = value(b, i);
    if (typeof x !== typeof y) return (typeof x === "number" ? -1 : 1) * dir;
    return (x < y ? -1 : x > y ? 1 : 0) * dir;
  });
  body.append(...rows);
});
input.addEventListener("input", update);
update();
"""


def runs_columns(runs_table: pd.DataFrame) -> list[tuple[str, str, float | None]]:
    """(column, heading, scale) of the runs page: the run's id, studies, variant and seed,
    its status and accuracies (percent), its other config axes as runs.csv has them, its
    name, then the other RESULT_COLUMNS that the table has."""
    keys = [(c, c, None) for c in ("run_id", "studies", "variant", "seed")
            if c in runs_table.columns]
    axes = [(c, c, None) for c in config_columns(runs_table) if c != "variant"]
    results = [spec for spec in RESULT_COLUMNS if spec[0] in runs_table.columns]
    first = [spec for spec in results if spec[0] in LEADING_RESULTS]
    rest = [spec for spec in results if spec[0] not in LEADING_RESULTS]
    name = [("name", "name", None)] if "name" in runs_table.columns else []
    return [*keys, *first, *axes, *name, *rest]


def _cell(value: object, scale: float | None) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "<td>yes</td>" if value else "<td></td>"
    if scale is not None or isinstance(value, (int, float, np.integer, np.floating)):
        number = pd.to_numeric(value, errors="coerce")
        if pd.isna(number):
            return "<td class='num' data-v=''></td>"
        shown = number * (scale or 1)
        text = f"{shown:.2f}" if scale is not None else f"{shown:g}"
        return f"<td class='num' data-v='{shown!r}'>{text}</td>"
    return f"<td>{html.escape('' if pd.isna(value) else str(value))}</td>"


def runs_page(runs_table: pd.DataFrame, config: Mapping | None = None) -> str:
    """Every run of the run table on one self-contained HTML page: a filter box (words that
    must all appear in a row; `column=value` for an exact cell, e.g. `status=diverged`), and
    headings that sort on a click; diverged, missing and corrupt runs tinted, flagged runs
    (stats.OUTLIER_RULE) marked. No script or style is fetched: it works offline."""
    table = flag_runs(runs_table, config or {}) if not runs_table.empty else runs_table
    columns = runs_columns(table)
    head = "".join(f"<th>{html.escape(heading)}</th>" for _, heading, _ in columns)
    body = []
    for row in table.to_dict("records"):
        status = str(row.get("status", ""))
        flagged = bool(row.get("outlier")) and pd.notna(row.get("outlier"))
        classes = " ".join(filter(None, [status if status != "completed" else "",
                                         "flagged" if flagged else ""]))
        cells = "".join(_cell(row.get(c), scale) for c, _, scale in columns)
        body.append(f"<tr class='{classes}'>{cells}</tr>" if classes else f"<tr>{cells}</tr>")
    title = f"{len(table)} runs"
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title>"
        f"<style>{RUNS_STYLE}</style></head><body><div id='bar'>"
        "<input id='filter' type='search' autofocus placeholder='filter: words, or "
        "column=value (status=diverged)'>"
        f"<span id='count'>{title}</span></div>"
        f"<table id='runs'><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        f"<p>Click a heading to sort. Accuracies in percent; tinted rows did not complete; "
        f"flagged rows lie far from their cell (they stay in every statistic).</p>"
        f"<script>{RUNS_SCRIPT}</script></body></html>\n")

