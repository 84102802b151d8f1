"""Stand-in data sets: miniatures of ImageNet, Places2 and CelebA-HQ in their real layouts.

The paper-scale presets need data sets that a test machine does not have (ImageNet and CelebA-HQ
are licence-gated, Places2 is 26 GB). A stand-in is cut from the photos that install with the
project (`palette.data.demo_photo_paths`): varied crops, resized to a few sizes and saved as the
real set saves them, in the real set's folders and archives, so the workflow's own data rules
(checks, downloads, extraction, listings, labels) run on it unchanged. Beside it, `standin.yaml`
is a config overlay (dataset keys only: root, the shrunken dataset.expected sizes, the ctest10k
list or the Places2 archives as file:// URLs with their digests):

    python -m palette.standins imagenet --root DIR          # or places2, celebahq
    snakemake -n --configfile config/presets/imagenet.yaml DIR/standin.yaml

Deterministic: a fixed seed, and archive members with fixed times and owners, so building twice
gives the same bytes (and the same digests in the overlay).
"""

from __future__ import annotations

import argparse
import io
import sys
import tarfile
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from palette.data import demo_photo_paths, resize
from palette.errors import is_bad_input, report_bad_input
from palette.imageio import load_image
from palette.reference_sets import IMAGENET_LABEL_FILES
from palette.workflow_data import PLACES365_ARCHIVES, file_digest

SEED = 2022
OVERLAY_NAME = "standin.yaml"
JPEG_QUALITY = 90
# (width, height): ImageNet photos come in both orientations and many sizes.
PHOTO_SIZES = ((80, 60), (100, 75), (120, 90), (160, 120), (60, 80), (90, 120))
# Places2's 256 release and CelebA-HQ are square.
SQUARE_SIZES = ((64, 64), (96, 96), (128, 128))

# The first four ILSVRC2012 classes in torchvision's order (sorted wnids): tench, goldfish, great
# white shark, tiger shark. Their sorted position among themselves is their true class index, so
# the labels the workflow derives for CA are the real ones.
IMAGENET_WNIDS = ("n01440764", "n01443537", "n01484850", "n01491361")
IMAGENET_TRAIN_PER_CLASS = 6
IMAGENET_VALIDATION = 24
IMAGENET_CTEST = 12
IMAGENET_FID5K = 8
# FID-5K's own reference, as the paper's 10,000..14,999 of 50,000: after twice the evaluated images, as
# many as they (validation images 17..24 by file name), disjoint from them (palette.reference_sets).
IMAGENET_FID5K_REFERENCE_OFFSET = 16
IMAGENET_FID5K_REFERENCE = 8

# The first three Places365 categories, as categories_places365.txt names them.
PLACES2_CATEGORIES = ("/a/airfield", "/a/airplane_cabin", "/a/airport_terminal")
PLACES2_VALIDATION_PER_CLASS = 4
PLACES2_TRAIN_PER_CLASS = 5
PLACES10K_PER_CLASS = 2
# Archive members carry this modification time and no owner names, so the md5s are stable.
ARCHIVE_MTIME = 1262304000  # 2010-01-01

CELEBAHQ_IMAGES = 40


class PhotoCutter:
    """Seeded crops of the demo photos: a random photo, a random window with the output's aspect
    ratio covering 30-100 % of the largest one that fits, resized to one of `sizes`."""

    def __init__(self, sizes: tuple[tuple[int, int], ...], seed: int = SEED):
        self.photos = [load_image(path) for path in demo_photo_paths()]
        self.sizes = sizes
        self.rng = np.random.default_rng(seed)

    def cut(self) -> np.ndarray:
        photo = self.photos[self.rng.integers(len(self.photos))]
        width, height = self.sizes[self.rng.integers(len(self.sizes))]
        photo_height, photo_width = photo.shape[:2]
        largest = min(photo_width / width, photo_height / height)
        scale = largest * self.rng.uniform(0.3, 1.0)
        crop_width, crop_height = max(1, int(width * scale)), max(1, int(height * scale))
        left = int(self.rng.integers(photo_width - crop_width + 1))
        top = int(self.rng.integers(photo_height - crop_height + 1))
        return resize(np.ascontiguousarray(photo[top:top + crop_height, left:left + crop_width]), height, width)


def encode(image: np.ndarray, image_format: str) -> bytes:
    """The image file's bytes: "JPEG" (quality 90, as photo collections store them) or "PNG"."""
    buffer = io.BytesIO()
    options = {"quality": JPEG_QUALITY} if image_format == "JPEG" else {}
    Image.fromarray(image).save(buffer, format=image_format, **options)
    return buffer.getvalue()


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _fresh(folder: Path) -> Path:
    """`folder`, refused when it already holds something: a stand-in is never mixed with older files."""
    if folder.exists() and any(folder.iterdir()):
        raise FileExistsError(f"{folder} already exists and is not empty; remove it or choose another --root")
    return folder


def _uri(path: Path) -> str:
    return path.resolve().as_uri()


def write_tar(path: Path, members: dict[str, bytes]) -> str:
    """A tar of `members` (name -> bytes) with their parent folders, sorted, fixed time, mode and
    owner; returns its md5."""
    folders = {str(parent) for name in members for parent in Path(name).parents if str(parent) != "."}
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        for name in sorted(folders | set(members)):
            info = tarfile.TarInfo(name)
            info.mtime, info.uid, info.gid, info.uname, info.gname = ARCHIVE_MTIME, 0, 0, "", ""
            if name in folders:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.mode, info.size = 0o644, len(members[name])
                tar.addfile(info, io.BytesIO(members[name]))
    return file_digest(path, "md5")


def build_imagenet(root: str | Path, val_layout: str = "flat") -> dict:
    """ILSVRC2012 in miniature under root/imagenet; returns the overlay's dataset section.

    train/<wnid>/<wnid>_<i>.JPEG (4 classes x 6); 24 validation images, flat
    (val/ILSVRC2012_val_000000NN.JPEG) with the per-image wnid list beside val/, or with
    `val_layout` "wnid" in val/<wnid>/ and no label file (the folders are the labels); a
    ctest10k-style list of 12 of them (root/ctest10k.txt, "NAME CLASS" lines) served by file://.
    FID-5K is validation images 1..8 by file name, its own reference 17..24.
    """
    if val_layout not in ("flat", "wnid"):
        raise ValueError(f"--val-layout {val_layout!r}: choose flat or wnid")
    root = Path(root).resolve()
    base = _fresh(root / "imagenet")
    cutter = PhotoCutter(PHOTO_SIZES)
    for wnid in IMAGENET_WNIDS:
        for index in range(1, IMAGENET_TRAIN_PER_CLASS + 1):
            _write(base / "train" / wnid / f"{wnid}_{index}.JPEG", encode(cutter.cut(), "JPEG"))
    per_class = IMAGENET_VALIDATION // len(IMAGENET_WNIDS)
    classes = cutter.rng.permutation(np.repeat(np.arange(len(IMAGENET_WNIDS)), per_class))
    names = [f"ILSVRC2012_val_{number:08d}.JPEG" for number in range(1, IMAGENET_VALIDATION + 1)]
    for name, label in zip(names, classes):
        folder = base / "val" / (IMAGENET_WNIDS[label] if val_layout == "wnid" else "")
        _write(folder / name, encode(cutter.cut(), "JPEG"))
    if val_layout == "flat":
        (base / IMAGENET_LABEL_FILES[0]).write_text("".join(f"{IMAGENET_WNIDS[label]}\n" for label in classes))
    chosen = sorted(cutter.rng.choice(IMAGENET_VALIDATION, IMAGENET_CTEST, replace=False))
    ctest = root / "ctest10k.txt"
    ctest.write_text("".join(f"{names[index]} {classes[index]}\n" for index in chosen))
    return {
        "root": str(root),
        "expected": {"imagenet_classes": len(IMAGENET_WNIDS), "imagenet_validation": IMAGENET_VALIDATION,
                     "fid5k": IMAGENET_FID5K, "fid5k_reference_offset": IMAGENET_FID5K_REFERENCE_OFFSET,
                     "fid5k_reference": IMAGENET_FID5K_REFERENCE},
        "test_list": {"url": _uri(ctest), "sha256": file_digest(ctest), "expected_count": IMAGENET_CTEST},
    }


def build_places2(root: str | Path) -> dict:
    """The three Places365-Standard archives in miniature under root/archives (3 classes, 4
    validation and 5 training images each; places10k takes 2 per class); returns the overlay's
    dataset section, which points the workflow's download at them. Nothing is placed where the
    workflow downloads to (root/places2), so its download, md5 check and extraction all run."""
    root = Path(root).resolve()
    archives = _fresh(root / "archives")
    cutter = PhotoCutter(SQUARE_SIZES)
    categories = "".join(f"{category} {label}\n" for label, category in enumerate(PLACES2_CATEGORIES))
    train_images, train_lines = {}, []
    for label, category in enumerate(PLACES2_CATEGORIES):
        for index in range(1, PLACES2_TRAIN_PER_CLASS + 1):
            relative = f"{category}/{index:08d}.jpg"
            train_images[f"data_256{relative}"] = encode(cutter.cut(), "JPEG")
            train_lines.append(f"{relative} {label}\n")
    count = PLACES2_VALIDATION_PER_CLASS * len(PLACES2_CATEGORIES)
    labels = cutter.rng.permutation(np.repeat(np.arange(len(PLACES2_CATEGORIES)), PLACES2_VALIDATION_PER_CLASS))
    val_images, val_lines = {}, []
    for number, label in enumerate(labels, start=1):
        name = f"Places365_val_{number:08d}.jpg"
        val_images[f"val_256/{name}"] = encode(cutter.cut(), "JPEG")
        val_lines.append(f"{name} {label}\n")
    filelist = {"categories_places365.txt": categories.encode(),
                "places365_train_standard.txt": "".join(train_lines).encode(),
                "places365_val.txt": "".join(val_lines).encode()}
    contents = {"filelist_places365-standard.tar": filelist, "val_256.tar": val_images,
                "train_256_places365standard.tar": train_images}
    assert set(contents) == set(PLACES365_ARCHIVES)
    md5 = {name: write_tar(archives / name, members) for name, members in contents.items()}
    return {
        "root": str(root),
        "expected": {"places2_classes": len(PLACES2_CATEGORIES), "places2_validation": count,
                     "places10k_per_class": PLACES10K_PER_CLASS},
        "places2_archives": {"url": _uri(archives) + "/", "md5": md5},
    }


def build_celebahq(root: str | Path) -> dict:
    """CelebA-HQ in miniature: root/celebahq/NNNNN.png, 40 square images; returns the overlay's
    dataset section."""
    root = Path(root).resolve()
    folder = _fresh(root / "celebahq")
    cutter = PhotoCutter(SQUARE_SIZES)
    for index in range(CELEBAHQ_IMAGES):
        _write(folder / f"{index:05d}.png", encode(cutter.cut(), "PNG"))
    return {"root": str(root), "expected": {"celebahq": CELEBAHQ_IMAGES}}


BUILDERS = {"imagenet": build_imagenet, "places2": build_places2, "celebahq": build_celebahq}


def build(kind: str, root: str | Path, val_layout: str = "flat") -> Path:
    """Build the stand-in of `kind` under `root` and write root/standin.yaml; returns its path."""
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    dataset = build_imagenet(root, val_layout) if kind == "imagenet" else BUILDERS[kind](root)
    overlay = root / OVERLAY_NAME
    header = (f"# Stand-in {kind} data set (python -m palette.standins {kind}): a config overlay, given after the\n"
              f"# preset: snakemake --configfile config/presets/{kind}.yaml {overlay}\n")
    overlay.write_text(header + yaml.safe_dump({"dataset": dataset}, sort_keys=False))
    return overlay


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m palette.standins",
                                     description="Build a miniature of a paper data set in its real layout, "
                                                 "with a workflow config overlay (ROOT/standin.yaml).")
    parser.add_argument("kind", choices=sorted(BUILDERS), help="the data set to imitate")
    parser.add_argument("--root", required=True, help="folder to build it in (becomes dataset.root)")
    parser.add_argument("--val-layout", choices=("flat", "wnid"), default="flat",
                        help="imagenet: validation images flat in val/ (with a label file) or in val/<wnid>/")
    args = parser.parse_args(argv)
    try:
        overlay = build(args.kind, args.root, args.val_layout)
    except Exception as error:
        if not is_bad_input(error):
            raise
        return report_bad_input(parser.prog, error)
    print(f"{args.kind} stand-in under {overlay.parent}; config overlay {overlay}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
