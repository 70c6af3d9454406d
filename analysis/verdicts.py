"""The claims at a glance: one colour per verdict, the short verdict table and the forest plot
of every confirmatory delta, as the report's first screen shows them.

Both read the claims table (analysis.claims.claims_table, or claims.csv read back), whose
accuracies are fractions; here every number is in percentage points (pp). An interval is
shown only where both arms have enough completed runs (stats.INTERVAL_RULE).
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from analysis.figure_style import COLUMN_WIDTH, has_interval, paper_style, png_bytes
from analysis.stats import INTERVAL_RULE, MIN_RUNS_FOR_INTERVAL

# One colour per verdict (Okabe and Ito's palette, told apart with any common colour-vision
# deficiency), in the order the legend lists them.
VERDICT_COLOURS = {
    "reproduced": "#009E73",
    "larger than claimed": "#0072B2",
    "smaller than claimed": "#E69F00",
    "contradicted": "#D55E00",
    "not the claimed size": "#F0E442",
    "no effect": "#CC79A7",
    "higher": "#56B4E9",
    "lower": "#000000",
    "inconclusive": "#8C8C8C",
}
UNKNOWN_COLOUR = "#8C8C8C"
CLAIM_BAND = "#CDE8DF"  # the claim's tolerance band: a pale tint of "reproduced"
NO_INTERVAL = f"n < {MIN_RUNS_FOR_INTERVAL}: no interval"
VERDICT_COLUMNS = ("delta_pp", "ci_low_pp", "ci_high_pp", "ci_level", "paper_delta_pp",
                   "verdict", "family", "n_treatment", "n_control", "failed_treatment",
                   "failed_control", "runs_treatment", "runs_control")


def verdict_colour(verdict: object) -> str:
    return VERDICT_COLOURS.get(str(verdict), UNKNOWN_COLOUR)


def text_colour(background: str) -> str:
    """Black or white, whichever reads better on `background` (WCAG relative luminance)."""
    rgb = [int(background[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    return "#000000" if (luminance + 0.05) / 0.05 > 1.05 / (luminance + 0.05) else "#ffffff"


def verdict_badge(verdict: object) -> str:
    """The verdict as an HTML badge in its colour."""
    colour = verdict_colour(verdict)
    return (f"<span class='verdict' style='background:{colour};color:{text_colour(colour)}'>"
            f"{html.escape(str(verdict))}</span>")


def where_columns(claims: pd.DataFrame) -> list[str]:
    """The columns that say where a claims row was measured: the dataset, then the
    comparisons' other `by` columns (the recipe, say), as the claims table orders them."""
    columns = list(claims.columns)
    start = columns.index("paper_in_pi") + 1 if "paper_in_pi" in columns else len(columns)
    end = columns.index("paper_control") if "paper_control" in columns else len(columns)
    return [c for c in ["dataset", *columns[start:end]] if c in columns]


def shows_interval(row: Mapping) -> bool:
    """Whether a claims row's delta interval is shown: both arms have enough runs."""
    ns = [row.get("n", np.nan), row.get("n_control", np.nan)]
    bounds = [row.get("ci_low", np.nan), row.get("ci_high", np.nan)]
    return all(pd.notna(n) and has_interval(n) for n in ns) and bool(np.isfinite(bounds).all())


def verdict_table(claims: pd.DataFrame) -> pd.DataFrame:
    """One row per claims row: where it was measured, delta and the interval that decided
    its verdict in points, with its level (NaN where an arm has fewer runs than
    stats.INTERVAL_RULE asks), the paper's claimed delta in points, the verdict, its family,
    and per arm the runs that did not fail, the failed runs and all runs."""
    rows = []
    for row in claims.to_dict("records"):
        shown = shows_interval(row)
        rows.append({
            "claim": row["claim"], **{c: row[c] for c in where_columns(claims)},
            "delta_pp": 100 * row["delta"],
            "ci_low_pp": 100 * row["ci_low"] if shown else np.nan,
            "ci_high_pp": 100 * row["ci_high"] if shown else np.nan,
            "ci_level": row.get("ci_level", np.nan),
            "paper_delta_pp": 100 * row["paper_delta"], "verdict": row["verdict"],
            "family": row.get("family", ""),
            "n_treatment": row.get("n"), "n_control": row.get("n_control"),
            "failed_treatment": row.get("n_failed", 0),
            "failed_control": row.get("n_failed_control", 0),
            "runs_treatment": row.get("n_runs", row.get("n")),
            "runs_control": row.get("n_runs_control", row.get("n_control"))})
    columns = ["claim", *where_columns(claims), *VERDICT_COLUMNS]
    return pd.DataFrame(rows, columns=columns)


FAMILY_TITLES = {"confirmatory": "Confirmatory claims: the paper's numbers",
                 "exploratory": "Exploratory comparisons: no paper number"}


def family_titles(claims: pd.DataFrame) -> dict[str, str]:
    """{family: its heading with its size} for the families the claims table has, the
    confirmatory one first: each is corrected on its own, so each is shown on its own."""
    sizes = claims["family"].value_counts() if "family" in claims else pd.Series(dtype=int)
    return {family: f"{title} (a family of {sizes[family]}, intervals simultaneous over it)"
            for family, title in FAMILY_TITLES.items() if sizes.get(family, 0)}


def forest_rows(claims: pd.DataFrame) -> pd.DataFrame:
    """The rows the forest plot draws: the confirmatory family where there is one (the
    paper's claims), else every row (a study without paper numbers, e.g. the demo)."""
    if "family" in claims and (claims["family"] == "confirmatory").any():
        return claims[claims["family"] == "confirmatory"]
    return claims


def _n(value: object) -> int:
    return 0 if value is None or pd.isna(value) else int(value)


def _points(value: float) -> str:
    return f"{value:+.2f}" if pd.notna(value) and np.isfinite(value) else "n/a"


def verdict_display(table: pd.DataFrame) -> pd.DataFrame:
    """The verdict table as a reader sees it: signed points, the interval in brackets (or
    why there is none), n as treatment / control."""
    where = [c for c in table.columns if c not in ("claim", *VERDICT_COLUMNS)]
    rows = []
    for row in table.to_dict("records"):
        small = min(_n(row["n_treatment"]), _n(row["n_control"]))
        interval = (f"[{_points(row['ci_low_pp'])}, {_points(row['ci_high_pp'])}]"
                    if pd.notna(row["ci_low_pp"]) else
                    f"n = {small}: no interval" if 0 < small < MIN_RUNS_FOR_INTERVAL else
                    "an arm has no runs" if small == 0 else "n/a")
        level = row.get("ci_level", np.nan)
        rows.append({"claim": row["claim"], **{c: row[c] for c in where},
                     "delta (pp)": _points(row["delta_pp"]), "interval (pp)": interval,
                     "level": f"{100 * level:.3g}%" if pd.notna(level) else "n/a",
                     "paper delta (pp)": _points(row["paper_delta_pp"]),
                     "verdict": row["verdict"], "family": row.get("family", ""),
                     "n (treatment / control)": f"{_n(row['n_treatment'])} / "
                                                f"{_n(row['n_control'])}",
                     "failed (treatment / control)":
                         f"{_n(row.get('failed_treatment'))} of {_n(row.get('runs_treatment'))}"
                         f" / {_n(row.get('failed_control'))} of {_n(row.get('runs_control'))}"})
    return pd.DataFrame(rows, columns=["claim", *where, "delta (pp)", "interval (pp)", "level",
                                       "paper delta (pp)", "verdict", "family",
                                       "n (treatment / control)",
                                       "failed (treatment / control)"])


VERDICT_NOTE = (
    "delta: mean(treatment) - mean(control) of the final-epoch test accuracy over the runs "
    "that did not fail, in percentage points (pp), with the Welch interval that decided the "
    "verdict, simultaneous over the row's family by Bonferroni (level: 1 - alpha / family "
    "size; confirmatory rows have a paper number, exploratory rows do not); paper delta: "
    "the paper's single-run claim; failed: diverged or collapsed runs of all runs, per arm "
    "(the verdict is conditional on a run converging). The verdict follows the rule under "
    "the claims table (every statistic and p-value is there, and in claims.csv, in "
    "fractions). " + INTERVAL_RULE)


# -- the forest plot ------------------------------------------------------------------------

def _row_label(row: Mapping, where: list[str]) -> str:
    place = " · ".join(str(row[c]) for c in where if pd.notna(row.get(c)) and row[c] != "")
    return f"{row['claim']}\n{place}" if place else str(row["claim"])


def forest_figure(claims: pd.DataFrame) -> plt.Figure | None:
    """Every claims row's delta (pp) with the interval that decided it, top to bottom in the table's
    order: the point and interval in the verdict's colour, the verdict named at the right,
    the paper's claimed delta as a black cross, zero and the equivalence margin shaded. A row
    whose arms are too small for an interval says so beside its point. Each row with a claim
    shades its own tolerance band, claim +- m (`claim_tolerance`), so the zones that decide
    its verdict (below 0, +-e, the band) are read off the picture. None without rows."""
    if claims.empty:
        return None
    rows, where = claims.to_dict("records"), where_columns(claims)
    margins = pd.to_numeric(claims.get("equivalence_margin", pd.Series(dtype=float)),
                            errors="coerce").dropna()
    margin = 100 * float(margins.iloc[0]) if len(margins) else None
    y = np.arange(len(rows))[::-1]
    with paper_style():
        fig, ax = plt.subplots(figsize=(2 * COLUMN_WIDTH, 1.1 + 0.28 * len(rows)),
                               layout="constrained")
        handles = []
        if margin:
            ax.axvspan(-margin, margin, color="0.9", linewidth=0, zorder=0)
            handles.append(Patch(color="0.9", label=f"equivalence margin (±{margin:g} pp)"))
        ax.axvline(0, color="0.35", linewidth=0.6, zorder=1)
        banded = False
        for yi, row in zip(y, rows):
            tolerance = row.get("claim_tolerance", np.nan)
            if pd.notna(row["paper_delta"]) and pd.notna(tolerance) and row["paper_delta"] != 0:
                centre, half = 100 * row["paper_delta"], 100 * tolerance
                ax.fill_betweenx([yi - 0.4, yi + 0.4], centre - half, centre + half,
                                 color=CLAIM_BAND, linewidth=0, zorder=0.5)
                banded = True
            colour, delta = verdict_colour(row["verdict"]), 100 * row["delta"]
            if shows_interval(row):
                ax.plot([100 * row["ci_low"], 100 * row["ci_high"]], [yi, yi], color=colour,
                        linewidth=1.8, solid_capstyle="butt", zorder=2)
            if np.isfinite(delta):
                ax.scatter(delta, yi, s=24, color=colour, edgecolors="white", linewidths=0.5,
                           zorder=3)
            if pd.notna(row["paper_delta"]):
                ax.scatter(100 * row["paper_delta"], yi, marker="x", s=22, color="black",
                           linewidths=1.0, zorder=4)
            # the verdict at the right, and why a row has no interval after it
            verdict = ax.text(1.01, yi, str(row["verdict"]), transform=ax.get_yaxis_transform(),
                              color=colour if colour != UNKNOWN_COLOUR else "0.35",
                              va="center", fontsize=7, fontweight="bold")
            small = min(_n(row.get("n")), _n(row.get("n_control")))
            if not shows_interval(row) and small < MIN_RUNS_FOR_INTERVAL:
                ax.annotate(f"n = {small}: no interval" if small else "an arm has no runs",
                            xy=(1, 0.5), xycoords=verdict,
                            xytext=(4, 0), textcoords="offset points", va="center",
                            fontsize=7, color="0.3")
        if banded:
            handles.append(Patch(color=CLAIM_BAND, label="claimed delta ± tolerance"))
        if claims["paper_delta"].notna().any():
            handles.append(Line2D([], [], marker="x", color="black", linestyle="",
                                  label="paper's claimed delta (single run)"))
        present = list(dict.fromkeys(str(v) for v in claims["verdict"]))
        ordered = [v for v in VERDICT_COLOURS if v in present] + \
            [v for v in present if v not in VERDICT_COLOURS]
        handles += [Line2D([], [], marker="o", color=verdict_colour(v), linestyle="-",
                           linewidth=1.8, label=v) for v in ordered]
        ax.set_yticks(y, [_row_label(row, where) for row in rows])
        ax.set_ylim(-0.7, len(rows) - 0.3)
        ax.set_xlabel("delta, treatment − control (percentage points), with the interval that "
                      "decided its verdict")
        ax.grid(axis="x", color="0.85", linewidth=0.4)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 4),
                   frameon=False, handlelength=1.6, columnspacing=1.2)
    return fig


# -- HTML -----------------------------------------------------------------------------------

VERDICT_CSS = (
    ".verdict{display:inline-block;padding:1px 7px;border-radius:3px;font-weight:600;"
    "white-space:nowrap}"
)


def forest_img(claims: pd.DataFrame) -> str:
    """The forest plot as an <img> whose PNG is inside the page (no file to fetch)."""
    fig = forest_figure(forest_rows(claims))
    if fig is None:
        return ""
    data = base64.b64encode(png_bytes(fig)).decode("ascii")
    return (f"<img class='forest' alt='forest plot of the claims' style='width:100%;"
            f"max-width:1100px' src='data:image/png;base64,{data}'>")


def landing_fragment(claims: pd.DataFrame | None, table_html: str, *, note: str) -> str:
    """What the report's landing page (workflow/report/workflow.rst) shows first: the forest
    plot and the verdict table, an HTML fragment with its own small style."""
    if claims is None or claims.empty:
        return ("<p><b>No verdicts:</b> the config has no comparisons, or none has runs; the "
                "studies are under the categories on the left.</p>\n")
    style = ("<style>.hybrid-verdicts table{border-collapse:collapse;font-size:12px;"
             "margin:0.5em 0}.hybrid-verdicts th,.hybrid-verdicts td{padding:2px 6px;"
             "text-align:right;white-space:nowrap;border-bottom:1px solid #ddd}"
             ".hybrid-verdicts td:first-child,.hybrid-verdicts th:first-child{text-align:left}"
             ".hybrid-verdicts p.note{font-size:11px;color:#555;margin:0.3em 0}"
             f"{VERDICT_CSS}</style>")
    page = (f"{style}<div class='hybrid-verdicts'>{forest_img(claims)}{table_html}"
            f"<p class='note'>{html.escape(note)}</p></div>\n")
    return page.encode("ascii", "xmlcharrefreplace").decode("ascii")  # any reader's encoding
