# Meshhead pipeline: speech -> face-mesh motion (FaceFormer-style) -> one-shot head warp
# (face-vid2vid-style) of the twin's photo or a frame.
# results/{twin}/meshhead/: dataset.npz, frames.npz, audio2mesh.pt, warp.pt, metrics.json;
# results/drive/{render}/meshhead/: mesh.npz, mesh_preview.mp4, frames.mp4;
# results/renders/{render}.mp4 for every `meshhead` row of renders.tsv.
# Settings: config.yaml `meshhead:`, resolved by twinflow.meshhead.plan (checked at parse time).
from twinflow.meshhead import plan as meshhead_plan

try:
    MESHHEAD = meshhead_plan.settings(config)
    meshhead_plan.check_renders(RENDERS, TWINS, MESHHEAD)
except ValueError as err:
    raise WorkflowError(f"invalid meshhead configuration: {err}") from None


rule meshhead_dataset:
    input:
        unpack(lambda w: meshhead_plan.dataset_inputs(w.twin, MESHHEAD)),
        unpack(
            lambda w: ready_input(
                f"results/{w.twin}",
                "meshhead",
                MESHHEAD.topology != meshhead_plan.FLAME,
            )
        ),
    output:
        dataset="results/{twin}/meshhead/dataset.npz",
    log:
        "logs/meshhead_dataset/{twin}.log",
    benchmark:
        "benchmarks/meshhead_dataset/{twin}.tsv"
    conda:
        "../../envs/meshhead.yaml"
    threads: 1
    resources:
        mem_mb=scaled(2000),
        runtime=scaled(20),
    params:
        args=lambda w, input: meshhead_plan.dataset_args(input, MESHHEAD),
        fps=MESHHEAD.dataset_fps(VIDEO["fps"]),
        sample_rate=config["audio"]["sample_rate"],
        test_fraction=MESHHEAD.test_fraction,
        registry=config["models"]["registry"],
    shell:
        "python -m twinflow.meshhead.dataset --twin {wildcards.twin} {params.args}"
        " --fps {params.fps} --sample-rate {params.sample_rate}"
        " --test-fraction {params.test_fraction} --registry {params.registry}"
        " --out {output.dataset} > {log} 2>&1"


rule meshhead_frames:
    input:
        video="results/{twin}/media/video.mp4",
        dataset="results/{twin}/meshhead/dataset.npz",
    output:
        frames="results/{twin}/meshhead/frames.npz",
    log:
        "logs/meshhead_frames/{twin}.log",
    benchmark:
        "benchmarks/meshhead_frames/{twin}.tsv"
    conda:
        "../../envs/meshhead.yaml"
    threads: 1
    resources:
        mem_mb=scaled(3000),
        runtime=scaled(20),
    params:
        size=MESHHEAD.warp.size,
        crop_scale=MESHHEAD.warp.crop_scale,
        crop_shift=MESHHEAD.warp.crop_shift,
        keypoints=MESHHEAD.warp.keypoints,
        source_frame=(
            MESHHEAD.source_frame if MESHHEAD.source_frame is not None else -1
        ),
    shell:
        "python -m twinflow.meshhead.frames --twin {wildcards.twin} --video {input.video}"
        " --dataset {input.dataset} --size {params.size} --crop-scale {params.crop_scale}"
        " --crop-shift {params.crop_shift} --keypoints {params.keypoints}"
        " --source-frame {params.source_frame} --out {output.frames} > {log} 2>&1"


rule meshhead_train_audio2mesh:
    input:
        unpack(lambda w: meshhead_plan.audio2mesh_inputs(w.twin, MESHHEAD)),
    output:
        model="results/{twin}/meshhead/audio2mesh.pt",
    log:
        "logs/meshhead_train_audio2mesh/{twin}.log",
    benchmark:
        "benchmarks/meshhead_train_audio2mesh/{twin}.tsv"
    conda:
        "../../envs/meshhead.yaml"
    threads: 1
    resources:
        mem_mb=scaled(3000),
        runtime=MESHHEAD.train_runtime,
        gpu=1,
    params:
        preset=MESHHEAD.audio2mesh_preset,
        overrides=MESHHEAD.set_args("audio2mesh"),
        pretrained=MESHHEAD.pretrained_args,
        steps=MESHHEAD.audio2mesh_steps,
        max_minutes=MESHHEAD.max_minutes_arg,
        save_every=MESHHEAD.save_every,
        registry=config["models"]["registry"],
    shell:
        "python -m twinflow.meshhead.train_audio2mesh --twin {wildcards.twin}"
        " --dataset {input.dataset} --preset {params.preset} {params.overrides}"
        " {params.pretrained} --steps {params.steps} {params.max_minutes}"
        " --save-every {params.save_every} --threads {threads} --registry {params.registry}"
        " --out {output.model} > {log} 2>&1"


rule meshhead_train_warp:
    input:
        unpack(lambda w: meshhead_plan.train_warp_inputs(w.twin, MESHHEAD)),
    output:
        model="results/{twin}/meshhead/warp.pt",
    log:
        "logs/meshhead_train_warp/{twin}.log",
    benchmark:
        "benchmarks/meshhead_train_warp/{twin}.tsv"
    conda:
        "../../envs/meshhead.yaml"
    threads: 2
    resources:
        mem_mb=scaled(4000),
        runtime=MESHHEAD.train_runtime,
        gpu=1,
    params:
        preset=MESHHEAD.preset,
        overrides=MESHHEAD.set_args("warp"),
        steps=MESHHEAD.warp_steps,
        max_minutes=MESHHEAD.max_minutes_arg,
        save_every=MESHHEAD.save_every,
        registry=config["models"]["registry"],
        pretrained=lambda w, input: (
            f"--pretrained {input.pretrained}" if "pretrained" in input.keys() else ""
        ),
    shell:
        "python -m twinflow.meshhead.train_warp --twin {wildcards.twin}"
        " --frames {input.frames} --dataset {input.dataset} {params.pretrained}"
        " --preset {params.preset} {params.overrides}"
        " --steps {params.steps} {params.max_minutes} --save-every {params.save_every}"
        " --threads {threads} --registry {params.registry} --out {output.model} > {log} 2>&1"


rule meshhead_evaluate:
    input:
        unpack(lambda w: meshhead_plan.evaluate_inputs(w.twin, MESHHEAD)),
    output:
        metrics=report(
            "results/{twin}/meshhead/metrics.json",
            category="evaluation",
            subcategory="{twin}",
        ),
    log:
        "logs/meshhead_evaluate/{twin}.log",
    benchmark:
        "benchmarks/meshhead_evaluate/{twin}.tsv"
    conda:
        "../../envs/meshhead.yaml"
    threads: 1
    resources:
        mem_mb=scaled(3000),
        runtime=scaled(30),
        gpu=1,
    params:
        warp=lambda w, input: (
            f"--frames {input.frames} --warp {input.warp}"
            if "warp" in input.keys()
            else ""
        ),
        registry=config["models"]["registry"],
    shell:
        "python -m twinflow.meshhead.evaluate --twin {wildcards.twin}"
        " --dataset {input.dataset} --audio2mesh {input.audio2mesh} {params.warp}"
        " --threads {threads} --registry {params.registry}"
        " --out {output.metrics} > {log} 2>&1"


rule meshhead_infer:
    input:
        model=lambda w: f"results/{RENDERS[w.render].twin_id}/meshhead/audio2mesh.pt",
        audio="results/drive/{render}/audio.wav",
    output:
        mesh="results/drive/{render}/meshhead/mesh.npz",
    log:
        "logs/meshhead_infer/{render}.log",
    benchmark:
        "benchmarks/meshhead_infer/{render}.tsv"
    conda:
        "../../envs/meshhead.yaml"
    threads: 1
    resources:
        mem_mb=scaled(2000),
        runtime=scaled(20),
        gpu=1,
    params:
        speaker=lambda w: meshhead_plan.infer_args(RENDERS[w.render], MESHHEAD),
        registry=config["models"]["registry"],
    shell:
        "python -m twinflow.meshhead.infer --render {wildcards.render} --model {input.model}"
        " --audio {input.audio} {params.speaker} --threads {threads}"
        " --registry {params.registry} --out {output.mesh} > {log} 2>&1"


rule meshhead_preview:
    input:
        mesh="results/drive/{render}/meshhead/mesh.npz",
        audio="results/drive/{render}/audio.wav",
    output:
        video="results/drive/{render}/meshhead/mesh_preview.mp4",
    log:
        "logs/meshhead_preview/{render}.log",
    benchmark:
        "benchmarks/meshhead_preview/{render}.tsv"
    conda:
        "../../envs/meshhead.yaml"
    threads: 1
    resources:
        mem_mb=scaled(1000),
        runtime=scaled(20),
    params:
        size=256,
    shell:
        "python -m twinflow.meshhead.preview --render {wildcards.render} --mesh {input.mesh}"
        " --audio {input.audio} --size {params.size} --out {output.video} > {log} 2>&1"


rule meshhead_render:
    input:
        unpack(
            lambda w: meshhead_plan.render_inputs(
                RENDERS[w.render], TWINS[RENDERS[w.render].twin_id], MESHHEAD
            )
        ),
        unpack(
            lambda w: ready_input(
                f"results/drive/{w.render}",
                "meshhead",
                meshhead_plan.render_options(RENDERS[w.render], MESHHEAD)["pose"]
                == "video",
            )
        ),
    output:
        video="results/drive/{render}/meshhead/frames.mp4",
    log:
        "logs/meshhead_render/{render}.log",
    benchmark:
        "benchmarks/meshhead_render/{render}.tsv"
    conda:
        "../../envs/meshhead.yaml"
    threads: 2
    resources:
        mem_mb=scaled(3000),
        runtime=scaled(30),
        gpu=1,
    params:
        args=lambda w, input: meshhead_plan.render_args(
            RENDERS[w.render], input, MESHHEAD
        ),
        crf=VIDEO["crf"],
        x264_preset=VIDEO["x264_preset"],
    shell:
        "python -m twinflow.meshhead.render --render {wildcards.render} --warp {input.warp}"
        " --mesh {input.mesh} --dataset {input.dataset} --frames {input.frames} {params.args}"
        " --crf {params.crf} --x264-preset {params.x264_preset} --threads {threads}"
        " --out {output.video} > {log} 2>&1"


rule meshhead_mux:
    input:
        video=lambda w: meshhead_plan.mux_video(RENDERS[w.render], MESHHEAD),
        audio="results/drive/{render}/audio.wav",
    output:
        video=report("results/renders/{render}.mp4", category="renders"),
    log:
        "logs/meshhead_mux/{render}.log",
    benchmark:
        "benchmarks/meshhead_mux/{render}.tsv"
    wildcard_constraints:
        render=meshhead_plan.render_pattern(RENDERS),
    conda:
        "../../envs/meshhead.yaml"
    threads: 1
    resources:
        mem_mb=scaled(1000),
        runtime=scaled(10),
    params:
        trim="--trim-to-video",
    shell:
        "python -m twinflow.meshhead.mux --render {wildcards.render} --video {input.video}"
        " --audio {input.audio} {params.trim} --out {output.video} > {log} 2>&1"
