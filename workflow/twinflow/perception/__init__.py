"""Perception: face, head pose, parsing, matte, body and signals, computed once per video.

Every later pipeline (nerf, meshhead, animate, mocap, anchor) reads these files instead of running
its own detectors. Per twin they live in ``results/{twin}/perception/`` (from the normalised
``results/{twin}/media/video.mp4``), per driving video in ``results/drive/{render}/perception/``.
Models: mediapipe 0.10.21's bundled legacy solutions (:mod:`~twinflow.perception.solutions`).

==================  =========================================  ===============================
rule (stage CLI)    outputs                                    format documented in
==================  =========================================  ===============================
face_track          face.npz, body.npz, signals.npz,           :mod:`.face`, :mod:`.body`,
(``track``)         matte.mkv -- one decode pass               :mod:`.signals`, :mod:`.matte`
head_pose           template.npz, head_pose.npz,               :mod:`.template`,
(``head_pose``)     transforms_train.json, transforms_val.json :mod:`.head_pose`, :mod:`.cameras`
face_parsing        parsing.mkv (label ids: :data:`.parsing.   :mod:`.parsing`
(``parsing``)       LABELS`, 0 background .. 8 torso)
background          background.png, torso.mkv (RGBA),          :mod:`.background`
(``background``)    composite.mp4
perception_report   preview.mp4, summary.json                  :mod:`.report`, :mod:`.summary`
(``report``)
photo_face          photo_face.npz (the twin's photo)          :mod:`.photo`
(``photo``)
==================  =========================================  ===============================

Driving videos use the same rules with a ``_driving`` suffix. ``python -m
twinflow.perception.bench VIDEO`` is the speed benchmark (not a test).

Policy (:mod:`.needs`): a video fails with :class:`~twinflow.errors.InputError` naming the twin,
the file and the pipeline when a render that uses it needs the face (nerf, meshhead) and more than
``perception.max_missing_face`` of its frames show none, or needs the body (mocap, anchor) and more
than ``perception.max_missing_body`` show none. Otherwise frames without a face are interpolated
and flagged (``face.npz`` ``interpolated``). With several people the largest,
most central face track is kept (:mod:`.tracks`) and the summary says which.

Per-frame images that must stay exact (matte, label maps, torso RGBA) are lossless FFV1 video in
Matroska (:mod:`.store`): written and read one frame at a time, so no stage holds a whole video
in memory, and ~2-20 kB per 512x512 frame. Landmarks and other per-frame numbers are ``.npz``.
"""
