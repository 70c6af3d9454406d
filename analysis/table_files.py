"""Tables written out: one data frame as CSV (every column, full precision), GitHub Markdown,
a LaTeX booktabs tabular and a standalone HTML page (what the Snakemake report shows), in the
reader's units; shared by analysis.tables and analysis.looks.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.verdicts import VERDICT_CSS, verdict_badge

def format_cell(value: object) -> str:
    """A cell for Markdown or LaTeX: 4 significant digits, integers whole, NaN as n/a."""
    if value is None or (isinstance(value, (float, np.floating)) and not np.isfinite(value)):
        return "n/a"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)) and float(value).is_integer() and abs(value) >= 1:
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{value:.4g}"
    return str(value)


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table, numbers right-aligned."""
    def row(cells):
        return "| " + " | ".join(str(c).replace("|", r"\|") for c in cells) + " |"
    align = ["---:" if pd.api.types.is_numeric_dtype(df[c]) else "---" for c in df.columns]
    body = [row(format_cell(v) for v in values) for values in df.itertuples(index=False)]
    return "\n".join([row(df.columns), row(align).replace(r"\|", "|"), *body]) + "\n"


_TEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                "^": r"\textasciicircum{}", "±": r"$\pm$"}


def tex_escape(text: str) -> str:
    return re.sub("|".join(map(re.escape, _TEX_SPECIAL)), lambda m: _TEX_SPECIAL[m.group()],
                  text)


def to_latex(df: pd.DataFrame) -> str:
    """A booktabs tabular (\\toprule, \\midrule, \\bottomrule), numbers right-aligned."""
    spec = "".join("r" if pd.api.types.is_numeric_dtype(df[c]) else "l" for c in df.columns)
    def row(cells):
        return " & ".join(tex_escape(str(c)) for c in cells) + r" \\"
    body = [row(format_cell(v) for v in values) for values in df.itertuples(index=False)]
    return "\n".join([rf"\begin{{tabular}}{{{spec}}}", r"\toprule", row(df.columns),
                      r"\midrule", *body, r"\bottomrule", r"\end{tabular}"]) + "\n"


DISPLAY_NAMES = {"accuracy_pct": "mean ± std (%)"}  # display columns already in percent


def with_units(df: pd.DataFrame, units: Mapping[str, str]) -> pd.DataFrame:
    """A display copy: each column of `units` ({column: "%" or "pp"}, fractions in the CSV)
    times 100, rounded to 2 decimals, its name ending in its unit ("delta (pp)"); the
    percent display columns of DISPLAY_NAMES renamed to say so."""
    shown = df.copy()
    for column, unit in units.items():
        if column in shown.columns:
            shown[column] = (pd.to_numeric(shown[column], errors="coerce") * 100).round(2)
    return shown.rename(columns={c: f"{c} ({u})" for c, u in units.items()} | DISPLAY_NAMES)


def write_table(df: pd.DataFrame, stem: str | Path, *, columns: Sequence[str] | None = None,
                note: str | None = None, units: Mapping[str, str] | None = None,
                display: pd.DataFrame | None = None) -> list[Path]:
    """Write `stem`.csv (every column, full precision), `stem`.md, `stem`.tex and
    `stem`.html (`columns` only, if given, in the `units` of with_units, or `display`
    instead where given; `note` below the table: a paragraph, a LaTeX comment). The HTML
    page is what the Snakemake report shows."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    shown = df[[c for c in columns if c in df.columns]] if columns else df
    shown = display if display is not None else with_units(shown, units or {})
    paths = [stem.with_suffix(s) for s in (".csv", ".md", ".tex", ".html")]
    df.to_csv(paths[0], index=False)
    paths[1].write_text(to_markdown(shown) + (f"\n{note}\n" if note else ""))
    comment = "".join(f"% {line}\n" for line in (note or "").splitlines())
    paths[2].write_text(to_latex(shown) + comment)
    paths[3].write_text(to_html(shown, stem.name, note))
    return paths


HTML_STYLE = (
    "body{font-family:system-ui,sans-serif;font-size:13px;margin:12px;color:#222}"
    "table{border-collapse:collapse}th,td{padding:3px 8px;text-align:right;white-space:nowrap}"
    "th{border-bottom:1px solid #444;text-align:center;background:#fff}"
    "tr:nth-child(even) td{background:#f4f5f7}tr:nth-child(odd) td{background:#fff}"
    "td:first-child,th:first-child{text-align:left;position:sticky;left:0}"
    "td.text{text-align:left;white-space:normal;min-width:24em;max-width:40em}"
    "p{max-width:60em;line-height:1.4}" + VERDICT_CSS
)


def html_table(df: pd.DataFrame) -> str:
    """The table as the Markdown shows it, a `verdict` column as coloured badges, a `note`
    column wrapped."""
    header = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = []
    for values in df.itertuples(index=False):
        cells = []
        for column, value in zip(df.columns, values):
            text = verdict_badge(value) if column == "verdict" else html.escape(format_cell(value))
            cells.append(f"<td class='text'>{text}</td>" if column == "note" else f"<td>{text}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{header}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def to_html(df: pd.DataFrame, title: str, note: str | None = None) -> str:
    """A standalone page: the table as the Markdown shows it, and the note below."""
    note_html = "".join(f"<p>{html.escape(line)}</p>" for line in (note or "").splitlines())
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{HTML_STYLE}</style></head><body>{html_table(df)}{note_html}</body></html>\n")


