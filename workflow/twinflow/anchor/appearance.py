"""Make-Your-Anchor's conditioning: CLIP image tokens for the appearance, the empty prompt for
the unconditional branch.

* :class:`ClipImageTokens` (``ref_encoder="clip"``): the reference image goes through
  ``CLIPImageProcessor`` (PIL: shortest side to the model's size, bicubic; centre crop;
  CLIP's mean and std) and a frozen ``CLIPVisionModel``; its ``last_hidden_state`` (``(B, 50,
  768)`` for ViT-B/32: the class token and 7 x 7 patches, before the post-layernorm and without
  the projection) are the cross-attention tokens, as in the reference's ``encode_img_clip``.
  A trained linear map is added only when the CLIP width differs from the UNet's
  cross-attention width (never in the reference).
* :func:`empty_prompt_tokens` (``uncond="empty_prompt"``): the SD folder's tokenizer on ``""``,
  padded to as many tokens as the reference tokens (the reference pipelines' ``_encode_prompt``
  with ``prompt_embeds`` given: ``max_length = prompt_embeds.shape[1]``), through its CLIP text
  encoder: ``(1, N, D)``.

Both need ``transformers`` and folders the user supplies (``models/registry.yaml``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from twinflow.errors import TwinflowError


def _transformers():
    try:
        import transformers
    except ImportError as err:
        raise TwinflowError(
            "anchor ref_encoder='clip' and uncond='empty_prompt' need the `transformers` "
            "package, which is not installed (pip install transformers); or use "
            "config.yaml anchor: overrides: {ref_encoder: conv, uncond: zeros}"
        ) from err
    return transformers


def image_processor(folder: str | Path):
    """The folder's CLIP image processor, PIL implementation (the reference's)."""
    tf = _transformers()
    cls = getattr(tf, "CLIPImageProcessorPil", None) or tf.CLIPImageProcessor
    try:
        return cls.from_pretrained(str(folder))
    except OSError as err:
        raise TwinflowError(f"no CLIP preprocessor_config.json ({err})", path=folder) from None


class ClipImageTokens(nn.Module):
    """Reference images ``(B, 3, H, W)`` in [-1, 1] -> CLIP hidden states ``(B, N, dim)``.

    The images are turned back into ``uint8`` (exact for images that came from ``uint8``) and
    preprocessed like the reference's ``CLIPProcessor``. The CLIP tower is frozen and not part
    of ``state_dict`` (it comes from the registry folder); only a projection, when one is
    needed, is trained and saved.
    """

    def __init__(self, folder: str | Path | None, dim: int):
        super().__init__()
        tf = _transformers()
        if folder is None:  # random ViT-B/32 (benchmarks): transformers' default configs
            clip = tf.CLIPVisionModel(tf.CLIPVisionConfig())
            cls = getattr(tf, "CLIPImageProcessorPil", None) or tf.CLIPImageProcessor
            self.processor = cls()
        else:
            try:
                clip = tf.CLIPVisionModel.from_pretrained(str(folder))
            except OSError as err:
                raise TwinflowError(
                    f"cannot load a CLIP vision model ({err})", path=folder
                ) from None
            self.processor = image_processor(folder)
        clip.eval().requires_grad_(False)
        self._clip = [clip]  # a list keeps the frozen tower out of state_dict and parameters()
        self.width = int(clip.config.hidden_size)
        self.tokens = (clip.config.image_size // clip.config.patch_size) ** 2 + 1
        self.proj = nn.Identity() if self.width == dim else nn.Linear(self.width, dim)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        clip = self._clip[0].to(image.device)
        pixels = ((image.detach().float() + 1) * 127.5).round().clamp(0, 255).byte()
        arrays = list(pixels.permute(0, 2, 3, 1).cpu().numpy())
        inputs = self.processor(images=arrays, return_tensors="pt")
        with torch.no_grad():
            hidden = clip(pixel_values=inputs["pixel_values"].to(image.device)).last_hidden_state
        return self.proj(hidden)


def empty_prompt_tokens(folder: str | Path, n_tokens: int) -> torch.Tensor:
    """The SD folder's text encoder on the empty prompt, ``n_tokens`` long: ``(1, n, D)``."""
    tf = _transformers()
    folder = Path(folder)
    try:
        tokenizer = tf.CLIPTokenizer.from_pretrained(str(folder / "tokenizer"))
        encoder = tf.CLIPTextModel.from_pretrained(str(folder / "text_encoder")).eval()
    except OSError as err:
        raise TwinflowError(
            f"the unconditional tokens need the SD folder's tokenizer/ and text_encoder/ ({err})",
            path=folder,
        ) from None
    ids = tokenizer(
        [""], padding="max_length", max_length=n_tokens, truncation=True, return_tensors="pt"
    ).input_ids
    with torch.no_grad():
        return encoder(ids)[0].float()


def reference_image(path: str | Path, size: int | None = None) -> np.ndarray:
    """An appearance image file as ``(H, W, 3) uint8`` RGB, read as the reference reads it: with
    PIL as it is (``inference_body.py``), or, with ``size``, with OpenCV and resized to ``size``
    x ``size`` bilinearly (``inference_face_inpainting.py``'s ``image_process``)."""
    path = Path(path)
    if not path.is_file():
        raise TwinflowError("appearance image not found", path=path)
    if size is None:
        from PIL import Image

        try:
            with Image.open(path) as im:
                return np.asarray(im.convert("RGB"))
        except OSError as err:
            raise TwinflowError(f"cannot read the appearance image ({err})", path=path) from None
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise TwinflowError("cannot read the appearance image", path=path)
    return cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), (size, size))
