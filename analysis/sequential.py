"""A group-sequential verdict: look at a comparison at planned seeds per arm, stop once its
interval decides.

The fixed design (analysis.verdict_rule) reads one Welch interval at level 1 - alpha/k after
all its seeds. How many seeds a row needs depends on the spread of its runs, which nobody
knows beforehand, so a sequential design looks at planned stages (seeds per arm, e.g.
3, 5, 8, 12) and stops a row at the first look whose label is not "inconclusive", else at
the last. Looking more than once would raise the chance of a false label, so each look's
interval is a repeated confidence interval (Jennison & Turnbull, "Group Sequential Methods
with Applications to Clinical Trials", ch. 9): its level is chosen so that the chance of
ANY look's interval missing the true delta, up to and including look j, is the alpha spent
by then, alpha(t_j), from a Lan-DeMets spending function of the information fraction
t_j = n_j / n_max. Whatever look a row stops at, its label is read off an interval that
covers the truth at all looks together with probability 1 - alpha, so a false direction or
a false "reproduced" is no likelier than in the fixed design. Bonferroni over a family of
k rows is kept: each row spends alpha / k.

The boundaries are exact for the normal (known-variance) look statistics: Z_j is the
delta's estimate at look j over its standard error, jointly normal with correlation
sqrt(t_i / t_j), and the per-look critical values c_j solve
P(|Z_i| >= c_i for some i <= j) = alpha(t_j) by the recursive numerical integration of
Armitage, McPherson & Rowe (Jennison & Turnbull ch. 19), on the score scale W_j = Z_j
sqrt(t_j), whose increments are independent. The Welch interval has an estimated SD, so
each look keeps its nominal significance level, 2 (1 - Phi(c_j)), and uses it as a t
interval at that look's Welch degrees of freedom: the "significance level approach" to
group-sequential t-tests (Pocock 1977; Jennison & Turnbull ch. 3), an approximation (the
t statistics' joint law differs from the normal one) whose error rate `simulate` measures
with the project's own rule (tests/test_sequential.py, bench/sequential.py): under no
effect it stays below the fixed design's.

Everything here is vectorised over rows or replicates; looks lie along the last axis.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import optimize, stats

from analysis.verdict_rule import (ALPHA, CLAIM_TOLERANCE, EQUIVALENCE_MARGIN, family_level,
                                   labels, welch_interval)

SPENDING_KINDS = ("obrien-fleming", "pocock")
# Not a design: every look at the full alpha / k, as if each were the only one. The tests and
# the bench keep it to show what spending buys (its false labels exceed alpha).
NAIVE = "naive"
# A boundary beyond this many SEs is the same as no boundary: 2 (1 - Phi(8.5)) ~ 2e-17, and
# a level of 1 - 2e-17 is 1.0 in floating point (an infinite interval, "inconclusive").
Z_MAX = 8.5
GRID_POINTS = 801  # quadrature points per look (odd, for Simpson's rule)
# The labels that say which way delta lies (the interval excludes 0): under no true effect,
# each of them is a false claim of a direction.
DIRECTION_LABELS = ("contradicted", "smaller than claimed", "reproduced", "larger than claimed",
                    "higher", "lower")
REPLICATES = 20_000


# -- spending and boundaries ------------------------------------------------------------------

def spent(alpha: float, information_fraction, kind: str) -> np.ndarray:
    """The error rate spent by information fraction t (Lan-DeMets): "obrien-fleming"
    2 (1 - Phi(z_{1-alpha/2} / sqrt(t))), which spends almost nothing early, or "pocock"
    alpha ln(1 + (e - 1) t), which spends evenly. 0 at t = 0 and exactly alpha at t >= 1 (not
    rounded through a normal quantile, so a one-look design is the fixed design bit for bit)."""
    t = np.clip(np.asarray(information_fraction, dtype=float), 0.0, 1.0)
    if kind == "obrien-fleming":
        with np.errstate(divide="ignore"):
            # sf, not 1 - cdf: early looks spend ~1e-20, which 1 - cdf rounds to 0
            inside = 2 * stats.norm.sf(stats.norm.isf(alpha / 2) / np.sqrt(t))
    elif kind == "pocock":
        inside = alpha * np.log1p((np.e - 1) * t)
    else:
        raise ValueError(f"spending kind {kind!r}: use one of {SPENDING_KINDS}")
    return np.where(t >= 1, alpha, inside)


def information_fractions(stages) -> np.ndarray:
    """t_j = n_j / n_max for stages of seeds per arm, checked to rise strictly from 3 (an
    interval needs 3 runs per arm)."""
    n = np.asarray(stages, dtype=float)
    if n.ndim != 1 or n.size == 0 or n[0] < 3 or np.any(np.diff(n) <= 0):
        raise ValueError(f"stages {list(stages)}: seeds per arm at each look, rising strictly "
                         "from at least 3, e.g. [3, 5, 8, 12]")
    return n / n[-1]


def _simpson(low: float, high: float) -> tuple[np.ndarray, np.ndarray]:
    """Simpson's rule on [low, high]: points and weights."""
    x = np.linspace(low, high, GRID_POINTS)
    w = np.ones(GRID_POINTS)
    w[1:-1:2], w[2:-1:2] = 4, 2
    return x, w * (x[1] - x[0]) / 3


def z_boundaries(fractions, alpha: float, kind: str) -> np.ndarray:
    """Critical values c_j of the normal look statistics: P(|Z_i| >= c_i for some i <= j) is
    the spent alpha(t_j) at every look j, with Z's correlation sqrt(t_i / t_j) (recursive
    numerical integration on the score scale W_j = Z_j sqrt(t_j), independent increments).
    A look that has nothing left to spend gets Z_MAX."""
    t = np.asarray(fractions, dtype=float)
    cumulative = spent(alpha, t, kind)
    c = [min(float(stats.norm.isf(cumulative[0] / 2)), Z_MAX)]
    # the sub-density of W at the last look among paths that never crossed, times weights
    x, w = _simpson(-c[0] * np.sqrt(t[0]), c[0] * np.sqrt(t[0]))
    mass = w * stats.norm.pdf(x, scale=np.sqrt(t[0]))
    for j in range(1, t.size):
        step = np.sqrt(t[j] - t[j - 1])

        def crossing(b: float) -> float:  # P(first crossing at look j) with boundary b on W
            return float(mass @ (stats.norm.sf((b - x) / step) + stats.norm.sf((b + x) / step)))

        target = cumulative[j] - cumulative[j - 1]
        top = Z_MAX * np.sqrt(t[j])
        if target <= 0 or crossing(top) >= target:
            b = top
        else:  # crossing falls from P(continued) at b = 0 to below target at `top`
            b = optimize.brentq(lambda b: crossing(b) / target - 1, 0.0, top, xtol=1e-12)
        c.append(b / np.sqrt(t[j]))
        new_x, w = _simpson(-b, b)
        mass = w * ((stats.norm.pdf((new_x[:, None] - x[None, :]) / step) / step) @ mass)
        x = new_x
    return np.array(c)


def nominal_alphas(stages, *, spending: str = "obrien-fleming", alpha: float = ALPHA,
                   family: int = 1) -> np.ndarray:
    """Each look's two-sided nominal significance level for one row of a family of `family`
    rows (Bonferroni: the row spends alpha / family). `spending` "naive" gives every look
    alpha / family, the error the spending prevents."""
    per_row = alpha / max(family, 1)
    t = information_fractions(stages)
    if spending == NAIVE:
        return np.full(t.size, per_row)
    out = 2 * stats.norm.sf(z_boundaries(t, per_row, spending))
    out[0] = spent(per_row, t[0], spending)  # exact, not through a quantile and back
    return out


def look_levels(stages, *, spending: str = "obrien-fleming", alpha: float = ALPHA,
                family: int = 1) -> np.ndarray:
    """The level of each look's repeated interval, 1 - nominal alpha (nominal_alphas). With
    one look it is verdict_rule.family_level exactly."""
    return 1 - nominal_alphas(stages, spending=spending, alpha=alpha, family=family)


# -- intervals and decisions -----------------------------------------------------------------

def repeated_intervals(mean_a, sd_a, n_a, mean_b, sd_b, n_b, stages, *,
                       spending: str = "obrien-fleming", alpha: float = ALPHA,
                       family: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) of delta = mean_a - mean_b at every look: verdict_rule.welch_interval at
    that look's level (look_levels). The arms' moments have looks along the last axis (one
    per stage); rows or replicates along the others."""
    levels = look_levels(stages, spending=spending, alpha=alpha, family=family)
    return welch_interval(mean_a, sd_a, n_a, mean_b, sd_b, n_b, levels)


class Decisions(NamedTuple):
    """Where each row stopped: `look` (index into the stages), its `label` there and the
    `seeds` per arm it used."""
    look: np.ndarray
    label: np.ndarray
    seeds: np.ndarray


def sequential_decisions(low, high, stages, claimed_delta, margin: float = EQUIVALENCE_MARGIN,
                         tolerance: float = CLAIM_TOLERANCE) -> Decisions:
    """Stop each row at its first look whose label (verdict_rule.labels) is not
    "inconclusive", else at its last look. `low`, `high`: repeated intervals with looks
    along the last axis; `claimed_delta`: one per row (broadcast against the other axes)."""
    claim = np.asarray(claimed_delta, dtype=float)[..., None]
    per_look = labels(low, high, claim, margin, tolerance)
    decided = per_look != "inconclusive"
    look = np.where(decided.any(axis=-1), decided.argmax(axis=-1), per_look.shape[-1] - 1)
    label = np.take_along_axis(per_look, look[..., None], axis=-1)[..., 0]
    return Decisions(look, label, np.asarray(stages)[look])


# -- simulation ------------------------------------------------------------------------------

def look_moments(runs, stages) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, SD and count of each arm's first n_j runs (in seed order) for every stage:
    runs (..., n_max) -> three arrays (..., looks)."""
    runs = np.asarray(runs, dtype=float)
    mean = np.stack([runs[..., :n].mean(axis=-1) for n in stages], axis=-1)
    sd = np.stack([runs[..., :n].std(axis=-1, ddof=1) for n in stages], axis=-1)
    return mean, sd, np.broadcast_to(np.asarray(stages, dtype=float), mean.shape)


@dataclass(frozen=True)
class DesignRates:
    """One design's outcome over the replicates: the rate of each label, of "reproduced"
    (a false one under no effect, the power under the claim), of any direction
    (DIRECTION_LABELS: each one false under no effect), the expected seeds per arm and the
    rate of stopping at each look."""
    label_rates: dict
    reproduced: float
    direction: float
    expected_seeds: float
    stop_rates: tuple


@dataclass(frozen=True)
class Simulation:
    """`sequential` at the stages, `fixed`: the project's rule at the last stage's seeds, on
    the same simulated runs."""
    sequential: DesignRates
    fixed: DesignRates


def _rates(label: np.ndarray, seeds: np.ndarray, look: np.ndarray, looks: int) -> DesignRates:
    names, counts = np.unique(label, return_counts=True)
    return DesignRates(
        label_rates={str(k): v / label.size for k, v in zip(names, counts)},
        reproduced=float(np.mean(label == "reproduced")),
        direction=float(np.mean(np.isin(label, DIRECTION_LABELS))),
        expected_seeds=float(np.mean(seeds)),
        stop_rates=tuple(float(v) for v in np.bincount(look, minlength=looks) / look.size))


def simulate(true_delta: float, sd: float, stages, *, claimed_delta: float,
             spending: str = "obrien-fleming", alpha: float = ALPHA, family: int = 1,
             margin: float = EQUIVALENCE_MARGIN, tolerance: float = CLAIM_TOLERANCE,
             replicates: int = REPLICATES, seed: int = 0) -> Simulation:
    """The sequential design and the fixed one on the same simulated comparisons: both arms'
    runs normal with SD `sd`, the treatment's mean `true_delta` above the control's (the
    generative assumption of verdict_rule.reproduced_rate), every run converging. Runs are
    drawn one by one so that each look sees the previous looks' runs plus new ones; the
    same `seed` gives the same runs for every spending kind."""
    gen = np.random.default_rng(seed)
    n_max = int(stages[-1])
    treated = true_delta + sd * gen.standard_normal((replicates, n_max))
    control = sd * gen.standard_normal((replicates, n_max))
    (mean_a, sd_a, n_a), (mean_b, sd_b, n_b) = look_moments(treated, stages), look_moments(control, stages)
    low, high = repeated_intervals(mean_a, sd_a, n_a, mean_b, sd_b, n_b, stages,
                                   spending=spending, alpha=alpha, family=family)
    stop = sequential_decisions(low, high, stages, np.full(replicates, claimed_delta), margin, tolerance)
    sequential = _rates(stop.label, stop.seeds, stop.look, len(stages))
    # the fixed design exactly as verdict_rule decides a row: one interval at 1 - alpha / k
    fixed_low, fixed_high = welch_interval(mean_a[:, -1], sd_a[:, -1], n_max, mean_b[:, -1],
                                           sd_b[:, -1], n_max, family_level(alpha, family))
    fixed_label = labels(fixed_low, fixed_high, claimed_delta, margin, tolerance)
    last = np.full(replicates, len(stages) - 1)
    fixed = _rates(fixed_label, np.full(replicates, n_max), last, len(stages))
    return Simulation(sequential, fixed)


class SeedsRange(NamedTuple):
    """Seeds per arm of one row under a sequential design: every row runs `minimum`, none
    more than `maximum`, and `expected` on average if the claim holds at the planning SD."""
    minimum: int
    expected: float
    maximum: int


def seeds_range(stages, claimed_delta: float, planning_sd: float, *,
                spending: str = "obrien-fleming", alpha: float = ALPHA, family: int = 1,
                margin: float = EQUIVALENCE_MARGIN, tolerance: float = CLAIM_TOLERANCE,
                replicates: int = REPLICATES, seed: int = 0) -> SeedsRange:
    """(minimum, expected, maximum) seeds per arm for the cost estimate: the first and last
    stages, and the expected seeds of `simulate` with the true delta at the claim and the
    SD at `planning_sd` (the design's cost when the paper is right; under no effect rows
    tend to run longer)."""
    run = simulate(claimed_delta, planning_sd, stages, claimed_delta=claimed_delta,
                   spending=spending, alpha=alpha, family=family, margin=margin,
                   tolerance=tolerance, replicates=replicates, seed=seed)
    return SeedsRange(int(stages[0]), run.sequential.expected_seeds, int(stages[-1]))


# -- the command line: the design's stopping rates, for the studies' cost estimate ----------

def stop_rates(rows, stages, *, spending: str, planning_sd: float, alpha: float = ALPHA,
               margin: float = EQUIVALENCE_MARGIN, tolerance: float = CLAIM_TOLERANCE,
               replicates: int = REPLICATES) -> list[list[float]]:
    """Each row's chance of stopping at each look, simulated with the project's rule at the
    planning SD, the true delta at the row's claim (`claimed_delta`; no effect where it is
    None) in a family of `family` rows: rows [{"claimed_delta", "family"}]."""
    cache: dict[tuple, list[float]] = {}
    out = []
    for row in rows:
        claim = row.get("claimed_delta")
        key = (claim, int(row["family"]))
        if key not in cache:
            truth = 0.0 if claim is None else float(claim)
            run = simulate(truth, planning_sd, stages, claimed_delta=np.nan if claim is None else claim,
                           spending=spending, alpha=alpha, family=key[1], margin=margin,
                           tolerance=tolerance, replicates=replicates)
            cache[key] = list(run.sequential.stop_rates)
        out.append(cache[key])
    return out


def main(argv: list[str] | None = None) -> int:
    """`python -m analysis.sequential stop-rates < design.json`: the stopping rates of
    `stop_rates` as JSON, for `python -m hybrid.studies CONFIG --cost` (which may not import
    the analysis). The design: {"stages", "spending", "planning_sd", "alpha", "margin",
    "tolerance", "rows": [{"claimed_delta", "family"}]}."""
    import argparse
    import json
    import sys

    parser = argparse.ArgumentParser(prog="python -m analysis.sequential", description=main.__doc__)
    parser.add_argument("command", choices=["stop-rates"])
    parser.parse_args(argv)
    spec = json.load(sys.stdin)
    defaults = {"alpha": ALPHA, "margin": EQUIVALENCE_MARGIN, "tolerance": CLAIM_TOLERANCE}
    rates = stop_rates(spec["rows"], spec["stages"], spending=spec["spending"],
                       planning_sd=spec["planning_sd"], **{k: spec.get(k, v) for k, v in defaults.items()})
    json.dump(rates, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
