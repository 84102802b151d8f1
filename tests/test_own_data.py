"""Your own data: dataset.kind folder and paired, the data check, and the prepare stage.

Images are made from the photos that install with the project (palette.data.demo_photo_paths),
shrunk so that the two end-to-end DAG runs (marked slow) take a minute or two each.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from PIL import Image

from palette.data import (
    PairedDataset, center_square_crop, demo_photo_paths, paired_source_path, read_file_list, resize,
    write_evaluation_set,
)
from palette.datacheck import DataCheckError, check_splits, enforce, summary_table
from palette.imageio import load_image, save_image
from palette.prepare import prepare_split
from palette.workflow_data import DataLayoutError, folder_splits, match_pairs, paired_splits

ROOT = Path(__file__).resolve().parents[1]


def _photos(count: int = 12, long_side: int = 72) -> list[np.ndarray]:
    """`count` distinct, non-square images: the installed photos shrunk, then their mirrored
    and cropped variants (every one a different array, so no accidental duplicates)."""
    photos = []
    for path in demo_photo_paths():
        image = load_image(path)
        height, width = image.shape[:2]
        factor = long_side / max(height, width)
        photos.append(resize(image, max(8, round(height * factor)), max(8, round(width * factor))))
    images = list(photos)
    for photo in photos:
        if len(images) >= count:
            break
        images.append(np.ascontiguousarray(photo[:, ::-1]))
    return images[:count]


def _corrupt_jpeg(path: Path, image: np.ndarray) -> Path:
    """A truncated JPEG: the first half of a valid file's bytes."""
    Image.fromarray(image).save(path, format="JPEG", quality=90)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def make_folder(root: Path, count: int = 12) -> list[Path]:
    """A folder of `count` images at two depths, in several modes: RGB PNG and JPEG, gray,
    RGBA, 16-bit, one smaller than 32 px; plus one truncated JPEG."""
    root.mkdir(parents=True, exist_ok=True)
    images = _photos(count)
    written = []
    for index, image in enumerate(images):
        folder = root / ("nested/deeper" if index % 3 == 0 else "")
        folder.mkdir(parents=True, exist_ok=True)
        if index == 1:
            path = folder / f"photo{index:02d}_gray.png"
            Image.fromarray(image).convert("L").save(path)
        elif index == 2:
            path = folder / f"photo{index:02d}_rgba.png"
            alpha = np.full(image.shape[:2], 200, np.uint8)
            Image.fromarray(np.dstack([image, alpha])).save(path)
        elif index == 4:
            path = folder / f"photo{index:02d}_16bit.png"
            cv2.imwrite(str(path), (image[..., ::-1].astype(np.uint16) * 257))
        elif index == 5:
            path = folder / f"photo{index:02d}_small.png"
            save_image(path, resize(image, 20, 26))
        elif index % 2:
            path = folder / f"photo{index:02d}.jpg"
            Image.fromarray(image).save(path, quality=92)
        else:
            path = save_image(folder / f"photo{index:02d}.png", image)
        written.append(path)
    written.append(_corrupt_jpeg(root / "nested" / "broken.jpg", images[0]))
    return written


def make_pairs(root: Path, count: int = 12, held_out: bool = False) -> None:
    """source/ and target/ with matching names (source .jpg, target .png) in train/ and test/
    sub-folders (and with `held_out` two pairs in val/, an FID reference besides the test pairs):
    the user's own degradation, here a blur and a colour cast of the target."""
    for index, image in enumerate(_photos(count)):
        split = "test" if index % 3 == 0 else "val" if held_out and index in (1, 4) else "train"
        name = f"{split}/pair{index:02d}"
        degraded = cv2.GaussianBlur(image, (5, 5), 1.5)
        degraded = np.clip(degraded.astype(np.int16) + np.array([20, 0, -20]), 0, 255).astype(np.uint8)
        save_image(root / "target" / f"{name}.png", image)
        (root / "source" / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(degraded).save(root / "source" / f"{name}.jpg", quality=95)


# --------------------------------------------------------------------------------------------
# Listing and splitting


def test_folder_is_split_by_the_seeded_rule_and_subfolders_are_used_as_given(tmp_path):
    files = make_folder(tmp_path / "images")
    fractions = {"train": 0.6, "val": 0.1, "test": 0.3}
    splits = folder_splits(tmp_path / "images", fractions, seed=0)
    listed = sorted(f for part in splits.values() for f in part)
    assert listed == sorted(str(f) for f in files)  # every depth, nothing twice
    assert splits == folder_splits(tmp_path / "images", fractions, seed=0)
    assert all(splits[name] for name in ("train", "val", "test"))

    given = tmp_path / "given"
    for split in ("train", "test"):
        (given / split / "sub").mkdir(parents=True)
    save_image(given / "train" / "sub" / "a.png", np.zeros((8, 8, 3), np.uint8))
    save_image(given / "test" / "b.png", np.zeros((8, 8, 3), np.uint8))
    splits = folder_splits(given, fractions, seed=0)
    assert [Path(f).name for f in splits["train"]] == ["a.png"] and splits["val"] == []
    assert [Path(f).name for f in splits["test"]] == ["b.png"]
    shutil.rmtree(given / "test")
    with pytest.raises(DataLayoutError, match="train/ and test/"):
        folder_splits(given, fractions, seed=0)
    with pytest.raises(DataLayoutError, match="not a folder"):
        folder_splits(tmp_path / "missing", fractions, seed=0)


def test_pairs_match_by_name_across_extensions_and_orphans_are_named(tmp_path):
    make_pairs(tmp_path / "pairs")
    splits, pairs = paired_splits(tmp_path / "pairs", {"train": 0.8, "val": 0.1, "test": 0.1}, seed=0)
    assert len(pairs) == 12 and len(splits["test"]) == 4 and len(splits["train"]) == 8
    for target, source in pairs.items():
        assert Path(target).parts[-2:][0] == Path(source).parts[-2:][0]
        assert Path(target).stem == Path(source).stem and Path(source).suffix == ".jpg"
    (tmp_path / "pairs" / "source" / "train" / "pair01.jpg").unlink()
    with pytest.raises(DataLayoutError, match="pair01.png has no source"):
        match_pairs(tmp_path / "pairs" / "source", tmp_path / "pairs" / "target")


# --------------------------------------------------------------------------------------------
# The data check


def test_data_check_reports_modes_small_corrupt_and_cross_split_duplicates(tmp_path):
    files = make_folder(tmp_path / "images")
    duplicate = tmp_path / "images" / "copy_of_photo00.png"
    shutil.copyfile(files[0], duplicate)
    broken = str(files[-1])
    splits = {"train": [str(f) for f in files[:8]] + [broken], "val": [str(files[8])],
              "test": [str(f) for f in files[9:12]] + [str(duplicate)]}
    report = check_splits(splits, image_size=32, on_bad_file="skip")

    assert [item["path"] for item in report["unreadable"]] == [broken]
    assert "truncated or corrupt" in report["unreadable"][0]["error"] or "verify failed" in report["unreadable"][0]["error"]
    assert report["skipped"] == [broken]
    modes = report["splits"]["train"]["modes"]
    assert modes["L"] == 1 and modes["RGBA"] == 1 and modes["16-bit RGB"] == 1, modes
    assert "value / 257" in report["conversions"]["16-bit RGB"]
    assert "white" in report["conversions"]["RGBA"]
    assert [Path(item["path"]).name for item in report["smaller"]] == ["photo05_small.png"]
    assert report["splits"]["train"] == {**report["splits"]["train"], "listed": 9, "usable": 8, "smaller_than_image_size": 1}
    [leak] = report["duplicates_across_splits"]
    assert {(f["split"], f["path"]) for f in leak["files"]} == {("train", str(files[0])), ("test", str(duplicate))}
    with pytest.raises(DataCheckError, match="data leak") as raised:
        enforce(report)
    assert str(files[0]) in str(raised.value) and str(duplicate) in str(raised.value)

    rows = summary_table(report)
    assert [row["split"] for row in rows] == ["train", "val", "test"]
    assert rows[0]["unreadable"] == 1 and "L 1" in rows[0]["modes"]

    clean = {"train": splits["train"], "val": splits["val"], "test": splits["test"][:-1]}
    enforce(check_splits(clean, image_size=32, on_bad_file="skip"))  # skipped, not an error
    with pytest.raises(DataCheckError, match="unreadable image .*broken.jpg"):
        enforce(check_splits(clean, image_size=32, on_bad_file="fail"))


# --------------------------------------------------------------------------------------------
# The prepare stage, and training reading it


def test_prepare_writes_center_square_resize_of_the_originals(tmp_path):
    files = make_folder(tmp_path / "images")
    broken = str(files[-1])
    prepared = prepare_split(files, tmp_path / "prepared", image_size=32, skip=[broken])
    assert len(prepared) == len(files) - 1
    for original, path in zip(files[:-1], prepared):
        assert path.parent == tmp_path / "prepared" and path.suffix == ".png"
        np.testing.assert_array_equal(load_image(path), center_square_crop(load_image(original), 32))
    ready = save_image(tmp_path / "ready.png", center_square_crop(load_image(files[0]), 32))
    assert prepare_split([ready], tmp_path / "ready", image_size=32) == [ready]  # already the model's size
    native = prepare_split(files, tmp_path / "native", image_size=32, preprocess="random_crop_native", skip=[broken])
    assert native == [Path(f) for f in files[:-1]]
    with pytest.raises(ValueError, match="dataset.preprocess"):
        prepare_split(files, tmp_path / "x", image_size=32, preprocess="squash")


def test_prepared_pairs_share_one_crop_and_feed_the_paired_task(tmp_path):
    make_pairs(tmp_path / "pairs")
    splits, pairs = paired_splits(tmp_path / "pairs", {"train": 0.8, "val": 0.1, "test": 0.1}, seed=0)
    prepared = prepare_split(splits["train"], tmp_path / "prepared", image_size=32, sources=pairs)
    for target, path in zip(splits["train"], prepared):
        assert path.parent.name == "target"
        source = paired_source_path(path)
        np.testing.assert_array_equal(load_image(source), center_square_crop(load_image(pairs[target]), 32))

    dataset = PairedDataset(prepared, "paired", 32, seed=0, train=True)
    flipped = 0
    for index in range(len(dataset)):
        item = dataset[index]
        assert not item["has_mask"] and float(item["mask"].abs().sum()) == 0
        target = load_image(prepared[index])
        source = load_image(paired_source_path(prepared[index]))
        as_uint8 = lambda t: ((t.permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8)  # noqa: E731
        got_target, got_source = as_uint8(item["target"]), as_uint8(item["source"])
        same = np.array_equal(got_target, target)
        assert same or np.array_equal(got_target, target[:, ::-1])  # a horizontal flip, nothing else
        assert np.array_equal(got_source, source if same else source[:, ::-1])  # the same flip for both
        flipped += not same
    assert 0 < flipped < len(dataset)

    # random_crop_native: the pairs at native resolution, one random crop for both images
    identical = {target: target for target in splits["train"]}  # the pair's source is its target
    native = prepare_split(splits["train"], tmp_path / "native", image_size=32, preprocess="random_crop_native",
                           sources=identical)
    assert load_image(native[0]).shape == load_image(splits["train"][0]).shape
    item = PairedDataset(native, "paired", 32, seed=0, train=True)[0]
    assert item["target"].shape == (3, 32, 32) and bool((item["source"] == item["target"]).all())

    out = write_evaluation_set(prepared[:3], "paired", tmp_path / "evaluation", image_size=32)
    assert not (out / "mask").exists()
    for path in prepared[:3]:
        np.testing.assert_array_equal(load_image(out / "source" / f"{path.stem}.png"), load_image(paired_source_path(path)))


def test_training_reads_the_prepared_files(tmp_path, monkeypatch):
    """The trainer's loader opens exactly the files of the prepared list, never the originals."""
    from palette import data
    from palette.config import load_config

    files = make_folder(tmp_path / "images")[:-1]
    prepared = prepare_split(files, tmp_path / "prepared", image_size=32)
    listing = data.write_file_list(tmp_path / "prepared.txt", prepared)
    opened = []
    real_load = data.load_image
    monkeypatch.setattr(data, "load_image", lambda path: opened.append(Path(path)) or real_load(path))
    config = load_config({"train_files": str(listing), "task": "colorization", "image_size": 32, "batch_size": 4,
                          "num_workers": 0, "preset": "tiny"})
    batch = next(iter(data.make_loader(config, 0, 1, 0, 1, False)))
    assert batch["target"].shape == (4, 3, 32, 32)
    assert opened and set(opened) <= set(prepared)


# --------------------------------------------------------------------------------------------
# The workflow on a folder and on pairs


def _config(tmp_path: Path, dataset: dict, experiments: dict) -> Path:
    config = yaml.safe_load((ROOT / "config" / "test.yaml").read_text())
    config.update(results_dir=str(tmp_path / "results"), work_dir=str(tmp_path / "work"))
    config["dataset"] = {"name": dataset["kind"], "image_size": 32, "evaluation_images": 3,
                         "split": {"train": 0.6, "val": 0.1, "test": 0.3}, **dataset}
    config["experiments"] = experiments
    config["study"] = {}  # no human study (a file layered over config.yaml must say so: palette.layering)
    config["sampling"]["sweep"] = None  # no quality-vs-steps sweep
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _snakemake(*arguments, timeout=600):
    return subprocess.run([sys.executable, "-m", "snakemake", *arguments], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def test_a_folder_plans_every_task(tmp_path):
    make_folder(tmp_path / "images")
    default = yaml.safe_load((ROOT / "config.yaml").read_text())
    config = _config(tmp_path, {"kind": "folder", "root": str(tmp_path / "images")}, default["experiments"])
    plan = _snakemake("-n", "--configfile", str(config))
    assert plan.returncode == 0, plan.stdout[-3000:] + plan.stderr[-3000:]
    for rule in ("list_folder", "check_data", "prepare_split", "write_evaluation_set", "train", "html_report"):
        assert rule in plan.stdout


def test_paired_task_needs_paired_data(tmp_path):
    make_folder(tmp_path / "images")
    config = _config(tmp_path, {"kind": "folder", "root": str(tmp_path / "images")},
                     {"mine": {"train": {"task": "paired"}, "evaluate_on": ["paired"]}})
    plan = _snakemake("-n", "--configfile", str(config))
    assert plan.returncode != 0 and "needs dataset.kind paired" in plan.stdout + plan.stderr


def test_a_cross_split_duplicate_stops_the_data_check(tmp_path):
    root = tmp_path / "images"
    files = make_folder(root / "train")
    (root / "test").mkdir()
    shutil.copyfile(files[3], root / "test" / "leaked.png")
    save_image(root / "test" / "fine.png", load_image(files[0])[::-1])
    config = _config(tmp_path, {"kind": "folder", "root": str(root)}, {"inpainting": {"train": {"task": "inpainting"}, "evaluate_on": ["inpainting_center"]}})
    run = _snakemake(str(tmp_path / "results" / "data" / "check.json"), "--cores", "1", "--configfile", str(config))
    assert run.returncode != 0, run.stdout[-3000:]
    log = (tmp_path / "results" / "logs" / "data" / "check_data.log").read_text()
    assert "data leak" in log and str(files[3]) in log and str(root / "test" / "leaked.png") in log
    assert "broken.jpg" in log  # the corrupt file is reported too


@pytest.mark.slow
def test_folder_dag_end_to_end(tmp_path):
    make_folder(tmp_path / "images")
    experiments = {
        "inpainting": {"role": "task_model", "train": {"task": "inpainting"}, "evaluate_on": ["inpainting_center"]},
        "colorization_regression": {"role": "regression", "train": {"task": "colorization", "objective": "regression"},
                                    "evaluate_on": ["colorization"]},
    }
    config = _config(tmp_path, {"kind": "folder", "root": str(tmp_path / "images")}, experiments)
    run = _snakemake("--cores", "2", "--configfile", str(config), timeout=900)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    results = tmp_path / "results"
    check = json.loads((results / "data" / "check.json").read_text())
    assert [Path(item["path"]).name for item in check["unreadable"]] == ["broken.jpg"]
    train = read_file_list(results / "data" / "prepared" / "train.txt")
    assert train and all(Path(f).parent == results / "data" / "prepared" / "train" for f in train)
    assert all(load_image(f).shape == (32, 32, 3) for f in train)
    assert not any("broken" in f for split in ("train", "test") for f in read_file_list(results / "data" / "prepared" / f"{split}.txt"))
    for path in (p for p in (results / "metrics").rglob("*.json") if p.parent.name != "ground_truth"):
        assert 0 < json.loads(path.read_text())["psnr"] < 100
    html = (results / "report.html").read_text()
    assert "Data check" in html and "broken.jpg" in html and "16-bit RGB" in html


def test_pairs_without_held_out_images_are_no_fid_reference(tmp_path):
    """train/ and test/ only: the reference (val + test) would be the test pairs, the evaluation
    targets themselves (docs/paper.md); the reference listing refuses and says what to add."""
    make_pairs(tmp_path / "pairs")
    experiments = {"mine": {"train": {"task": "paired"}, "evaluate_on": ["paired"]}}
    config = _config(tmp_path, {"kind": "paired", "root": str(tmp_path / "pairs")}, experiments)
    target = tmp_path / "results" / "reference" / "paired_heldout.txt"
    run = _snakemake(str(target), "--cores", "1", "--configfile", str(config))
    assert run.returncode != 0 and not target.exists(), run.stdout[-3000:]
    log = (tmp_path / "results" / "logs" / "reference" / "list_reference_images.log").read_text()
    assert "all 4 FID reference images are test images" in log and "a val/ sub-folder of dataset.root" in log


@pytest.mark.slow
def test_paired_dag_end_to_end(tmp_path):
    make_pairs(tmp_path / "pairs", held_out=True)
    experiments = {"mine": {"role": "task_model", "description": "my scanner", "train": {"task": "paired"},
                            "evaluate_on": ["paired"]}}
    config = _config(tmp_path, {"kind": "paired", "root": str(tmp_path / "pairs")}, experiments)
    run = _snakemake("--cores", "2", "--configfile", str(config), timeout=900)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    results = tmp_path / "results"
    evaluation = results / "evaluation_sets" / "paired"
    assert not (evaluation / "mask").exists() and len(list((evaluation / "source").glob("*.png"))) == 3
    # the evaluation source is the user's own degraded file, centre-cropped, not a synthetic degradation
    name = read_file_list(evaluation / "names.txt")[0]
    original = tmp_path / "pairs" / "source" / "test" / f"{name}.jpg"
    np.testing.assert_array_equal(load_image(evaluation / "source" / f"{name}.png"), center_square_crop(load_image(original), 32))
    metrics = json.loads((results / "metrics" / "mine" / "paired" / "ddim_2.json").read_text())
    assert metrics["n_images"] == 3 and 0 < metrics["psnr"] < 100
    html = (results / "report.html").read_text()
    assert "Data check" in html and "test (source)" in html
