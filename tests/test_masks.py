"""Mask generators: areas, shapes, determinism, the released-mask reader."""

import numpy as np
import pytest

from palette import masks


def _rng(seed):
    return np.random.default_rng(seed)


@pytest.mark.parametrize("size", [64, 256])
@pytest.mark.parametrize("kind", ["freeform_10_20", "freeform_20_30", "freeform_30_40"])
def test_evaluation_free_form_area_strictly_inside_bucket(kind, size):
    low, high = masks.FREE_FORM_BUCKETS[kind]
    areas = np.array([masks.evaluation_inpainting_mask(kind, size, size, _rng(seed)).mean()
                      for seed in range(200)])
    assert np.all(areas > low) and np.all(areas < high)
    # the areas spread over the bucket rather than piling up at its lower edge
    assert areas.min() < low + 0.03 and areas.max() > high - 0.03
    assert np.median(areas) > low + 0.03


@pytest.mark.parametrize("size", [32, 512])
def test_evaluation_free_form_at_extreme_sizes(size):
    for seed in range(5):
        area = masks.evaluation_inpainting_mask("freeform_30_40", size, size, _rng(seed)).mean()
        assert 0.3 < area < 0.4


def test_masks_are_boolean_and_deterministic():
    makers = [
        lambda r: masks.free_form_mask(64, 48, r),
        lambda r: masks.box_mask(64, 48, r),
        lambda r: masks.training_inpainting_mask(64, 48, r),
        lambda r: masks.evaluation_inpainting_mask("freeform_20_30", 64, 48, r),
        lambda r: masks.training_uncropping_mask(64, 48, r),
    ]
    for make in makers:
        first, again, other = make(_rng(7)), make(_rng(7)), make(_rng(8))
        assert first.dtype == bool and first.shape == (64, 48)
        np.testing.assert_array_equal(first, again)
    # different seeds give different masks (uncropping has only 5 shapes: look at a few seeds)
    for make in makers[:4]:
        assert not np.array_equal(make(_rng(7)), make(_rng(8)))
    shapes = {masks.training_uncropping_mask(64, 48, _rng(s)).tobytes() for s in range(40)}
    assert len(shapes) == 5


def _perimeter_ratio(mask):
    """Boundary length over that of a square of the same area (1 for a square)."""
    boundary = (np.logical_xor(mask[1:], mask[:-1]).sum()
                + np.logical_xor(mask[:, 1:], mask[:, :-1]).sum())
    return boundary / (4 * np.sqrt(mask.sum()))


def test_free_form_masks_are_strokes():
    free_form = [masks.free_form_mask(256, 256, _rng(s)) for s in range(60)]
    areas = np.array([m.mean() for m in free_form])
    assert 0.01 < areas.min() and areas.max() < 0.7
    assert 0.1 < np.median(areas) < 0.35
    # strokes are thin and winding: more boundary per area than boxes
    boxes = [masks.box_mask(256, 256, _rng(s)) for s in range(60)]
    assert np.median([_perimeter_ratio(m) for m in free_form]) > 1.7
    assert np.median([_perimeter_ratio(m) for m in free_form]) > np.median([_perimeter_ratio(m) for m in boxes]) + 0.3


@pytest.mark.parametrize("size", [(64, 64), (256, 256), (48, 80)])
def test_box_mask_area_and_box_count(size):
    from scipy import ndimage

    for seed in range(200):
        mask = masks.box_mask(*size, _rng(seed))
        assert 0.1 <= mask.mean() <= 0.4
        _, components = ndimage.label(mask)
        assert 1 <= components <= 5


def test_training_inpainting_mixes_free_form_and_boxes():
    # the first draw decides the kind (free-form below 0.6); the rest of the stream draws it
    box_count = 0
    for seed in range(300):
        mask = masks.training_inpainting_mask(64, 64, _rng(seed))
        stream = _rng(seed)
        is_box = stream.random() >= 0.6
        expected = masks.box_mask(64, 64, stream) if is_box else masks.free_form_mask(64, 64, stream)
        np.testing.assert_array_equal(mask, expected)
        box_count += is_box
    assert 0.32 < box_count / 300 < 0.48  # 0.4 expected, binomial sd 0.028


def test_center_mask_is_quarter():
    mask = masks.evaluation_inpainting_mask("center", 256, 256, _rng(0))
    assert mask.sum() == 128 * 128
    assert mask[64:192, 64:192].all()
    np.testing.assert_array_equal(mask, masks.evaluation_inpainting_mask("center", 256, 256, _rng(1)))


def test_unknown_kinds_raise():
    with pytest.raises(ValueError, match="freeform_10_20"):
        masks.evaluation_inpainting_mask("freeform_50_60", 64, 64, _rng(0))
    with pytest.raises(ValueError, match="four_sides"):
        masks.uncropping_mask(64, 64, _rng(0), "diagonal")


def test_one_side_uncropping_is_exactly_half():
    sides = set()
    for seed in range(60):
        mask = masks.uncropping_mask(64, 64, _rng(seed), "one_side")
        assert mask.sum() == 64 * 32
        halves = {"left": mask[:, :32].all(), "right": mask[:, 32:].all(),
                  "top": mask[:32].all(), "bottom": mask[32:].all()}
        assert sum(halves.values()) == 1
        sides |= {name for name, full in halves.items() if full}
    assert sides == {"left", "right", "top", "bottom"}


def test_right_uncropping():
    mask = masks.uncropping_mask(256, 256, None, "right")
    assert mask[:, 128:].all() and not mask[:, :128].any()


@pytest.mark.parametrize("size", [(64, 64), (256, 256), (64, 96)])
def test_four_sides_uncropping_masks_the_border(size):
    height, width = size
    mask = masks.uncropping_mask(height, width, _rng(0), "four_sides")
    assert abs(mask.mean() - 0.5) < 0.01
    for corner in [mask[0, 0], mask[0, -1], mask[-1, 0], mask[-1, -1]]:
        assert corner
    assert mask[0].all() and mask[-1].all() and mask[:, 0].all() and mask[:, -1].all()
    known = ~mask
    rows, cols = np.nonzero(known)
    # the known region is one centred rectangle
    assert known[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()
    assert abs((rows.min() + rows.max()) / 2 - (height - 1) / 2) <= 0.5
    assert abs((cols.min() + cols.max()) / 2 - (width - 1) / 2) <= 0.5
    assert not mask[height // 2, width // 2]


def test_training_uncropping_chooses_both_modes():
    fours = sum(masks.training_uncropping_mask(64, 64, _rng(s))[0].all()
                and masks.training_uncropping_mask(64, 64, _rng(s))[:, 0].all() for s in range(400))
    assert 160 < fours < 240  # 200 expected


def test_released_masks_round_trip(tmp_path):
    rng = _rng(5)
    stacks = {
        "10-20% freeform": rng.random((3, 256, 256)) < 0.15,
        "20-30% freeform": rng.random((3, 256, 256)) < 0.25,
    }
    # the paper's file: each [N, 256, 256] array flattened and bit-packed
    np.savez(tmp_path / "masks.npz", **{key: np.packbits(value, axis=None) for key, value in stacks.items()})
    loaded = masks.load_released_masks(tmp_path / "masks.npz", "freeform_10_20")
    assert loaded.dtype == bool and loaded.shape == (3, 256, 256)
    np.testing.assert_array_equal(loaded, stacks["10-20% freeform"])
    np.testing.assert_array_equal(masks.load_released_masks(tmp_path / "masks.npz", "20-30% freeform"),
                                  stacks["20-30% freeform"])
    # padding bits (N * H * W not a multiple of 8) are dropped when the count is given
    small = rng.random((3, 5, 5)) < 0.5
    np.savez(tmp_path / "small.npz", **{"10-20% freeform": np.packbits(small, axis=None)})
    np.testing.assert_array_equal(
        masks.load_released_masks(tmp_path / "small.npz", "freeform_10_20", count=3, size=5), small)
    # an unpacked [N, 256, 256] array is read as it is
    np.savez(tmp_path / "plain.npz", **{"10-20% freeform": stacks["10-20% freeform"].astype(np.uint8)})
    np.testing.assert_array_equal(masks.load_released_masks(tmp_path / "plain.npz", "freeform_10_20"),
                                  stacks["10-20% freeform"])
    with pytest.raises(KeyError, match="30-40% freeform"):
        masks.load_released_masks(tmp_path / "masks.npz", "freeform_30_40")


@pytest.mark.parametrize("size", [(32, 32), (512, 512), (40, 72)])
def test_training_masks_work_from_32_to_512_px(size):
    for seed in range(10):
        for mask in (masks.training_inpainting_mask(*size, _rng(seed)),
                     masks.training_uncropping_mask(*size, _rng(seed))):
            assert mask.shape == size and mask.dtype == bool
            assert 0.0 < mask.mean() < 0.8
