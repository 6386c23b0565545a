"""Stage ``mocap_fit``: a parametric body fitted to one person's 2-D body, hand and face landmarks.

``python -m twinflow.mocap.fit --twin ID --meta meta.json --body body.npz --face face.npz
[--head-pose head_pose.npz] --out person0.npz [--backend anny|smplx] [--smplx-model FILE]
[--preset tiny|paper] [--set field=value ...] [--device auto] [--threads N]``

SMPLify-X-style optimisation over all frames of the track at once (one batch), staged:

1. global orientation + translation on the torso points (shoulders, hips), from an initial
   placement that puts the model's torso over the detected one (depth from its image length);
2. + body pose and shape on the 33 pose points;
3. + hand poses, jaw and expression on the 42 hand and 51 face points too.

Objective (:func:`objective`): confidence-weighted robust (Geman-McClure) reprojection error,
normalised by the person's height in pixels; a Gaussian (L2) pose prior around the backend's rest
pose with per-joint weights (no learned prior: no VPoser weights here); one-sided limits on the
hinge joints (knees, elbows, finger joints bend one way, see
:func:`twinflow.mocap.body_models.base.standard_hinges`); a shape regulariser; an expression
regulariser; temporal smoothness (acceleration of the 3-D points, velocity of the pose); a weak
prior keeping the depth near its initial estimate. Camera: a pinhole with square pixels at the
frame centre; focal length from the perception head pose (``head_pose.npz: focal``) when given
and plausible, else ``focal_factor x max(W, H)``.

Output ``{person}.npz`` (``T`` frames; OpenCV camera coordinates: x right, y down, z forward,
metres; see also :mod:`twinflow.mocap`):

===================  ==================  ==================================================
key                  shape               meaning
===================  ==================  ==================================================
backend              str                 ``anny`` or ``smplx``
fps, mocap_framerate float               frame rate of the video
trans                (T, 3)              root translation (smplx: its ``transl``; anny: the
                                         pelvis/root bone position)
global_orient        (T, 3)              root orientation, axis-angle, camera axes
bbox                 (T, 4)              person box x0, y0, x1, y1 in pixels (detections, else
                                         the projected fit)
joints3d             (T, K, 3)           common-skeleton points (``joint_names``)
joints2d             (T, K, 2)           their projection, pixels
joint_names          (K,) str            :data:`twinflow.mocap.skeleton.POINTS`
points_defined       (K,) bool           the backend defines the point
kin3d                (T, 17, 3)          kinematic joints (``kin_names``)
camera_K             (3, 3)              intrinsics; image_size (2,) W, H; focal ()
reproj_px            (T, K)              reprojection error per detected point (NaN if none)
smplx only           betas (10,), poses (T, 55, 3) axis-angle (SMPL-X joint order), expression
                     (T, 10), gender, joint_names_smplx -- the SMPL-X Blender add-on's keys
anny only            phenotype (6,), phenotype_labels, pose (T, 104, 3) (local-ref axis-angle,
                     bone_labels), transl (T, 3), facial_actions (T, E), facial_action_labels
info                 JSON                config, focal source, losses per stage, timings
===================  ==================  ==================================================
"""

from __future__ import annotations

import argparse
import logging
import math
import time
from dataclasses import asdict

import numpy as np
import torch
from scipy.ndimage import median_filter
from scipy.spatial.transform import Rotation
from tqdm import tqdm

from twinflow.cli import stage_main
from twinflow.mocap import skeleton
from twinflow.mocap.body_models import BACKENDS, BodyModel, load_body_model
from twinflow.mocap.body_models.base import axis_angle_to_matrix
from twinflow.mocap.common import (
    intrinsics,
    media_meta,
    pick_device,
    project,
    save_npz,
    set_threads,
)
from twinflow.mocap.presets import FIT_PRESETS, FitConfig
from twinflow.presets import parse_overrides, resolve_preset

log = logging.getLogger("twinflow.mocap.fit")


# --- initialisation ----------------------------------------------------------------------------


def choose_focal(obs: skeleton.Observations, cfg: FitConfig) -> tuple[float, str]:
    """Focal length in pixels and where it came from."""
    size = max(obs.width, obs.height)
    hint = obs.focal_hint
    if cfg.use_head_pose_focal and hint is not None and 0.5 * size <= hint <= 5.0 * size:
        return float(hint), "head_pose"
    return cfg.focal_factor * size, f"{cfg.focal_factor} x max(W, H)"


def _fill(values: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Linear interpolation of ``values (T, ...)`` over frames where ``ok`` is False."""
    out = np.array(values, dtype=np.float64)
    if ok.all() or not ok.any():
        return out
    t = np.arange(len(out))
    flat = out.reshape(len(out), -1)
    for k in range(flat.shape[1]):
        flat[~ok, k] = np.interp(t[~ok], t[ok], flat[ok, k])
    return flat.reshape(out.shape)


def initial_placement(
    body: BodyModel, obs: skeleton.Observations, focal: float, thr: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame global orientation (axis-angle) and translation putting the rest model's torso
    over the detected torso: depth from the torso's (or shoulders') image length."""
    up = Rotation.from_rotvec(body.upright_orient())
    n = obs.n_frames
    zero_pose = torch.zeros(1, body.n_joints, 3)
    zero_pose[0, 0] = torch.as_tensor(body.upright_orient(), dtype=torch.float32)
    with torch.no_grad():
        rest = body(zero_pose, torch.zeros(1, 3), body.initial_shape())["points"][0].numpy()
    ls, rs, lh, rh = skeleton.TORSO
    s3, h3 = 0.5 * (rest[ls] + rest[rs]), 0.5 * (rest[lh] + rest[rh])
    torso3 = np.linalg.norm((s3 - h3)[:2])
    width3 = np.linalg.norm((rest[ls] - rest[rs])[:2])
    xy, conf = obs.xy.astype(np.float64), obs.conf
    cx, cy = obs.width / 2, obs.height / 2
    z = np.full(n, np.nan)
    anchor2 = np.zeros((n, 2))
    anchor3 = np.zeros((n, 3))
    facing = np.zeros(n)
    for t in range(n):
        c = conf[t, skeleton.TORSO] > thr
        if c[:2].all():
            facing[t] = np.sign(xy[t, ls, 0] - xy[t, rs, 0])  # person's left on the image right
        if c.all():
            s2 = 0.5 * (xy[t, ls] + xy[t, rs])
            h2 = 0.5 * (xy[t, lh] + xy[t, rh])
            z[t] = focal * torso3 / max(np.linalg.norm(s2 - h2), 1.0)
            anchor2[t], anchor3[t] = h2, h3
        elif c[:2].all():
            z[t] = focal * width3 / max(np.linalg.norm(xy[t, ls] - xy[t, rs]), 1.0)
            anchor2[t] = 0.5 * (xy[t, ls] + xy[t, rs])
            anchor3[t] = s3
    ok = np.isfinite(z)
    if not ok.any():  # no torso anywhere: centre the person at a default depth
        z[:] = focal * 1.7 / (0.8 * obs.height)
        anchor2[:] = (cx, cy)
        ok[:] = True
    z = median_filter(_fill(z, ok), size=9, mode="nearest")
    anchor2 = _fill(anchor2, ok)
    anchor3 = _fill(anchor3, ok)
    transl = np.stack(
        [(anchor2[:, 0] - cx) / focal * z, (anchor2[:, 1] - cy) / focal * z, z], axis=1
    )
    transl = transl - anchor3  # the anchor's offset from the root in the upright rest pose
    # facing the camera unless the shoulders say otherwise (a majority over nearby frames)
    facing = np.sign(median_filter(np.where(facing == 0, 1, facing), size=15, mode="nearest"))
    turn = Rotation.from_rotvec(np.array([0, np.pi, 0]))
    orient = np.stack(
        [(up if f >= 0 else turn * up).as_rotvec() for f in facing]
    )  # turn about the camera's vertical
    return orient.astype(np.float32), transl.astype(np.float32)


# --- objective -----------------------------------------------------------------------------------


class FitState(torch.nn.Module):
    """The optimised parameters of one track."""

    def __init__(self, body: BodyModel, orient: np.ndarray, transl: np.ndarray):
        super().__init__()
        n = len(orient)
        prior = torch.as_tensor(body.prior.mean, dtype=torch.float32)
        self.orient = torch.nn.Parameter(torch.as_tensor(orient))
        self.transl = torch.nn.Parameter(torch.as_tensor(transl))
        self.groups = {k: v for k, v in body.parts.items() if v}
        for name, idx in self.groups.items():
            init = prior[idx][None].expand(n, -1, -1).clone()
            setattr(self, f"pose_{name}", torch.nn.Parameter(init))
        self.shape = torch.nn.Parameter(body.initial_shape().clone().float())
        self.expression = torch.nn.Parameter(torch.zeros(n, body.n_expr))
        self.n_joints = body.n_joints
        self.z0 = torch.as_tensor(transl[:, 2]).clone()

    def pose(self) -> torch.Tensor:
        n = self.orient.shape[0]
        pose = self.orient.new_zeros(n, self.n_joints, 3)
        pose[:, 0] = self.orient
        for name, idx in self.groups.items():
            pose[:, idx] = getattr(self, f"pose_{name}")
        return pose


STAGES = {
    # stage -> (parameter groups, point weights)
    "global": (["orient", "transl"], {"torso": 1.0}),
    "body": (["orient", "transl", "pose_body", "shape"], {"body": 1.0, "pose_face": 1.0}),
    "full": (
        ["orient", "transl", "pose_body", "shape", "pose_lhand", "pose_rhand", "pose_face",
         "expression"],
        {"body": 1.0, "pose_face": 1.0, "hands": 1.0, "face": 1.0},
    ),
}  # fmt: skip


def point_weights(stage: str, cfg: FitConfig, defined: np.ndarray) -> np.ndarray:
    """Per-point weight ``(K,)`` of the data term in ``stage``."""
    w = np.zeros(skeleton.N_POINTS)
    groups = STAGES[stage][1]
    if "torso" in groups:
        w[skeleton.TORSO] = cfg.w_body
    if "body" in groups:
        w[skeleton.POSE_BODY] = cfg.w_body
    if "pose_face" in groups:
        w[skeleton.POSE_FACE] = cfg.w_pose_face
    if "hands" in groups:
        w[skeleton.GROUPS["lhand"]] = cfg.w_hands
        w[skeleton.GROUPS["rhand"]] = cfg.w_hands
    if "face" in groups:
        w[skeleton.GROUPS["face"]] = cfg.w_face
    return w * defined


def robust(r2: torch.Tensor, sigma: float) -> torch.Tensor:
    """Geman-McClure, scaled to 0..1: ``r^2 / (r^2 + sigma^2)``."""
    return r2 / (r2 + sigma**2)


def objective(
    state: FitState,
    body: BodyModel,
    data: dict[str, torch.Tensor],
    cfg: FitConfig,
    stage: str,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss of ``stage`` (see the module docstring) and its terms."""
    pose = state.pose()
    expr = state.expression if body.n_expr and stage == "full" else None
    out = body(pose, state.transl, state.shape, expr)
    uv = project(out["points"], data["focal"], data["cx"], data["cy"])
    r2 = ((uv - data["xy"]) ** 2).sum(-1) / data["scale"] ** 2
    w = data["conf"] * data["weights"][stage]
    terms = {"data": (w * robust(r2, cfg.robust_sigma)).sum() / w.sum().clamp(min=1e-6)}
    active = STAGES[stage][0]
    prior = body.prior
    pw = data["prior_weight"]
    pmean = data["prior_mean"]
    if "pose_body" in active:
        dev = (pose[:, 1:] - pmean[1:]).pow(2).sum(-1)
        terms["pose_prior"] = cfg.w_pose_prior * (dev * pw[1:]).sum(-1).mean()
        if prior.hinges:
            aa = pose[:, data["hinge_joint"]]
            along = (aa * data["hinge_axis"]).sum(-1)
            off = (aa - along[..., None] * data["hinge_axis"]).pow(2).sum(-1)
            bad = torch.relu(-along).pow(2) * 10 + data["hinge_off"] * off
            terms["hinge"] = cfg.w_hinge * (bad * data["hinge_weight"]).sum(-1).mean()
        terms["shape"] = cfg.w_shape * body.shape_penalty(state.shape)
    if expr is not None:
        terms["expression"] = cfg.w_expr * expr.pow(2).sum(-1).mean()
    n = pose.shape[0]
    if n >= 3:
        pts = torch.cat([out["points"][:, data["defined"]], out["kin"]], 1)
        acc = pts[2:] - 2 * pts[1:-1] + pts[:-2]
        terms["smooth"] = cfg.w_smooth * acc.pow(2).sum(-1).mean()
    if n >= 2 and "pose_body" in active:
        vel = pose[1:, 1:] - pose[:-1, 1:]
        terms["smooth_pose"] = (
            cfg.w_smooth_pose * (vel.pow(2).sum(-1) * (pw[1:] > 0)).sum(-1).mean()
        )
    terms["depth"] = cfg.w_depth * ((state.transl[:, 2] - data["z0"]) / data["z0"]).pow(2).mean()
    total = sum(terms.values())
    return total, {k: float(v.detach()) for k, v in terms.items()}


def _hinge_tensors(body: BodyModel, device) -> dict[str, torch.Tensor]:
    h = body.prior.hinges
    if not h:
        return {}
    return {
        "hinge_joint": torch.as_tensor([x.joint for x in h], device=device),
        "hinge_axis": torch.as_tensor(
            np.stack([x.axis for x in h]), dtype=torch.float32, device=device
        ),
        "hinge_off": torch.as_tensor([x.off_axis for x in h], dtype=torch.float32, device=device),
        "hinge_weight": torch.as_tensor([x.weight for x in h], dtype=torch.float32, device=device),
    }


def person_scale(body: BodyModel, focal: float, transl: np.ndarray, shape=None) -> float:
    """The person's standing height in pixels: the rest mesh's height seen at the track's median
    depth (robust for half-body shots, where the detections do not show the whole person)."""
    return float(focal * body.rest_height(shape) / np.median(transl[:, 2]))


# --- the fit -------------------------------------------------------------------------------------


def fit_track(
    body: BodyModel,
    obs: skeleton.Observations,
    cfg: FitConfig,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> dict:
    """Fit ``body`` to ``obs``; returns the parameters, points, per-point errors and a log."""
    device = torch.device(device)
    t0 = time.perf_counter()
    c0 = time.process_time()
    focal, focal_source = choose_focal(obs, cfg)
    orient, transl = initial_placement(body, obs, focal, cfg.conf_threshold)
    scale = person_scale(body, focal, transl)
    body = body.to(device)
    state = FitState(body, orient, transl).to(device)
    conf = np.where(obs.conf >= cfg.conf_threshold, obs.conf, 0.0)
    defined = body.point_defined.astype(bool)
    data = {
        "xy": torch.as_tensor(obs.xy, dtype=torch.float32, device=device),
        "conf": torch.as_tensor(conf, dtype=torch.float32, device=device),
        "focal": focal,
        "cx": obs.width / 2.0,
        "cy": obs.height / 2.0,
        "scale": scale,
        "z0": state.z0.to(device),
        "defined": torch.as_tensor(np.nonzero(defined)[0], device=device),
        "prior_weight": torch.as_tensor(body.prior.weight, dtype=torch.float32, device=device),
        "prior_mean": torch.as_tensor(body.prior.mean, dtype=torch.float32, device=device),
        "weights": {
            s: torch.as_tensor(point_weights(s, cfg, defined), dtype=torch.float32, device=device)
            for s in STAGES
        },
        **_hinge_tensors(body, device),
    }
    with torch.no_grad():
        init_uv = (
            project(
                body(state.pose(), state.transl, state.shape)["points"],
                focal,
                obs.width / 2.0,
                obs.height / 2.0,
            )
            .cpu()
            .numpy()
        )
    history = {}
    iters = {"global": cfg.iters_global, "body": cfg.iters_body, "full": cfg.iters_full}
    for stage, n_iter in iters.items():
        if n_iter <= 0:
            continue
        names = [p for p in STAGES[stage][0] if hasattr(state, p)]
        groups = []
        for p in names:
            param = getattr(state, p)
            if param.numel() == 0:
                continue
            lr = cfg.lr_transl if p == "transl" else (0.5 * cfg.lr if p == "shape" else cfg.lr)
            groups.append({"params": [param], "lr": lr})
        with torch.no_grad():
            first = last = objective(state, body, data, cfg, stage)[1]
        bar = tqdm(range(n_iter), desc=f"fit {stage}", disable=not progress, mininterval=2.0)
        if cfg.optimizer == "lbfgs":
            opt = torch.optim.LBFGS(
                [p for g in groups for p in g["params"]],
                lr=1.0,
                max_iter=cfg.lbfgs_inner,
                history_size=20,
                line_search_fn="strong_wolfe",
            )
            record: dict = {}
            closure = _closure(opt, state, body, data, cfg, stage, record)
            for i in bar:
                opt.step(closure)
                _project_bounds(body, state)
                last = terms = record["terms"]
                bar.set_postfix(loss=f"{record['loss'].item():.4g}", refresh=False)
                _debug(stage, i, n_iter, terms)
        else:
            opt = torch.optim.Adam(groups)
            sched = torch.optim.lr_scheduler.LambdaLR(
                opt, lambda i, n=n_iter: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * i / n))
            )
            for i in bar:
                opt.zero_grad(set_to_none=True)
                loss, terms = objective(state, body, data, cfg, stage)
                loss.backward()
                opt.step()
                sched.step()
                _project_bounds(body, state)
                last = terms
                bar.set_postfix(loss=f"{loss.item():.4g}", refresh=False)
                _debug(stage, i, n_iter, terms)
        history[stage] = {"iterations": n_iter, "first": first, "last": last}
        log.info(
            "stage %s: loss %.5g -> %.5g (data %.5g -> %.5g)",
            stage,
            sum(first.values()),
            sum(last.values()),
            first["data"],
            last["data"],
        )
    with torch.no_grad():
        pose = state.pose()
        expr = state.expression if body.n_expr else None
        out = body(pose, state.transl, state.shape, expr)
        uv = project(out["points"], focal, obs.width / 2.0, obs.height / 2.0)
    points = out["points"].cpu().numpy()
    uv = uv.cpu().numpy()
    err = np.linalg.norm(uv - obs.xy, axis=-1)
    err = np.where((conf > 0) & defined[None], err, np.nan)
    return {
        "pose": pose.cpu().numpy(),
        "transl": state.transl.detach().cpu().numpy(),
        "shape": state.shape.detach().cpu().numpy(),
        "expression": (
            state.expression.detach().cpu().numpy()
            if body.n_expr
            else np.zeros((obs.n_frames, 0), np.float32)
        ),
        "points": points,
        "uv": uv,
        "kin": out["kin"].cpu().numpy(),
        "reproj_px": err.astype(np.float32),
        "init_uv": init_uv,
        "height_px": (
            focal
            * body.rest_height(state.shape.detach().cpu())
            / state.transl[:, 2].detach().cpu().numpy()
        ),
        "focal": focal,
        "focal_source": focal_source,
        "scale_px": scale,
        "history": history,
        "seconds": time.perf_counter() - t0,
        "cpu_seconds": time.process_time() - c0,
    }


def _closure(opt, state, body, data, cfg, stage, record):
    """LBFGS's closure: the loss of ``stage`` with gradients; its terms go to ``record``."""

    def closure():
        opt.zero_grad(set_to_none=True)
        loss, terms = objective(state, body, data, cfg, stage)
        loss.backward()
        record["terms"], record["loss"] = terms, loss
        return loss

    return closure


def body_device(body: BodyModel) -> torch.device:
    return next(iter(body.buffers())).device


def _project_bounds(body: BodyModel, state: FitState) -> None:
    body.clamp_shape(state.shape)
    if body.name == "anny":  # facial-action weights are 0..1
        with torch.no_grad():
            state.expression.clamp_(0.0, 1.0)


def _debug(stage: str, i: int, n: int, terms: dict[str, float]) -> None:
    if log.isEnabledFor(logging.DEBUG) and (i % 10 == 0 or i == n - 1):
        log.debug("%s %d %s", stage, i, {k: round(v, 5) for k, v in terms.items()})


def person_boxes(obs: skeleton.Observations, uv: np.ndarray, thr: float) -> np.ndarray:
    """``(T, 4)`` box of the confident detections, else of the projected fit."""
    boxes = np.zeros((obs.n_frames, 4), np.float32)
    for t in range(obs.n_frames):
        ok = obs.conf[t] >= thr
        pts = obs.xy[t, ok] if ok.sum() >= 4 else uv[t]
        boxes[t] = (*pts.min(0), *pts.max(0))
    return boxes


def result_arrays(
    body: BodyModel, obs: skeleton.Observations, fit: dict, cfg: FitConfig
) -> dict[str, np.ndarray]:
    """The output ``.npz`` arrays (module docstring)."""
    arrays = {
        "backend": np.array(body.name),
        "fps": np.float32(obs.fps),
        "mocap_framerate": np.float32(obs.fps),
        "global_orient": fit["pose"][:, 0].astype(np.float32),
        "trans": fit["transl"].astype(np.float32),
        "bbox": person_boxes(obs, fit["uv"], cfg.conf_threshold),
        "joints3d": fit["points"].astype(np.float32),
        "joints2d": fit["uv"].astype(np.float32),
        "joint_names": np.array(skeleton.POINTS),
        "points_defined": body.point_defined.astype(bool),
        "kin3d": fit["kin"].astype(np.float32),
        "kin_names": np.array(skeleton.KIN_NAMES),
        "camera_K": intrinsics(fit["focal"], obs.width, obs.height).astype(np.float32),
        "image_size": np.array([obs.width, obs.height], np.int32),
        "focal": np.float32(fit["focal"]),
        "reproj_px": fit["reproj_px"],
        "init_joints2d": fit["init_uv"].astype(np.float32),
        "person_height_px": fit["height_px"].astype(np.float32),
        "to_smpl_frame": np.asarray(body.to_smpl_frame, np.float32),
        "rest_kin_smpl": (
            body.rest_kin(torch.as_tensor(fit["shape"]).to(body_device(body)))
            @ np.asarray(body.to_smpl_frame).T
        ).astype(np.float32),
        "rest_height": np.float32(body.rest_height(torch.as_tensor(fit["shape"]))),
    }
    arrays.update(body.export(fit))
    if "gender" not in arrays:
        arrays["gender"] = np.array("neutral")
    return arrays


# --- stage -------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinflow.mocap.fit", description=__doc__)
    p.add_argument("--twin", required=True, help="twin or render id (for messages)")
    p.add_argument("--person", default="person0")
    p.add_argument("--meta", required=True, help="normalised video's meta.json (size, fps)")
    p.add_argument("--body", required=True, help="perception body.npz")
    p.add_argument("--face", default=None, help="perception face.npz")
    p.add_argument("--head-pose", default=None, help="perception head_pose.npz (focal)")
    p.add_argument("--source", default=None, help="the user's video (for messages)")
    p.add_argument("--out", required=True, help="out: {person}.npz")
    p.add_argument("--backend", default="anny", choices=BACKENDS)
    p.add_argument("--smplx-model", default=None, help="SMPL-X .npz (default: the registry's)")
    p.add_argument("--registry", default=None, help="models/registry.yaml")
    p.add_argument("--gender", default="neutral")
    p.add_argument("--preset", default="tiny", choices=sorted(FIT_PRESETS))
    p.add_argument("--set", action="append", default=[], help="preset override field=value")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0)
    return p


def run(args: argparse.Namespace) -> None:
    set_threads(args.threads)
    cfg = resolve_preset(FIT_PRESETS, args.preset, parse_overrides(args.set))
    width, height, fps, _ = media_meta(args.meta)
    obs = skeleton.load_observations(
        args.body,
        args.face,
        width=width,
        height=height,
        fps=fps,
        head_pose_npz=args.head_pose,
        source=args.source,
    )
    device = pick_device(args.device)
    body = load_body_model(
        args.backend,
        smplx_model=args.smplx_model or None,
        registry=args.registry,
        gender=args.gender,
    )
    log.info(
        "fitting %s (%d frames, %dx%d, body in %d) with %s on %s",
        args.person,
        obs.n_frames,
        width,
        height,
        int(obs.body_present.sum()),
        body.name,
        device,
    )
    fit = fit_track(body, obs, cfg, device)
    med = float(np.nanmedian(fit["reproj_px"])) if np.isfinite(fit["reproj_px"]).any() else None
    info = {
        "twin": args.twin,
        "person": args.person,
        "preset": args.preset,
        "config": asdict(cfg),
        "body_model": body.describe(),
        "smplx_model": getattr(body, "model_path", None),
        "focal": fit["focal"],
        "focal_source": fit["focal_source"],
        "person_height_px": fit["scale_px"],
        "median_reproj_px": med,
        "stages": fit["history"],
        "seconds": fit["seconds"],
        "seconds_per_frame": fit["seconds"] / max(obs.n_frames, 1),
        "cpu_seconds": fit["cpu_seconds"],
        "cpu_seconds_per_frame": fit["cpu_seconds"] / max(obs.n_frames, 1),
        "threads": torch.get_num_threads(),
        "device": str(device),
        "inputs": {"body": args.body, "face": args.face, "head_pose": args.head_pose},
    }
    save_npz(args.out, result_arrays(body, obs, fit, cfg), info)
    log.info(
        "%s: %d frames in %.1f s (%.3f s/frame), median reprojection error %.2f px",
        args.out,
        obs.n_frames,
        fit["seconds"],
        info["seconds_per_frame"],
        med if med is not None else float("nan"),
    )


def rotation_matrices(aa: np.ndarray) -> np.ndarray:
    return axis_angle_to_matrix(torch.as_tensor(aa, dtype=torch.float32)).numpy()


if __name__ == "__main__":
    raise SystemExit(stage_main(build_parser, run))
