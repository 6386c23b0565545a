# Animate pipeline (MRAA): a twin's photo moved by a driving video.
# results/{twin}/animate/: dataset/ (frames at the preset size), model.pt, avd.pt, metrics.json;
# results/renders/{render}.mp4 for every `animate` row of renders.tsv.
# Settings: config.yaml `animate:`, resolved by twinflow.animate.plan (checked at parse time).
# With `animate: pretrained:` (a converted reference checkpoint) the training rules copy it
# (or, with `finetune: true`, train from it).
from twinflow.animate import plan as animate_plan

try:
    ANIMATE = animate_plan.settings(config)
    animate_plan.check_renders(RENDERS, TWINS, ANIMATE)
except ValueError as err:
    raise WorkflowError(f"invalid animate configuration: {err}") from None


rule animate_dataset:
    input:
        video="results/{twin}/media/video.mp4",
        extra=ANIMATE.extra_videos,
    output:
        dataset=directory("results/{twin}/animate/dataset"),
    log:
        "logs/animate_dataset/{twin}.log",
    benchmark:
        "benchmarks/animate_dataset/{twin}.tsv"
    conda:
        "../../envs/animate.yaml"
    threads: 1
    resources:
        mem_mb=scaled(2000),
        runtime=scaled(30),
    params:
        size=ANIMATE.preset.size,
        fps=VIDEO["fps"],
        split=ANIMATE.split,
        test_fraction=ANIMATE.test_fraction,
    shell:
        "python -m twinflow.animate.dataset --twin {wildcards.twin} --video {input.video}"
        " --extra-videos {input.extra:q} --size {params.size} --fps {params.fps}"
        " --split {params.split} --test-fraction {params.test_fraction}"
        " --out {output.dataset} > {log} 2>&1"


rule animate_train:
    input:
        dataset="results/{twin}/animate/dataset",
        pretrained=ANIMATE.pretrained_inputs(),
    output:
        model="results/{twin}/animate/model.pt",
    log:
        "logs/animate_train/{twin}.log",
    benchmark:
        "benchmarks/animate_train/{twin}.tsv"
    conda:
        "../../envs/animate.yaml"
    threads: 2
    resources:
        mem_mb=scaled(4000),
        runtime=ANIMATE.train_runtime,
        gpu=1,
    params:
        preset=ANIMATE.preset.name,
        overrides=ANIMATE.set_args,
        steps=ANIMATE.steps_arg,
        pretrained=ANIMATE.pretrained_arg(),
        max_minutes=ANIMATE.max_minutes_arg,
        save_every=ANIMATE.save_every,
        registry=config["models"]["registry"],
    shell:
        "python -m twinflow.animate.train --twin {wildcards.twin} --dataset {input.dataset}"
        " --preset {params.preset} {params.overrides} {params.steps} {params.pretrained}"
        " {params.max_minutes} --save-every {params.save_every} --threads {threads}"
        " --registry {params.registry} --out {output.model} > {log} 2>&1"


rule animate_train_avd:
    input:
        model="results/{twin}/animate/model.pt",
        dataset="results/{twin}/animate/dataset",
        pretrained=ANIMATE.pretrained_inputs(avd=True),
    output:
        avd="results/{twin}/animate/avd.pt",
    log:
        "logs/animate_train_avd/{twin}.log",
    benchmark:
        "benchmarks/animate_train_avd/{twin}.tsv"
    conda:
        "../../envs/animate.yaml"
    threads: 2
    resources:
        mem_mb=scaled(4000),
        runtime=ANIMATE.train_runtime,
        gpu=1,
    params:
        overrides=ANIMATE.set_args,
        steps=ANIMATE.avd_steps_arg,
        pretrained=ANIMATE.pretrained_arg(avd=True),
        max_minutes=ANIMATE.max_minutes_arg,
        save_every=ANIMATE.save_every,
    shell:
        "python -m twinflow.animate.train_avd --twin {wildcards.twin} --model {input.model}"
        " --dataset {input.dataset} {params.overrides} {params.steps} {params.pretrained}"
        " {params.max_minutes} --save-every {params.save_every} --threads {threads}"
        " --out {output.avd} > {log} 2>&1"


rule animate_evaluate:
    input:
        model="results/{twin}/animate/model.pt",
        dataset="results/{twin}/animate/dataset",
    output:
        metrics=report(
            "results/{twin}/animate/metrics.json",
            category="evaluation",
            subcategory="{twin}",
        ),
    log:
        "logs/animate_evaluate/{twin}.log",
    benchmark:
        "benchmarks/animate_evaluate/{twin}.tsv"
    conda:
        "../../envs/animate.yaml"
    threads: 2
    resources:
        mem_mb=scaled(4000),
        runtime=scaled(30),
        gpu=1,
    params:
        eval_frames=ANIMATE.eval_frames,
    shell:
        "python -m twinflow.animate.evaluate --twin {wildcards.twin} --model {input.model}"
        " --dataset {input.dataset} --max-frames {params.eval_frames} --threads {threads}"
        " --out {output.metrics} > {log} 2>&1"


rule animate_render:
    input:
        unpack(
            lambda w: animate_plan.render_inputs(
                RENDERS[w.render], TWINS[RENDERS[w.render].twin_id], ANIMATE
            )
        ),
    output:
        video=report("results/renders/{render}.mp4", category="renders"),
    log:
        "logs/animate_render/{render}.log",
    benchmark:
        "benchmarks/animate_render/{render}.tsv"
    wildcard_constraints:
        render=animate_plan.render_pattern(RENDERS),
    conda:
        "../../envs/animate.yaml"
    threads: 2
    resources:
        mem_mb=scaled(4000),
        runtime=scaled(30),
        gpu=1,
    params:
        mode=lambda w: animate_plan.render_mode(RENDERS[w.render], ANIMATE),
        avd=lambda w, input: f"--avd {input.avd}" if "avd" in input.keys() else "",
        audio=lambda w, input: (
            f"--audio {input.audio}" if "audio" in input.keys() else ""
        ),
        size=f"--size {ANIMATE.render_size}" if ANIMATE.render_size else "",
        crf=VIDEO["crf"],
        x264_preset=VIDEO["x264_preset"],
    shell:
        "python -m twinflow.animate.render --render {wildcards.render} --model {input.model}"
        " {params.avd} --source {input.source} --driving {input.driving} {params.audio}"
        " --mode {params.mode} {params.size} --crf {params.crf}"
        " --x264-preset {params.x264_preset} --threads {threads}"
        " --out {output.video} > {log} 2>&1"
