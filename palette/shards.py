"""Sampling an evaluation set in shards: one job per shard, each resumable, gathered at the end.

A sampling run (experiment x task variant x sampler) of the paper's 1000-step sampler over 10,000
inputs takes tens of GPU-hours: more than one job's time limit, and more than one GPU should
spend on it. So the run is cut into shards of `sampling.shard_size` inputs (all their samples),
one job each, over the evaluation set's sources sorted by name; the last shard takes the rest.

Each shard writes its images into a folder of its own in the work folder, never into a declared
output (which Snakemake deletes before every attempt): a shard cut by its time limit resumes at
the first image it has not written. A shard folder records what its images were made from
(`provenance.json`: the checkpoint's digest, the sampler, seeds, the evaluation set's files);
when that changes (a retrained model, another sampler setting) its old images are removed
before sampling, so a stale image is never gathered. `gather` links every shard's images into
the samples folder the evaluation reads, after checking that each source has all its samples.

Every image has its own seed (palette.inference.image_generator), so a sharded run and an
unsharded one give the same bits for every image, whatever the shards and batches.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from pathlib import Path

from palette.files import atomic_write
from palette.imageio import list_images, numbered_sample_folders

PROVENANCE_FILE = "provenance.json"


def shard_count(images: int | None, shard_size: int | None) -> int:
    """Shards of a set of `images` inputs (None: not known before the set is written): one when
    either is unknown."""
    if not shard_size or not images:
        return 1
    return max(1, math.ceil(images / shard_size))


def shard_bounds(total: int, index: int, count: int, shard_size: int | None) -> tuple[int, int]:
    """[start, stop) of shard `index` of `count` over `total` sorted inputs; the last takes the
    rest (so a set larger than planned is still covered whole)."""
    if not 0 <= index < count:
        raise ValueError(f"shard {index} of {count} does not exist")
    if count == 1 or not shard_size:
        return 0, total
    start = min(total, index * shard_size)
    return start, total if index == count - 1 else min(total, start + shard_size)


def shard_names(set_dir: str | os.PathLike, index: int, count: int, shard_size: int | None) -> list[str]:
    """The source stems shard `index` samples, in name order."""
    stems = [path.stem for path in list_images(Path(set_dir) / "source")]
    start, stop = shard_bounds(len(stems), index, count, shard_size)
    return stems[start:stop]


def checkpoint_digest(path: str | os.PathLike) -> str:
    """The digest a checkpoint carries of its own contents (palette.checkpoint), read without
    loading its tensors."""
    import torch

    from palette.checkpoint import DIGEST_KEY

    return str(torch.load(path, map_location="cpu", weights_only=True, mmap=True)[DIGEST_KEY])


def set_listing_digest(set_dir: str | os.PathLike) -> str:
    """A digest of an evaluation set's source and mask files (names, sizes, modification times):
    a rewritten set is a new set."""
    hasher = hashlib.sha256()
    for part in ("source", "mask"):
        folder = Path(set_dir) / part
        for path in list_images(folder) if folder.is_dir() else []:
            stat = path.stat()
            hasher.update(f"{part}/{path.name}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return hasher.hexdigest()


def written(shard_dir: str | os.PathLike) -> int:
    """Images a shard folder holds (its progress)."""
    return sum(len(list_images(folder)) for folder in numbered_sample_folders(shard_dir))


def claim(shard_dir: str | os.PathLike, provenance: dict) -> int:
    """Make `shard_dir` hold only images made from `provenance`: keep them if it matches the
    folder's record, remove them otherwise. Returns the images kept."""
    shard_dir = Path(shard_dir)
    record = shard_dir / PROVENANCE_FILE
    try:
        previous = json.loads(record.read_text())
    except (OSError, ValueError):
        previous = None
    if previous != provenance:
        for folder in numbered_sample_folders(shard_dir) if shard_dir.is_dir() else []:
            shutil.rmtree(folder)
        shard_dir.mkdir(parents=True, exist_ok=True)
        with atomic_write(record, "w") as handle:
            json.dump(provenance, handle, indent=1, sort_keys=True)
    return written(shard_dir)


def gather(shard_dirs: list[str | os.PathLike], set_dir: str | os.PathLike, out_dir: str | os.PathLike,
           samples_per_input: int) -> int:
    """Link (or copy, across filesystems) every shard's `sample_K/NAME.png` into `out_dir`, after
    checking that every source of the set has its `samples_per_input` samples in exactly one
    shard. Returns the images gathered; raises ValueError naming what is missing."""
    stems = [path.stem for path in list_images(Path(set_dir) / "source")]
    found: dict[tuple[int, str], Path] = {}
    for shard_dir in map(Path, shard_dirs):
        for folder in numbered_sample_folders(shard_dir):
            k = int(folder.name.split("_")[1])
            for path in list_images(folder):
                if (k, path.stem) in found:
                    raise ValueError(f"{path}: sample {k} of {path.stem} is also in {found[(k, path.stem)]}")
                found[(k, path.stem)] = path
    missing = [f"sample_{k}/{stem}" for k in range(samples_per_input) for stem in stems if (k, stem) not in found]
    if missing:
        raise ValueError(f"the shards of {out_dir} lack {len(missing)} of {samples_per_input * len(stems)} images "
                         f"(e.g. {', '.join(missing[:3])}); rerun their sample jobs")
    out_dir, known = Path(out_dir), set(stems)
    for (k, stem), path in sorted(found.items()):
        if k >= samples_per_input or stem not in known:  # images of sources no longer in the set
            continue
        target = out_dir / f"sample_{k}" / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, target)
        except OSError:  # another filesystem, or links not allowed
            shutil.copyfile(path, target)
    return samples_per_input * len(stems)
