"""palette.restore: folders, inpainting windows on large photos, panoramas, blended tiles.

Stand-in restorers (deterministic functions of the crop and its generator) are used where the
property under test is the geometry itself; the real tiny U-Net runs end to end through the CLI.
"""

import numpy as np
import pytest
import torch

from palette.cli import main
from palette.data import demo_photo_paths
from palette.imageio import load_image, save_image, to_tensor, to_uint8
from palette.restore import Box, extend, fit_across, hole_regions, inpaint_windows, restore_tiles, tile_boxes
from palette.restore import _generator as tile_generator
from palette.train import train

WINDOW = 32


@pytest.fixture(scope="module")
def checkpoint(model_for_task):
    return model_for_task("inpainting")


@pytest.fixture(scope="module")
def model_for_task(tmp_path_factory):
    """A tiny model trained for 2 steps on a task, made once per task."""
    made = {}

    def make(task):
        if task not in made:
            folder = tmp_path_factory.mktemp(f"restore_{task}")
            config = dict(name="t", task=task, preset="tiny", image_size=WINDOW, batch_size=2, steps=2,
                          num_workers=0, warmup_steps=0, log_every=1, checkpoint_every=2)
            made[task] = train(config, folder / "work", folder / "final.pt")
        return made[task]

    return make


def photo(height, width, index=0):
    image = load_image(demo_photo_paths()[index])
    assert image.shape[0] >= height and image.shape[1] >= width
    return np.ascontiguousarray(image[:height, :width])


def holes(height, width):
    """Two small holes far apart, two close ones (windows overlap: merged) and one larger than the window."""
    mask = np.zeros((height, width), bool)
    mask[4:10, 4:12] = True
    mask[110:116, 170:176] = True
    mask[60:64, 10:16] = mask[60:66, 24:28] = True
    mask[20:72, 80:122] = True  # 52 x 42: larger than the 32-pixel window both ways
    return mask


def constant_restorer(value):
    """Every crop comes back as one flat colour; records the crops it was given."""
    calls = []

    def run(source, mask, generators):
        calls.append((source.clone(), None if mask is None else mask.clone(), len(generators)))
        return torch.full_like(source, value)

    run.calls = calls
    return run


def offset_restorer(amplitude):
    """Each tile returns its input plus a constant drawn from the tile's own generator."""

    def run(source, mask, generators):
        offsets = torch.stack([(torch.rand(1, generator=g) * 2 - 1) * amplitude for g in generators])
        return (source + offsets.view(-1, 1, 1, 1)).clamp(-1, 1)

    return run


def save_mask_png(path, mask):
    save_image(path, np.repeat(np.where(mask, 255, 0).astype(np.uint8)[..., None], 3, axis=2))


# ---------------------------------------------------------------------------------------------
# Geometry.

def test_holes_get_windows_of_the_model_size_and_close_holes_are_merged():
    mask = holes(128, 192)
    regions = hole_regions(mask, WINDOW)
    windows = [w for _, ws in regions for w in ws]
    assert all((w.height, w.width) == (WINDOW, WINDOW) for w in windows)
    assert all(0 <= w.top <= 128 - WINDOW and 0 <= w.left <= 192 - WINDOW for w in windows)
    # Windows of different regions never overlap (regions are filled in one batch per round).
    for i, (_, a) in enumerate(regions):
        for _, b in regions[i + 1:]:
            assert not any(x.overlaps(y) for x in a for y in b)
    # Every masked pixel lies in some window of its region.
    covered = np.zeros_like(mask)
    for w in windows:
        covered[w.slices] = True
    assert covered[mask].all()
    # The big hole needs several windows; the small ones one each, the two close ones (8 px apart) one together.
    assert sorted(len(ws) for _, ws in regions)[:3] == [1, 1, 1] and len(regions) == 4
    assert max(len(ws) for _, ws in regions) == 12


def test_tiles_cover_the_image_with_the_requested_overlap():
    boxes = tile_boxes((70, 100), WINDOW, 8)
    coverage = np.zeros((70, 100), int)
    for box in boxes:
        assert (box.height, box.width) == (WINDOW, WINDOW)
        coverage[box.slices] += 1
    assert coverage.min() >= 1
    lefts = sorted({b.left for b in boxes})
    assert lefts[0] == 0 and lefts[-1] == 100 - WINDOW
    assert min(a + WINDOW - b for a, b in zip(lefts, lefts[1:])) >= 8
    assert tile_boxes((20, 24), WINDOW, 8) == [Box(0, 0, 20, 24)]  # smaller than a window: one crop
    with pytest.raises(ValueError, match="overlap"):
        tile_boxes((70, 100), WINDOW, WINDOW)


# ---------------------------------------------------------------------------------------------
# Inpainting windows.

def test_window_inpainting_fills_every_hole_and_keeps_every_other_pixel():
    image, mask = photo(128, 192), holes(128, 192)
    restorer = constant_restorer(0.0)  # a flat grey (128) everywhere it generates
    result = inpaint_windows(image, mask, restorer, WINDOW)
    assert np.array_equal(result[~mask], image[~mask])
    assert (result[mask] == 128).all()
    for source, crop_mask, count in restorer.calls:
        assert source.shape[-2:] == (WINDOW, WINDOW) and crop_mask.shape[0] == count
        assert (source * crop_mask == 0).all()  # the model never sees the pixels it must fill


def context_restorer(calls):
    """Output = the mean of the crop's known pixels plus the crop's own noise: depends on the context."""

    def run(source, mask, generators):
        calls.append(len(generators))
        known = (1 - mask)
        mean = (source * known).sum(dim=(2, 3), keepdim=True) / known.sum(dim=(2, 3), keepdim=True).clamp(min=1)
        noise = torch.stack([torch.randn(source.shape[1:], generator=g) for g in generators])
        return (mean + 0.3 * noise).clamp(-1, 1)

    return run


def test_batched_windows_give_the_result_of_filling_them_one_by_one():
    image, mask = photo(128, 192), holes(128, 192)
    calls = []
    batched = inpaint_windows(image, mask, context_restorer(calls), WINDOW, seed=5)
    assert max(calls) > 1 and len(calls) < sum(calls)  # windows were batched
    expected, remaining = image.copy(), mask.copy()
    for box in [w for _, ws in hole_regions(mask, WINDOW) for w in ws]:
        fill = remaining[box.slices].copy()
        if not fill.any():
            continue
        crop_mask = torch.from_numpy(fill).float()[None, None]
        source = to_tensor(expected[box.slices])[None] * (1 - crop_mask)
        output = context_restorer([])(source, crop_mask, [tile_generator(5, 0, "image", f"{box.top},{box.left}")])
        expected[box.slices][fill] = to_uint8(output[0])[fill]
        remaining[box.slices] = False
    assert np.array_equal(batched, expected)


def test_large_photo_inpainting_through_the_cli_leaves_unmasked_pixels_bit_identical(checkpoint, tmp_path):
    image, mask = photo(128, 192), holes(128, 192)
    save_image(tmp_path / "photo.png", image)
    save_mask_png(tmp_path / "mask.png", mask)
    args = ["infer", "--checkpoint", str(checkpoint), "--image", str(tmp_path / "photo.png"), "--mask",
            str(tmp_path / "mask.png"), "--full-resolution", "--steps", "2", "--output"]
    assert main(args + [str(tmp_path / "out.png")]) == 0
    result = load_image(tmp_path / "out.png")
    assert result.shape == image.shape
    assert np.array_equal(result[~mask], image[~mask])
    assert not np.array_equal(result[mask], image[mask])
    assert main(args + [str(tmp_path / "again.png")]) == 0  # seeded by position: reproducible
    assert np.array_equal(load_image(tmp_path / "again.png"), result)


# ---------------------------------------------------------------------------------------------
# Panoramas.

@pytest.mark.parametrize("direction", ["right", "left", "down", "up"])
def test_panorama_grows_by_half_a_window_per_step_and_keeps_the_original(direction):
    image = photo(WINDOW, WINDOW + 8) if direction in ("left", "right") else photo(WINDOW + 8, WINDOW)
    restorer = constant_restorer(0.0)
    result = extend(image, direction, 3, restorer, WINDOW)
    grow = 3 * WINDOW // 2
    height, width = image.shape[:2]
    expected = {"right": (height, width + grow), "left": (height, width + grow),
                "down": (height + grow, width), "up": (height + grow, width)}[direction]
    assert result.shape[:2] == expected
    original = {"right": result[:, :width], "left": result[:, grow:], "down": result[:height], "up": result[grow:]}
    assert np.array_equal(original[direction], image)
    # The model saw its own square window, with the missing half on the side being extended.
    for source, crop_mask, _ in restorer.calls:
        assert source.shape[-2:] == (WINDOW, WINDOW)
        half = {"right": crop_mask[0, 0, :, WINDOW // 2:], "left": crop_mask[0, 0, :, :WINDOW // 2],
                "down": crop_mask[0, 0, WINDOW // 2:], "up": crop_mask[0, 0, :WINDOW // 2]}[direction]
        assert half.all() and crop_mask.sum() == half.numel()


def test_panorama_through_the_cli(checkpoint, tmp_path):
    image = photo(48, 40)  # resized so its height is the window: 32 x 27
    save_image(tmp_path / "photo.png", image)
    out = tmp_path / "wide.png"
    assert main(["infer", "--checkpoint", str(checkpoint), "--image", str(tmp_path / "photo.png"), "--task",
                 "uncropping", "--extend", "right", "--times", "2", "--steps", "2", "--output", str(out)]) == 0
    result = load_image(out)
    assert result.shape == (WINDOW, 27 + 2 * WINDOW // 2, 3)
    assert np.array_equal(result[:, :27], fit_across(image, "right", WINDOW))  # the original part is unchanged


def test_panorama_refuses_a_model_that_does_not_uncrop_and_outputs_need_an_image_suffix(checkpoint, tmp_path, capsys):
    save_image(tmp_path / "photo.png", photo(32, 32))
    assert main(["infer", "--checkpoint", str(checkpoint), "--image", str(tmp_path / "photo.png"),
                 "--extend", "left", "--output", str(tmp_path / "o.png")]) == 2
    assert "uncropping model" in capsys.readouterr().err
    assert main(["infer", "--checkpoint", str(checkpoint), "--image", str(tmp_path / "photo.png"), "--task", "jpeg",
                 "--full-resolution", "--output", str(tmp_path / "o.png")]) == 2
    assert "never seen jpeg inputs" in capsys.readouterr().err
    assert main(["infer", "--checkpoint", str(checkpoint), "--image", str(tmp_path / "photo.png"),
                 "--full-resolution", "--output", str(tmp_path / "o.xyz")]) == 2
    assert "unknown image suffix" in capsys.readouterr().err
    assert not list(tmp_path.glob("o.*"))


# ---------------------------------------------------------------------------------------------
# Tiles.

def test_tiles_blend_without_a_visible_seam_on_a_flat_image():
    flat = torch.full((3, 70, 100), 0.2)
    amplitude, overlap = 0.1, 8  # tiles differ by up to 0.2 (about 25 grey levels)
    blended = restore_tiles(flat, offset_restorer(amplitude), WINDOW, overlap, seed=3)
    boxes = tile_boxes((70, 100), WINDOW, overlap)
    seams_x = sorted({b.left for b in boxes} - {0})
    seams_y = sorted({b.top for b in boxes} - {0})
    step_x = (blended[..., 1:] - blended[..., :-1]).abs()
    step_y = (blended[..., 1:, :] - blended[..., :-1, :]).abs()
    # Across a seam of at least `overlap` pixels the linear blend moves by at most 2 * amplitude / overlap
    # per pixel; the same tiles pasted one over the other jump by up to 2 * amplitude at the seam lines.
    limit = 2 * amplitude / overlap + 1e-6
    assert step_x.max() <= limit and step_y.max() <= limit
    assert max(step_x[..., x - 1].max() for x in seams_x) > 0  # the tiles did differ
    hard = flat.clone()
    for box in boxes:
        crop = flat[(slice(None), *box.slices)][None]
        generator = tile_generator(3, 0, "image", f"{box.top},{box.left}")
        hard[(slice(None), *box.slices)] = offset_restorer(amplitude)(crop, None, [generator])[0]
    hard_jump = max((hard[..., x] - hard[..., x - 1]).abs().max() for x in seams_x)
    assert hard_jump > 4 * limit
    assert seams_y and seams_x
    # Reproducible: each tile's generator depends only on the seed and the tile's position.
    assert torch.equal(blended, restore_tiles(flat, offset_restorer(amplitude), WINDOW, overlap, seed=3, batch_size=2))
    assert not torch.equal(blended, restore_tiles(flat, offset_restorer(amplitude), WINDOW, overlap, seed=4))


def test_tiles_that_agree_reproduce_the_image_exactly():
    image = torch.from_numpy(photo(70, 100)).permute(2, 0, 1).float() / 127.5 - 1
    result = restore_tiles(image, lambda source, mask, generators: source, WINDOW, 8)
    assert torch.allclose(result, image, atol=1e-6)


@pytest.mark.parametrize("task, scale", [("jpeg", 1), ("super_resolution", 4)])
def test_tiled_restoration_through_the_cli(model_for_task, tmp_path, task, scale):
    image = photo(44, 58) if scale == 1 else photo(14, 18)
    save_image(tmp_path / "photo.png", image)
    out = tmp_path / "restored.png"
    assert main(["infer", "--checkpoint", str(model_for_task(task)), "--image", str(tmp_path / "photo.png"), "--task", task,
                 "--full-resolution", "--overlap", "8", "--steps", "2", "--output", str(out)]) == 0
    assert load_image(out).shape == (image.shape[0] * scale, image.shape[1] * scale, 3)


# ---------------------------------------------------------------------------------------------
# Folders.

def test_folder_inference_resumes(checkpoint, tmp_path, capsys):
    images, masks, out = tmp_path / "photos", tmp_path / "masks", tmp_path / "restored"
    for index, name in enumerate(["a.png", "b.jpg", "sub/c.png"]):
        image = photo(32, 40, index)
        save_image(images / name, image) if name.endswith("png") else _save_jpeg(images / name, image)
        mask = np.zeros((32, 40), bool)
        mask[8:20, 10:30] = True
        save_mask_png(masks / name.replace(".jpg", ".png"), mask)
    args = ["infer", "--checkpoint", str(checkpoint), "--image", str(images), "--mask", str(masks),
            "--output", str(out), "--steps", "2", "--batch-size", "2"]
    assert main(args) == 0
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert written == ["a.png", "b.png", "sub/c.png"]
    first = {name: load_image(out / name) for name in written}
    single = ["infer", "--checkpoint", str(checkpoint), "--image", str(images / "a.png"),
              "--mask", str(masks / "a.png"), "--steps", "2", "--output", str(tmp_path / "single.png")]
    assert main(single) == 0  # a folder's output is the one-image run's output
    assert np.array_equal(load_image(tmp_path / "single.png"), first["a.png"])
    stamps = {name: (out / name).stat().st_mtime_ns for name in written}
    capsys.readouterr()
    assert main(args) == 0  # everything finished: nothing redone
    assert "skipping 3 finished outputs" in capsys.readouterr().out
    assert stamps == {name: (out / name).stat().st_mtime_ns for name in written}
    (out / "b.png").unlink()
    assert main(args[:-1] + ["1"]) == 0  # a removed output is redone, identically, in another batch
    assert np.array_equal(load_image(out / "b.png"), first["b.png"])
    assert (out / "a.png").stat().st_mtime_ns == stamps["a.png"]
    # The output folder cannot be the input folder; a missing mask is named before any work.
    assert main(args[:5] + ["--output", str(images), "--mask", str(masks)]) == 2
    (masks / "a.png").unlink()
    assert main(args[:5] + ["--output", str(tmp_path / "other"), "--mask", str(masks)]) == 2
    assert "no mask for a.png" in capsys.readouterr().err
    assert not (tmp_path / "other").exists()


def _save_jpeg(path, image):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, quality=95)
