# Mocap pipeline: a parametric body fitted to each person track, a diffusion prior for the
# global trajectory, a mesh preview and metrics (twinflow.mocap; settings: config.yaml `mocap:`,
# resolved by twinflow.mocap.plan).
# results/{twin}/mocap/ (a twin's video) or results/drive/{render}/mocap/ (a render's driving
# video): person0.npz, person0_world.npz, preview.mp4, metrics.json; results/mocap/traj/model.pt
# (trained once); results/renders/{render}.mp4 for every `mocap` row of renders.tsv (its preview).
from twinflow.mocap import plan as mocap_plan

try:
    MOCAP = mocap_plan.settings(config)
except ValueError as err:
    raise WorkflowError(f"invalid mocap configuration: {err}") from None


wildcard_constraints:
    person="person[0-9]+",


rule mocap_fit:
    input:
        unpack(fit_ready_input),
        meta="results/{twin}/media/meta.json",
        body="results/{twin}/perception/body.npz",
        face="results/{twin}/perception/face.npz",
        head_pose=lambda w: mocap_plan.head_pose_input(
            f"results/{w.twin}/perception/head_pose.npz", MOCAP, workflow.rules
        ),
    output:
        fit="results/{twin}/mocap/{person}.npz",
    log:
        "logs/mocap_fit/{twin}_{person}.log",
    benchmark:
        "benchmarks/mocap_fit/{twin}_{person}.tsv"
    conda:
        "../../envs/mocap.yaml"
    threads: MOCAP.threads
    resources:
        mem_mb=scaled(4000),
        runtime=scaled(60),
        gpu=1,
    params:
        head_pose=lambda w, input: mocap_plan.head_pose_arg(input.head_pose),
        source=lambda w: TWINS[w.twin].video,
        backend=MOCAP.backend,
        smplx=MOCAP.smplx_arg,
        gender=MOCAP.gender,
        preset=MOCAP.preset,
        overrides=MOCAP.set_args,
        registry=config["models"]["registry"],
    shell:
        "python -m twinflow.mocap.fit --twin {wildcards[0]} --person {wildcards.person}"
        " --meta {input.meta} --body {input.body} --face {input.face} {params.head_pose}"
        " --source {params.source:q} --backend {params.backend} {params.smplx}"
        " --gender {params.gender} --registry {params.registry} --preset {params.preset}"
        " {params.overrides} --threads {threads} --out {output.fit} > {log} 2>&1"


use rule mocap_fit as mocap_fit_drive with:
    input:
        unpack(fit_ready_input),
        meta="results/drive/{render}/meta.json",
        body="results/drive/{render}/perception/body.npz",
        face="results/drive/{render}/perception/face.npz",
        head_pose=lambda w: mocap_plan.head_pose_input(
            f"results/drive/{w.render}/perception/head_pose.npz", MOCAP, workflow.rules
        ),
    output:
        fit="results/drive/{render}/mocap/{person}.npz",
    log:
        "logs/mocap_fit_drive/{render}_{person}.log",
    benchmark:
        "benchmarks/mocap_fit_drive/{render}_{person}.tsv"
    params:
        head_pose=lambda w, input: mocap_plan.head_pose_arg(input.head_pose),
        source=lambda w: RENDERS[w.render].driving_video,
        backend=MOCAP.backend,
        smplx=MOCAP.smplx_arg,
        gender=MOCAP.gender,
        preset=MOCAP.preset,
        overrides=MOCAP.set_args,
        registry=config["models"]["registry"],


rule mocap_traj_data:
    output:
        dataset=directory(mocap_plan.TRAJ_SYNTHETIC),
    log:
        "logs/mocap_traj_data/synthetic.log",
    benchmark:
        "benchmarks/mocap_traj_data/synthetic.tsv"
    conda:
        "../../envs/mocap.yaml"
    threads: 1
    resources:
        mem_mb=scaled(1000),
        runtime=scaled(10),
    params:
        sizes=MOCAP.traj_synth_args(),
    shell:
        "python -m twinflow.mocap.traj.synth --out {output.dataset} {params.sizes} > {log} 2>&1"


rule mocap_traj_train:
    input:
        dataset=MOCAP.traj_data,
    output:
        model=mocap_plan.TRAJ_MODEL,
    log:
        "logs/mocap_traj_train/model.log",
    benchmark:
        "benchmarks/mocap_traj_train/model.tsv"
    conda:
        "../../envs/mocap.yaml"
    threads: MOCAP.threads
    resources:
        mem_mb=scaled(4000),
        runtime=scaled(120),
        gpu=1,
    params:
        preset=MOCAP.preset,
        overrides=MOCAP.traj_set_args,
    shell:
        "python -m twinflow.mocap.traj.train --dataset {input.dataset:q} --preset {params.preset}"
        " {params.overrides} --threads {threads} --out {output.model} > {log} 2>&1"


rule mocap_traj_infer:
    input:
        fit="results/{twin}/mocap/{person}.npz",
        model=mocap_plan.TRAJ_MODEL,
    output:
        world="results/{twin}/mocap/{person}_world.npz",
    log:
        "logs/mocap_traj_infer/{twin}_{person}.log",
    benchmark:
        "benchmarks/mocap_traj_infer/{twin}_{person}.tsv"
    conda:
        "../../envs/mocap.yaml"
    threads: 1
    resources:
        mem_mb=scaled(2000),
        runtime=scaled(10),
    params:
        seed=0,
    shell:
        "python -m twinflow.mocap.traj.infer --twin {wildcards[0]} --fit {input.fit}"
        " --model {input.model} --seed {params.seed} --threads {threads}"
        " --out {output.world} > {log} 2>&1"


use rule mocap_traj_infer as mocap_traj_infer_drive with:
    input:
        fit="results/drive/{render}/mocap/{person}.npz",
        model=mocap_plan.TRAJ_MODEL,
    output:
        world="results/drive/{render}/mocap/{person}_world.npz",
    log:
        "logs/mocap_traj_infer_drive/{render}_{person}.log",
    benchmark:
        "benchmarks/mocap_traj_infer_drive/{render}_{person}.tsv"


rule mocap_preview:
    input:
        fit=f"results/{{twin}}/mocap/{mocap_plan.PERSON}.npz",
        video="results/{twin}/media/video.mp4",
    output:
        video=report(
            "results/{twin}/mocap/preview.mp4",
            category="evaluation",
            subcategory="{twin}",
        ),
    log:
        "logs/mocap_preview/{twin}.log",
    benchmark:
        "benchmarks/mocap_preview/{twin}.tsv"
    conda:
        "../../envs/mocap.yaml"
    threads: 1
    resources:
        mem_mb=scaled(3000),
        runtime=scaled(30),
    params:
        smplx=MOCAP.smplx_arg,
        opacity=MOCAP.preview_opacity,
        crf=VIDEO["crf"],
    shell:
        "python -m twinflow.mocap.preview --twin {wildcards[0]} --fit {input.fit}"
        " --video {input.video} {params.smplx} --opacity {params.opacity} --crf {params.crf}"
        " --threads {threads} --out {output.video} > {log} 2>&1"


use rule mocap_preview as mocap_preview_drive with:
    input:
        fit=f"results/drive/{{render}}/mocap/{mocap_plan.PERSON}.npz",
        video="results/drive/{render}/video.mp4",
    output:
        video="results/drive/{render}/mocap/preview.mp4",
    log:
        "logs/mocap_preview_drive/{render}.log",
    benchmark:
        "benchmarks/mocap_preview_drive/{render}.tsv"


rule mocap_metrics:
    input:
        fit=f"results/{{twin}}/mocap/{mocap_plan.PERSON}.npz",
        body="results/{twin}/perception/body.npz",
        face="results/{twin}/perception/face.npz",
        meta="results/{twin}/media/meta.json",
    output:
        metrics=report(
            "results/{twin}/mocap/metrics.json",
            category="evaluation",
            subcategory="{twin}",
        ),
    log:
        "logs/mocap_metrics/{twin}.log",
    benchmark:
        "benchmarks/mocap_metrics/{twin}.tsv"
    conda:
        "../../envs/mocap.yaml"
    threads: 1
    resources:
        mem_mb=scaled(1000),
        runtime=scaled(5),
    params:
        person=mocap_plan.PERSON,
    shell:
        "python -m twinflow.mocap.metrics --twin {wildcards[0]} --person {params.person}"
        " --fit {input.fit}"
        " --body {input.body} --face {input.face} --meta {input.meta}"
        " --out {output.metrics} > {log} 2>&1"


use rule mocap_metrics as mocap_metrics_drive with:
    input:
        fit=f"results/drive/{{render}}/mocap/{mocap_plan.PERSON}.npz",
        body="results/drive/{render}/perception/body.npz",
        face="results/drive/{render}/perception/face.npz",
        meta="results/drive/{render}/meta.json",
    output:
        metrics="results/drive/{render}/mocap/metrics.json",
    log:
        "logs/mocap_metrics_drive/{render}.log",
    benchmark:
        "benchmarks/mocap_metrics_drive/{render}.tsv"


rule mocap_render:
    input:
        preview=lambda w: f"{mocap_plan.base(RENDERS[w.render])}/mocap/preview.mp4",
    output:
        video=report("results/renders/{render}.mp4", category="renders"),
    log:
        "logs/mocap_render/{render}.log",
    benchmark:
        "benchmarks/mocap_render/{render}.tsv"
    wildcard_constraints:
        render=mocap_plan.render_pattern(RENDERS),
    conda:
        "../../envs/mocap.yaml"
    threads: 1
    resources:
        mem_mb=scaled(500),
        runtime=scaled(5),
    params:
        render="{render}",
    shell:
        "python -m twinflow.mocap.publish --render {params.render} --preview {input.preview}"
        " --out {output.video} > {log} 2>&1"
