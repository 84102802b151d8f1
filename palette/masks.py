"""Masks for inpainting and uncropping: numpy ``bool [H, W]``, True = missing.

Every function draws from an explicit ``numpy.random.Generator``, so a seed fixes a mask.

Training masks follow Palette (docs/paper.md, Tasks): inpainting uses DeepFill v2 free-form brush
strokes with probability 0.6 and otherwise 1-5 rectangles covering 10-40 % of the image;
uncropping masks one side or all four sides, always 50 % of the area, chosen uniformly.
Evaluation masks: free-form strokes whose area lies strictly inside 10-20 %, 20-30 % or 30-40 %,
a centre box of a quarter of the area (128x128 on 256x256), and the right half for uncropping.
The masks the paper's authors released can be read with ``load_released_masks``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import cv2
import numpy as np

FREE_FORM_PROBABILITY = 0.6
"""Palette: free-form strokes with probability 0.6, boxes otherwise (training inpainting)."""

FREE_FORM_BUCKETS = {"freeform_10_20": (0.1, 0.2), "freeform_20_30": (0.2, 0.3),
                     "freeform_30_40": (0.3, 0.4)}
EVALUATION_INPAINTING_KINDS = (*FREE_FORM_BUCKETS, "center")
UNCROPPING_MODES = ("one_side", "four_sides", "right")
RELEASED_MASK_KEYS = {"freeform_10_20": "10-20% freeform", "freeform_20_30": "20-30% freeform",
                      "freeform_30_40": "30-40% freeform"}


@dataclass(frozen=True)
class BrushStrokeSettings:
    """DeepFill v2 Algorithm 1 hyper-parameters, given for a 256x256 image.

    The values are those of the DeepFill v2 authors' release: 1-3 strokes of 4-12 vertices,
    turning angles around 2*pi/5 +- 2*pi/15, brush widths 12-40 px. Lengths are drawn
    uniformly in [0, max_length] with max_length = diagonal / 4. Widths and lengths scale with
    the image's size (widths with the short side), so masks look alike from 32 to 512 px.
    """

    min_strokes: int = 1
    max_strokes: int = 3
    min_vertices: int = 4
    max_vertices: int = 12
    mean_angle: float = 2 * math.pi / 5
    angle_range: float = 2 * math.pi / 15
    min_width_256: float = 12.0
    max_width_256: float = 40.0
    max_length_fraction_of_diagonal: float = 0.25


DEFAULT_BRUSH = BrushStrokeSettings()


def _stroke_segments(height: int, width: int, rng: np.random.Generator,
                     settings: BrushStrokeSettings):
    """One brush stroke (DeepFill v2, Algorithm 1) as a list of (start, end, brush width).

    From a uniform start point, each vertex turns by a random angle (reversed, 2*pi - angle, on
    every other vertex so strokes zig-zag instead of curling up), walks a random length and is
    drawn with a random brush width. End points are clipped to the image so a stroke does not
    wander off it (the authors' release does the same).
    """
    scale = min(height, width) / 256.0
    min_width = max(1.0, settings.min_width_256 * scale)
    max_width = max(min_width, settings.max_width_256 * scale)
    max_length = settings.max_length_fraction_of_diagonal * math.hypot(height, width)
    vertex_count = int(rng.integers(settings.min_vertices, settings.max_vertices + 1))
    x, y = rng.uniform(0, width), rng.uniform(0, height)
    segments = []
    for vertex in range(vertex_count):
        angle = rng.uniform(settings.mean_angle - settings.angle_range,
                            settings.mean_angle + settings.angle_range)
        if vertex % 2 == 0:
            angle = 2 * math.pi - angle
        length = rng.uniform(0, max_length)
        brush_width = rng.uniform(min_width, max_width)
        end_x = float(np.clip(x + length * math.sin(angle), 0, width - 1))
        end_y = float(np.clip(y + length * math.cos(angle), 0, height - 1))
        segments.append(((x, y), (end_x, end_y), brush_width))
        x, y = end_x, end_y
    return segments


def _draw_segment(canvas: np.ndarray, segment) -> None:
    """A thick line plus round caps (circles at both vertices), as in DeepFill v2."""
    (x0, y0), (x1, y1), brush_width = segment
    thickness = max(1, int(round(brush_width)))
    start, end = (int(round(x0)), int(round(y0))), (int(round(x1)), int(round(y1)))
    cv2.line(canvas, start, end, 1, thickness)
    radius = thickness // 2
    if radius > 0:
        cv2.circle(canvas, start, radius, 1, -1)
        cv2.circle(canvas, end, radius, 1, -1)


def _random_flips(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if rng.random() < 0.5:
        mask = mask[:, ::-1]
    if rng.random() < 0.5:
        mask = mask[::-1, :]
    return np.ascontiguousarray(mask)


def free_form_mask(height: int, width: int, rng: np.random.Generator,
                   settings: BrushStrokeSettings = DEFAULT_BRUSH) -> np.ndarray:
    """Free-form brush-stroke mask (DeepFill v2, Yu et al. 2019, Algorithm 1), True = missing.

    Draws 1-3 strokes (``settings``), then flips the mask left-right and up-down with
    probability 1/2 each. At 256 px the masked area is typically 10-50 %.
    """
    canvas = np.zeros((height, width), np.uint8)
    stroke_count = int(rng.integers(settings.min_strokes, settings.max_strokes + 1))
    for _ in range(stroke_count):
        for segment in _stroke_segments(height, width, rng, settings):
            _draw_segment(canvas, segment)
    return _random_flips(canvas.astype(bool), rng)


def free_form_mask_in_range(height: int, width: int, rng: np.random.Generator, low: float,
                            high: float, settings: BrushStrokeSettings = DEFAULT_BRUSH,
                            max_strokes: int = 500) -> np.ndarray:
    """Free-form mask whose masked fraction lies strictly inside (low, high).

    A target area is drawn uniformly in (low, high) so areas spread over the bucket. Strokes
    are drawn segment by segment; a segment is kept while the area stays below ``high`` and the
    mask is returned as soon as the area exceeds the target. A segment that would overshoot
    ``high`` is dropped: the mask is returned if it is already inside the bucket, otherwise
    that stroke ends and a fresh one starts elsewhere. Segments cover a few per cent of the
    image each, so a bucket 10 % wide is always reachable; after ``max_strokes`` strokes
    without success a RuntimeError says so.
    """
    if not 0.0 <= low < high <= 1.0:
        raise ValueError(f"need 0 <= low < high <= 1, got low={low}, high={high}")
    total = height * width
    target = rng.uniform(low, high)
    canvas = np.zeros((height, width), np.uint8)
    masked = 0
    for _ in range(max_strokes):
        for segment in _stroke_segments(height, width, rng, settings):
            candidate = canvas.copy()
            _draw_segment(candidate, segment)
            candidate_masked = int(candidate.sum())
            if candidate_masked >= high * total:
                if masked > low * total:
                    return _random_flips(canvas.astype(bool), rng)  # already inside the bucket
                break  # overshoot: drop this segment and start a new stroke
            canvas, masked = candidate, candidate_masked
            if masked > target * total:
                return _random_flips(canvas.astype(bool), rng)
    raise RuntimeError(f"could not draw a {height}x{width} free-form mask with area strictly in "
                       f"({low:.0%}, {high:.0%}) in {max_strokes} strokes (reached "
                       f"{masked / total:.1%}); the brush settings are too coarse for this size")


def box_mask(height: int, width: int, rng: np.random.Generator, min_boxes: int = 1,
             max_boxes: int = 5, min_area: float = 0.1, max_area: float = 0.4,
             max_attempts: int = 1000) -> np.ndarray:
    """1-5 axis-aligned rectangles whose union covers ``[min_area, max_area]`` of the image.

    A target total area is drawn uniformly in the range and split among the boxes with
    uniform Dirichlet weights; each box gets an aspect ratio log-uniform in [1/2, 2] and a
    uniform position. Overlaps and clipping can move the union out of the range: such draws are
    redrawn (bounded by ``max_attempts``).
    """
    total = height * width
    for _ in range(max_attempts):
        box_count = int(rng.integers(min_boxes, max_boxes + 1))
        target = rng.uniform(min_area, max_area) * total
        shares = rng.dirichlet(np.ones(box_count))
        mask = np.zeros((height, width), bool)
        for share in shares:
            aspect = math.exp(rng.uniform(math.log(0.5), math.log(2.0)))
            box_height = int(np.clip(round(math.sqrt(share * target * aspect)), 1, height))
            box_width = int(np.clip(round(share * target / box_height), 1, width))
            top = int(rng.integers(0, height - box_height + 1))
            left = int(rng.integers(0, width - box_width + 1))
            mask[top:top + box_height, left:left + box_width] = True
        if min_area * total <= mask.sum() <= max_area * total:
            return mask
    raise RuntimeError(f"could not place {min_boxes}-{max_boxes} boxes covering "
                       f"{min_area:.0%}-{max_area:.0%} of a {height}x{width} image in "
                       f"{max_attempts} attempts")


def training_inpainting_mask(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Palette's training inpainting mask: free-form with p = 0.6, else boxes (docs/paper.md)."""
    if rng.random() < FREE_FORM_PROBABILITY:
        return free_form_mask(height, width, rng)
    return box_mask(height, width, rng)


def center_mask(height: int, width: int) -> np.ndarray:
    """Centre box of half the height and half the width (a quarter of the area)."""
    mask = np.zeros((height, width), bool)
    box_height, box_width = height // 2, width // 2
    top, left = (height - box_height) // 2, (width - box_width) // 2
    mask[top:top + box_height, left:left + box_width] = True
    return mask


def evaluation_inpainting_mask(kind: str, height: int, width: int,
                               rng: np.random.Generator) -> np.ndarray:
    """Evaluation mask: ``freeform_10_20`` / ``_20_30`` / ``_30_40`` (area strictly inside the
    bucket) or ``center`` (128x128 on 256x256)."""
    if kind == "center":
        return center_mask(height, width)
    if kind not in FREE_FORM_BUCKETS:
        raise ValueError(f"unknown evaluation mask kind {kind!r}; valid: "
                         f"{', '.join(EVALUATION_INPAINTING_KINDS)}")
    low, high = FREE_FORM_BUCKETS[kind]
    return free_form_mask_in_range(height, width, rng, low, high)


def uncropping_mask(height: int, width: int, rng: np.random.Generator | None,
                    mode: str) -> np.ndarray:
    """Uncropping mask, 50 % of the area missing.

    - ``one_side``: the left, right, top or bottom half (uniformly) is missing;
    - ``four_sides``: the image is extended on all four sides: the known region is a centred
      rectangle scaled by 1/sqrt(2) in each dimension (half the area), everything around it is
      missing (the public reproduction masked an interior box instead: a bug, docs/paper.md);
    - ``right``: the right half is missing (the evaluation setting; ``rng`` may be None).
    For odd sizes the missing half is ``size // 2`` rows or columns.
    """
    mask = np.zeros((height, width), bool)
    if mode in ("right", "one_side"):
        side = "right" if mode == "right" else ("left", "right", "top", "bottom")[int(rng.integers(4))]
        if side == "left":
            mask[:, :width // 2] = True
        elif side == "right":
            mask[:, width - width // 2:] = True
        elif side == "top":
            mask[:height // 2, :] = True
        else:
            mask[height - height // 2:, :] = True
    elif mode == "four_sides":
        known_height = int(round(height / math.sqrt(2)))
        known_width = int(round(width / math.sqrt(2)))
        top, left = (height - known_height) // 2, (width - known_width) // 2
        mask[:] = True
        mask[top:top + known_height, left:left + known_width] = False
    else:
        raise ValueError(f"unknown uncropping mode {mode!r}; valid: {', '.join(UNCROPPING_MODES)}")
    return mask


def training_uncropping_mask(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Palette's training uncropping mask: one side or all four sides, uniformly (docs/paper.md)."""
    mode = "one_side" if rng.random() < 0.5 else "four_sides"
    return uncropping_mask(height, width, rng, mode)


def load_released_masks(npz_path: str | os.PathLike, kind: str, count: int | None = None,
                        size: int = 256) -> np.ndarray:
    """Read the paper's released free-form evaluation masks: ``bool [N, size, size]``, True = missing.

    The file holds one bit-packed array per bucket, keyed like ``"10-20% freeform"``: the
    ``[N, 256, 256]`` array was flattened and packed 8 pixels to a byte (``np.packbits``), so
    it is unpacked flat, cut to ``N * size * size`` bits (padding bits of the last byte are
    dropped) and reshaped. N is 10000 for ImageNet ctest10k and 10950 for places10k; when
    ``count`` is None it is inferred from the number of bits. A set bit is a missing pixel,
    as the masks are used in published evaluations (so the "10-20%" masks cover 10-20 %).

    ``kind`` is ``freeform_10_20`` / ``freeform_20_30`` / ``freeform_30_40`` or the file's own key.
    An array already stored unpacked as ``[N, size, size]`` is accepted as it is.
    """
    key = RELEASED_MASK_KEYS.get(kind, kind)
    with np.load(npz_path) as archive:
        if key not in archive.files:
            raise KeyError(f"{str(npz_path)!r} has no masks {key!r}; it holds: {', '.join(archive.files)}")
        packed = archive[key]
    pixels = size * size
    if packed.ndim == 3 and packed.shape[1:] == (size, size):  # stored unpacked: use as is
        return packed[:count].astype(bool)
    bits = np.unpackbits(packed.astype(np.uint8, copy=False), axis=None)
    if count is None:
        count = bits.size // pixels
    if count <= 0 or bits.size < count * pixels:
        raise ValueError(f"{str(npz_path)!r}[{key!r}] has {bits.size} bits, fewer than "
                         f"{count} masks of {size}x{size}")
    return bits[:count * pixels].reshape(count, size, size).astype(bool)
