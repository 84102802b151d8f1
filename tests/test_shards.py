"""Sampling in shards (palette.shards, rules/sample.smk): the bounds, resumption at the first
unwritten image, stale images removed, the gather's completeness check, and the same bits for
every image whether a set is sampled whole, in shards, or cut and resumed."""

import json

import numpy as np
import pytest

from palette.data import demo_photo_paths, write_evaluation_set
from palette.imageio import list_images, load_image
from palette.inference import SamplingStopped, sample_evaluation_set
from palette.shards import (
    checkpoint_digest, claim, gather, set_listing_digest, shard_bounds, shard_count, shard_names, written,
)
from palette.train import train

SAMPLER = {"name": "ddim", "steps": 3, "clip_x0": True}


@pytest.fixture(scope="module")
def model_and_set(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shards")
    config = dict(name="t", task="inpainting", preset="tiny", image_size=32, batch_size=2, steps=2, num_workers=0,
                  warmup_steps=0, log_every=2, checkpoint_every=2)
    checkpoint = train(config, folder / "work", folder / "final.pt")
    set_dir = write_evaluation_set(demo_photo_paths()[:5], "inpainting_center", folder / "set", 32, seed=0)
    return checkpoint, set_dir


def images(folder):
    return {f"{path.parent.name}/{path.name}": load_image(path) for path in sorted(folder.glob("sample_*/*.png"))}


def test_bounds_cover_every_input_once_and_the_last_shard_takes_the_rest():
    assert shard_count(10000, 500) == 20 and shard_count(10001, 500) == 21 and shard_count(None, 500) == 1
    assert shard_count(10000, None) == 1
    for total, count, size in [(10, 3, 4), (12, 3, 4), (7, 1, None), (3, 3, 4), (13, 3, 4)]:
        covered = [i for index in range(count) for i in range(*shard_bounds(total, index, count, size))]
        assert covered == list(range(total)), (total, count, size)
    assert shard_bounds(13, 2, 3, 4) == (8, 13)  # a set larger than planned: the last shard takes the rest
    with pytest.raises(ValueError, match="shard 3 of 3"):
        shard_bounds(10, 3, 3, 4)


def test_sharded_cut_and_resumed_sampling_gives_the_unsharded_bits(model_and_set, tmp_path):
    checkpoint, set_dir = model_and_set
    whole = sample_evaluation_set(checkpoint, set_dir, tmp_path / "whole", SAMPLER, samples_per_input=2, seed=3,
                                  batch_size=3)
    shard_dirs = []
    for index in range(2):
        names = shard_names(set_dir, index, 2, 3)
        shard_dir = tmp_path / f"shard_{index}"
        # batch 1 and a budget already spent: each attempt writes one batch, then stops (exit 75)
        attempts = 0
        while True:
            attempts += 1
            try:
                sample_evaluation_set(checkpoint, set_dir, shard_dir, SAMPLER, samples_per_input=2, seed=3,
                                      batch_size=1, names=names, time_budget=1e-9)
                break
            except SamplingStopped as stopped:
                assert stopped.code == 75 and stopped.written == 1
                assert written(shard_dir) == attempts
        assert attempts == 2 * len(names)
        shard_dirs.append(shard_dir)
    assert [len(shard_names(set_dir, i, 2, 3)) for i in range(2)] == [3, 2]
    gathered = tmp_path / "gathered"
    assert gather(shard_dirs, set_dir, gathered, samples_per_input=2) == 10
    reference, sharded = images(whole), images(gathered)
    assert sharded.keys() == reference.keys() and len(reference) == 10
    assert all(np.array_equal(sharded[key], reference[key]) for key in reference)


def test_gather_refuses_a_missing_or_doubled_image(model_and_set, tmp_path):
    checkpoint, set_dir = model_and_set
    shard_dir = tmp_path / "shard"
    sample_evaluation_set(checkpoint, set_dir, shard_dir, SAMPLER, samples_per_input=1, seed=0, batch_size=5)
    victim = sorted((shard_dir / "sample_0").iterdir())[2]
    copy = tmp_path / "other" / "sample_0" / victim.name
    copy.parent.mkdir(parents=True)
    copy.write_bytes(victim.read_bytes())
    with pytest.raises(ValueError, match="also in"):
        gather([shard_dir, tmp_path / "other"], set_dir, tmp_path / "out1", samples_per_input=1)
    victim.unlink()
    with pytest.raises(ValueError, match=f"lack 1 of 5 images .*sample_0/{victim.stem}"):
        gather([shard_dir], set_dir, tmp_path / "out2", samples_per_input=1)
    with pytest.raises(ValueError, match="lack 5 of 10"):  # a second sample was asked for and never drawn
        gather([shard_dir, tmp_path / "other"], set_dir, tmp_path / "out3", samples_per_input=2)


def test_a_shard_keeps_its_images_only_while_what_made_them_is_unchanged(model_and_set, tmp_path):
    checkpoint, set_dir = model_and_set
    shard_dir = tmp_path / "shard"
    provenance = {"checkpoint": checkpoint_digest(checkpoint), "evaluation_set": set_listing_digest(set_dir),
                  "sampler": SAMPLER, "seed": 0}
    assert claim(shard_dir, provenance) == 0
    sample_evaluation_set(checkpoint, set_dir, shard_dir, SAMPLER, samples_per_input=1, seed=0, batch_size=5)
    assert claim(shard_dir, provenance) == 5  # the same run: its images are kept (a resume)
    assert json.loads((shard_dir / "provenance.json").read_text()) == provenance
    assert claim(shard_dir, dict(provenance, seed=1)) == 0  # another seed: the old images go
    assert not list((shard_dir).glob("sample_*/*.png"))
    # a retrained model (another digest) and a rewritten evaluation set are new provenances too
    assert checkpoint_digest(checkpoint) == provenance["checkpoint"] and len(provenance["checkpoint"]) == 64
    before = set_listing_digest(set_dir)
    source = list_images(set_dir / "source")[0]
    source.write_bytes(source.read_bytes())
    assert set_listing_digest(set_dir) != before
