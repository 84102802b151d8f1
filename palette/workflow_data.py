"""Getting the paper's data sets onto disk, checked: downloads, checksums, safe extraction, file lists.

The workflow's data rules call these functions. Three data sets, three situations:

- **Places2** (Places365-Standard, 256x256) is published as plain archives with known md5
  digests: `download` fetches them atomically and checks the digest, `safe_extract` unpacks them.
  The evaluation set `places10k` (docs/paper.md: 10,950 validation images, 30 per class) is not
  published as a list; `places10k_names` rebuilds it deterministically as the first 30
  (dataset.expected.places10k_per_class) validation images of each class in the official list.
  dataset.places2_archives can point the download elsewhere (the stand-ins of palette.standins).
- **ImageNet** (ILSVRC2012) and **CelebA-HQ** may not be downloaded by a script: their licences
  require the user to fetch them. `check_imagenet_layout` / `check_celebahq_layout` look at
  what the user placed and raise `DataLayoutError` with step-by-step instructions when it is
  missing or incomplete. The ctest10k list (Larsson et al. 2016) is public and downloaded.

`missing_data` tells, cheaply (a few folder entries, never a walk of the data set), which data a
configuration needs that is not there: the workflow prints it before the plan. The counts each
check expects (dataset.expected: the paper's sizes unless a miniature shrinks them) come in as
arguments.

Nothing here imports torch: the functions run in light jobs and while the DAG is built.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import shutil
import stat
import tarfile
import tempfile
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath
from typing import IO, Callable, NamedTuple

from palette.reference_sets import (
    IMAGENET_LABEL_FILES,
    IMAGENET_VAL_NAME,
    imagenet_validation_files,
    imagenet_validation_layout,
)


# Places365 archives and their md5 digests as published by the Places authors
# (the same digests torchvision's Places365 loader checks).
PLACES365_URL = "http://data.csail.mit.edu/places/places365/"
PLACES365_ARCHIVES = {
    "filelist_places365-standard.tar": "35a0585fee1fa656440f3ab298f8479c",
    "val_256.tar": "e27b17d8d44f4af9a78502beb927f808",
    "train_256_places365standard.tar": "53ca1c756c3d1e7809517cc47c5561c5",
}
# ILSVRC2012 validation archive, for a user who places the archive instead of the folder.
IMAGENET_VAL_ARCHIVE = ("ILSVRC2012_img_val.tar", "29b22e2961454d5413ddabcf34fc5622")
IMAGENET_DOWNLOAD_PAGE = "https://image-net.org/download.php"


class DataLayoutError(RuntimeError):
    """The data set on disk is missing or incomplete; the message says how to fix it."""


class ChecksumError(RuntimeError):
    """A downloaded or placed file does not have the recorded digest."""


class UnsafeArchiveError(RuntimeError):
    """An archive member would land outside the target folder, or is a link or device."""


def file_digest(path: str | Path, algorithm: str = "sha256", chunk_size: int = 1 << 20) -> str:
    """Hex digest of a file, read in chunks (archives are tens of GB)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_digest(path: str | Path, expected: str, algorithm: str) -> None:
    actual = file_digest(path, algorithm)
    if actual.lower() != expected.lower():
        raise ChecksumError(
            f"{path}: {algorithm} is {actual}, expected {expected}. The file is corrupt or "
            "not the published one; delete it and run the workflow again."
        )


def download(url: str, destination: str | Path, md5: str | None = None, sha256: str | None = None) -> Path:
    """Download `url` to `destination` atomically (temporary file, fsync, rename), then check it.

    An already present file with the right digest is kept, so an interrupted workflow does not
    fetch tens of GB again.
    """
    destination = Path(destination)
    checks = [(algorithm, value) for algorithm, value in (("md5", md5), ("sha256", sha256)) if value]
    if destination.exists() and checks:
        try:
            for algorithm, value in checks:
                verify_digest(destination, value, algorithm)
            return destination
        except ChecksumError:
            destination.unlink()
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=destination.parent, prefix=destination.name + ".", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            shutil.copyfileobj(response, out, length=1 << 20)
            out.flush()
            os.fsync(out.fileno())
        for algorithm, value in checks:
            verify_digest(temporary, value, algorithm)
        os.replace(temporary, destination)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return destination


def _safe_member_path(root: Path, name: str) -> Path:
    """Where an archive member would land; refuse absolute names and names that climb out."""
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts or (pure.parts and ":" in pure.parts[0]):
        raise UnsafeArchiveError(f"archive member {name!r} would be written outside {root}")
    target = (root / pure).resolve()
    if target != root and root not in target.parents:
        raise UnsafeArchiveError(f"archive member {name!r} would be written outside {root}")
    return target


def safe_extract(archive: str | Path, destination: str | Path) -> list[Path]:
    """Extract a tar (any compression) or zip archive into `destination`, refusing anything unsafe.

    Refused: absolute member names, `..` components, symbolic and hard links, devices and FIFOs.
    Every member is checked before anything is written, so a hostile archive leaves no trace.
    Returns the regular files written.
    """
    archive, root = Path(archive), Path(destination)
    root.mkdir(parents=True, exist_ok=True)
    root = root.resolve()
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tar:
            members = [
                _Member(m.name, "dir" if m.isdir() else "file" if m.isfile() else "other",
                        lambda m=m: tar.extractfile(m), m.mode)
                for m in tar.getmembers()
            ]
            return _extract_members(members, root, archive)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zipped:
            return _extract_members([_zip_member(zipped, info) for info in zipped.infolist()], root, archive)
    raise UnsafeArchiveError(f"{archive} is neither a tar nor a zip archive")


class _Member(NamedTuple):
    """One archive entry, whatever the archive format: kind is "file", "dir" or "other"."""

    name: str
    kind: str
    open: Callable[[], IO[bytes]]
    mode: int | None  # Unix permissions where the archive records them


def _zip_member(zipped: zipfile.ZipFile, info: zipfile.ZipInfo) -> _Member:
    # Unix file type in the high bits; zips made elsewhere leave it 0 (a plain file).
    file_type = stat.S_IFMT(info.external_attr >> 16)
    if file_type and file_type not in (stat.S_IFREG, stat.S_IFDIR):
        kind = "other"
    else:
        kind = "dir" if info.is_dir() else "file"
    return _Member(info.filename, kind, lambda: zipped.open(info), None)


def _extract_members(members: list[_Member], root: Path, archive: Path) -> list[Path]:
    for member in members:  # check everything before writing anything
        _safe_member_path(root, member.name)
        if member.kind == "other":
            raise UnsafeArchiveError(
                f"archive member {member.name!r} is a link or special file; refusing to extract {archive}"
            )
    written: list[Path] = []
    for member in members:
        target = _safe_member_path(root, member.name)
        if member.kind == "dir":
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with member.open() as source, open(target, "wb") as out:
            shutil.copyfileobj(source, out, length=1 << 20)
        if member.mode is not None:
            os.chmod(target, (member.mode & 0o755) | stat.S_IRUSR | stat.S_IWUSR)
        written.append(target)
    return written


# ---------------------------------------------------------------------------------------------
# Places2
# ---------------------------------------------------------------------------------------------


def places2_archive_source(settings: dict, archive: str) -> tuple[str, str]:
    """(url, md5) of one Places365 archive under dataset.places2_archives: the official address
    and published digest unless `url` (a folder URL, file:// included) or `md5[archive]` say
    otherwise, as for the stand-in archives of palette.standins."""
    base = settings.get("url") or PLACES365_URL
    base = base if base.endswith("/") else base + "/"
    return base + archive, (settings.get("md5") or {}).get(archive, PLACES365_ARCHIVES[archive])


def places10k_names(val_list: str | Path, per_class: int, classes: int | None = None) -> list[str]:
    """The places10k evaluation subset: the first `per_class` validation images of every class.

    `val_list` is `places365_val.txt` ("Places365_val_00000001.jpg 165" per line). The paper's
    exact list is not published; this rebuild has the paper's size (365 x 30 = 10,950) and is
    the same on every machine. With `classes`, DataLayoutError unless the list holds exactly
    that many classes, each with at least `per_class` images (so the set has classes x per_class).
    """
    chosen: dict[int, list[str]] = {}
    for line in Path(val_list).read_text().splitlines():
        if not line.strip():
            continue
        name, label = line.split()[:2]
        bucket = chosen.setdefault(int(label), [])
        if len(bucket) < per_class:
            bucket.append(name)
    if classes is not None:
        if len(chosen) != classes:
            raise DataLayoutError(f"{val_list}: {len(chosen)} classes, expected {classes} "
                                  "(dataset.expected.places2_classes)")
        short = sorted(label for label, names in chosen.items() if len(names) < per_class)
        if short:
            raise DataLayoutError(f"{val_list}: class {short[0]} has {len(chosen[short[0]])} validation images, "
                                  f"places10k takes {per_class} per class (dataset.expected.places10k_per_class)")
    return [name for label in sorted(chosen) for name in chosen[label]]


def places2_train_paths(train_list: str | Path, image_root: str | Path) -> list[str]:
    """Training image paths from `places365_train_standard.txt` ("/a/airfield/00000001.jpg 0")."""
    root = Path(image_root)
    paths = []
    for line in Path(train_list).read_text().splitlines():
        if line.strip():
            paths.append(str(root / line.split()[0].lstrip("/")))
    return paths


# ---------------------------------------------------------------------------------------------
# ImageNet
# ---------------------------------------------------------------------------------------------

IMAGENET_INSTRUCTIONS = """\
ImageNet (ILSVRC2012) cannot be downloaded automatically: its terms of access require each user
to register and accept them at {page}. Then:
  1. download ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar;
  2. unpack the training images as {root}/train/<wnid>/<name>.JPEG (one folder per class,
     {classes} classes); the {val_count} validation images as {root}/val/ILSVRC2012_val_XXXXXXXX.JPEG
     (flat) or {root}/val/<wnid>/ILSVRC2012_val_XXXXXXXX.JPEG (one folder per class), or simply
     place ILSVRC2012_img_val.tar in {root}/ (md5 {val_md5}) and the workflow extracts it safely;
  3. run the workflow again.
"""


def imagenet_instructions(root: str | Path, classes: int, val_count: int) -> str:
    return IMAGENET_INSTRUCTIONS.format(page=IMAGENET_DOWNLOAD_PAGE, root=root, classes=f"{classes:,}",
                                        val_count=f"{val_count:,}", val_md5=IMAGENET_VAL_ARCHIVE[1])


def _class_folders(train: Path) -> int:
    with os.scandir(train) as entries:
        return sum(1 for entry in entries if entry.is_dir())


def check_imagenet_layout(root: str | Path, min_classes: int, expected_val: int) -> None:
    """Raise DataLayoutError with instructions unless `root` holds ILSVRC2012 train (at least
    `min_classes` class folders) and val (at least `expected_val` images, flat or in <wnid>/
    folders)."""
    root = Path(root)
    problems = []
    train = root / "train"
    classes = _class_folders(train) if train.is_dir() else 0
    if classes < min_classes:
        problems.append(f"{train} has {classes} class folders, expected {min_classes}")
    val = root / "val"
    count = len(imagenet_validation_files(val)) if val.is_dir() else 0
    if count < expected_val:
        problems.append(f"{val} has {count} ILSVRC2012_val_*.JPEG files (flat or in <wnid>/ folders), "
                        f"expected {expected_val}")
    if problems:
        raise DataLayoutError("ImageNet is missing or incomplete:\n  - " + "\n  - ".join(problems) + "\n\n"
                              + imagenet_instructions(root, min_classes, expected_val))


def extract_imagenet_validation(root: str | Path, md5: str = IMAGENET_VAL_ARCHIVE[1]) -> bool:
    """When `root` holds ILSVRC2012_img_val.tar and no val/ folder: check the archive's md5 and
    extract it safely into val/ (through a temporary folder, so an interrupted extraction is
    redone rather than taken for a complete one). True when it extracted."""
    root = Path(root)
    archive, val = root / IMAGENET_VAL_ARCHIVE[0], root / "val"
    if val.is_dir() or not archive.is_file():
        return False
    verify_digest(archive, md5, "md5")
    partial = root / ".val.partial"
    shutil.rmtree(partial, ignore_errors=True)
    safe_extract(archive, partial)
    os.replace(partial, val)
    return True


def read_ctest10k(path: str | Path, expected_count: int = 10000) -> list[str]:
    """Validation file names from the ctest10k list, checked: count and ILSVRC2012 naming.

    Lines may carry a directory prefix and a label after the name; only the base name is kept.
    """
    names = []
    for line in Path(path).read_text().splitlines():
        if not line.strip():
            continue
        name = PurePosixPath(line.split()[0]).name
        if not IMAGENET_VAL_NAME.match(name):
            raise DataLayoutError(f"{path}: {line!r} does not name an ILSVRC2012 validation image")
        names.append(name)
    if len(names) != expected_count or len(set(names)) != len(names):
        raise DataLayoutError(f"{path}: {len(names)} names ({len(set(names))} distinct), expected {expected_count}")
    return names


# ---------------------------------------------------------------------------------------------
# CelebA-HQ
# ---------------------------------------------------------------------------------------------

CELEBAHQ_INSTRUCTIONS = """\
CelebA-HQ cannot be downloaded automatically: CelebA is released for non-commercial research
under an agreement (https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html) and CelebA-HQ is built
from it (Karras et al. 2018, https://github.com/tkarras/progressive_growing_of_gans). Then:
  1. obtain the {count} CelebA-HQ images at 256x256 (or build them at 1024 and resize);
  2. place them as {root}/<name>.png or .jpg (sub-folders are fine);
  3. run the workflow again.
"""


def check_celebahq_layout(root: str | Path, expected: int) -> list[Path]:
    """The CelebA-HQ images under `root`; DataLayoutError with instructions when too few."""
    from palette.imageio import list_images

    root = Path(root)
    images = list_images(root, recursive=True) if root.is_dir() else []
    if len(images) < expected:
        raise DataLayoutError(
            f"CelebA-HQ is missing or incomplete: {root} holds {len(images)} images, expected {expected}.\n\n"
            + CELEBAHQ_INSTRUCTIONS.format(root=root, count=f"{expected:,}")
        )
    return images


# ---------------------------------------------------------------------------------------------
# The user's own images: a folder (dataset.kind: folder) or source/target pairs (paired)
# ---------------------------------------------------------------------------------------------

SPLIT_NAMES = ("train", "val", "test")


def _given_splits(root: Path) -> bool:
    """Whether `root` is laid out as train/ (val/) test/ sub-folders, used as given."""
    present = [name for name in SPLIT_NAMES if (root / name).is_dir()]
    if present and not {"train", "test"} <= set(present):
        raise DataLayoutError(f"{root} has {'/'.join(present)} sub-folder(s) but not both train/ and test/: "
                              "give train/ and test/ (val/ optional) or no split folders at all")
    return bool(present)


def _split(files: list[Path], root: Path, fractions: dict, seed: int) -> dict[str, list[str]]:
    """Given sub-folders as they are, else palette.data.split_files (seeded)."""
    from palette.imageio import list_images

    if _given_splits(root):
        return {name: [str(p) for p in list_images(root / name, recursive=True)] if (root / name).is_dir() else []
                for name in SPLIT_NAMES}
    from palette.data import split_files  # imports torch: only in the listing job

    return split_files([str(f) for f in files], fractions=dict(fractions), seed=seed)


def folder_splits(root: str | Path, fractions: dict, seed: int) -> dict[str, list[str]]:
    """dataset.kind folder: the images under `root` (any depth), split train / val / test.

    With train/ and test/ (and optionally val/) sub-folders those are the splits; otherwise the
    seeded `palette.data.split_files` rule splits them (files named PHOTO__* stay together).
    """
    from palette.imageio import list_images

    root = Path(root)
    if not root.is_dir():
        raise DataLayoutError(f"dataset.root {str(root)!r} is not a folder (dataset.kind: folder needs a folder of images)")
    files = list_images(root, recursive=True)
    if not files:
        raise DataLayoutError(f"dataset.root {str(root)!r} holds no images ({', '.join(_image_extensions())})")
    return _split(files, root, fractions, seed)


def _image_extensions() -> list[str]:
    from palette.imageio import IMAGE_EXTENSIONS

    return sorted(IMAGE_EXTENSIONS)


def match_pairs(source_root: str | Path, target_root: str | Path) -> dict[str, str]:
    """target path -> source path, matched by the path relative to each root without its
    extension (so target/a/1.png pairs with source/a/1.jpg). DataLayoutError naming the first
    file without a partner, or two files that claim the same name."""
    from palette.imageio import list_images

    keyed = {}
    for label, root in (("source", Path(source_root)), ("target", Path(target_root))):
        if not root.is_dir():
            raise DataLayoutError(f"dataset.kind paired: {str(root)!r} is not a folder (dataset.root must hold "
                                  "source/ and target/ folders with matching file names)")
        keyed[label] = {}
        for path in list_images(root, recursive=True):
            key = path.relative_to(root).with_suffix("").as_posix()
            if key in keyed[label]:
                raise DataLayoutError(f"{path} and {keyed[label][key]} are one name in {label}/ (differ only in extension)")
            keyed[label][key] = path
    sources, targets = keyed["source"], keyed["target"]
    if not targets:
        raise DataLayoutError(f"dataset.kind paired: {target_root} holds no images")
    for label, mine, theirs, other in (("target", targets, sources, "source"), ("source", sources, targets, "target")):
        orphans = sorted(set(mine) - set(theirs))
        if orphans:
            raise DataLayoutError(f"{mine[orphans[0]]} has no {other} of the same name in {other}/ "
                                  f"({len(orphans)} {label} file(s) without a partner)")
    return {str(targets[key]): str(sources[key]) for key in sorted(targets)}


def paired_splits(root: str | Path, fractions: dict, seed: int) -> tuple[dict[str, list[str]], dict[str, str]]:
    """dataset.kind paired: (splits of the target files, target -> source). `root` holds
    source/ and target/ with matching names; target/train, target/test (target/val) are used
    as given when present, else the targets are split by the seeded rule."""
    root = Path(root)
    pairs = match_pairs(root / "source", root / "target")
    splits = _split([Path(t) for t in pairs], root / "target", fractions, seed)
    return splits, pairs


def write_pairs(path: str | Path, pairs: dict[str, str]) -> None:
    """The pair list: `target<TAB>source` a line."""
    from palette.files import atomic_write

    with atomic_write(path, "w") as handle:
        handle.writelines(f"{target}\t{source}\n" for target, source in pairs.items())


def read_pairs(path: str | Path) -> dict[str, str]:
    pairs = {}
    for line in Path(path).read_text().splitlines():
        if line.strip():
            target, source = line.split("\t")
            pairs[target] = source
    return pairs


# ---------------------------------------------------------------------------------------------
# What a configuration needs that is not on disk (printed before the plan: rules/data.smk)
# ---------------------------------------------------------------------------------------------

DATASET_TITLES = {
    "imagenet": "ImageNet (ILSVRC2012)",
    "celebahq": "CelebA-HQ",
    "places2": "Places2 (Places365-Standard)",
    "folder": "your image folder (dataset.kind folder)",
    "paired": "your image pairs (dataset.kind paired)",
    "demo_photos": "the demo photos",
}
MASKS_TITLE = "the paper's evaluation masks (evaluation.masks_file)"
# Entries looked at in a folder before deciding it holds what it should (a dry run must stay fast).
_PEEK = 1000


class MissingData(NamedTuple):
    """One thing a configuration needs that is not on disk, and how to get it."""

    dataset: str  # the data set, as the header of its block names it
    what: str
    where: str
    how: str


def _has_subfolder(folder: Path) -> bool:
    with os.scandir(folder) as entries:
        return any(entry.is_dir() for entry in itertools.islice(entries, _PEEK))


def _has_image(folder: Path) -> bool:
    """Whether `folder` holds an image at any depth; stops at the first one."""
    from palette.imageio import IMAGE_EXTENSIONS

    if not folder.is_dir():
        return False
    for _, _, files in os.walk(folder):
        if any(not name.startswith(".") and Path(name).suffix.lower() in IMAGE_EXTENSIONS for name in files):
            return True
    return False


def _missing_imagenet(root: Path, expected: dict, evaluation: dict) -> list[MissingData]:
    title, page = DATASET_TITLES["imagenet"], IMAGENET_DOWNLOAD_PAGE
    found = []
    train = root / "train"
    if not (train.is_dir() and _has_subfolder(train)):
        found.append(MissingData(
            title, f"the training images: no class folders train/<wnid>/ ({expected['imagenet_classes']:,} expected)",
            str(train), f"download ILSVRC2012_img_train.tar at {page} (register and accept the terms) and "
                        "unpack each class's tar into train/<wnid>/"))
    val, archive = root / "val", root / IMAGENET_VAL_ARCHIVE[0]
    layout = imagenet_validation_layout(val)
    if layout is None and not archive.is_file():
        found.append(MissingData(
            title, f"the {expected['imagenet_validation']:,} validation images: no ILSVRC2012_val_*.JPEG in val/ "
                   f"(flat or val/<wnid>/) and no {archive.name}",
            str(val), f"download {archive.name} at {page} and place it in {root}/ (the workflow checks its md5 "
                      "and extracts it), or unpack it into val/ (flat or one folder per class)"))
    if "ca" in evaluation["metrics"]:
        how = (f"place one of {', '.join(IMAGENET_LABEL_FILES)} there (ILSVRC2012 devkit, {page}), lay the "
               "validation images out as val/<wnid>/ (the folders are the labels), "
               "or remove ca from evaluation.metrics")
        named = evaluation.get("imagenet_labels")
        if named and not Path(named).exists():
            found.append(MissingData(title, "the validation labels for CA: evaluation.imagenet_labels names no file",
                                     os.path.abspath(named), how))
        elif not named and layout != "wnid" and not any((root / name).is_file() for name in IMAGENET_LABEL_FILES):
            found.append(MissingData(title, "the validation labels for CA (evaluation.metrics has ca)",
                                     str(root / IMAGENET_LABEL_FILES[0]), how))
    return found


def missing_data(dataset: dict, evaluation: dict) -> list[MissingData]:
    """What the validated `dataset` and `evaluation` config sections need that is not on disk.

    Cheap: looks at a few folder entries, never walks a data set (the data rules count). Places2
    is downloaded by the workflow, so only a dataset.root that is a file counts as missing there.
    """
    kind = dataset["kind"]
    title = DATASET_TITLES[kind]
    root = Path(os.path.abspath(dataset["root"]))
    expected = dataset["expected"]
    found = []
    if kind == "demo_photos":
        pass  # installed with the project
    elif root.exists() and not root.is_dir():
        found.append(MissingData(title, "dataset.root is a file, not a folder", str(root),
                                 "set dataset.root to a folder (the data rules read and write under it)"))
    elif kind == "imagenet":
        found += _missing_imagenet(root / "imagenet", expected, evaluation)
    elif kind == "celebahq" and not _has_image(root / "celebahq"):
        found.append(MissingData(
            title, f"the {expected['celebahq']:,} images: none under celebahq/", str(root / "celebahq"),
            "CelebA-HQ is licence-gated: accept the CelebA agreement (https://mmlab.ie.cuhk.edu.hk/projects/"
            "CelebA.html), build CelebA-HQ (https://github.com/tkarras/progressive_growing_of_gans) at 256x256 "
            "and place the images there as .png or .jpg (sub-folders are fine)"))
    elif kind == "folder" and not _has_image(root):
        found.append(MissingData(title, "no images in dataset.root", str(root),
                                 "set dataset.root to a folder of your images (any depth; train/ and test/ "
                                 "sub-folders are used as given)"))
    elif kind == "paired":
        for side in ("source", "target"):
            if not _has_image(root / side):
                found.append(MissingData(title, f"no images in {side}/", str(root / side),
                                         "place the pairs as source/NAME and target/NAME (matching names) "
                                         "under dataset.root"))
    masks = evaluation.get("masks_file")
    if masks and not Path(masks).is_file():
        found.append(MissingData(MASKS_TITLE, "evaluation.masks_file names no file", os.path.abspath(masks),
                                 "place the npz of the paper's released free-form masks there, or set "
                                 "evaluation.masks_file to null (seeded masks of the same area buckets)"))
    return found


def missing_data_report(missing: list[MissingData]) -> str:
    """One block per data set: a header line naming it, then what / where / how per item."""
    blocks: dict[str, list[str]] = {}
    for item in missing:
        blocks.setdefault(item.dataset, [f"Missing data: {item.dataset}"]).extend(
            [f"  what:  {item.what}", f"  where: {item.where}", f"  how:   {item.how}"])
    return "\n\n".join("\n".join(lines) for lines in blocks.values())
