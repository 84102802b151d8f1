"""Data: the installed demo photos, multi-scale crops, splits, the training dataset, evaluation sets.

- ``demo_photo_paths``: nine real everyday photos that install with the project's dependencies
  (scikit-image, scikit-learn, matplotlib), found through importlib so no download is needed.
- ``make_crops``: seeded multi-scale square crops of those photos, written as PNG.
- ``split_files``: a seeded train / val / test split that keeps all crops of one photo in one
  split, so no test crop overlaps a training crop; ``write_file_list`` / ``read_file_list``.
- ``PairedDataset``: (source, target, mask) training or validation items. Everything random
  about item ``index`` in epoch ``epoch`` comes from ``np.random.default_rng([seed, epoch,
  index])``, so an item depends only on (seed, epoch, index): not on the worker count, the
  worker that loads it, or what was loaded before. Training resumes to the bit.
- ``write_evaluation_set`` writes the fixed, seeded inputs of one evaluation task variant
  (``DIR/source``, ``DIR/target``, ``DIR/mask`` for masked tasks); ``EvaluationSet`` and
  ``load_evaluation_pair`` read them back (``load_evaluation_mask``: the mask alone, as the samplers read it).
- The training stream (``training_files``, ``make_loader``, ``noise_generator``): which item,
  crop, degradation, gamma and noise sample n of a run gets, a function of (seed, n) only.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from palette import degradations, masks
from palette.config import ConfigError, TrainConfig
from palette.files import atomic_write
from palette.imageio import list_images, load_image, load_mask, save_image, save_mask, to_tensor
from palette.signals import ignore_stop_signals
from palette.tasks import PAIRED_TASK

# (package, path inside the package): everyday scenes only (no microscopy, astronomy, charts).
DEMO_PHOTOS = (
    ("skimage", "data/astronaut.png"),
    ("skimage", "data/chelsea.png"),
    ("skimage", "data/coffee.png"),
    ("skimage", "data/rocket.jpg"),
    ("skimage", "data/motorcycle_left.png"),
    ("skimage", "data/motorcycle_right.png"),
    ("sklearn", "datasets/images/china.jpg"),
    ("sklearn", "datasets/images/flower.jpg"),
    ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
)

CROP_GROUP_SEPARATOR = "__"
"""Crop files are named ``PHOTO__sSCALE_K.png``; the part before ``__`` names the photo."""

SAME_SCENE = {"motorcycle_left": "motorcycle", "motorcycle_right": "motorcycle"}
"""Photos of one scene (scikit-image's motorcycle stereo pair), kept in one split together."""


def demo_photo_paths() -> list[Path]:
    """Paths of the nine demo photos; FileNotFoundError naming the package if any is missing."""
    paths, missing = [], []
    for package, relative in DEMO_PHOTOS:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            missing.append(f"{relative} (package {package!r} is not installed)")
            continue
        path = Path(list(spec.submodule_search_locations)[0]) / relative
        if not path.is_file():
            missing.append(f"{relative} (not in {package!r} at {path.parent})")
            continue
        paths.append(path)
    if missing:
        raise FileNotFoundError("demo photos missing: " + "; ".join(missing) + ". Install the "
                                "project's dependencies (pip install -e .) with their data files.")
    return paths


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize ``uint8 [H, W, 3]``: area averaging when shrinking (antialiased), bicubic when growing."""
    if image.shape[:2] == (height, width):
        return image
    shrinking = height <= image.shape[0] and width <= image.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    return cv2.resize(image, (width, height), interpolation=interpolation)


def center_square_crop(image: np.ndarray, size: int) -> np.ndarray:
    """The largest centred square, resized to ``size`` (Palette's evaluation preprocessing)."""
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return resize(image[top:top + side, left:left + side], size, size)


def _unique_stems(paths) -> list[str]:
    """File stems, with ``_2``, ``_3`` ... appended where two files share a stem."""
    seen: set[str] = set()
    stems = []
    for path in paths:
        stem = candidate = Path(path).stem
        counter = 2
        while candidate in seen:
            candidate = f"{stem}_{counter}"
            counter += 1
        seen.add(candidate)
        stems.append(candidate)
    return stems


def make_crops(photo_paths, out_dir: str | os.PathLike, crop_size: int = 64,
               scales=(1.0, 0.5, 0.25), crops_per_scale: int = 24, seed: int = 0) -> list[Path]:
    """Cut seeded multi-scale square crops and write them as ``crop_size`` PNGs; returns their paths.

    At scale ``s`` a square of side ``s * (the photo's shorter side)`` is placed uniformly at
    random and resized to ``crop_size`` (area averaging), so scale 1 sees the whole scene and
    0.25 a detail. Crop ``k`` of photo ``p`` at scale ``j`` is drawn from
    ``default_rng([seed, p, j])``; a window drawn twice (scale 1 of a square photo has only one
    position) is written once, so a scale may give fewer than ``crops_per_scale`` files.
    Files are named ``PHOTO__sPERCENT_K.png`` (PHOTO = the photo's stem, made unique).
    With the nine demo photos and the defaults this gives about 600 crops.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    photo_paths = [Path(p) for p in photo_paths]
    for photo_index, (path, stem) in enumerate(zip(photo_paths, _unique_stems(photo_paths))):
        photo = load_image(path)
        height, width = photo.shape[:2]
        for scale_index, scale in enumerate(scales):
            if not 0 < scale <= 1:
                raise ValueError(f"crop scales must be in (0, 1], got {scale}")
            side = max(1, int(round(scale * min(height, width))))
            rng = np.random.default_rng([seed, photo_index, scale_index])
            windows = set()
            for k in range(crops_per_scale):
                window = (int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1)))
                if window in windows:
                    continue
                windows.add(window)
                top, left = window
                crop = resize(photo[top:top + side, left:left + side], crop_size, crop_size)
                name = f"{stem}{CROP_GROUP_SEPARATOR}s{round(scale * 100)}_{k:03d}.png"
                written.append(save_image(out_dir / name, crop))
    return written


def _group_key(file: str) -> str:
    """Files from one photo (or one scene, ``SAME_SCENE``) share a key: the crop name before
    ``__``; files without ``__`` stand alone."""
    path = Path(file)
    if CROP_GROUP_SEPARATOR not in path.name:
        return str(path)
    prefix = path.name.split(CROP_GROUP_SEPARATOR)[0]
    return str(path.parent / SAME_SCENE.get(prefix, prefix))


def split_files(files, fractions: dict[str, float] | None = None, seed: int = 0,
                holdout: dict[str, list[str]] | None = None) -> dict[str, list[str]]:
    """Seeded split of ``files`` into named parts (default train 0.85 / val 0.05 / test 0.10).

    ``holdout`` names photos (crop groups: ``PHOTO`` of ``PHOTO__...``, or a ``SAME_SCENE`` name)
    that go to a given split whatever the draw, e.g. ``{"test": ["chelsea", "flower"]}``; the
    other photos are split by ``fractions``. A name that matches no photo is an error.

    Crops of one photo (same ``PHOTO__`` prefix and folder; the two motorcycle photos, a stereo
    pair, count as one) always go to the same split: the
    photos are shuffled with ``default_rng(seed)`` and each goes to the split furthest below
    its target share of files, after every split with a positive fraction has received one
    photo. With few photos the shares are therefore coarse (9 demo photos: at least one photo
    each for val and test). Files that do not follow the crop naming are split one by one.
    Returns sorted lists of strings; the same files and seed give the same split.
    """
    fractions = dict(fractions or {"train": 0.85, "val": 0.05, "test": 0.10})
    if any(value < 0 for value in fractions.values()) or not np.isclose(sum(fractions.values()), 1.0):
        raise ValueError(f"split fractions must be >= 0 and sum to 1, got {fractions}")
    groups: dict[str, list[str]] = {}
    for file in sorted(str(f) for f in files):
        groups.setdefault(_group_key(file), []).append(file)
    splits: dict[str, list[str]] = {name: [] for name in fractions}
    named = {photo: split for split, photos in (holdout or {}).items() for photo in photos}
    unknown = sorted(set(named) - {Path(key).name for key in groups})
    if unknown or not set(named.values()) <= set(splits):
        raise ValueError(f"split holdout names {unknown or sorted(set(named.values()) - set(splits))}, which "
                         f"match no photo or split; photos: {sorted({Path(key).name for key in groups})}")
    for key in sorted(groups):
        if Path(key).name in named:
            splits[named[Path(key).name]].extend(groups.pop(key))
    keys = sorted(groups)
    order = np.random.default_rng(seed).permutation(len(keys))
    total = sum(len(members) for members in groups.values())
    positive = [name for name, value in sorted(fractions.items(), key=lambda item: item[1]) if value > 0]
    for position, key_index in enumerate(order):
        members = groups[keys[key_index]]
        if position < len(positive):
            name = positive[position]  # smallest fractions first, so val/test are never empty
        else:
            name = max(positive, key=lambda n: fractions[n] * total - len(splits[n]))
        splits[name].extend(members)
    return {name: sorted(members) for name, members in splits.items()}


def write_file_list(path: str | os.PathLike, files) -> Path:
    """Write one path per line (atomically: temporary file, then rename)."""
    path = Path(path)
    with atomic_write(path, "w") as handle:
        handle.writelines(f"{file}\n" for file in files)
    return path


def read_file_list(path: str | os.PathLike) -> list[str]:
    """Read a file list; blank lines and lines starting with ``#`` are skipped."""
    lines = Path(path).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def paired_source_path(target: str | os.PathLike) -> Path:
    """The source of a pair: ``DIR/source/NAME`` beside ``DIR/target/NAME`` (the layout of the
    prepared pairs and of evaluation sets). FileNotFoundError naming both when it is missing."""
    target = Path(target)
    if target.parent.name != "target":
        raise FileNotFoundError(f"{target}: a paired item must lie in a 'target' folder with its source in "
                                "'../source/' under the same name")
    source = target.parent.parent / "source" / target.name
    if not source.is_file():
        raise FileNotFoundError(f"{target}: its source {source} does not exist")
    return source


def random_crop_and_flip(image: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Training augmentation: upscale if the shorter side is below ``size``, take a uniform
    random ``size`` square, flip it left-right with probability 1/2."""
    height, width = image.shape[:2]
    if min(height, width) < size:
        factor = size / min(height, width)
        image = resize(image, max(size, round(height * factor)), max(size, round(width * factor)))
        height, width = image.shape[:2]
    top, left = int(rng.integers(0, height - size + 1)), int(rng.integers(0, width - size + 1))
    crop = image[top:top + size, left:left + size]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    return np.ascontiguousarray(crop)


class PairedDataset(Dataset):
    """(source, target, mask) items of ``task`` from image files.

    Each item is a dict: ``source`` and ``target`` float ``[3, S, S]`` in [-1, 1]; ``mask``
    ``[1, S, S]`` (1 = missing), all zeros when the item has no mask (so the default collate
    works for mixed multi-task batches; docs/architecture.md: an all-zeros mask means "no
    mask"); ``has_mask`` (bool); ``name`` (the file's stem); ``index``.

    ``train=True``: random crop of ``image_size`` (after upscaling when the shorter side is
    smaller) and a random horizontal flip. ``train=False``: the largest centre square resized to
    ``image_size``. Prepared images (the workflow's ``prepare`` stage, already ``image_size``
    squares) therefore get a horizontal flip only. Task ``paired`` reads each target's source
    from ``../source/NAME`` (``paired_source_path``). In both modes the crop, flip and
    degradation of item ``index`` come from ``np.random.default_rng([seed, epoch, index])``;
    call ``set_epoch`` at each epoch start.
    Unreadable files raise ``ImageLoadError`` naming the file.
    """

    def __init__(self, files, task: str, image_size: int, seed: int = 0, train: bool = True):
        degradations.task_uses_mask(task)  # validates the task name
        self.files = [Path(f) for f in files]
        if not self.files:
            raise ValueError("PairedDataset needs at least one file")
        self.task = task
        self.image_size = int(image_size)
        self.seed = int(seed)
        self.train = train
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        image = load_image(self.files[index])
        if self.task == PAIRED_TASK:
            return self._paired_item(index, image, rng)
        if self.train:
            image = random_crop_and_flip(image, self.image_size, rng)
        else:
            image = center_square_crop(image, self.image_size)
        source, target, mask = degradations.degrade(self.task, to_tensor(image), rng)
        has_mask = mask is not None
        if mask is None:
            mask = torch.zeros((1, self.image_size, self.image_size), dtype=torch.float32)
        return {"source": source, "target": target, "mask": mask, "has_mask": has_mask,
                "name": self.files[index].stem, "index": int(index)}


    def _paired_item(self, index: int, target: np.ndarray, rng: np.random.Generator) -> dict:
        """The user's pair: source and target get the same crop and flip (the source is first
        resized to the target's size when the two differ); no degradation, no mask."""
        source = load_image(paired_source_path(self.files[index]))
        source = resize(source, *target.shape[:2])
        both = np.concatenate([source, target], axis=2)  # one crop and flip for both
        if self.train:
            both = random_crop_and_flip(both, self.image_size, rng)
        else:
            both = center_square_crop(both, self.image_size)
        return {"source": to_tensor(np.ascontiguousarray(both[..., :3])),
                "target": to_tensor(np.ascontiguousarray(both[..., 3:])),
                "mask": torch.zeros((1, self.image_size, self.image_size), dtype=torch.float32),
                "has_mask": False, "name": self.files[index].stem, "index": int(index)}


def _released_mask_kind(task: str) -> str | None:
    kind = task[len("inpainting_"):] if task.startswith("inpainting_") else None
    return kind if kind in masks.RELEASED_MASK_KEYS else None


def spread_selection(files, count: int | None) -> list[str]:
    """``count`` of ``files`` (all when None), spread over photos: the crops of each photo
    (``_group_key``) get an equal share (the first photos one more where it does not divide),
    taken evenly spaced through that photo's files (so across its scales), and the result
    alternates between photos. Lists without crop names (every file its own group) keep their
    first ``count`` files, in order. Deterministic: no draw."""
    files = [str(f) for f in files]
    if count is None or count >= len(files):
        return files
    groups: dict[str, list[str]] = {}
    for file in files:
        groups.setdefault(_group_key(file), []).append(file)
    members = list(groups.values())
    shares = [0] * len(members)
    for _ in range(count):  # round-robin, skipping photos with no file left
        candidates = [i for i in range(len(members)) if shares[i] < len(members[i])]
        shares[min(candidates, key=lambda i: (shares[i], i))] += 1
    picked = [[group[round(j)] for j in np.linspace(0, len(group) - 1, share)] for group, share in zip(members, shares)]
    return [group[k] for k in range(max(shares)) for group in picked if k < len(group)]


def write_evaluation_set(files, task: str, out_dir: str | os.PathLike, image_size: int,
                         seed: int = 0, masks_file: str | os.PathLike | None = None,
                         num_images: int | None = None) -> Path:
    """Write the fixed inputs of one evaluation task variant and return ``out_dir``.

    Layout: ``out_dir/source/NAME.png`` (the model's input; missing pixels written mid-grey,
    the value 0 in [-1, 1]), ``out_dir/target/NAME.png`` (ground truth),
    ``out_dir/mask/NAME.png`` for masked tasks (255 = missing), ``out_dir/names.txt`` (names in
    input order) and ``out_dir/info.json`` (task, seed, size, mask origin). NAME is the input
    file's stem, made unique. With ``num_images`` the images are
    ``spread_selection(files, num_images)``: the first ones of a plain list, an equal share of
    every photo for crops. Images are centre square crops resized to ``image_size``; image
    ``i`` is degraded with ``default_rng([seed, i])``. With ``masks_file`` (the paper's
    released npz) the free-form inpainting variants use released mask ``i`` (nearest-neighbour
    resized when ``image_size`` is not 256) instead of drawing one. Task ``paired`` takes each
    source from the pair (``paired_source_path``) instead of degrading the target.
    """
    degradations.task_uses_mask(task)  # validates the task name
    files = [Path(f) for f in spread_selection(files, num_images)]
    if not files:
        raise ValueError(f"no input images for evaluation set {task!r}")
    out_dir = Path(out_dir)
    released = None
    kind = _released_mask_kind(task)
    if masks_file is not None and kind is not None:
        released = masks.load_released_masks(masks_file, kind)
    names = _unique_stems(files)
    for index, (path, name) in enumerate(zip(files, names)):
        image = center_square_crop(load_image(path), image_size)
        tensor = to_tensor(image)
        if task == PAIRED_TASK:  # the user's own degradation: the source file of the pair
            source, mask_tensor = center_square_crop(load_image(paired_source_path(path)), image_size), None
        elif released is not None:
            mask = released[index % len(released)].astype(np.uint8)
            if mask.shape != (image_size, image_size):
                mask = cv2.resize(mask, (image_size, image_size), interpolation=cv2.INTER_NEAREST)
            source, _, mask_tensor = degradations.with_mask(tensor, mask.astype(bool))
        else:
            source, _, mask_tensor = degradations.degrade(task, tensor, np.random.default_rng([seed, index]))
        save_image(out_dir / "source" / f"{name}.png", source)
        save_image(out_dir / "target" / f"{name}.png", image)
        if mask_tensor is not None:
            save_mask(out_dir / "mask" / f"{name}.png", mask_tensor)
    write_file_list(out_dir / "names.txt", names)
    info = {"task": task, "seed": seed, "image_size": image_size, "count": len(names),
            "masks": "released" if released is not None else ("seeded" if degradations.task_uses_mask(task) else None)}
    (out_dir / "info.json").write_text(json.dumps(info, indent=2) + "\n")
    return out_dir


def load_evaluation_mask(set_dir: str | os.PathLike, name: str) -> torch.Tensor | None:
    """The mask [1, H, W] (1 = missing) of item `name`, or None when the set has no ``mask/``
    folder; FileNotFoundError when it has one without this item's mask."""
    mask_dir = Path(set_dir) / "mask"
    if not mask_dir.is_dir():
        return None
    mask_path = mask_dir / f"{name}.png"
    if not mask_path.exists():
        raise FileNotFoundError(f"{set_dir} has a mask folder but no {mask_path.name} for {name!r}")
    return torch.from_numpy(load_mask(mask_path)).float().unsqueeze(0)


def load_evaluation_pair(set_dir: str | os.PathLike, name: str) -> dict:
    """One item of an evaluation set: dict(source, target, mask, has_mask, has_target, name).

    The mask is all zeros when the set has no ``mask/`` folder; missing source pixels are set
    back to exactly 0 (they are stored as mid-grey, 128, which reads as 1/255). A set without
    ``target/`` (the user's own inputs) gives an all-zeros target and ``has_target`` False.
    """
    set_dir = Path(set_dir)
    source = to_tensor(load_image(set_dir / "source" / f"{name}.png"))
    mask = load_evaluation_mask(set_dir, name)
    has_mask = mask is not None
    if has_mask:
        source = source * (1 - mask)
    else:
        mask = torch.zeros((1, *source.shape[-2:]))
    target_path = set_dir / "target" / f"{name}.png"
    has_target = target_path.exists()
    target = to_tensor(load_image(target_path)) if has_target else torch.zeros_like(source)
    return {"source": source, "target": target, "mask": mask, "has_mask": has_mask,
            "has_target": has_target, "name": name}


class EvaluationSet(Dataset):
    """The items of a folder written by ``write_evaluation_set`` (or laid out the same way),
    in the order of ``names.txt`` when present, else sorted by name."""

    def __init__(self, set_dir: str | os.PathLike):
        self.set_dir = Path(set_dir)
        names_file = self.set_dir / "names.txt"
        if names_file.exists():
            self.names = read_file_list(names_file)
        elif (self.set_dir / "source").is_dir():
            self.names = sorted(p.stem for p in (self.set_dir / "source").glob("*.png"))
        else:
            raise FileNotFoundError(f"{self.set_dir} is not an evaluation set (no source/ folder)")

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> dict:
        return load_evaluation_pair(self.set_dir, self.names[index])


# ---------------------------------------------------------------------------------------------
# The training stream: which item, crop, degradation, gamma and noise sample n of a run gets.
# Sample n of the run is item perm(seed, epoch)[n mod N] of epoch n // N; an item's crop and
# degradation depend only on (seed, epoch, index) (PairedDataset), and its gamma and noise come
# from a generator seeded by (seed, n) (`noise_generator`). So a run resumed after step s restarts
# at sample s x batch_size, and how a step is split over GPUs and micro-batches changes nothing
# but float rounding.

def training_files(config: TrainConfig) -> list[Path]:
    """config.train_files: a file list, a folder of images, or None for the installed photos."""
    if config.train_files is None:
        files = list(demo_photo_paths())
    else:
        location = Path(config.train_files)
        if location.is_dir():
            files = list_images(location, recursive=True)
        elif location.is_file():  # relative entries: from the working folder, else from the list's folder
            files = [f if Path(f).is_absolute() or Path(f).exists() else location.parent / f
                     for f in read_file_list(location)]
        else:
            raise ConfigError(f"train config: key 'train_files' has value {config.train_files!r}: no such file or folder")
    if not files:
        raise ConfigError(f"train config: key 'train_files' has value {config.train_files!r}: no images found")
    return [Path(f) for f in files]


def epoch_permutation(length: int, seed: int, epoch: int) -> torch.Tensor:
    """The data order of one epoch: a function of (seed, epoch) only."""
    generator = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0]))
    return torch.randperm(length, generator=generator)


NOISE_STREAM = 1  # keeps the noise seeds apart from the data-order seeds (seed, epoch)


def noise_generator(seed: int, sample: int, device: torch.device) -> torch.Generator:
    """The generator of sample `sample`'s gamma and noise: a function of (seed, sample) only."""
    value = int(np.random.SeedSequence([seed, NOISE_STREAM, sample]).generate_state(1, np.uint64)[0])
    return torch.Generator(device=device).manual_seed(value)


class SampleStream(torch.utils.data.Sampler):
    """Endless batches of (epoch, index, n) for this rank, starting at global sample `start`.

    Global sample n is index perm(seed, n // N)[n % N] of epoch n // N. An optimizer step takes
    `batch_size` consecutive samples; micro-batch k of rank r is its slice (k * world + r).
    """

    def __init__(self, length, seed, batch_size, grad_accumulation, rank, world_size, start):
        self.length, self.seed, self.start = length, seed, start
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size
        self.micro_batches = grad_accumulation
        self.micro_batch_size = batch_size // (grad_accumulation * world_size)
        self._epoch, self._permutation = None, None

    def _sample(self, n: int) -> tuple[int, int, int]:
        epoch = n // self.length
        if epoch != self._epoch:
            self._epoch, self._permutation = epoch, epoch_permutation(self.length, self.seed, epoch)
        return epoch, int(self._permutation[n % self.length]), n

    def __iter__(self):
        step_start = self.start
        while True:
            for k in range(self.micro_batches):
                first = step_start + (k * self.world_size + self.rank) * self.micro_batch_size
                yield [self._sample(n) for n in range(first, first + self.micro_batch_size)]
            step_start += self.batch_size


class EpochIndexed(torch.utils.data.Dataset):
    """dataset[(epoch, index, n)] = the item `index` of `epoch` (PairedDataset items depend on
    both), with "sample": n, its number in the run (it seeds the item's diffusion noise)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, key):
        epoch, index, sample = key
        self.dataset.set_epoch(epoch)
        return {**self.dataset[index], "sample": sample}


def make_loader(config: TrainConfig, start_sample: int, accumulation: int, rank: int, world_size: int, pin_memory: bool):
    """The training stream from global sample `start_sample` on, for this rank; its workers ignore
    the stop signals (palette.signals: the main process owns the shutdown)."""
    dataset = PairedDataset(training_files(config), config.task, config.image_size, seed=config.seed, train=True)
    stream = SampleStream(len(dataset), config.seed, config.batch_size, accumulation, rank, world_size, start_sample)
    return torch.utils.data.DataLoader(
        EpochIndexed(dataset), batch_sampler=stream, num_workers=config.num_workers, pin_memory=pin_memory,
        generator=torch.Generator().manual_seed(config.seed),  # its base seed must not draw from the global RNG
        worker_init_fn=ignore_stop_signals,
    )
