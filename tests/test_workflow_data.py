"""Data rules' helpers: safe extraction, checked downloads, the evaluation lists, layout checks."""

from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from palette.workflow_data import (
    IMAGENET_VAL_ARCHIVE,
    PLACES365_ARCHIVES,
    PLACES365_URL,
    ChecksumError,
    DataLayoutError,
    UnsafeArchiveError,
    check_celebahq_layout,
    check_imagenet_layout,
    download,
    extract_imagenet_validation,
    missing_data,
    missing_data_report,
    places10k_names,
    places2_archive_source,
    read_ctest10k,
    safe_extract,
)

ROOT = Path(__file__).resolve().parents[1]


def _tar_with(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return path


def _file(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def test_safe_extract_writes_regular_files(tmp_path):
    archive = _tar_with(tmp_path / "ok.tar", [_file("val_256/a.jpg", b"1"), _file("val_256/sub/b.jpg", b"22")])
    written = safe_extract(archive, tmp_path / "out")
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in written) == ["val_256/a.jpg", "val_256/sub/b.jpg"]
    assert (tmp_path / "out" / "val_256" / "sub" / "b.jpg").read_bytes() == b"22"


@pytest.mark.parametrize("name", ["../evil.txt", "/etc/evil.txt", "a/../../evil.txt"])
def test_safe_extract_refuses_path_traversal(tmp_path, name):
    archive = _tar_with(tmp_path / "bad.tar", [_file("fine.txt"), _file(name)])
    with pytest.raises(UnsafeArchiveError):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()
    assert not (tmp_path / "out" / "fine.txt").exists()  # checked before anything is written


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE])
def test_safe_extract_refuses_links(tmp_path, kind):
    link = tarfile.TarInfo("link")
    link.type, link.linkname = kind, "/etc/passwd"
    archive = _tar_with(tmp_path / "link.tar", [(link, None)])
    with pytest.raises(UnsafeArchiveError):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out" / "link").exists()


def test_safe_extract_zip_refuses_traversal_and_symlinks(tmp_path):
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zipped:
        zipped.writestr("../evil.txt", b"x")
    with pytest.raises(UnsafeArchiveError):
        safe_extract(bad, tmp_path / "out")
    linked = tmp_path / "link.zip"
    with zipfile.ZipFile(linked, "w") as zipped:
        info = zipfile.ZipInfo("link")
        info.external_attr = (0o120777 << 16)  # a symbolic link
        zipped.writestr(info, "/etc/passwd")
    with pytest.raises(UnsafeArchiveError):
        safe_extract(linked, tmp_path / "out")
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w") as zipped:
        zipped.writestr("d/a.txt", b"hello")
    safe_extract(good, tmp_path / "out")
    assert (tmp_path / "out" / "d" / "a.txt").read_bytes() == b"hello"


def test_download_checks_digests_and_keeps_good_files(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(b"palette" * 1000)
    md5 = hashlib.md5(source.read_bytes()).hexdigest()
    target = tmp_path / "data" / "file.bin"
    download(source.as_uri(), target, md5=md5)
    assert target.read_bytes() == source.read_bytes()
    mtime = target.stat().st_mtime_ns
    download(source.as_uri(), target, md5=md5)  # present and correct: kept, not fetched again
    assert target.stat().st_mtime_ns == mtime
    with pytest.raises(ChecksumError):
        download(source.as_uri(), tmp_path / "data" / "other.bin", sha256="0" * 64)
    assert not (tmp_path / "data" / "other.bin").exists()
    assert not list((tmp_path / "data").glob("*.part"))


def test_places10k_takes_the_first_30_of_each_class(tmp_path):
    lines = [f"Places365_val_{i:08d}.jpg {i % 3}" for i in range(1, 301)]
    val_list = tmp_path / "places365_val.txt"
    val_list.write_text("\n".join(lines) + "\n")
    names = places10k_names(val_list, per_class=30, classes=3)
    assert len(names) == 90 and len(set(names)) == 90
    assert names[:2] == ["Places365_val_00000003.jpg", "Places365_val_00000006.jpg"]  # class 0 first
    with pytest.raises(DataLayoutError, match="3 classes, expected 365"):
        places10k_names(val_list, per_class=30, classes=365)
    with pytest.raises(DataLayoutError, match="class 0 has 100 validation images, places10k takes 101"):
        places10k_names(val_list, per_class=101, classes=3)


def test_places2_archives_come_from_the_official_site_unless_configured():
    name = "val_256.tar"
    assert places2_archive_source({"url": None, "md5": {}}, name) == (PLACES365_URL + name, PLACES365_ARCHIVES[name])
    url, md5 = places2_archive_source({"url": "file:///data/standin", "md5": {name: "a" * 32}}, name)
    assert (url, md5) == ("file:///data/standin/val_256.tar", "a" * 32)
    other = "train_256_places365standard.tar"  # an archive without an override keeps its digest
    assert places2_archive_source({"url": "file:///x/", "md5": {name: "a" * 32}}, other)[1] == PLACES365_ARCHIVES[other]


def test_ctest10k_list_is_checked(tmp_path):
    good = tmp_path / "ctest.txt"
    good.write_text("".join(f"/data/val/ILSVRC2012_val_{i:08d}.JPEG {i % 1000}\n" for i in range(1, 11)))
    assert read_ctest10k(good, expected_count=10)[0] == "ILSVRC2012_val_00000001.JPEG"
    with pytest.raises(DataLayoutError):
        read_ctest10k(good, expected_count=10000)
    bad = tmp_path / "bad.txt"
    bad.write_text("not_an_imagenet_file.png\n")
    with pytest.raises(DataLayoutError, match="ILSVRC2012"):
        read_ctest10k(bad, expected_count=1)


def test_licence_gated_data_fail_with_instructions(tmp_path):
    with pytest.raises(DataLayoutError, match="image-net.org"):
        check_imagenet_layout(tmp_path / "imagenet", min_classes=1000, expected_val=50000)
    with pytest.raises(DataLayoutError, match="CelebA"):
        check_celebahq_layout(tmp_path / "celebahq", expected=30000)
    folder = tmp_path / "celebahq"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i:05d}.png").write_bytes(b"")
    assert len(check_celebahq_layout(folder, expected=3)) == 3


# ----------------------------------------------------------------------------- ImageNet layouts
WNIDS = ["n01440764", "n01443537"]


def make_imagenet(root: Path, layout: str, images: int = 6, label_file: bool = False) -> Path:
    """A fake ILSVRC2012 tree: two class folders, `images` validation images in `layout` (flat,
    wnid, or tar: ILSVRC2012_img_val.tar placed in root); image n is of class n % 2."""
    for wnid in WNIDS:
        (root / "train" / wnid).mkdir(parents=True)
        (root / "train" / wnid / f"{wnid}_1.JPEG").write_bytes(b"jpeg")
    names = [f"ILSVRC2012_val_{n:08d}.JPEG" for n in range(1, images + 1)]
    if layout == "tar":
        members = [_file(name, b"jpeg") for name in names]
        _tar_with(root / IMAGENET_VAL_ARCHIVE[0], members)
    for number, name in enumerate(names, start=1):
        if layout != "tar":
            folder = root / "val" / (WNIDS[number % 2] if layout == "wnid" else "")
            folder.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(b"jpeg")
    if label_file:
        (root / "imagenet_2012_validation_synset_labels.txt").write_text(
            "".join(f"{WNIDS[n % 2]}\n" for n in range(1, images + 1)))
    return root


@pytest.mark.parametrize("layout", ["flat", "wnid"])
def test_imagenet_layout_accepts_flat_and_class_folders(tmp_path, layout):
    root = make_imagenet(tmp_path / "imagenet", layout)
    check_imagenet_layout(root, min_classes=2, expected_val=6)
    with pytest.raises(DataLayoutError, match=r"has 6 ILSVRC2012_val_\*.JPEG files .*expected 7"):
        check_imagenet_layout(root, min_classes=2, expected_val=7)
    with pytest.raises(DataLayoutError, match="has 2 class folders, expected 3"):
        check_imagenet_layout(root, min_classes=3, expected_val=6)


def test_a_placed_validation_archive_is_checked_and_extracted(tmp_path):
    root = make_imagenet(tmp_path / "imagenet", "tar")
    archive = root / IMAGENET_VAL_ARCHIVE[0]
    with pytest.raises(ChecksumError):  # not the published archive
        extract_imagenet_validation(root)
    assert not (root / "val").exists() and not (root / ".val.partial").exists()
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    assert extract_imagenet_validation(root, md5=md5)
    check_imagenet_layout(root, min_classes=2, expected_val=6)
    assert not extract_imagenet_validation(root, md5=md5)  # val/ is there: nothing to do


# ----------------------------------------------------------------------------- missing data
def preset(name: str, root: Path, **evaluation) -> tuple[dict, dict]:
    """The validated (defaults filled) dataset and evaluation sections of a preset, data in `root`."""
    config = yaml.safe_load((ROOT / "config" / "presets" / f"{name}.yaml").read_text())
    config["dataset"]["root"] = str(root)
    config["evaluation"].update(evaluation)
    validate(config, str(ROOT / "config" / "schema.yaml"))
    return config["dataset"], config["evaluation"]


def test_missing_imagenet_names_train_val_and_labels(tmp_path):
    missing = missing_data(*preset("imagenet", tmp_path / "data"))
    assert [item.dataset for item in missing] == ["ImageNet (ILSVRC2012)"] * 3
    assert [Path(item.where) for item in missing] == [
        tmp_path / "data" / "imagenet" / "train", tmp_path / "data" / "imagenet" / "val",
        tmp_path / "data" / "imagenet" / "imagenet_2012_validation_synset_labels.txt"]
    assert "1,000" in missing[0].what and "50,000" in missing[1].what and "image-net.org" in missing[0].how
    # without CA the labels are not needed
    assert len(missing_data(*preset("imagenet", tmp_path / "data", metrics=["fid", "psnr"]))) == 2


@pytest.mark.parametrize("layout, label_file, missing_labels", [
    ("flat", False, True), ("flat", True, False), ("wnid", False, False), ("tar", False, True), ("tar", True, False)])
def test_placed_imagenet_is_not_missing(tmp_path, layout, label_file, missing_labels):
    make_imagenet(tmp_path / "data" / "imagenet", layout, label_file=label_file)
    missing = missing_data(*preset("imagenet", tmp_path / "data"))
    assert [("labels for CA" in item.what) for item in missing] == ([True] if missing_labels else [])


def test_named_labels_file_and_masks_file_that_are_not_there(tmp_path):
    make_imagenet(tmp_path / "data" / "imagenet", "wnid")
    dataset, evaluation = preset("imagenet", tmp_path / "data", imagenet_labels=str(tmp_path / "labels.csv"),
                                 masks_file=str(tmp_path / "masks.npz"))
    missing = missing_data(dataset, evaluation)
    assert [(item.what, Path(item.where)) for item in missing] == [
        ("the validation labels for CA: evaluation.imagenet_labels names no file", tmp_path / "labels.csv"),
        ("evaluation.masks_file names no file", tmp_path / "masks.npz")]
    report = missing_data_report(missing)
    assert report.splitlines()[0] == "Missing data: ImageNet (ILSVRC2012)"
    assert "\n\nMissing data: the paper's evaluation masks (evaluation.masks_file)\n  what:  " in report
    assert report.count("  where: ") == 2 and report.count("  how:   ") == 2


def test_missing_celebahq_places2_and_own_data(tmp_path):
    data = tmp_path / "data"
    [celebahq] = missing_data(*preset("celebahq", data))
    assert celebahq.dataset == "CelebA-HQ" and "30,000" in celebahq.what and Path(celebahq.where) == data / "celebahq"
    (data / "celebahq" / "faces").mkdir(parents=True)
    (data / "celebahq" / "faces" / "00000.png").write_bytes(b"png")
    assert missing_data(*preset("celebahq", data)) == []
    assert missing_data(*preset("places2", tmp_path / "absent")) == []  # the workflow downloads it
    (tmp_path / "a_file").write_text("")
    [places2] = missing_data(*preset("places2", tmp_path / "a_file"))
    assert "is a file, not a folder" in places2.what
    dataset, evaluation = preset("celebahq", data)
    folder = dict(dataset, kind="folder", root=str(tmp_path / "mine"))
    assert [item.what for item in missing_data(folder, evaluation)] == ["no images in dataset.root"]
    paired = dict(dataset, kind="paired", root=str(data / "celebahq"))
    (data / "celebahq" / "source").mkdir()
    (data / "celebahq" / "source" / "a.jpg").write_bytes(b"jpg")
    assert [item.what for item in missing_data(paired, evaluation)] == ["no images in target/"]
