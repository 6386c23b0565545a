# nerf pipeline (ER-NeRF): a talking head trained on the twin's video, driven by new audio.
# results/{twin}/nerf/: audio_features.npz, frames.mkv + dataset.npz, head.pt, lips.pt, torso.pt,
# metrics.json (+ val.mp4); per render results/drive/{render}/nerf/ (features, render, paste)
# and results/renders/{render}.mp4. Settings: config.yaml `nerf:` (twinflow.nerf.plan).
# A twin under `nerf: pretrained:` uses the model folder given there (python -m twinflow.convert
# ernerf): its renders and metrics read that folder, and no dataset or training job runs; with
# `nerf: finetune: true` its lips stage is fine-tuned from that folder first (nerf_train_lips).
import os

from twinflow.nerf import plan as nerf_plan

try:
    NERF = nerf_plan.settings(config)
    nerf_plan.check_renders(RENDERS, NERF)
except ValueError as err:
    raise WorkflowError(f"invalid nerf configuration: {err}") from None

NERF_PERCEPTION = "results/{twin}/perception"


rule nerf_audio_features:
    input:
        wav="results/{twin}/media/audio.wav",
    output:
        features="results/{twin}/nerf/audio_features.npz",
    log:
        "logs/nerf_audio_features/{twin}.log",
    benchmark:
        "benchmarks/nerf_audio_features/{twin}.tsv"
    conda:
        "../../envs/nerf.yaml"
    threads: 1
    resources:
        mem_mb=scaled(2000),
        runtime=scaled(20),
    params:
        kind=f"--kind {NERF.audio_features}",
        fps=VIDEO["fps"],
        registry=config["models"]["registry"],
        who="--twin {twin}",
    shell:
        "python -m twinflow.nerf.audio_features {params.who} --wav {input.wav}"
        " {params.kind} --fps {params.fps} --registry {params.registry}"
        " --out {output.features} > {log} 2>&1"


use rule nerf_audio_features as nerf_driving_audio_features with:
    input:
        wav="results/drive/{render}/audio.wav",
        given=lambda w: nerf_plan.driving_features_file(RENDERS[w.render]),
    output:
        features="results/drive/{render}/nerf/audio_features.npz",
    log:
        "logs/nerf_driving_audio_features/{render}.log",
    benchmark:
        "benchmarks/nerf_driving_audio_features/{render}.tsv"
    params:
        kind=lambda w: nerf_plan.driving_features_args(RENDERS[w.render], NERF),
        fps=VIDEO["fps"],
        registry=config["models"]["registry"],
        who="--render {render}",


rule nerf_dataset:
    input:
        unpack(lambda w: ready_input(f"results/{w.twin}", "nerf")),
        video="results/{twin}/media/video.mp4",
        face=f"{NERF_PERCEPTION}/face.npz",
        signals=f"{NERF_PERCEPTION}/signals.npz",
        matte=f"{NERF_PERCEPTION}/matte.mkv",
        template=f"{NERF_PERCEPTION}/template.npz",
        pose=f"{NERF_PERCEPTION}/head_pose.npz",
        train=f"{NERF_PERCEPTION}/transforms_train.json",
        val=f"{NERF_PERCEPTION}/transforms_val.json",
        parsing=f"{NERF_PERCEPTION}/parsing.mkv",
        plate=f"{NERF_PERCEPTION}/background.png",
    output:
        frames="results/{twin}/nerf/frames.mkv",
        dataset="results/{twin}/nerf/dataset.npz",
    log:
        "logs/nerf_dataset/{twin}.log",
    benchmark:
        "benchmarks/nerf_dataset/{twin}.tsv"
    conda:
        "../../envs/nerf.yaml"
    threads: 1
    resources:
        mem_mb=scaled(NERF.mem_mb),
        runtime=scaled(30),
    params:
        perception=lambda w, input: os.path.dirname(input.face),
        res=NERF.preset.res,
        crop_scale=NERF.preset.crop_scale,
        box=f"--box-pad {NERF.preset.box_pad} --box-top {NERF.preset.box_top}"
        f" --box-back {NERF.preset.box_back}",
    shell:
        "python -m twinflow.nerf.dataset --twin {wildcards.twin} --video {input.video}"
        " --perception {params.perception} --parsing {input.parsing}"
        " --background {input.plate} --res {params.res}"
        " --crop-scale {params.crop_scale} {params.box}"
        " --out-frames {output.frames} --out {output.dataset} > {log} 2>&1"


rule nerf_train_head:
    input:
        dataset="results/{twin}/nerf/dataset.npz",
        frames="results/{twin}/nerf/frames.mkv",
        features="results/{twin}/nerf/audio_features.npz",
    output:
        model="results/{twin}/nerf/head.pt",
    log:
        "logs/nerf_train_head/{twin}.log",
    benchmark:
        "benchmarks/nerf_train_head/{twin}.tsv"
    conda:
        "../../envs/nerf.yaml"
    threads: NERF.threads
    resources:
        mem_mb=scaled(NERF.mem_mb),
        runtime=NERF.runtime("head"),
        gpu=1,
    params:
        stage="head",
        init="",
        preset=NERF.name,
        overrides=NERF.set_args,
        steps=NERF.steps["head"],
        max_minutes=NERF.max_minutes_arg("head"),
        save_every=NERF.save_every,
        seed=NERF.seed,
        registry=config["models"]["registry"],
    shell:
        "python -m twinflow.nerf.train --stage {params.stage} --twin {wildcards.twin}"
        " --dataset {input.dataset} --frames {input.frames} --features {input.features}"
        " {params.init} --preset {params.preset} {params.overrides} --steps {params.steps}"
        " {params.max_minutes} --save-every {params.save_every} --seed {params.seed}"
        " --threads {threads} --registry {params.registry} --out {output.model} > {log} 2>&1"


# (with nerf: finetune: true, a pretrained twin's lips stage starts from its imported lips.pt on
# its imported data, with the imported model's own settings: ER-NeRF's --finetune_lips)
use rule nerf_train_head as nerf_train_lips with:
    input:
        unpack(nerf_plan.lips_inputs(NERF)),
    output:
        model="results/{twin}/nerf/lips.pt",
    log:
        "logs/nerf_train_lips/{twin}.log",
    benchmark:
        "benchmarks/nerf_train_lips/{twin}.tsv"
    resources:
        mem_mb=scaled(NERF.mem_mb),
        runtime=NERF.runtime("lips"),
        gpu=1,
    params:
        stage="lips",
        init=lambda w, input: f"--init {input.init}",
        preset=lambda w: nerf_plan.lips_preset(NERF, w.twin),
        overrides=NERF.set_args,
        steps=NERF.steps["lips"],
        max_minutes=NERF.max_minutes_arg("lips"),
        save_every=NERF.save_every,
        seed=NERF.seed,
        registry=config["models"]["registry"],


use rule nerf_train_head as nerf_train_torso with:
    input:
        dataset="results/{twin}/nerf/dataset.npz",
        frames="results/{twin}/nerf/frames.mkv",
        features="results/{twin}/nerf/audio_features.npz",
        init="results/{twin}/nerf/lips.pt",
    output:
        model="results/{twin}/nerf/torso.pt",
    log:
        "logs/nerf_train_torso/{twin}.log",
    benchmark:
        "benchmarks/nerf_train_torso/{twin}.tsv"
    resources:
        mem_mb=scaled(NERF.mem_mb),
        runtime=NERF.runtime("torso"),
        gpu=1,
    params:
        stage="torso",
        init=lambda w, input: f"--init {input.init}",
        preset=NERF.name,
        overrides=NERF.set_args,
        steps=NERF.steps["torso"],
        max_minutes=NERF.max_minutes_arg("torso"),
        save_every=NERF.save_every,
        seed=NERF.seed,
        registry=config["models"]["registry"],


rule nerf_evaluate:
    input:
        dataset=nerf_plan.model_file(NERF, "dataset.npz"),
        frames=nerf_plan.model_file(NERF, "frames.mkv"),
        features=nerf_plan.model_file(NERF, "audio_features.npz"),
        head=nerf_plan.model_file(NERF, "lips.pt"),
        torso=nerf_plan.model_torso(NERF),
    output:
        metrics=report(
            "results/{twin}/nerf/metrics.json",
            category="evaluation",
            subcategory="{twin}",
        ),
        preview=report(
            "results/{twin}/nerf/val.mp4", category="evaluation", subcategory="{twin}"
        ),
    log:
        "logs/nerf_evaluate/{twin}.log",
    benchmark:
        "benchmarks/nerf_evaluate/{twin}.tsv"
    conda:
        "../../envs/nerf.yaml"
    threads: NERF.threads
    resources:
        mem_mb=scaled(NERF.mem_mb),
        runtime=scaled(30),
        gpu=1,
    params:
        chunk=NERF.preset.chunk,
        torso=lambda w, input: f"--torso {input.torso}" if input.torso else "",
        registry=config["models"]["registry"],
    shell:
        "python -m twinflow.nerf.evaluate --twin {wildcards.twin} --dataset {input.dataset}"
        " --frames {input.frames} --features {input.features} --head {input.head}"
        " {params.torso} --chunk {params.chunk} --threads {threads}"
        " --registry {params.registry} --preview {output.preview}"
        " --out {output.metrics} > {log} 2>&1"


rule nerf_render:
    input:
        dataset=nerf_plan.twin_file(RENDERS, "dataset.npz", NERF),
        head=nerf_plan.twin_file(RENDERS, "lips.pt", NERF),
        torso=nerf_plan.twin_torso(RENDERS, NERF),
        features="results/drive/{render}/nerf/audio_features.npz",
    output:
        frames="results/drive/{render}/nerf/render.mkv",
        meta="results/drive/{render}/nerf/render.json",
    log:
        "logs/nerf_render/{render}.log",
    benchmark:
        "benchmarks/nerf_render/{render}.tsv"
    wildcard_constraints:
        render=nerf_plan.render_pattern(RENDERS, depth=False),
    conda:
        "../../envs/nerf.yaml"
    threads: NERF.threads
    resources:
        mem_mb=scaled(NERF.mem_mb),
        runtime=scaled(60),
        gpu=1,
    params:
        chunk=NERF.preset.chunk,
        torso=lambda w, input: f"--torso {input.torso}" if input.torso else "",
        options=lambda w: nerf_plan.render_args(RENDERS[w.render]),
        depth="",
    shell:
        "python -m twinflow.nerf.render --render {wildcards.render} --dataset {input.dataset}"
        " --head {input.head} {params.torso} --features {input.features} {params.options}"
        " --chunk {params.chunk} --threads {threads} {params.depth} --out {output.frames}"
        " --out-json {output.meta} > {log} 2>&1"


# a render with the option depth=1 also writes the head's depth next to render.mkv
use rule nerf_render as nerf_render_depth with:
    output:
        frames="results/drive/{render}/nerf/render.mkv",
        meta="results/drive/{render}/nerf/render.json",
        depth="results/drive/{render}/nerf/depth.mkv",
    wildcard_constraints:
        render=nerf_plan.render_pattern(RENDERS, depth=True),
    params:
        chunk=NERF.preset.chunk,
        torso=lambda w, input: f"--torso {input.torso}" if input.torso else "",
        options=lambda w: nerf_plan.render_args(RENDERS[w.render]),
        depth=lambda w, output: f"--depth-out {output.depth}",


rule nerf_paste:
    input:
        # parsing (paste=face, face_neck), media_meta and source (resolution=original) if needed
        unpack(nerf_plan.paste_inputs(RENDERS, NERF, TWINS)),
        frames="results/drive/{render}/nerf/render.mkv",
        meta="results/drive/{render}/nerf/render.json",
        dataset=nerf_plan.twin_file(RENDERS, "dataset.npz", NERF),
        video=lambda w: f"results/{RENDERS[w.render].twin_id}/media/video.mp4",
    output:
        video="results/drive/{render}/nerf/pasted.mp4",
    log:
        "logs/nerf_paste/{render}.log",
    benchmark:
        "benchmarks/nerf_paste/{render}.tsv"
    wildcard_constraints:
        render=nerf_plan.render_pattern(RENDERS),
    conda:
        "../../envs/nerf.yaml"
    threads: 1
    resources:
        mem_mb=scaled(NERF.mem_mb),
        runtime=scaled(20),
    params:
        mode=lambda w, input: nerf_plan.paste_args(RENDERS[w.render], NERF, input),
        crf=VIDEO["crf"],
        x264_preset=VIDEO["x264_preset"],
    shell:
        "python -m twinflow.nerf.paste --render {wildcards.render} --frames {input.frames}"
        " --render-json {input.meta} --dataset {input.dataset} --video {input.video}"
        " {params.mode} --crf {params.crf} --x264-preset {params.x264_preset}"
        " --out {output.video} > {log} 2>&1"


rule nerf_mux:
    input:
        video="results/drive/{render}/nerf/pasted.mp4",
        audio="results/drive/{render}/audio.wav",
        meta="results/drive/{render}/nerf/render.json",
    output:
        video=report("results/renders/{render}.mp4", category="renders"),
    log:
        "logs/nerf_mux/{render}.log",
    benchmark:
        "benchmarks/nerf_mux/{render}.tsv"
    wildcard_constraints:
        render=nerf_plan.render_pattern(RENDERS),
    conda:
        "../../envs/nerf.yaml"
    threads: 1
    resources:
        mem_mb=scaled(1000),
        runtime=scaled(10),
    params:
        fps=VIDEO["fps"],
    shell:
        "python -m twinflow.nerf.mux --render {wildcards.render} --video {input.video}"
        " --audio {input.audio} --render-json {input.meta} --fps {params.fps}"
        " --out {output.video} > {log} 2>&1"
