"""Reading and writing images and masks, and converting them to and from tensors.

Conventions (docs/architecture.md): images on disk are 8-bit RGB PNG; in tensors they are
float32 ``[3, H, W]`` in [-1, 1]. Masks on disk are 8-bit grayscale PNG with 255 = missing; in
numpy they are ``bool [H, W]`` with True = missing.

``load_image`` accepts whatever a user may hand us and always returns ``uint8 [H, W, 3]`` RGB:

- grayscale (L, 1-bit, 32-bit integer, float) is replicated to three channels;
- palette (P) images are expanded through their palette;
- images with alpha (LA, RGBA, PA, P with transparency) are composited onto WHITE, the way a
  browser shows them, so that transparent regions do not turn into arbitrary colours;
- 16-bit images (grayscale I;16 or 16-bit RGB / RGBA PNG) are scaled to 8 bits with
  ``round(v / 257)`` (65535 -> 255), not clipped and not truncated to the high byte;
- the EXIF orientation tag is applied, so camera photos come out upright.

A file that cannot be decoded completely raises ``ImageLoadError`` naming the file and the
reason. Truncated files are always an error: Pillow's global ``ImageFile.LOAD_TRUNCATED_IMAGES``
(which some libraries switch on, and which makes Pillow pad a truncated image with grey) is
forced off for the duration of our decode.

Image sizes are bounded before anything is decoded: the header's width x height (read without
decoding) above ``$PALETTE_MAX_IMAGE_PIXELS`` (default 8192 x 8192 = 67,108,864 pixels) is refused
with an ``ImageLoadError`` naming the file, its size and the variable. (A 140 KB PNG can declare
12000 x 12000 pixels: 430 MB decoded, several GB as float tensors.) This limit replaces Pillow's
own decompression-bomb check, which only warns below twice its 89 M pixels, while we decode.

torch is imported only by the tensor conversions, so that the workflow's torch-free code (the
Snakefile's helpers) can list and check images cheaply.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageFile, ImageOps

from palette.files import atomic_write

if TYPE_CHECKING:
    import torch

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
"""File name endings (case-insensitive) that ``list_images`` accepts."""

LUMINANCE_WEIGHTS = (0.299, 0.587, 0.114)
"""ITU-R BT.601 luma: the gray of a mask, and the colorization task's source (palette.degradations)."""

MAX_PIXELS_ENV = "PALETTE_MAX_IMAGE_PIXELS"
DEFAULT_MAX_PIXELS = 8192 * 8192
"""The largest image (width x height) any reader here decodes, unless $PALETTE_MAX_IMAGE_PIXELS says otherwise."""

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_pillow_settings_lock = threading.Lock()


class ImageLoadError(ValueError):
    """An image or mask file could not be read completely; the message names file and reason."""


def _fail(path: Path, reason: str, cause: Exception | None = None) -> ImageLoadError:
    detail = f"{reason}: {cause}" if cause is not None else reason
    return ImageLoadError(f"cannot load image {str(path)!r}: {detail}")


def max_image_pixels() -> int:
    """The pixel limit: $PALETTE_MAX_IMAGE_PIXELS (a whole number) or DEFAULT_MAX_PIXELS."""
    text = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{MAX_PIXELS_ENV}={text!r}: expected a positive whole number of pixels "
                         f"(default {DEFAULT_MAX_PIXELS})")
    return value


@contextmanager
def _pillow_settings():
    """Pillow's process-wide switches as our reads need them, restored afterwards (under a lock,
    as other code may flip them): truncated files are an error, and Pillow's decompression-bomb
    check is off, as ours (`_check_pixels`, configurable) runs on the header before any decode."""
    with _pillow_settings_lock:
        previous = ImageFile.LOAD_TRUNCATED_IMAGES, Image.MAX_IMAGE_PIXELS
        ImageFile.LOAD_TRUNCATED_IMAGES, Image.MAX_IMAGE_PIXELS = False, None
        try:
            yield
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES, Image.MAX_IMAGE_PIXELS = previous


def _check_pixels(path: Path, image: Image.Image, limit: int) -> None:
    """Refuse an opened (not yet decoded) image whose header declares more than `limit` pixels."""
    width, height = image.size
    if width * height > limit:
        raise _fail(path, f"{width}x{height} = {width * height:,} pixels is over the limit of {limit:,} "
                          f"(set {MAX_PIXELS_ENV} to allow larger images)")


def header_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) from the file's header, without decoding; ``ImageLoadError`` naming the
    file when it is not an image or is over the pixel limit (`max_image_pixels`)."""
    path = Path(path)
    if not path.is_file():
        raise _fail(path, "no such file")
    limit = max_image_pixels()
    try:
        with _pillow_settings(), Image.open(path) as probe:
            _check_pixels(path, probe, limit)
            return probe.size
    except ImageLoadError:
        raise
    except Exception as error:  # Pillow raises many types (UnidentifiedImageError, SyntaxError, ...)
        raise _fail(path, "not a readable image", error) from error


def _is_16bit_png(path: Path) -> bool:
    """Read the bit depth from the PNG header (IHDR starts at byte 8; bit depth is byte 24)."""
    with open(path, "rb") as handle:
        header = handle.read(25)
    return len(header) == 25 and header[:8] == _PNG_SIGNATURE and header[24] == 16


def _decode_with_pillow(path: Path) -> Image.Image:
    """Check the size the header declares, verify the file's structure, then decode it fully
    with truncation treated as an error."""
    limit = max_image_pixels()
    with _pillow_settings():
        try:
            with Image.open(path) as probe:
                _check_pixels(path, probe, limit)
                probe.verify()  # checks chunk CRCs / structure without decoding pixels
        except ImageLoadError:
            raise
        except Exception as error:  # Pillow raises many types (SyntaxError, OSError, ...)
            raise _fail(path, "not a readable image (verify failed)", error) from error
        try:
            image = Image.open(path)
            _check_pixels(path, image, limit)  # the file may have changed since the probe
            image.load()
        except ImageLoadError:
            raise
        except Exception as error:
            raise _fail(path, "decoding failed (truncated or corrupt)", error) from error
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # a broken EXIF block should not make a decodable image unreadable
        return image


def _composite_on_white(rgb: np.ndarray, alpha: np.ndarray, alpha_max: float) -> np.ndarray:
    """Alpha-composite ``rgb`` (float, any scale) onto white; returns float in rgb's scale."""
    weight = alpha.astype(np.float64)[..., None] / alpha_max
    white = float(alpha_max)
    return rgb.astype(np.float64) * weight + white * (1.0 - weight)


def _sixteen_bit_to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values.astype(np.float64) / 257.0), 0, 255).astype(np.uint8)


def _load_16bit_png(path: Path) -> np.ndarray:
    """16-bit PNGs through OpenCV, which keeps all 16 bits of every channel."""
    import cv2

    data = cv2.imread(str(path), cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
    if data is None or data.dtype != np.uint16:
        raise _fail(path, "OpenCV could not decode the 16-bit PNG")
    if data.ndim == 2:
        rgb = np.repeat(data[..., None], 3, axis=2).astype(np.float64)
    elif data.shape[2] == 2:  # gray + alpha
        rgb = _composite_on_white(np.repeat(data[..., :1], 3, axis=2), data[..., 1], 65535.0)
    elif data.shape[2] == 3:
        rgb = data[..., ::-1].astype(np.float64)  # BGR -> RGB
    elif data.shape[2] == 4:
        rgb = _composite_on_white(data[..., 2::-1], data[..., 3], 65535.0)
    else:
        raise _fail(path, f"unsupported channel count {data.shape[2]}")
    return _sixteen_bit_to_uint8(rgb)


def _pillow_to_rgb(image: Image.Image, path: Path) -> np.ndarray:
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.repeat(_sixteen_bit_to_uint8(np.asarray(image))[..., None], 3, axis=2)
    if mode == "I":
        # 32-bit integer images come from 16-bit grayscale files on older Pillow; scale as 16-bit.
        values = np.clip(np.asarray(image, dtype=np.float64), 0, 65535)
        return np.repeat(_sixteen_bit_to_uint8(values)[..., None], 3, axis=2)
    if mode == "P":
        image = image.convert("RGBA") if "transparency" in image.info else image.convert("RGB")
        mode = image.mode
    if mode in ("LA", "PA", "La", "RGBa"):
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode == "RGBA":
        array = np.asarray(image)
        blended = _composite_on_white(array[..., :3], array[..., 3], 255.0)
        return np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    if mode != "RGB":
        image = image.convert("RGB")
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise _fail(path, f"unexpected decoded array {array.dtype} {array.shape} (mode {mode})")
    return np.ascontiguousarray(array)


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as ``uint8 [H, W, 3]`` RGB (see the module docstring for conversions).

    Raises ``ImageLoadError`` (a ValueError) naming the file when it is missing, not an image,
    corrupt or truncated.
    """
    path = Path(path)
    if not path.is_file():
        raise _fail(path, "no such file")
    return _to_rgb(_decode_with_pillow(path), path)  # always decoded: verifies, even 16-bit PNGs


def decode_problem(path: str | os.PathLike) -> str | None:
    """None when `path` decodes completely as an image, else why not (one line naming it).

    What a rerun asks of a file an earlier run wrote before it keeps it (`palette sample`, a
    folder run of `palette infer`): our writes are atomic, but a file cut off by a full disk, a
    copy or an older writer exists all the same, and must be redone rather than kept."""
    try:
        load_image(path)
    except ImageLoadError as error:
        return str(error)
    return None


def _to_rgb(image: Image.Image, path: Path) -> np.ndarray:
    """A decoded image as ``uint8 [H, W, 3]`` (16-bit PNGs re-read at full depth)."""
    if _is_16bit_png(path):
        return _load_16bit_png(path)
    return _pillow_to_rgb(image, path)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """``uint8 [H, W, 3]`` -> float32 ``[3, H, W]`` in [-1, 1] (0 -> -1, 255 -> 1)."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3:
        raise ValueError(f"to_tensor expects a uint8 [H, W, C] array, got {getattr(image, 'dtype', type(image))} "
                         f"{getattr(image, 'shape', '')}")
    import torch

    tensor = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).to(torch.float32)
    return tensor / 127.5 - 1.0


def to_uint8(tensor: torch.Tensor) -> np.ndarray:
    """float ``[C, H, W]`` in [-1, 1] -> ``uint8 [H, W, C]`` (rounded to nearest, clamped)."""
    if not _is_tensor(tensor) or tensor.ndim != 3:
        raise ValueError(f"to_uint8 expects a [C, H, W] tensor, got {type(tensor).__name__} "
                         f"{tuple(getattr(tensor, 'shape', ()))}")
    import torch

    values = ((tensor.detach().to("cpu", torch.float32) + 1.0) * 127.5).round().clamp(0, 255)
    return values.to(torch.uint8).permute(1, 2, 0).contiguous().numpy()


def _is_tensor(value) -> bool:
    """Whether `value` is a torch tensor, without importing torch (none exists before it is imported)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def _atomic_write_png(path: Path, image: Image.Image) -> None:
    """Readers never see half a file (palette.files.atomic_write)."""
    with atomic_write(path) as handle:
        image.save(handle, format="PNG")


def save_image(path: str | os.PathLike, image: np.ndarray | torch.Tensor) -> Path:
    """Save as 8-bit PNG, creating parent folders; the write is atomic (temp file + rename).

    ``image`` is either ``uint8 [H, W, 3]`` / ``[H, W]`` numpy, or a float tensor ``[3, H, W]`` /
    ``[1, H, W]`` in [-1, 1] (converted with ``to_uint8``).
    """
    path = Path(path)
    if _is_tensor(image):
        image = to_uint8(image)
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ValueError(f"save_image expects uint8 numpy or a [-1, 1] tensor, got "
                         f"{getattr(image, 'dtype', type(image))}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ValueError(f"save_image expects [H, W, 3] or [H, W], got shape {image.shape}")
    _atomic_write_png(path, Image.fromarray(np.ascontiguousarray(image)))
    return path


# Output formats by file suffix (palette infer): lossless where the format allows; JPEG at high quality.
_OUTPUT_FORMATS = {".png": ("PNG", {}), ".jpg": ("JPEG", {"quality": 95}), ".jpeg": ("JPEG", {"quality": 95}),
                   ".webp": ("WEBP", {"lossless": True}), ".bmp": ("BMP", {}), ".tif": ("TIFF", {}),
                   ".tiff": ("TIFF", {})}


def output_format(path: str | os.PathLike) -> tuple[str, dict]:
    """(Pillow format, save options) for an output file name; ValueError for an unknown suffix."""
    suffix = Path(path).suffix.lower()
    if suffix not in _OUTPUT_FORMATS:
        raise ValueError(f"output {str(path)!r}: unknown image suffix {suffix or '(none)'!r}; "
                         f"use one of {', '.join(_OUTPUT_FORMATS)}")
    return _OUTPUT_FORMATS[suffix]


def save_image_as(path: str | os.PathLike, image: torch.Tensor | np.ndarray) -> Path:
    """Like ``save_image``, in the format the suffix names (``output_format``), atomically."""
    path = Path(path)
    image_format, options = output_format(path)
    pixels = to_uint8(image) if _is_tensor(image) else np.asarray(image)
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[..., 0]
    with atomic_write(path) as handle:
        Image.fromarray(np.ascontiguousarray(pixels)).save(handle, format=image_format, **options)
    return path


def save_mask(path: str | os.PathLike, mask: np.ndarray | torch.Tensor) -> Path:
    """Save a mask (bool/0-1 ``[H, W]`` or ``[1, H, W]``, 1 = missing) as PNG with 255 = missing."""
    if _is_tensor(mask):
        mask = mask.detach().cpu().numpy()
    mask = np.asarray(mask)
    if mask.ndim == 3 and mask.shape[0] == 1:
        mask = mask[0]
    if mask.ndim != 2:
        raise ValueError(f"save_mask expects [H, W] or [1, H, W], got shape {mask.shape}")
    pixels = np.where(mask > 0.5, 255, 0).astype(np.uint8)
    path = Path(path)
    _atomic_write_png(path, Image.fromarray(pixels))
    return path


def load_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a mask image as ``bool [H, W]``: True (missing) where the gray value is >= 128.

    Unlike ``load_image``, an 8-bit mask with alpha is composited onto BLACK: a stroke
    painted in white on a transparent layer marks the missing pixels, the transparent rest is
    known. Errors are ``ImageLoadError`` as for images.
    """
    path = Path(path)
    if not path.is_file():
        raise _fail(path, "no such file")
    image = _decode_with_pillow(path)
    luminance = np.array(LUMINANCE_WEIGHTS, dtype=np.float32)
    has_alpha = "A" in image.getbands() or (image.mode == "P" and "transparency" in image.info)
    if has_alpha and not _is_16bit_png(path):
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32)
        gray = rgba[..., :3] @ luminance * rgba[..., 3] / 255.0
    else:
        gray = _to_rgb(image, path).astype(np.float32) @ luminance
    return gray >= 127.5


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """uint8 [H, W, 3] exactly as clean-fid reads images (PIL ``.convert('RGB')``, no alpha
    compositing): what the metrics and the report's figures use, for files we wrote ourselves."""
    limit = max_image_pixels()
    try:
        with _pillow_settings(), Image.open(path) as image:
            _check_pixels(Path(path), image, limit)
            return np.array(image.convert("RGB"))
    except ImageLoadError:
        raise
    except (OSError, SyntaxError, ValueError) as error:  # Pillow's own messages do not name the file
        raise _fail(Path(path), "decoding failed (truncated or corrupt)", error) from error


_SAMPLE_FOLDER = re.compile(r"^sample_(\d+)$")


def numbered_sample_folders(folder: str | os.PathLike) -> list[Path]:
    """The ``sample_K`` subfolders of a samples folder (docs/architecture.md), in K order; none
    when the folder does not exist."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if p.is_dir() and (m := _SAMPLE_FOLDER.match(p.name))]
    return [p for _, p in sorted(found)]


def list_images(folder: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """Image files in ``folder`` (endings in ``IMAGE_EXTENSIONS``, any case), sorted by path.

    Hidden files (such as our own ``.NAME.tmp`` partial writes) are skipped.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {str(folder)!r} does not exist")
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in candidates
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS)
