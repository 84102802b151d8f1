"""load_image conversions and failures, PNG writing, tensor conversions."""

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from palette.imageio import (IMAGE_EXTENSIONS, ImageLoadError, list_images, load_image,
                             load_mask, save_image, save_mask, to_tensor, to_uint8)


def _gradient(height=16, width=24):
    rows = np.linspace(0, 255, height).round().astype(np.uint8)[:, None]
    cols = np.linspace(255, 0, width).round().astype(np.uint8)[None, :]
    return np.stack([np.broadcast_to(rows, (height, width)), np.broadcast_to(cols, (height, width)),
                     np.full((height, width), 77, np.uint8)], axis=2)


def test_rgb_png_round_trip(tmp_path):
    image = _gradient()
    path = save_image(tmp_path / "deep" / "folder" / "a.png", image)
    assert path.exists() and not list(path.parent.glob(".*tmp"))
    np.testing.assert_array_equal(load_image(path), image)


def test_grayscale_is_replicated(tmp_path):
    gray = _gradient()[..., 0]
    Image.fromarray(gray, mode="L").save(tmp_path / "g.png")
    out = load_image(tmp_path / "g.png")
    assert out.shape == (16, 24, 3) and out.dtype == np.uint8
    for channel in range(3):
        np.testing.assert_array_equal(out[..., channel], gray)


def test_gray_alpha_composited_on_white(tmp_path):
    gray = np.full((4, 4), 100, np.uint8)
    alpha = np.array([[0, 255, 128, 64]] * 4, np.uint8)
    Image.fromarray(np.stack([gray, alpha], 2), mode="LA").save(tmp_path / "la.png")
    out = load_image(tmp_path / "la.png")
    weight = alpha.astype(np.float64) / 255
    expected = np.rint(100 * weight + 255 * (1 - weight)).astype(np.uint8)
    np.testing.assert_array_equal(out[..., 0], expected)
    np.testing.assert_array_equal(out[..., 0], out[..., 2])
    assert out[0, 0, 0] == 255 and out[0, 1, 0] == 100


def test_rgba_composited_on_white(tmp_path):
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = [[255, 0], [51, 255]]
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    out = load_image(tmp_path / "rgba.png")
    np.testing.assert_array_equal(out[0, 0], [200, 0, 0])
    np.testing.assert_array_equal(out[0, 1], [255, 255, 255])
    np.testing.assert_array_equal(out[1, 0], [np.rint(200 * 0.2 + 255 * 0.8)] + [np.rint(255 * 0.8)] * 2)


def test_palette_image_expanded(tmp_path):
    indices = np.array([[0, 1], [2, 1]], np.uint8)
    image = Image.fromarray(indices, mode="P")
    image.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (256 * 3 - 9))
    image.save(tmp_path / "p.png")
    out = load_image(tmp_path / "p.png")
    np.testing.assert_array_equal(out[0, 0], [255, 0, 0])
    np.testing.assert_array_equal(out[0, 1], [0, 255, 0])
    np.testing.assert_array_equal(out[1, 0], [0, 0, 255])


def test_16bit_gray_png_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257, 32896, 65535], [1000, 20000, 50000, 65280]], np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")  # Pillow writes I;16 as a 16-bit PNG
    with open(tmp_path / "g16.png", "rb") as handle:
        assert handle.read(25)[24] == 16
    out = load_image(tmp_path / "g16.png")
    np.testing.assert_array_equal(out[..., 1], np.rint(values / 257).astype(np.uint8))
    assert out[0, 3, 0] == 255 and out[0, 1, 0] == 1


def test_16bit_rgb_png_scaled(tmp_path):
    import cv2

    rgb = np.zeros((2, 3, 3), np.uint16)
    rgb[0, 0] = [65535, 0, 0]
    rgb[0, 1] = [0, 32896, 0]
    rgb[1, 2] = [514, 1028, 65535]
    assert cv2.imwrite(str(tmp_path / "c16.png"), rgb[..., ::-1])  # OpenCV takes BGR
    out = load_image(tmp_path / "c16.png")
    np.testing.assert_array_equal(out, np.rint(rgb / 257).astype(np.uint8))


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_truncated_file_raises_naming_path(tmp_path, suffix):
    rng = np.random.default_rng(0)
    full = tmp_path / f"full{suffix}"
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(full)
    data = full.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageLoadError, match="cut"):
        load_image(cut)


def test_truncated_jpeg_raises_even_when_pillow_flag_is_on(tmp_path, monkeypatch):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    full = tmp_path / "full.jpg"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(full)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(full.read_bytes()[:-400])
    with pytest.raises(ImageLoadError, match="truncated"):
        load_image(cut)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # restored


def test_garbage_and_missing_files_raise(tmp_path):
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"this is not an image" * 20)
    with pytest.raises(ImageLoadError, match="garbage.png"):
        load_image(garbage)
    with pytest.raises(ImageLoadError, match="nothere.png"):
        load_image(tmp_path / "nothere.png")
    assert issubclass(ImageLoadError, ValueError)


def test_tensor_conversions():
    image = _gradient()
    tensor = to_tensor(image)
    assert tensor.dtype == torch.float32 and tensor.shape == (3, 16, 24)
    assert tensor.min() >= -1 and tensor.max() <= 1
    assert tensor[0, 0, 0] == -1 and tensor[0, -1, 0] == 1
    np.testing.assert_array_equal(to_uint8(tensor), image)
    # rounding to nearest and clamping out-of-range values
    odd = torch.tensor([[[-2.0, 1.5, 0.0, -1 + 2.6 / 127.5]]])
    np.testing.assert_array_equal(to_uint8(odd)[0, :, 0], [0, 255, 128, 3])


def test_save_tensor_and_masks(tmp_path):
    tensor = torch.linspace(-1, 1, 3 * 8 * 8).reshape(3, 8, 8)
    save_image(tmp_path / "t.png", tensor)
    np.testing.assert_array_equal(load_image(tmp_path / "t.png"), to_uint8(tensor))
    mask = np.zeros((8, 8), bool)
    mask[2:5, 1:7] = True
    save_mask(tmp_path / "m.png", mask)
    with Image.open(tmp_path / "m.png") as stored:
        assert stored.mode == "L" and set(np.unique(np.asarray(stored))) == {0, 255}
    np.testing.assert_array_equal(load_mask(tmp_path / "m.png"), mask)
    save_mask(tmp_path / "m2.png", torch.from_numpy(mask).float()[None])
    np.testing.assert_array_equal(load_mask(tmp_path / "m2.png"), mask)


def test_list_images(tmp_path):
    for name in ["b.PNG", "a.jpg", "c.jpeg", "notes.txt", ".hidden.png"]:
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in list_images(tmp_path)] == ["a.jpg", "b.PNG", "c.jpeg"]
    assert ".png" in IMAGE_EXTENSIONS
    with pytest.raises(FileNotFoundError):
        list_images(tmp_path / "missing")


def test_mask_with_alpha_reads_transparent_as_known(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[1:3, 1:3] = [255, 255, 255, 255]  # opaque white stroke on a transparent layer
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "stroke.png")
    expected = np.zeros((4, 4), bool)
    expected[1:3, 1:3] = True
    np.testing.assert_array_equal(load_mask(tmp_path / "stroke.png"), expected)
    with pytest.raises(ImageLoadError, match="nomask.png"):
        load_mask(tmp_path / "nomask.png")


def test_listing_and_loading_images_does_not_import_torch():
    """The workflow's torch-free helpers list and check images through this module."""
    import subprocess
    import sys

    code = ("import sys, palette.imageio, palette.workflow_data; "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_atomic_write_leaves_the_old_file_and_no_temporary_on_error(tmp_path):
    import pytest

    from palette.files import atomic_write

    target = tmp_path / "sub" / "list.txt"
    with atomic_write(target, "w") as handle:
        handle.write("first\n")
    with pytest.raises(RuntimeError):
        with atomic_write(target, "w") as handle:
            handle.write("half")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "first\n" and sorted(p.name for p in target.parent.iterdir()) == ["list.txt"]
