"""Task degradations: from a clean image make the (source, target, mask) triple of a task.

``degrade(task, image, rng)`` takes a float ``[3, H, W]`` tensor in [-1, 1] and a
``numpy.random.Generator`` and returns ``Degraded(source, target, mask)``: the target is the
image, the source the conditioning image, the mask ``[1, H, W]`` float (1 = missing) for
inpainting / uncropping and None otherwise. Missing pixels of the source are 0; the diffusion
fills them with noise (docs/architecture.md). The same generator state gives the same triple.

Sources are rounded to the 8-bit grid (multiples of 1/127.5 from -1) so that what a model sees
in training is exactly what it reads back from an evaluation set stored as PNG.

Tasks (docs/paper.md, Tasks):
- ``colorization``: the source is the luminance Y = 0.299 R + 0.587 G + 0.114 B
  (ITU-R BT.601, the weights of PIL's ``convert("L")`` and OpenCV's ``RGB2GRAY``), replicated
  to three channels.
- ``inpainting`` / ``uncropping``: training masks of ``palette.masks``.
- ``jpeg``: a real JPEG encode/decode with Pillow (libjpeg, 4:2:0 chroma subsampling, the
  library default) at a quality factor from ``jpeg_quality_factor``: integers 5..30 with
  P(Q) proportional to exp(-Q / 10).
- ``super_resolution``: 4x bicubic downsampling then bicubic upsampling to the original size
  (SR3). Downsampling is antialiased (``antialias=True``: the bicubic kernel is widened by the
  factor, as in PIL's and MATLAB's ``imresize``) so the low-resolution image is not aliased.
  Both sizes should be multiples of 4.
- ``multitask``: colorization, inpainting or JPEG, each with probability 1/3: the paper's
  mixture of these three tasks with no weights stated, so equal ones (uncropping is excluded).

Evaluation variants fix the randomness that is not part of the input: ``jpeg_q5/10/20``,
``inpainting_freeform_10_20 / 20_30 / 30_40`` (area strictly in the bucket),
``inpainting_center`` (a quarter of the area in the centre), ``uncropping_right``;
``colorization_ctest10k`` is ``colorization`` scored on another image set (palette.tasks).
"""

from __future__ import annotations

import io
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from palette import masks
from palette.imageio import LUMINANCE_WEIGHTS, to_tensor, to_uint8
from palette.tasks import EVALUATION_TASKS, PAIRED_TASK, SAME_DEGRADATION_AS, TRAINING_TASKS

ALL_TASKS = tuple(dict.fromkeys(TRAINING_TASKS + EVALUATION_TASKS))
MASKED_TASKS = ("inpainting", "uncropping", "inpainting_freeform_10_20",
                "inpainting_freeform_20_30", "inpainting_freeform_30_40", "inpainting_center",
                "uncropping_right")
"""Tasks whose every sample has a mask. ``multitask`` has one only when it draws inpainting."""
MULTITASK_COMPONENTS = ("colorization", "inpainting", "jpeg")
"""The multi-task mixture (docs/paper.md), drawn uniformly."""

JPEG_QUALITY_RANGE = (5, 30)
SUPER_RESOLUTION_FACTOR = 4


class Degraded(NamedTuple):
    source: torch.Tensor  # [3, H, W] in [-1, 1]
    target: torch.Tensor  # [3, H, W] in [-1, 1]
    mask: torch.Tensor | None  # [1, H, W] float, 1 = missing; None for tasks without a mask


def task_uses_mask(task: str) -> bool:
    """Whether samples of ``task`` can carry a mask (the masked tasks, and ``multitask``)."""
    _check_task(task)
    return task in MASKED_TASKS or task == "multitask"


def _check_task(task: str) -> None:
    if task not in ALL_TASKS:
        raise ValueError(f"unknown task {task!r}; training tasks: {', '.join(TRAINING_TASKS)}; "
                         f"evaluation tasks: {', '.join(EVALUATION_TASKS)}")


def jpeg_quality_probabilities() -> tuple[np.ndarray, np.ndarray]:
    """The quality factors 5..30 and their probabilities, proportional to exp(-Q / 10)."""
    qualities = np.arange(JPEG_QUALITY_RANGE[0], JPEG_QUALITY_RANGE[1] + 1)
    weights = np.exp(-qualities / 10.0)
    return qualities, weights / weights.sum()


def jpeg_quality_factor(rng: np.random.Generator) -> int:
    """A training JPEG quality factor: an integer in [5, 30], P(Q) proportional to exp(-Q/10)."""
    qualities, probabilities = jpeg_quality_probabilities()
    return int(rng.choice(qualities, p=probabilities))


def quantize_8bit(image: torch.Tensor) -> torch.Tensor:
    """Round a [-1, 1] image to the values an 8-bit PNG can hold (and clamp to [-1, 1])."""
    return ((image + 1.0) * 127.5).round().clamp(0, 255) / 127.5 - 1.0


def grayscale(image: torch.Tensor) -> torch.Tensor:
    """BT.601 luminance replicated to 3 channels (the colorization source), not quantized."""
    weights = torch.tensor(LUMINANCE_WEIGHTS, dtype=image.dtype, device=image.device)
    luminance = torch.einsum("chw,c->hw", image, weights)
    return luminance.unsqueeze(0).expand(3, -1, -1).contiguous()


def jpeg_compress(image: torch.Tensor, quality: int) -> torch.Tensor:
    """Encode to JPEG at ``quality`` and decode again (Pillow / libjpeg, 4:2:0)."""
    buffer = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(buffer, format="JPEG", quality=int(quality), subsampling=2)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return to_tensor(np.asarray(decoded.convert("RGB")))


def bicubic_down_up(image: torch.Tensor, factor: int = SUPER_RESOLUTION_FACTOR) -> torch.Tensor:
    """Antialiased bicubic downsampling by ``factor``, then bicubic upsampling back, clamped."""
    height, width = image.shape[-2:]
    small_size = (max(1, round(height / factor)), max(1, round(width / factor)))
    batch = image.unsqueeze(0)
    small = F.interpolate(batch, size=small_size, mode="bicubic", align_corners=False,
                          antialias=True)
    large = F.interpolate(small, size=(height, width), mode="bicubic", align_corners=False)
    return large[0].clamp(-1.0, 1.0)


def with_mask(image: torch.Tensor, mask: np.ndarray) -> Degraded:
    """(source = image with the masked pixels zeroed, target = image, mask [1, H, W]) for a bool mask."""
    mask_tensor = torch.from_numpy(mask).to(image.dtype).unsqueeze(0)
    return Degraded(image * (1.0 - mask_tensor), image, mask_tensor)


def degrade(task: str, image: torch.Tensor, rng: np.random.Generator) -> Degraded:
    """Make the (source, target, mask) triple of ``task`` for ``image`` ([3, H, W] in [-1, 1])."""
    _check_task(task)
    if not (isinstance(image, torch.Tensor) and image.ndim == 3 and image.shape[0] == 3
            and image.is_floating_point()):
        raise ValueError(f"degrade expects a float [3, H, W] tensor, got "
                         f"{getattr(image, 'dtype', type(image))} {tuple(getattr(image, 'shape', ()))}")
    if task == PAIRED_TASK:
        raise ValueError(f"task {PAIRED_TASK!r} has no synthetic degradation: its source is the file beside "
                         "the target (palette.data.paired_source_path)")
    height, width = image.shape[-2:]
    task = SAME_DEGRADATION_AS.get(task, task)  # e.g. colorization_ctest10k: colorization on another set
    if task == "multitask":
        task = MULTITASK_COMPONENTS[int(rng.integers(len(MULTITASK_COMPONENTS)))]
    if task == "colorization":
        return Degraded(quantize_8bit(grayscale(image)), image, None)
    if task == "super_resolution":
        return Degraded(quantize_8bit(bicubic_down_up(image)), image, None)
    if task == "jpeg":
        return Degraded(jpeg_compress(image, jpeg_quality_factor(rng)), image, None)
    if task.startswith("jpeg_q"):
        return Degraded(jpeg_compress(image, int(task[len("jpeg_q"):])), image, None)
    if task == "inpainting":
        return with_mask(image, masks.training_inpainting_mask(height, width, rng))
    if task.startswith("inpainting_"):
        kind = task[len("inpainting_"):]
        return with_mask(image, masks.evaluation_inpainting_mask(kind, height, width, rng))
    if task == "uncropping":
        return with_mask(image, masks.training_uncropping_mask(height, width, rng))
    if task == "uncropping_right":
        return with_mask(image, masks.uncropping_mask(height, width, rng, "right"))
    raise AssertionError(f"task {task!r} is listed but not implemented")  # unreachable
