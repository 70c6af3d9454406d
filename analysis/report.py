"""The Snakemake report's categories, numbered from one ordered list.

The workflow (workflow/rules/common.smk) files every table and figure under
`report_categories(config)`; the report lists categories in the alphabetical order of their
names, so the numbers carry the order: the claims first, the paper's studies in FIXED_STUDIES'
order, then any other study in the config's order, the runs last. Each category has its own
number (zero-padded once there are ten, so that "10. Runs" sorts after "9. ..."): a config
that adds a study or a sweep gets a new number, never a clash.
"""

from __future__ import annotations

from collections.abc import Mapping

from analysis.collect import variant_studies

CLAIMS, RUNS = "claims", "runs"  # the categories that are no study
POOLING_STUDY = "pooling"
# The paper's studies, in the order the report lists them, with their category titles.
FIXED_STUDIES = {
    "pooling": "Pooling variants",
    "confirmatory": "Confirmatory arms",  # the claims' arms at the seeds the verdict rule needs
    "first_release": "First release",
    "confirmatory_first_release": "First release, confirmatory arms",
    "postact_paper": "Post-activation net",
    "arch": "Architectures",
    "placement": "Placement",
    "smoothness": "Smoothness",
    "init_stride": "Initial strides",
    "datasets": "Larger data sets",
}
TITLES = {CLAIMS: "Claims", RUNS: "Runs", **FIXED_STUDIES}


def reported_studies(config: Mapping, *, pooling_study: str = POOLING_STUDY) -> list[str]:
    """The studies with report items, in the report's order: the pooling study (its figures
    are always declared), every variant study and every sweep's study; the paper's studies
    first in FIXED_STUDIES' order, then the others in the config's order."""
    sweeps = config.get("sweeps") or {}
    named = {pooling_study, *variant_studies(config), *(s["study"] for s in sweeps.values())}
    in_config = [*(config.get("studies") or {}), *(s["study"] for s in sweeps.values())]
    others = [s for s in dict.fromkeys(in_config) if s in named and s not in FIXED_STUDIES]
    fixed = [s for s in FIXED_STUDIES if s in named]
    return [*fixed, *([pooling_study] if pooling_study not in [*fixed, *others] else []),
            *others]


def report_categories(config: Mapping, *, pooling_study: str = POOLING_STUDY) -> dict[str, str]:
    """{"claims" (with comparisons) | study | "runs": "<n>. <title>"}, numbered 1, 2, ... in
    the report's order (reported_studies between the claims and the runs); a study outside
    FIXED_STUDIES is titled by its name."""
    keys = [*([CLAIMS] if config.get("comparisons") else []),
            *reported_studies(config, pooling_study=pooling_study), RUNS]
    width = len(str(len(keys)))
    return {key: f"{number:0{width}d}. {TITLES.get(key, key)}"
            for number, key in enumerate(keys, start=1)}
