# The reproduction and ablation study of arXiv 2401.09008, end to end:
#   config (studies as data) -> one training job per resolved run -> analysis -> report.
#
#   snakemake --cores all --profile slurm                          # a Slurm GPU cluster
#   snakemake --cores all --configfile config/demo.yaml            # the CPU demo
#   snakemake --cores all -n                                       # list the jobs
# The report: add `--report results/report.html --report-after-run`.

import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

min_version("8.20")


# The paper study, unless --configfile names another (which then replaces it, unmerged).
# `--config KEY=VALUE` alone overrides keys of the paper study; it never drops it.
if not workflow.overwrite_configfiles:
    # Read strictly first: Snakemake's own reader answers a file that is not UTF-8 with a
    # traceback and a tab in the indentation with no line; this names the file and line.
    # (A file given with --configfile is read by Snakemake before this file runs:
    # `python -m hybrid.studies CONFIG` names its line.)
    sys.path.insert(0, workflow.basedir)
    from hybrid.strict_yaml import ConfigFileError, load_yaml

    try:
        load_yaml("config/config.yaml")
    except ConfigFileError as err:
        raise WorkflowError(f"invalid config: {err}") from None

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/tracking.smk"
include: "workflow/rules/sequential.smk"
include: "workflow/rules/analysis.smk"


rule all:
    default_target: True
    input:
        analysis_outputs(),
