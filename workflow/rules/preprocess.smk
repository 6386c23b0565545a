# Preprocessing: probe, normalise, audio, photo, frames and clips, per twin and per driving input.
# Twin media live in results/{twin}/media/, a render's driving media in results/drive/{render}/.


rule probe_video:
    input:
        video=lambda w: TWINS[w.twin].video,
    output:
        probe="results/{twin}/media/probe.json",
    log:
        "logs/probe_video/{twin}.log",
    benchmark:
        "benchmarks/probe_video/{twin}.tsv"
    conda:
        "../../envs/preprocess.yaml"
    threads: 1
    resources:
        mem_mb=scaled(1000),
        runtime=scaled(10),
    params:
        twin="{twin}",
        render="",
        min_frames=VIDEO["min_frames"],
    shell:
        "python -m twinflow.prep.probe --twin {params.twin} --render '{params.render}' --video {input.video:q}"
        " --min-frames {params.min_frames} --out {output.probe} > {log} 2>&1"


rule normalise_video:
    input:
        video=lambda w: TWINS[w.twin].video,
        probe="results/{twin}/media/probe.json",
    output:
        video="results/{twin}/media/video.mp4",
        meta="results/{twin}/media/meta.json",
    log:
        "logs/normalise_video/{twin}.log",
    benchmark:
        "benchmarks/normalise_video/{twin}.tsv"
    conda:
        "../../envs/preprocess.yaml"
    threads: 2
    resources:
        mem_mb=scaled(2000),
        runtime=scaled(30),
    params:
        twin="{twin}",
        render="",
        crop=lambda w: ",".join(map(str, TWINS[w.twin].crop or ())),
        fps=VIDEO["fps"],
        size=VIDEO["size"],
        crf=VIDEO["crf"],
        x264_preset=VIDEO["x264_preset"],
    shell:
        "python -m twinflow.prep.normalise --twin {params.twin} --render '{params.render}' --video {input.video:q}"
        " --probe {input.probe} --crop '{params.crop}' --fps {params.fps} --size {params.size}"
        " --crf {params.crf} --x264-preset {params.x264_preset}"
        " --out {output.video} --meta {output.meta} > {log} 2>&1"


rule extract_audio:
    input:
        media=lambda w: TWINS[w.twin].audio or TWINS[w.twin].video,
    output:
        wav="results/{twin}/media/audio.wav",
    log:
        "logs/extract_audio/{twin}.log",
    benchmark:
        "benchmarks/extract_audio/{twin}.tsv"
    conda:
        "../../envs/preprocess.yaml"
    threads: 1
    resources:
        mem_mb=scaled(1000),
        runtime=scaled(10),
    params:
        twin="{twin}",
        render="",
        sample_rate=config["audio"]["sample_rate"],
    shell:
        "python -m twinflow.prep.audio --twin {params.twin} --render '{params.render}' --media {input.media:q}"
        " --sample-rate {params.sample_rate} --out {output.wav} > {log} 2>&1"


rule prepare_photo:
    input:
        photo=lambda w: TWINS[w.twin].photo,
    output:
        photo="results/{twin}/media/photo.png",
    log:
        "logs/prepare_photo/{twin}.log",
    benchmark:
        "benchmarks/prepare_photo/{twin}.tsv"
    conda:
        "../../envs/preprocess.yaml"
    threads: 1
    resources:
        mem_mb=scaled(1000),
        runtime=scaled(5),
    params:
        size=VIDEO["size"],
    shell:
        "python -m twinflow.prep.photo --twin {wildcards.twin} --photo {input.photo:q}"
        " --size {params.size} --out {output.photo} > {log} 2>&1"


rule extract_frames:
    input:
        video="results/{twin}/media/video.mp4",
    output:
        frames=directory("results/{twin}/media/frames"),
    log:
        "logs/extract_frames/{twin}.log",
    benchmark:
        "benchmarks/extract_frames/{twin}.tsv"
    conda:
        "../../envs/preprocess.yaml"
    threads: 1
    resources:
        mem_mb=scaled(1000),
        runtime=scaled(30),
    shell:
        "python -m twinflow.prep.frames --twin {wildcards.twin} --video {input.video}"
        " --out {output.frames} > {log} 2>&1"


checkpoint split_clips:
    input:
        video="results/{twin}/media/video.mp4",
    output:
        clips=directory("results/{twin}/media/clips"),
    log:
        "logs/split_clips/{twin}.log",
    benchmark:
        "benchmarks/split_clips/{twin}.tsv"
    conda:
        "../../envs/preprocess.yaml"
    threads: 1
    resources:
        mem_mb=scaled(1000),
        runtime=scaled(30),
    params:
        seconds=config["clips"]["seconds"],
        min_seconds=config["clips"]["min_seconds"],
        crf=VIDEO["crf"],
    shell:
        "python -m twinflow.prep.clips --twin {wildcards.twin} --video {input.video}"
        " --seconds {params.seconds} --min-seconds {params.min_seconds} --crf {params.crf}"
        " --out {output.clips} > {log} 2>&1"


# Driving inputs of a render reuse the twin rules with other paths.
use rule probe_video as probe_driving_video with:
    input:
        video=lambda w: RENDERS[w.render].driving_video,
    output:
        probe="results/drive/{render}/probe.json",
    log:
        "logs/probe_driving_video/{render}.log",
    benchmark:
        "benchmarks/probe_driving_video/{render}.tsv"
    params:
        twin=lambda w: RENDERS[w.render].twin_id,
        render="{render}",
        min_frames=VIDEO["min_frames"],


use rule normalise_video as normalise_driving_video with:
    input:
        video=lambda w: RENDERS[w.render].driving_video,
        probe="results/drive/{render}/probe.json",
    output:
        video="results/drive/{render}/video.mp4",
        meta="results/drive/{render}/meta.json",
    log:
        "logs/normalise_driving_video/{render}.log",
    benchmark:
        "benchmarks/normalise_driving_video/{render}.tsv"
    params:
        twin=lambda w: RENDERS[w.render].twin_id,
        render="{render}",
        crop="",
        fps=VIDEO["fps"],
        size=VIDEO["size"],
        crf=VIDEO["crf"],
        x264_preset=VIDEO["x264_preset"],


use rule extract_audio as extract_driving_audio with:
    input:
        media=lambda w: RENDERS[w.render].driving_audio,
    output:
        wav="results/drive/{render}/audio.wav",
    log:
        "logs/extract_driving_audio/{render}.log",
    benchmark:
        "benchmarks/extract_driving_audio/{render}.tsv"
    params:
        twin=lambda w: RENDERS[w.render].twin_id,
        render="{render}",
        sample_rate=config["audio"]["sample_rate"],
