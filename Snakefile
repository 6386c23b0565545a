# twinflow: recordings of a person in, digital-human assets and videos out.
# Plan with `snakemake -n`, run with `snakemake --profile profiles/local` (or profiles/slurm).
# Rules only declare files; all logic is in the twinflow package (workflow/twinflow).


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/preprocess.smk"


rule all:
    input:
        all_targets(),
    default_target: True
