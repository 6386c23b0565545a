"""``faceformer``: a FaceFormer checkpoint -> a twinflow audio-to-mesh checkpoint.

``python -m twinflow.convert faceformer vocaset.pth --preset vocaset --template templates.pkl
--subject FaceTalk_170809_00138_TA --out audio2mesh.pt``

The source is what FaceFormer (github:EvelynFan/FaceFormer, ``main.py``) saves:
``torch.save(model.state_dict())`` of its ``Faceformer`` — the published ``vocaset.pth`` and
``biwi.pth`` or a model a user trained with its code; or a registry name
(``faceformer-vocaset``, ``faceformer-biwi`` in ``--registry``), checked against its recorded
checksum. The output is read by
:class:`twinflow.meshhead.infer.Audio2MeshRunner` (``meshhead: pretrained:`` in config.yaml, or
``python -m twinflow.meshhead.infer --model``) and predicts the same meshes from raw audio.

Keys (FaceFormer -> twinflow :class:`~twinflow.meshhead.audio2mesh.Audio2Mesh`):

==============================================  =============================================
``audio_encoder.*`` (its wav2vec2)              ``audio.wav2vec2.*``; the positional conv's
                                                ``weight_g`` / ``weight_v`` (transformers 4.6)
                                                become ``parametrizations.weight.original0/1``
``audio_feature_map``                           ``audio.feature_map``
``vertice_map`` / ``vertice_map_r``             ``motion_in`` / ``out``
``obj_vector``                                  ``style``
``transformer_decoder.layers.N.self_attn``      ``layers.N.self_attn``: ``in_proj`` split into
/ ``multihead_attn``                            ``q`` (first third) and ``kv``; ``out_proj``
                                                -> ``o``; ``multihead_attn`` -> ``cross_attn``
``...linear1`` / ``linear2``, ``norm1..3``      ``...ff.0`` / ``ff.2``, ``ln1..3``
``PPE.pe``                                      dropped (recomputed; checked to be equal)
==============================================  =============================================

Read from the weights: ``d_model``, ``ff_mult``, ``n_layers``, the vertex count and the number of
style subjects. From the preset (``--preset vocaset|biwi|paper``, fields changeable with
``--set``): period, alignment (1:1 or 2:1), heads (FaceFormer's 4). The checkpoint does not hold
the wav2vec2 architecture: ``--wav2vec2-config`` (a ``config.json``, e.g. that of the
wav2vec2-base-960h folder) or, by default, wav2vec2-base-960h's (transformers'
``Wav2Vec2Config()`` defaults are that model), checked against the weights' shapes.
``--template``: the mesh the predictions are added to (``.npy``, ``.npz`` with ``template`` or
``vertices``, a twinflow ``dataset.npz``, or FaceFormer's ``templates.pkl`` with ``--subject``).
``--subjects``: names of the training subjects in one-hot order (default: FaceFormer's
``train_subjects`` for VOCASET / BIWI when the count matches). ``--fps``: motion frame rate
(preset default: VOCASET 30, BIWI 25). ``--faces`` (``.npy`` ``(F, 3)``, or a mesh file trimesh
reads) gives previews their edges; ``--lips`` (``.npy`` / ``.txt`` vertex indices) the lip
vertices of the lip vertex error.
"""

from __future__ import annotations

import argparse
import json
import logging
import pickle
from pathlib import Path

import numpy as np
import torch

from twinflow.convert import ConversionError, check_state_dict, load_reference, rename_keys

log = logging.getLogger("twinflow.convert.faceformer")

FPS = {"vocaset": 30.0, "biwi": 25.0, "paper": 25.0}
RULES = [
    (r"^audio_encoder\.", "audio.wav2vec2."),
    (r"\.conv\.weight_g$", ".conv.parametrizations.weight.original0"),
    (r"\.conv\.weight_v$", ".conv.parametrizations.weight.original1"),
    (r"^audio_feature_map\.", "audio.feature_map."),
    (r"^vertice_map_r\.", "out."),
    (r"^vertice_map\.", "motion_in."),
    (r"^obj_vector\.", "style."),
    (r"^transformer_decoder\.layers\.", "layers."),
    (r"^(layers\.\d+)\.multihead_attn\.", r"\1.cross_attn."),
    (r"^(layers\.\d+\.(?:self|cross)_attn)\.out_proj\.", r"\1.o."),
    (r"^(layers\.\d+)\.linear1\.", r"\1.ff.0."),
    (r"^(layers\.\d+)\.linear2\.", r"\1.ff.2."),
    (r"^(layers\.\d+)\.norm([123])\.", r"\1.ln\2."),
]
IN_PROJ = r"^(layers\.\d+\.(?:self|cross)_attn)\.in_proj_(weight|bias)$"


def build_parser(p: argparse.ArgumentParser) -> None:
    from twinflow.meshhead.presets import AUDIO2MESH_NAMES

    p.add_argument(
        "--preset",
        required=True,
        choices=[n for n in AUDIO2MESH_NAMES if n != "tiny"],
        help="vocaset (1:1, period 30, 30 fps) or biwi / paper (2:1, period 25, 25 fps)",
    )
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    p.add_argument("--template", required=True, help=".npy, .npz, dataset.npz or templates.pkl")
    p.add_argument("--subject", help="the template's subject in a templates.pkl")
    p.add_argument("--subjects", help="training subjects, one-hot order (space-separated)")
    p.add_argument("--wav2vec2-config", help="config.json of the wav2vec2 (default: base-960h)")
    p.add_argument("--fps", type=float, help="motion frame rate (default: the preset's)")
    p.add_argument("--faces", help="mesh faces for previews: .npy (F, 3) or a mesh file")
    p.add_argument("--lips", help="lip vertex indices (.npy or .txt) for the lip vertex error")
    p.add_argument("--topology", default="flame", help="topology name stored with the model")
    p.add_argument("--registry", default="models/registry.yaml", help="for a registry name")


def fused_to_split(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``nn.MultiheadAttention``'s ``in_proj`` (q, k, v stacked) -> ``q`` and ``kv``."""
    import re

    out = {}
    for name, value in state.items():
        m = re.match(IN_PROJ, name)
        if not m:
            out[name] = value
            continue
        d = value.shape[0] // 3
        out[f"{m[1]}.q.{m[2]}"] = value[:d]
        out[f"{m[1]}.kv.{m[2]}"] = value[d:]
    return out


def wav2vec2_config(path: str | None, state: dict[str, torch.Tensor], source) -> dict:
    """The wav2vec2 architecture: ``path`` (a config.json) or wav2vec2-base-960h's, checked
    against the checkpoint's weights (the full check follows in :func:`check_state_dict`)."""
    from twinflow.meshhead.audio import require_transformers

    transformers = require_transformers()
    if path:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as err:
            raise ConversionError(f"cannot read the wav2vec2 config ({err})", path=path) from None
        cfg = transformers.Wav2Vec2Config.from_dict(data)
    else:
        cfg = transformers.Wav2Vec2Config()  # the defaults are wav2vec2-base-960h's architecture
    hidden = state.get("audio_encoder.feature_projection.projection.weight")
    if hidden is None:
        raise ConversionError(
            "has no wav2vec2 weights (audio_encoder.*): not a FaceFormer checkpoint?", path=source
        )
    layers = {k.split(".")[3] for k in state if k.startswith("audio_encoder.encoder.layers.")}
    found = {"hidden_size": hidden.shape[0], "num_hidden_layers": len(layers)}
    wrong = {k: (v, getattr(cfg, k)) for k, v in found.items() if getattr(cfg, k) != v}
    if wrong:
        text = ", ".join(f"{k}: weights {a}, config {b}" for k, (a, b) in wrong.items())
        raise ConversionError(
            f"its wav2vec2 does not fit the {'given' if path else 'wav2vec2-base-960h'} "
            f"config ({text}); pass the right one with --wav2vec2-config",
            path=source,
        )
    return cfg.to_dict()


def load_template(path: str, subject: str | None, n_vertices: int) -> np.ndarray:
    """``(V, 3)`` float32 from ``.npy``, ``.npz`` or FaceFormer's ``templates.pkl``."""
    p = Path(path)
    if not p.is_file():
        raise ConversionError("template not found", path=p)
    try:
        if p.suffix == ".pkl":
            with p.open("rb") as fh:
                data = pickle.load(fh, encoding="latin1")
            if isinstance(data, dict):
                if subject not in data:
                    raise ConversionError(
                        f"holds templates of {sorted(data)[:12]}; choose one with --subject",
                        path=p,
                    )
                data = data[subject]
        elif p.suffix == ".npz":
            with np.load(p, allow_pickle=False) as z:
                key = next((k for k in ("template", "vertices") if k in z.files), None)
                if key is None:
                    raise ConversionError("has no 'template' or 'vertices' array", path=p)
                data = z[key]
        else:
            data = np.load(p, allow_pickle=False)
    except ConversionError:
        raise
    except Exception as err:
        raise ConversionError(f"cannot be read as a template ({err})", path=p) from None
    data = np.asarray(data, np.float32)
    if data.size != 3 * n_vertices:
        raise ConversionError(
            f"template has {data.size // 3} vertices, the checkpoint predicts {n_vertices}",
            path=p,
        )
    return data.reshape(n_vertices, 3)


def load_edges(path: str | None) -> np.ndarray:
    if not path:
        return np.zeros((0, 2), np.int64)
    from twinflow.meshhead.dataset import faces_to_edges

    p = Path(path)
    if p.suffix == ".npy":
        faces = np.load(p)
    else:
        import trimesh

        faces = trimesh.load(p, process=False).faces
    return faces_to_edges(np.asarray(faces, np.int64))


def load_lips(path: str | None) -> np.ndarray:
    if not path:
        return np.zeros(0, np.int64)
    p = Path(path)
    values = np.load(p) if p.suffix == ".npy" else np.loadtxt(p)
    return np.asarray(values, np.int64).reshape(-1)


def convert(args: argparse.Namespace) -> None:
    from twinflow.meshhead.audio2mesh import Audio2Mesh, MotionBasis, periodic_encoding
    from twinflow.meshhead.presets import audio2mesh_preset
    from twinflow.meshhead.topology import FACEFORMER_SPLITS
    from twinflow.presets import parse_overrides, preset_dict
    from twinflow.train import save_checkpoint

    source = Path(args.source)
    if not source.exists() and Path(args.registry).is_file():
        from twinflow.models import load_registry, resolve

        if args.source in load_registry(args.registry):
            source = resolve(args.source, args.registry)
    state = load_reference(source)
    if not isinstance(state, dict) or "vertice_map.weight" not in state:
        raise ConversionError(
            "is not a FaceFormer state dict (no 'vertice_map.weight'; expected what its main.py "
            "saves: torch.save(model.state_dict()))",
            path=source,
        )
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    d_model, vertice_dim = state["vertice_map.weight"].shape
    n_subjects = state["obj_vector.weight"].shape[1]
    layers = {k.split(".")[2] for k in state if k.startswith("transformer_decoder.layers.")}
    ff = state["transformer_decoder.layers.0.linear1.weight"].shape[0]
    fields = {"d_model": d_model, "n_layers": len(layers), "ff_mult": ff // d_model}
    cfg = audio2mesh_preset(args.preset, {**fields, **parse_overrides(args.set)})
    fps = float(args.fps or FPS[args.preset])
    n_vertices = vertice_dim // 3
    w2v = wav2vec2_config(args.wav2vec2_config, state, source)
    pe = state.get("PPE.pe")
    if pe is not None:
        ours = periodic_encoding(torch.arange(pe.shape[1]), d_model, cfg.period)
        if not torch.allclose(pe[0], ours, atol=1e-5):
            raise ConversionError(
                f"its periodic positional encoding is not that of period {cfg.period}: "
                "set the right one with --set period=N",
                path=source,
            )
    ours = fused_to_split(rename_keys(state, RULES, drop=[r"PPE\.pe"]))
    model = Audio2Mesh(cfg, vertice_dim, n_subjects, wav2vec2_config=w2v, fps=fps)
    check_state_dict(model, ours, source=source, what=f"FaceFormer {args.preset} model")
    model.load_state_dict(ours)
    split = FACEFORMER_SPLITS["vocaset" if args.preset == "vocaset" else "biwi"]
    names = args.subjects.split() if args.subjects else list(split["train"])
    if len(names) != n_subjects:
        if args.subjects:
            raise ConversionError(
                f"--subjects names {len(names)} subjects, the checkpoint has {n_subjects}",
                path=source,
            )
        names = [f"subject{i}" for i in range(n_subjects)]
    template = load_template(args.template, args.subject, n_vertices)
    lips = load_lips(args.lips)
    if len(lips) and (lips.min() < 0 or lips.max() >= n_vertices):
        raise ConversionError(f"lip indices outside 0..{n_vertices - 1}", path=args.lips)
    meta = {
        "stage": "meshhead.audio2mesh",
        "topology": args.topology,
        "audio_encoder": cfg.audio_encoder,
        "n_vertices": n_vertices,
        "fps": fps,
        "sample_rate": 16000,
        "preset": args.preset,
        "config": preset_dict(cfg),
        "n_out": vertice_dim,
        "feat_dim": 0,
        "wav2vec2_config": w2v,
        "twin": None,
        "converted_from": {"kind": "faceformer", "source": str(source)},
    }
    extra = {
        "basis": MotionBasis.identity(n_vertices).state(),
        "speakers": names,
        "mouth_index": lips,
        "template": template,
        "edges": load_edges(args.faces),
        "output_scale": 1.0,
    }
    save_checkpoint(
        args.out,
        {
            "modules": {"model": model.state_dict()},
            "meta": meta,
            "steps": 0,
            "history": [],
            "extra": extra,
        },
    )
    log.info(
        "%s: FaceFormer %s (d=%d, %d vertices, %d subjects, %d parameters) -> %s",
        source,
        args.preset,
        d_model,
        n_vertices,
        n_subjects,
        sum(p.numel() for p in model.parameters()),
        args.out,
    )
