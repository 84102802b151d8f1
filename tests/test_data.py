"""Demo photos, crops, splits, PairedDataset reproducibility, evaluation-set layout."""

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from palette import data
from palette.degradations import degrade
from palette.imageio import ImageLoadError, load_image, load_mask, save_image, to_tensor


@pytest.fixture(scope="module")
def small_photos(tmp_path_factory):
    """Three real photos shrunk to about 96x128, plus one with a clashing stem in a sub-folder."""
    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for source in data.demo_photo_paths()[:3]:
        image = load_image(source)
        height, width = image.shape[:2]
        paths.append(save_image(folder / f"{source.stem}.png",
                                data.resize(image, 96, round(96 * width / height))))
    paths.append(save_image(folder / "again" / f"{paths[0].stem}.png", load_image(paths[1])[:, :80]))
    return paths


def test_demo_photos_are_installed():
    paths = data.demo_photo_paths()
    assert len(paths) == 9
    names = {p.name for p in paths}
    assert {"astronaut.png", "china.jpg", "grace_hopper.jpg", "motorcycle_left.png"} <= names
    for path in paths:
        image = load_image(path)
        assert image.ndim == 3 and min(image.shape[:2]) >= 300


def test_make_crops_is_seeded_and_multiscale(small_photos, tmp_path):
    photos = small_photos[:2]
    first = data.make_crops(photos, tmp_path / "a", crop_size=32, scales=(1.0, 0.5), crops_per_scale=4, seed=0)
    again = data.make_crops(photos, tmp_path / "b", crop_size=32, scales=(1.0, 0.5), crops_per_scale=4, seed=0)
    other = data.make_crops(photos, tmp_path / "c", crop_size=32, scales=(1.0, 0.5), crops_per_scale=4, seed=1)
    assert 10 <= len(first) <= 16 and [p.name for p in first] == [p.name for p in again]
    for a, b in zip(first, again):
        assert a.read_bytes() == b.read_bytes()
    assert any(load_image(a).tobytes() != load_image(c).tobytes() for a, c in zip(first, other))
    for path in first:
        assert load_image(path).shape == (32, 32, 3)
        assert path.name.split(data.CROP_GROUP_SEPARATOR)[0] in {p.stem for p in photos}
    # scale 1 crops see the whole shorter side: a 96-px-high photo's full-height window
    full = [p for p in first if "__s100_" in p.name and p.name.startswith(photos[0].stem)]
    photo = load_image(photos[0])
    windows = [data.resize(photo[:, left:left + 96], 32, 32) for left in range(photo.shape[1] - 95)]
    for path in full:
        crop = load_image(path)
        assert any(np.array_equal(crop, window) for window in windows)


def test_make_crops_skips_repeated_windows(tmp_path):
    square = tmp_path / "square.png"
    save_image(square, np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8))
    crops = data.make_crops([square], tmp_path / "out", crop_size=16, scales=(1.0,), crops_per_scale=5)
    assert len(crops) == 1  # a square photo has a single full-size window


def _fake_crops(count_per_photo):
    return [f"crops/{photo}__s{scale}_{k:03d}.png" for photo, count in count_per_photo.items()
            for scale in (100, 50) for k in range(count)]


def test_split_keeps_photos_together_and_is_seeded():
    files = _fake_crops({name: 10 for name in ["a", "b", "c", "d", "e", "f", "g", "h",
                                                "motorcycle_left", "motorcycle_right"]})
    split = data.split_files(files, {"train": 0.8, "val": 0.1, "test": 0.1}, seed=3)
    assert split == data.split_files(list(reversed(files)), {"train": 0.8, "val": 0.1, "test": 0.1}, seed=3)
    assert sorted(sum(split.values(), [])) == sorted(files)
    photo_of = {}
    for name, members in split.items():
        assert members, name
        for file in members:
            photo = Path(file).name.split("__")[0]
            assert photo_of.setdefault(photo, name) == name  # no photo in two splits
    assert photo_of["motorcycle_left"] == photo_of["motorcycle_right"]  # stereo pair together
    seeds = {tuple(data.split_files(files, seed=s)["test"]) for s in range(6)}
    assert len(seeds) > 1
    with pytest.raises(ValueError, match="sum to 1"):
        data.split_files(files, {"train": 0.8, "test": 0.1})


def test_split_of_plain_files_follows_fractions():
    files = [f"faces/{k:05d}.jpg" for k in range(1000)]
    split = data.split_files(files, {"train": 0.85, "val": 0.05, "test": 0.10}, seed=0)
    assert [len(split[n]) for n in ("train", "val", "test")] == [850, 50, 100]


def test_file_list_round_trip(tmp_path):
    files = ["a/b.png", "c d/e.png"]
    path = data.write_file_list(tmp_path / "lists" / "train.txt", files)
    assert data.read_file_list(path) == files
    path.write_text("# comment\n\na.png\n")
    assert data.read_file_list(path) == ["a.png"]


def _assert_items_equal(a, b):
    for key in ("source", "target", "mask"):
        assert torch.equal(a[key], b[key]), key
    assert a["has_mask"] == b["has_mask"] and a["name"] == b["name"]


def test_paired_dataset_depends_only_on_seed_epoch_index(small_photos):
    dataset = data.PairedDataset(small_photos, "inpainting", 64, seed=5, train=True)
    dataset.set_epoch(2)
    later = dataset[2]
    fresh = data.PairedDataset(small_photos, "inpainting", 64, seed=5, train=True)
    fresh.set_epoch(2)
    _ = fresh[0], fresh[1]  # other items loaded first change nothing
    _assert_items_equal(fresh[2], later)
    fresh.set_epoch(3)
    assert not torch.equal(fresh[2]["target"], later["target"]) or not torch.equal(fresh[2]["mask"], later["mask"])
    other_seed = data.PairedDataset(small_photos, "inpainting", 64, seed=6, train=True)
    other_seed.set_epoch(2)
    assert not torch.equal(other_seed[2]["mask"], later["mask"])
    item = later
    assert item["source"].shape == (3, 64, 64) and item["mask"].shape == (1, 64, 64)
    assert item["has_mask"] and item["name"] == small_photos[2].stem and item["index"] == 2


def test_paired_dataset_eval_mode_centre_crop_and_no_mask(small_photos):
    dataset = data.PairedDataset(small_photos, "colorization", 48, seed=0, train=False)
    item = dataset[1]
    expected = to_tensor(data.center_square_crop(load_image(small_photos[1]), 48))
    assert torch.equal(item["target"], expected)
    assert not item["has_mask"] and torch.equal(item["mask"], torch.zeros(1, 48, 48))
    assert torch.equal(item["source"][0], item["source"][1])


def test_paired_dataset_multitask_batches_collate(small_photos):
    dataset = data.PairedDataset(small_photos, "multitask", 32, seed=1)
    batch = next(iter(DataLoader(dataset, batch_size=4, shuffle=False)))
    assert batch["source"].shape == (4, 3, 32, 32) and batch["mask"].shape == (4, 1, 32, 32)
    assert batch["has_mask"].dtype == torch.bool
    # items without a mask carry an all-zeros mask
    for has_mask, mask in zip(batch["has_mask"], batch["mask"]):
        assert bool(has_mask) == bool(mask.any())


def test_paired_dataset_train_crop_is_a_window_of_the_image(small_photos):
    dataset = data.PairedDataset(small_photos[:1], "super_resolution", 64, seed=0)
    image = load_image(small_photos[0])
    flips = set()
    for epoch in range(8):
        dataset.set_epoch(epoch)
        crop = ((dataset[0]["target"].numpy().transpose(1, 2, 0) + 1) * 127.5).round().astype(np.uint8)
        found = None
        for candidate, flipped in ((crop, False), (crop[:, ::-1], True)):
            for top in range(image.shape[0] - 63):
                for left in range(image.shape[1] - 63):
                    if np.array_equal(image[top:top + 64, left:left + 64], candidate):
                        found = flipped
                        break
                if found is not None:
                    break
            if found is not None:
                break
        assert found is not None
        flips.add(found)
    assert flips == {False, True}


def test_paired_dataset_errors_name_the_file(tmp_path, small_photos):
    broken = tmp_path / "broken.png"
    broken.write_bytes(small_photos[0].read_bytes()[:300])
    dataset = data.PairedDataset([small_photos[0], broken], "jpeg", 32)
    with pytest.raises(ImageLoadError, match="broken.png"):
        dataset[1]
    with pytest.raises(ValueError, match="unknown task"):
        data.PairedDataset([broken], "denoising", 32)


def test_write_evaluation_set_layout_and_reader(small_photos, tmp_path):
    out = data.write_evaluation_set(small_photos, "inpainting_freeform_20_30", tmp_path / "set", 48, seed=4)
    names = data.read_file_list(out / "names.txt")
    assert len(names) == 4 and len(set(names)) == 4  # the clashing stem was made unique
    assert names[3] == f"{small_photos[0].stem}_2"
    for folder in ("source", "target", "mask"):
        assert sorted(p.stem for p in (out / folder).glob("*.png")) == sorted(names)
    for index, name in enumerate(names):
        target = load_image(out / "target" / f"{name}.png")
        assert np.array_equal(target, data.center_square_crop(load_image(small_photos[index]), 48))
        mask = load_mask(out / "mask" / f"{name}.png")
        assert 0.2 < mask.mean() < 0.3
        source = load_image(out / "source" / f"{name}.png")
        assert np.all(source[mask] == 128)  # mid-grey: the value 0 in [-1, 1]
        assert np.array_equal(source[~mask], target[~mask])
        # the same degradation the seeded generator gives
        expected = degrade("inpainting_freeform_20_30", to_tensor(target), np.random.default_rng([4, index]))
        assert np.array_equal(mask, expected.mask[0].numpy().astype(bool))
    evaluation = data.EvaluationSet(out)
    item = evaluation[0]
    assert item["name"] == names[0] and item["has_mask"] and item["has_target"]
    hole = item["mask"].bool().expand(3, -1, -1)
    assert torch.all(item["source"][hole] == 0)
    batch = next(iter(DataLoader(evaluation, batch_size=4)))
    assert batch["source"].shape == (4, 3, 48, 48)


def test_write_evaluation_set_without_mask(small_photos, tmp_path):
    out = data.write_evaluation_set(small_photos, "jpeg_q10", tmp_path / "jpeg", 32, seed=0, num_images=2)
    assert not (out / "mask").exists()
    assert len(list((out / "source").glob("*.png"))) == 2
    item = data.load_evaluation_pair(out, small_photos[1].stem)
    assert not item["has_mask"] and torch.equal(item["mask"], torch.zeros(1, 32, 32))
    assert not torch.equal(item["source"], item["target"])


def test_an_evaluation_subset_of_crops_takes_every_photo_and_scale_in_turn():
    # a sorted demo test list: all of one photo's crops come first
    files = [f"/crops/{photo}__s{scale}_{k:03d}.png" for photo in ("chelsea", "flower")
             for scale in (100, 25, 50) for k in range(10)]
    chosen = data.spread_selection(files, 12)
    assert len(set(chosen)) == 12 and set(chosen) <= set(files)
    photos = [Path(f).name.split("__")[0] for f in chosen]
    assert photos == ["chelsea", "flower"] * 6  # alternating, an equal share each
    assert {Path(f).name.split("__")[1].split("_")[0] for f in chosen} == {"s100", "s25", "s50"}
    assert data.spread_selection(files, 3) == [files[0], files[30], files[29]]  # 2 of chelsea: its ends
    # a plain list (no crop names) keeps its first files, in order, as the paper's test lists do
    plain = [f"/val/ILSVRC2012_val_{k:08d}.JPEG" for k in range(1, 8)]
    assert data.spread_selection(plain, 3) == plain[:3] and data.spread_selection(plain, None) == plain


def test_write_evaluation_set_uses_released_masks(small_photos, tmp_path):
    released = np.zeros((2, 256, 256), bool)
    released[0, :, :64] = True   # left quarter
    released[1, 192:, :] = True  # bottom quarter
    np.savez(tmp_path / "masks.npz", **{"10-20% freeform": np.packbits(released, axis=None)})
    out = data.write_evaluation_set(small_photos[:3], "inpainting_freeform_10_20", tmp_path / "set", 64,
                                    seed=0, masks_file=tmp_path / "masks.npz")
    names = data.read_file_list(out / "names.txt")
    first, second, third = (load_mask(out / "mask" / f"{n}.png") for n in names)
    assert first[:, :16].all() and not first[:, 16:].any()
    assert second[48:].all() and not second[:48].any()
    assert np.array_equal(third, first)  # masks are reused cyclically
    assert '"released"' in (out / "info.json").read_text()


def test_split_holdout_sends_named_photos_to_their_split():
    files = [f"crops/{photo}__s100_{k:03d}.png" for photo in ("astronaut", "chelsea", "flower", "rocket", "china")
             for k in range(3)] + [f"crops/motorcycle_left__s50_{k:03d}.png" for k in range(2)]
    splits = data.split_files(files, {"train": 1.0, "val": 0.0, "test": 0.0}, seed=3,
                              holdout={"test": ["chelsea", "flower"], "val": ["motorcycle"]})
    assert {Path(f).name.split("__")[0] for f in splits["test"]} == {"chelsea", "flower"}
    assert {Path(f).name.split("__")[0] for f in splits["val"]} == {"motorcycle_left"}
    assert len(splits["train"]) == 9 and not set(splits["train"]) & set(splits["test"] + splits["val"])
    with pytest.raises(ValueError, match="match no photo"):
        data.split_files(files, {"train": 1.0, "val": 0.0, "test": 0.0}, holdout={"test": ["kitten"]})
