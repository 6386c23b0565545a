# The run report (twinflow.report): results/report/index.html and one page per twin.
#
# Its inputs are exactly every requested metrics.json and render: it reruns when one of them
# changes (or a twin or render is added) and not otherwise. Everything else it shows (contact
# sheets of evaluation and preview videos, training curves, benchmarks/, logs/, checksums) is
# read at run time as side data, so a new benchmark file, log or preview alone reruns nothing.
# When a render failed (--keep-going), this rule cannot run; `make demo` then runs
# `python -m twinflow.report` itself, which shows that render as failed with its log.


rule report:
    """The run's HTML report (twinflow.report): every metrics.json and render as its inputs."""
    input:
        metrics=report_metrics(),
        renders=report_renders(),
    output:
        index="results/report/index.html",
        pages=expand("results/report/twin_{twin}.html", twin=TWINS),
        timing=report("results/report/timing.png", category="timing"),
        curves=report(
            directory("results/report/curves"),
            patterns=["{name}.png"],
            category="training",
        ),
        img=directory("results/report/img"),
    log:
        "logs/report/report.log",
    benchmark:
        "benchmarks/report/report.tsv"
    conda:
        "../../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        config=workflow.configfiles[-1],
    shell:
        "python -m twinflow.report --config {params.config} --out results/report > {log} 2>&1"
