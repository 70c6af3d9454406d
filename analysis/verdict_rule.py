"""The verdict rule: one interval of delta per comparison row decides its label.

Every label is a statement about where one interval lies relative to 0, the equivalence
margin +-e and the claim's tolerance band claim +- m, so two labels can never contradict each
other (they are read off the same interval) and sliding the treatment arm upward can only
move a label forward in LABEL_RANK. The interval is Welch's, simultaneous over the row's
family by Bonferroni: level 1 - alpha / k for a family of k rows. Bonferroni, unlike a
step-down correction, fixes each row's level before the data are seen, so one row's label
does not depend on the other rows' p-values, and the power simulation below is exact for the
rule rather than a bound.

Runs that failed to train are outcomes, counted, not noise: a diverged run, or a completed
run that collapsed (COLLAPSE_RULE), is left out of the interval, the row says how many of its
runs failed, and Fisher's exact test compares the arms' failure rates beside the label.

Everything here is vectorised over rows (a table) or replicates (a simulation).
"""

from __future__ import annotations

import numpy as np
from scipy import stats
from statsmodels.stats.power import TTestIndPower

ALPHA = 0.05
POWER = 0.80
EQUIVALENCE_MARGIN = 0.005  # `analysis.equivalence_margin`: +-0.5 points counts as no effect
# `analysis.claim_tolerance`: how far from the paper's number a delta may lie and still be
# "the claimed size". Half a point: the practical scale of the equivalence margin, about one
# run-to-run SD at 5-10 seeds (0.003-0.005), and 50 test images of CIFAR's 10,000, so a label
# never turns on one image. A fraction of the claim would give the +0.94-point claim a
# tolerance narrower than the noise of a single run.
CLAIM_TOLERANCE = 0.005
# `analysis.collapse_gap`: a completed run more than this far below its arm's median (arms of
# 3 or more completed runs) collapsed. 10 points is over 20 run-to-run SDs here and three
# times the largest claimed effect, so no merely unlucky run is removed; a collapse (to
# chance, 10% or 1%) is 60 points or more below.
COLLAPSE_GAP = 0.10
MIN_RUNS_FOR_INTERVAL = 3  # per arm, after failures are removed
MAX_SEEDS = 1000  # seeds_for_power above this is reported as inf
SIMULATIONS = 4000  # replicates per sample size in seeds_for_power

COLLAPSE_RULE = (
    "A completed run collapsed when its metric lies more than analysis.collapse_gap below "
    "the median of its arm's completed runs (arms of 3 or more). Diverged and collapsed runs "
    "are failures: they are left out of the interval, the row says 'k of n failed' per arm "
    "(failures, n_diverged, n_collapsed), and failure_p is Fisher's exact test of the two "
    "arms' failure rates. The label is conditional on a run converging."
)

VERDICT_RULE = (
    "delta = mean(treatment) - mean(control) over the runs that did not fail (diverged or "
    "collapsed). Each row has one interval of delta: Welch's t interval at level "
    "1 - alpha/k, where k is the size of the row's family (Bonferroni, simultaneous over "
    "the family): rows with a paper number form the confirmatory family, rows without one "
    "the exploratory family, and k counts the family's rows whose arms each have at least "
    "3 such runs. ci_low and ci_high are that interval and ci_level its level. Where "
    "neither arm varies the interval has no width and may not decide. The label says "
    "where the interval lies, with e the equivalence margin (analysis.equivalence_margin) "
    "and m the claim tolerance (analysis.claim_tolerance), read on the side of the claim "
    "(for a negative claim, 'above' means further below 0). With a claimed delta c: "
    "'contradicted' if the interval lies below 0; if it lies above 0, 'smaller than "
    "claimed' if it lies below c - m, 'larger than claimed' if it lies above c + m, else "
    "'reproduced' (it meets the band c +- m); if it contains 0, 'no effect' if it lies "
    "inside +-e, 'not the claimed size' if it lies below c - m (the claimed band is "
    "excluded, neither direction nor equivalence shown), else 'inconclusive'. Without a "
    "claimed delta, or with a claimed delta of 0 (a claim of no difference, borne out by "
    "'no effect'): 'higher' above 0, 'lower' below 0, 'no effect' inside +-e, else "
    "'inconclusive'. Without an interval (an arm with fewer than 3 runs that did not fail, "
    "or neither arm varying): 'inconclusive'. Sliding the treatment arm upward never moves "
    "a label backward in the order contradicted < {no effect, not the claimed size, "
    "inconclusive} < smaller than claimed < reproduced < larger than claimed (lower < {no "
    "effect, inconclusive} < higher without a claim), but changing one run can widen the "
    "interval and so weaken a label. The p-value columns are kept for reference and decide "
    "nothing."
)

# The declared order of the property test (tests/test_stats.py). Labels of one rank are not
# ordered among themselves: they describe an interval that contains 0.
LABEL_RANK = {"contradicted": 0, "no effect": 1, "not the claimed size": 1, "inconclusive": 1,
              "smaller than claimed": 2, "reproduced": 3, "larger than claimed": 4}
UNCLAIMED_RANK = {"lower": 0, "no effect": 1, "inconclusive": 1, "higher": 2}


def family_level(alpha: float, family_size) -> np.ndarray:
    """Bonferroni's simultaneous level for a family of k rows: 1 - alpha / k."""
    return 1 - alpha / np.maximum(np.asarray(family_size, dtype=float), 1)


def welch_interval(mean_a, sd_a, n_a, mean_b, sd_b, n_b, level) -> tuple[np.ndarray, np.ndarray]:
    """Welch's t interval of mean_a - mean_b at `level` from the arms' moments (df by
    Welch-Satterthwaite), elementwise: what analysis.inference.delta_interval gives from
    runs. NaN where an arm has fewer than MIN_RUNS_FOR_INTERVAL runs or neither arm varies
    (a zero-width interval may not decide)."""
    mean_a, sd_a, n_a, mean_b, sd_b, n_b, level = np.broadcast_arrays(
        *(np.asarray(v, dtype=float) for v in (mean_a, sd_a, n_a, mean_b, sd_b, n_b, level)))
    with np.errstate(divide="ignore", invalid="ignore"):
        va, vb = sd_a ** 2 / n_a, sd_b ** 2 / n_b
        df = (va + vb) ** 2 / (va ** 2 / (n_a - 1) + vb ** 2 / (n_b - 1))
        half = stats.t.ppf(0.5 + level / 2, df) * np.sqrt(va + vb)
    # 1e-9 rather than 0: the SD of identical floats comes out as rounding noise, not 0
    ok = (n_a >= MIN_RUNS_FOR_INTERVAL) & (n_b >= MIN_RUNS_FOR_INTERVAL) & (np.sqrt(va + vb) > 1e-9)
    centre = mean_a - mean_b
    return np.where(ok, centre - half, np.nan), np.where(ok, centre + half, np.nan)


def labels(low, high, claimed_delta, margin: float = EQUIVALENCE_MARGIN,
           tolerance: float = CLAIM_TOLERANCE) -> np.ndarray:
    """The label of each interval [low, high] by VERDICT_RULE (NaN bounds: no interval)."""
    low, high, claim = np.broadcast_arrays(*(np.asarray(v, dtype=float)
                                             for v in (low, high, claimed_delta)))
    has_claim = np.isfinite(claim) & (claim != 0)
    # Read a negative claim's row mirrored, so that "up" always means "toward the claim".
    flip = has_claim & (claim < 0)
    lo, hi, c = np.where(flip, -high, low), np.where(flip, -low, high), np.abs(claim)
    known = np.isfinite(lo) & np.isfinite(hi)
    above, below = lo > 0, hi < 0
    inside_margin = (lo > -margin) & (hi < margin)
    short, beyond = hi < c - tolerance, lo > c + tolerance
    free = ~has_claim
    rules = [  # (condition, label), first match wins
        (~known, "inconclusive"),
        (free & above, "higher"), (free & below, "lower"),
        (free & inside_margin, "no effect"), (free, "inconclusive"),
        (below, "contradicted"),
        (above & short, "smaller than claimed"), (above & beyond, "larger than claimed"),
        (above, "reproduced"),
        (inside_margin, "no effect"), (short, "not the claimed size"),
    ]
    return np.select([c for c, _ in rules], [label for _, label in rules],
                     default="inconclusive")


def label_rank(label, claimed_delta) -> np.ndarray:
    """Each label's place in the declared order (LABEL_RANK with a nonzero claim, else
    UNCLAIMED_RANK), for the property test and anyone sorting rows by strength."""
    label, claim = np.broadcast_arrays(np.asarray(label, dtype=object),
                                       np.asarray(claimed_delta, dtype=float))
    has_claim = np.isfinite(claim) & (claim != 0)
    return np.array([(LABEL_RANK if c else UNCLAIMED_RANK)[str(v)]
                     for v, c in zip(label.ravel(), has_claim.ravel())]).reshape(label.shape)


# -- failures -------------------------------------------------------------------------------

def collapsed(values, gap: float = COLLAPSE_GAP) -> np.ndarray:
    """Which of an arm's completed runs COLLAPSE_RULE calls collapsed (none below 3 runs)."""
    x = np.asarray(values, dtype=float)
    if x.size < MIN_RUNS_FOR_INTERVAL:
        return np.zeros(x.size, dtype=bool)
    return x < np.median(x) - gap


def failure_p(failed_a, runs_a, failed_b, runs_b) -> np.ndarray:
    """Fisher's exact two-sided p of the arms' failure rates (failed of runs), per row; NaN
    where an arm has no runs, 1 where neither arm has a failure."""
    out = []
    for fa, na, fb, nb in zip(*np.broadcast_arrays(failed_a, runs_a, failed_b, runs_b)):
        if not (na > 0 and nb > 0):
            out.append(np.nan)
            continue
        out.append(stats.fisher_exact([[fa, na - fa], [fb, nb - fb]]).pvalue)
    return np.asarray(out, dtype=float)


def failures_text(failed: int, runs: int, diverged: int, collapsed_: int) -> str:
    """'k of n failed (d diverged, c collapsed)', or 'none of n failed'."""
    if not failed:
        return f"none of {runs} failed"
    parts = [f"{diverged} diverged" if diverged else "", f"{collapsed_} collapsed" if collapsed_ else ""]
    return f"{failed} of {runs} failed ({', '.join(p for p in parts if p)})"


# -- power ----------------------------------------------------------------------------------

def sd_upper(sd, df, confidence: float = 0.95) -> np.ndarray:
    """The one-sided upper `confidence` bound of an SD on `df` degrees of freedom:
    sd * sqrt(df / chi2.ppf(1 - confidence, df)) (at 5 seeds per arm, df 8, 0.003 -> 0.0052)."""
    df = np.asarray(df, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(sd, dtype=float) * np.sqrt(df / stats.chi2.ppf(1 - confidence, df))


def reproduced_rate(true_delta: float, sd: float, n: int, *, claimed_delta: float,
                    family_size: int = 1, alpha: float = ALPHA,
                    margin: float = EQUIVALENCE_MARGIN, tolerance: float = CLAIM_TOLERANCE,
                    n_sim: int = SIMULATIONS, rng: int = 0) -> float:
    """The chance that the rule says 'reproduced' with n seeds per arm when the true delta
    is `true_delta`, both arms normal with SD `sd`, in a family of `family_size`. Drawn from
    the sufficient statistics (normal means, scaled chi-square SDs); exact for the rule,
    since a Bonferroni interval's level does not depend on the other rows."""
    if n < MIN_RUNS_FOR_INTERVAL:
        return 0.0
    gen = np.random.default_rng(rng)
    scale = sd / np.sqrt(n)
    mean_a = true_delta + scale * gen.standard_normal(n_sim)
    mean_b = scale * gen.standard_normal(n_sim)
    sd_a, sd_b = (sd * np.sqrt(gen.chisquare(n - 1, n_sim) / (n - 1)) for _ in range(2))
    low, high = welch_interval(mean_a, sd_a, n, mean_b, sd_b, n, family_level(alpha, family_size))
    return float(np.mean(labels(low, high, claimed_delta, margin, tolerance) == "reproduced"))


def seeds_for_power(claimed_delta: float, sd: float, family_size: int = 1, *,
                    alpha: float = ALPHA, power: float = POWER,
                    margin: float = EQUIVALENCE_MARGIN, tolerance: float = CLAIM_TOLERANCE,
                    n_sim: int = SIMULATIONS, max_n: int = MAX_SEEDS, rng: int = 0) -> float:
    """Seeds per arm for a `power` chance of 'reproduced' if the true delta is the claimed
    one at SD `sd`, in a family of `family_size` (reproduced_rate; the same random draws at
    every n, so the search sees a smooth curve). inf above `max_n`; NaN without a nonzero
    claim or a positive SD. Use it to choose a config's seeds at a planning SD."""
    if not (np.isfinite(claimed_delta) and claimed_delta != 0 and np.isfinite(sd) and sd > 0):
        return np.nan

    def enough(n: int) -> bool:
        return reproduced_rate(claimed_delta, sd, n, claimed_delta=claimed_delta,
                               family_size=family_size, alpha=alpha, margin=margin,
                               tolerance=tolerance, n_sim=n_sim, rng=rng) >= power

    low, high = MIN_RUNS_FOR_INTERVAL - 1, MIN_RUNS_FOR_INTERVAL  # enough(low) is False
    while not enough(high):
        if high >= max_n:
            return np.inf
        low, high = high, min(2 * high, max_n)
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if enough(mid) else (mid, high)
    return float(high)


# -- power figures of a table row --------------------------------------------------------

POWER_KEYS = ("pooled_sd", "sd_upper", "min_detectable_delta", "seeds_needed",
              "seeds_needed_sd_upper")


def seeds_needed(claimed_delta: float, sd: float, *, family: int = 1, **kwargs) -> float:
    """verdict_rule.seeds_for_power under the name the tables use (`family`: its size)."""
    return seeds_for_power(claimed_delta, sd, family, **kwargs)


def power_figures(n_treatment: int, n_control: int, sd: float, *, alpha: float = ALPHA,
                  claimed_delta: float = np.nan, family_size: int = 1,
                  margin: float = EQUIVALENCE_MARGIN, tolerance: float = CLAIM_TOLERANCE,
                  rng: int = 0) -> dict[str, float]:
    """pooled_sd and its one-sided 95% upper bound `sd_upper` (chi-square, df n_t + n_c - 2:
    the SD is itself uncertain at 5 seeds); min_detectable_delta: the difference a two-sided
    two-sample t-test at alpha / family_size detects with 80% power at these n's
    (statsmodels); seeds_needed and seeds_needed_sd_upper: the seeds per arm the rule needs
    for 80% power at the claimed delta, at the pooled SD and at its upper bound
    (seeds_for_power, in this family). NaN without a positive SD."""
    out = dict.fromkeys(POWER_KEYS, np.nan) | {"pooled_sd": sd}
    if not (np.isfinite(sd) and sd > 0 and n_treatment >= 2 and n_control >= 2):
        return out
    out["sd_upper"] = float(sd_upper(sd, n_treatment + n_control - 2))
    effect = TTestIndPower().solve_power(nobs1=n_treatment, ratio=n_control / n_treatment,
                                         power=POWER, alpha=alpha / max(family_size, 1),
                                         alternative="two-sided")
    out["min_detectable_delta"] = float(effect) * sd
    for key, s in (("seeds_needed", sd), ("seeds_needed_sd_upper", out["sd_upper"])):
        out[key] = seeds_for_power(claimed_delta, s, max(family_size, 1), alpha=alpha,
                                   margin=margin, tolerance=tolerance, rng=rng)
    return out
