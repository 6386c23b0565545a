# Perception: face, head pose, parsing, matte, body and signals, once per twin video and once per
# driving video, for every later pipeline. Files in results/{twin}/perception/ and
# results/drive/{render}/perception/; formats in the twinflow.perception module docstrings.


rule face_track:
    """One decode pass: face mesh, face detection, pose, hands, matte; blink/mouth signals.
    Never refuses a video: perception_ready asks, per pipeline, whether it shows enough.
    """
    input:
        video="results/{twin}/media/video.mp4",
    output:
        face=f"{PERCEPTION_TWIN}/face.npz",
        body=f"{PERCEPTION_TWIN}/body.npz",
        signals=f"{PERCEPTION_TWIN}/signals.npz",
        matte=f"{PERCEPTION_TWIN}/matte.mkv",
    log:
        "logs/face_track/{twin}.log",
    benchmark:
        "benchmarks/face_track/{twin}.tsv"
    conda:
        "../../envs/perception.yaml"
    threads: 2
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        id=perception_id,
        source=lambda w: TWINS[w.twin].video,
        models=" ".join(perception_flags(s) for s in ("face", "body", "matte")),
    shell:
        "python -m twinflow.perception.track --twin {params.id} --video {input.video}"
        " --source {params.source:q} {params.models}"
        " --face {output.face} --body {output.body} --signals {output.signals}"
        " --matte {output.matte} > {log} 2>&1"


rule perception_ready:
    """Gate of one pipeline: does the video show what it needs (a face, a body)?"""
    input:
        face=f"{PERCEPTION_TWIN}/face.npz",
        body=f"{PERCEPTION_TWIN}/body.npz",
    output:
        ready=f"{PERCEPTION_TWIN}/ready/{{pipeline}}.json",
    log:
        "logs/perception_ready/{twin}_{pipeline}.log",
    benchmark:
        "benchmarks/perception_ready/{twin}_{pipeline}.tsv"
    conda:
        "../../envs/perception.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        id=perception_id,
        source=lambda w: TWINS[w.twin].video,
        max_face=PERCEPTION["max_missing_face"],
        max_body=PERCEPTION["max_missing_body"],
    shell:
        "python -m twinflow.perception.ready --twin {params.id} --pipeline {wildcards.pipeline}"
        " --face {input.face} --body {input.body} --source {params.source:q}"
        " --max-missing-face {params.max_face} --max-missing-body {params.max_body}"
        " --out {output.ready} > {log} 2>&1"


rule head_pose:
    """Rigid face template, head pose per frame, focal length, NeRF camera files."""
    input:
        face=f"{PERCEPTION_TWIN}/face.npz",
    output:
        template=f"{PERCEPTION_TWIN}/template.npz",
        pose=f"{PERCEPTION_TWIN}/head_pose.npz",
        train=f"{PERCEPTION_TWIN}/transforms_train.json",
        val=f"{PERCEPTION_TWIN}/transforms_val.json",
    log:
        "logs/head_pose/{twin}.log",
    benchmark:
        "benchmarks/head_pose/{twin}.tsv"
    conda:
        "../../envs/perception.yaml"
    threads: 1
    resources:
        mem_mb=1500,
        runtime=20,
    params:
        id=perception_id,
        pose=perception_flags("head_pose", "pose"),
    shell:
        "python -m twinflow.perception.head_pose --twin {params.id} --face {input.face}"
        " {params.pose} --template {output.template} --pose {output.pose}"
        " --train {output.train} --val {output.val} > {log} 2>&1"


rule face_parsing:
    """Per-frame label maps from landmark polygons, the matte and the pose."""
    input:
        video="results/{twin}/media/video.mp4",
        face=f"{PERCEPTION_TWIN}/face.npz",
        body=f"{PERCEPTION_TWIN}/body.npz",
        matte=f"{PERCEPTION_TWIN}/matte.mkv",
    output:
        parsing=f"{PERCEPTION_TWIN}/parsing.mkv",
    log:
        "logs/face_parsing/{twin}.log",
    benchmark:
        "benchmarks/face_parsing/{twin}.tsv"
    conda:
        "../../envs/perception.yaml"
    threads: 1
    resources:
        mem_mb=1500,
        runtime=30,
    params:
        id=perception_id,
    shell:
        "python -m twinflow.perception.parsing --twin {params.id} --video {input.video}"
        " --face {input.face} --body {input.body} --matte {input.matte}"
        " --out {output.parsing} > {log} 2>&1"


rule background:
    """Background plate, torso-only RGBA sequence and the person over a new background."""
    input:
        unpack(background_image),
        video="results/{twin}/media/video.mp4",
        matte=f"{PERCEPTION_TWIN}/matte.mkv",
        parsing=f"{PERCEPTION_TWIN}/parsing.mkv",
    output:
        plate=f"{PERCEPTION_TWIN}/background.png",
        torso=f"{PERCEPTION_TWIN}/torso.mkv",
        composite=f"{PERCEPTION_TWIN}/composite.mp4",
    log:
        "logs/background/{twin}.log",
    benchmark:
        "benchmarks/background/{twin}.tsv"
    conda:
        "../../envs/perception.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        id=perception_id,
        replace=PERCEPTION["background"],
        samples=PERCEPTION["background_samples"],
        crf=VIDEO["crf"],
    shell:
        "python -m twinflow.perception.background --twin {params.id} --video {input.video}"
        " --matte {input.matte} --parsing {input.parsing} --replace {params.replace:q}"
        " --samples {params.samples} --crf {params.crf} --plate {output.plate}"
        " --torso {output.torso} --composite {output.composite} > {log} 2>&1"


rule perception_report:
    """Preview video (landmarks, matte, pose over the frames) and summary JSON."""
    input:
        unpack(report_pose_input),
        video="results/{twin}/media/video.mp4",
        face=f"{PERCEPTION_TWIN}/face.npz",
        body=f"{PERCEPTION_TWIN}/body.npz",
        signals=f"{PERCEPTION_TWIN}/signals.npz",
        matte=f"{PERCEPTION_TWIN}/matte.mkv",
    output:
        preview=report(
            f"{PERCEPTION_TWIN}/preview.mp4",
            category="perception",
            subcategory="{twin}",
        ),
        summary=f"{PERCEPTION_TWIN}/summary.json",
    log:
        "logs/perception_report/{twin}.log",
    benchmark:
        "benchmarks/perception_report/{twin}.tsv"
    conda:
        "../../envs/perception.yaml"
    threads: 1
    resources:
        mem_mb=1500,
        runtime=30,
    params:
        id=perception_id,
        max_missing=PERCEPTION["max_missing_face"],
        crf=PERCEPTION["preview_crf"],
        x264_preset=VIDEO["x264_preset"],
        pose=lambda w, input: report_pose_args(input),
    shell:
        "python -m twinflow.perception.report --twin {params.id} --video {input.video}"
        " --face {input.face} --body {input.body} --signals {input.signals}"
        " {params.pose} --matte {input.matte}"
        " --max-missing-face {params.max_missing} --crf {params.crf}"
        " --x264-preset {params.x264_preset}"
        " --preview {output.preview} --summary {output.summary} > {log} 2>&1"


rule photo_face:
    """The face path for the twin's single photo (static-image mode)."""
    input:
        photo="results/{twin}/media/photo.png",
    output:
        face=f"{PERCEPTION_TWIN}/photo_face.npz",
    log:
        "logs/photo_face/{twin}.log",
    benchmark:
        "benchmarks/photo_face/{twin}.tsv"
    conda:
        "../../envs/perception.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        id=perception_id,
        face=perception_flags("face"),
    shell:
        "python -m twinflow.perception.photo --twin {params.id} --photo {input.photo}"
        " {params.face} --out {output.face} > {log} 2>&1"


# Driving videos of renders reuse the twin rules with other paths.
use rule face_track as face_track_driving with:
    input:
        video="results/drive/{render}/video.mp4",
    output:
        face=f"{PERCEPTION_DRIVE}/face.npz",
        body=f"{PERCEPTION_DRIVE}/body.npz",
        signals=f"{PERCEPTION_DRIVE}/signals.npz",
        matte=f"{PERCEPTION_DRIVE}/matte.mkv",
    log:
        "logs/face_track_driving/{render}.log",
    benchmark:
        "benchmarks/face_track_driving/{render}.tsv"
    params:
        id=perception_id,
        source=lambda w: RENDERS[w.render].driving_video,
        models=" ".join(perception_flags(s) for s in ("face", "body", "matte")),


use rule perception_ready as perception_ready_driving with:
    input:
        face=f"{PERCEPTION_DRIVE}/face.npz",
        body=f"{PERCEPTION_DRIVE}/body.npz",
    output:
        ready=f"{PERCEPTION_DRIVE}/ready/{{pipeline}}.json",
    log:
        "logs/perception_ready_driving/{render}_{pipeline}.log",
    benchmark:
        "benchmarks/perception_ready_driving/{render}_{pipeline}.tsv"
    params:
        id=perception_id,
        source=lambda w: RENDERS[w.render].driving_video,
        max_face=PERCEPTION["max_missing_face"],
        max_body=PERCEPTION["max_missing_body"],


use rule head_pose as head_pose_driving with:
    input:
        face=f"{PERCEPTION_DRIVE}/face.npz",
    output:
        template=f"{PERCEPTION_DRIVE}/template.npz",
        pose=f"{PERCEPTION_DRIVE}/head_pose.npz",
        train=f"{PERCEPTION_DRIVE}/transforms_train.json",
        val=f"{PERCEPTION_DRIVE}/transforms_val.json",
    log:
        "logs/head_pose_driving/{render}.log",
    benchmark:
        "benchmarks/head_pose_driving/{render}.tsv"


use rule face_parsing as face_parsing_driving with:
    input:
        video="results/drive/{render}/video.mp4",
        face=f"{PERCEPTION_DRIVE}/face.npz",
        body=f"{PERCEPTION_DRIVE}/body.npz",
        matte=f"{PERCEPTION_DRIVE}/matte.mkv",
    output:
        parsing=f"{PERCEPTION_DRIVE}/parsing.mkv",
    log:
        "logs/face_parsing_driving/{render}.log",
    benchmark:
        "benchmarks/face_parsing_driving/{render}.tsv"


use rule perception_report as perception_report_driving with:
    input:
        unpack(report_pose_input),
        video="results/drive/{render}/video.mp4",
        face=f"{PERCEPTION_DRIVE}/face.npz",
        body=f"{PERCEPTION_DRIVE}/body.npz",
        signals=f"{PERCEPTION_DRIVE}/signals.npz",
        matte=f"{PERCEPTION_DRIVE}/matte.mkv",
    output:
        preview=f"{PERCEPTION_DRIVE}/preview.mp4",
        summary=f"{PERCEPTION_DRIVE}/summary.json",
    log:
        "logs/perception_report_driving/{render}.log",
    benchmark:
        "benchmarks/perception_report_driving/{render}.tsv"
