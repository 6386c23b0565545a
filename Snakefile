# twinflow: recordings of a person in, digital-human assets and videos out.
# Plan with `snakemake -n`, run with `snakemake --profile profiles/local` (or profiles/slurm).
# Rules only declare files; all logic is in the twinflow package (workflow/twinflow).

import gc

# Planning allocates millions of small, long-lived objects (jobs, files, wildcards) and almost no
# cyclic garbage; with Python's default thresholds the cyclic collector re-scans them so often that
# it takes over half of `snakemake -n` for 1,000 twins (see `make bench-plan`). Collect rarely.
gc.set_threshold(50_000, 20, 20)


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/preprocess.smk"
include: "workflow/rules/perception.smk"
include: "workflow/rules/nerf.smk"
include: "workflow/rules/animate.smk"
include: "workflow/rules/anchor.smk"
include: "workflow/rules/mocap.smk"
include: "workflow/rules/meshhead.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        all_targets(),
        "results/report/index.html",


rule preprocess:
    """Only the preprocessing outputs (normalised media of every twin and driving input)."""
    input:
        preprocess_targets(),
