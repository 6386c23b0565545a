# twinflow: recordings of a person in, digital-human assets and videos out.
# Plan with `snakemake -n`, run with `snakemake --profile profiles/local` (or profiles/slurm).
# Rules only declare files; all logic is in the twinflow package (workflow/twinflow).


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/preprocess.smk"
include: "workflow/rules/perception.smk"
include: "workflow/rules/nerf.smk"
include: "workflow/rules/animate.smk"
include: "workflow/rules/anchor.smk"
include: "workflow/rules/mocap.smk"
include: "workflow/rules/meshhead.smk"


rule all:
    default_target: True
    input:
        all_targets(),


rule preprocess:
    """Only the preprocessing outputs (normalised media of every twin and driving input)."""
    input:
        preprocess_targets(),
