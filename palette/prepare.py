"""The workflow's `prepare` stage: every split's images preprocessed once, written as PNG.

The paper's preprocessing (docs/paper.md, Tasks: "largest centre square crop resized to 256") is
the default for training and evaluation alike (`center_square`): each image's largest centred
square is resized to `image_size` (`palette.data.center_square_crop`) and written once, so the
training loader reads small PNGs instead of decoding full-size JPEGs every epoch, and the model
sees objects at the same scale in training and at test time. The training loader
(`palette.data.PairedDataset`, train=True) then adds only a random horizontal flip (an
`image_size` crop of an `image_size` image is the image), as guided-diffusion's image loader does
(`random_flip=True`); the paper names no augmentation.

`random_crop_native` is the named alternative for the training split only: the training list
points at the original files and the loader takes a random `image_size` crop of the
native-resolution image each time (objects larger in training than in evaluation). Evaluation
splits (val, test) are always prepared the paper's way.

Pairs (dataset.kind: paired) are written as `OUT/target/NAME.png` and `OUT/source/NAME.png`
with the same crop, the layout `palette.data.paired_source_path` reads; with
`random_crop_native` they are written at native resolution (decoded once, cropped by the loader).
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tqdm import tqdm

PREPROCESSING = ("center_square", "random_crop_native")
"""dataset.preprocess values; the first is the paper's."""


def _prepare_one(job: tuple) -> str:
    """Write one prepared image; returns the path the loader should read. A file that is
    already an `image_size` square is listed as it is (its centre square is itself, and the
    loader converts modes the same way), which spares re-encoding data sets stored at the
    model's size (Places2 at 256: 1.8 M files)."""
    from PIL import Image

    from palette.data import center_square_crop
    from palette.imageio import load_image, save_image

    source, destination, image_size, keep_ready = job
    if keep_ready and image_size is not None:
        with Image.open(source) as probe:
            if probe.size == (image_size, image_size):
                return str(source)
    image = load_image(source)
    save_image(destination, image if image_size is None else center_square_crop(image, image_size))
    return str(destination)


def _run(jobs: list[tuple], workers: int, description: str) -> list[Path]:
    if workers <= 1 or len(jobs) < 64:  # worker start-up costs more than a few small images
        return [Path(_prepare_one(job)) for job in tqdm(jobs, desc=description, unit="image", mininterval=5)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return [Path(path) for path in tqdm(pool.map(_prepare_one, jobs, chunksize=32), total=len(jobs),
                                            desc=description, unit="image", mininterval=5)]


def prepare_split(files, out_dir: str | os.PathLike, image_size: int, preprocess: str = "center_square",
                  sources: dict[str, str] | None = None, skip=(), workers: int = 1) -> list[Path]:
    """Preprocess `files` (in order, minus those in `skip`) into `out_dir`; returns the paths the
    loader should read, in order.

    `center_square`: `out_dir/NAME.png` = `center_square_crop(load_image(file), image_size)`,
    NAME the file's stem made unique; a file already `image_size` x `image_size` is listed as it
    is (the same pixels, without a copy). `random_crop_native`: the original files themselves
    (nothing written). With `sources` (target path -> source path, the user's pairs) both
    images of a pair are written, as `out_dir/target/NAME.png` and `out_dir/source/NAME.png`
    (at native resolution for `random_crop_native`), and the target paths are returned.
    """
    from palette.data import _unique_stems

    if preprocess not in PREPROCESSING:
        raise ValueError(f"dataset.preprocess has value {preprocess!r}; choose one of {', '.join(PREPROCESSING)}")
    skipped = {str(path) for path in skip}
    files = [str(file) for file in files if str(file) not in skipped]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if preprocess == "random_crop_native" and sources is None:
        return [Path(file) for file in files]
    size = image_size if preprocess == "center_square" else None
    names = _unique_stems(files)
    if sources is None:
        jobs = [(file, out_dir / f"{name}.png", size, True) for file, name in zip(files, names)]
        return _run(jobs, workers, f"prepare {out_dir.name}")
    missing = [file for file in files if file not in sources]
    if missing:
        raise ValueError(f"{missing[0]}: target without a source in the pair list ({len(missing)} such files)")
    # Pairs are always written: the loader finds a source beside its target (target/, source/).
    jobs = [(file, out_dir / "target" / f"{name}.png", size, False) for file, name in zip(files, names)]
    jobs += [(sources[file], out_dir / "source" / f"{name}.png", size, False) for file, name in zip(files, names)]
    return _run(jobs, workers, f"prepare {out_dir.name}")[: len(files)]
