"""Checkpoints: weights_only-safe contents, atomic writes, damaged files refused by name with
fallback to the previous good one, and RNG state round trips."""

from __future__ import annotations

import logging
import random

import numpy as np
import pytest
import torch

from palette import data
from palette.checkpoint import (
    CheckpointError, CheckpointFolder, capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint,
)
from palette.train import train


def state_at(step: int) -> dict:
    generator = torch.Generator().manual_seed(step)
    return {"format": 1, "step": step, "model": {"w": torch.randn(1000, generator=generator), "b": torch.zeros(3, dtype=torch.bfloat16)},
            "config": {"lr": 1e-4, "adam_betas": [0.9, 0.999]}, "rng": [{"note": None}]}


def test_contents_load_with_weights_only(tmp_path):
    path = save_checkpoint(state_at(5), tmp_path / "c.pt")
    raw = torch.load(path, weights_only=True)
    assert raw["step"] == 5 and len(raw["sha256"]) == 64
    assert torch.equal(load_checkpoint(path)["model"]["w"], state_at(5)["model"]["w"])


def test_truncated_or_flipped_checkpoint_is_refused_naming_the_file(tmp_path):
    path = save_checkpoint(state_at(1), tmp_path / "c.pt")
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])
    with pytest.raises(CheckpointError, match=r"c\.pt is unreadable"):
        load_checkpoint(path)
    # one flipped bit inside a tensor still unpickles: the digest catches it
    flipped = bytearray(content)
    position = content.index(state_at(1)["model"]["w"][500:504].numpy().tobytes())
    flipped[position] ^= 0x01
    path.write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match=r"c\.pt is corrupted"):
        load_checkpoint(path)


def test_damaged_last_checkpoint_falls_back_to_previous(tmp_path, caplog):
    folder = CheckpointFolder(tmp_path)
    for step in (10, 20, 30):
        folder.save(state_at(step), keep=step == 10)
    assert [p.name for p in folder.candidates()] == ["last.pt", "previous.pt", "step_0000010.pt"]
    folder.last.write_bytes(folder.last.read_bytes()[:-100])
    with caplog.at_level(logging.ERROR):
        state, path = folder.load_latest()
    assert (state["step"], path) == (20, folder.previous)
    assert "last.pt is unreadable" in caplog.text
    folder.previous.write_bytes(b"garbage")
    assert folder.load_latest()[0]["step"] == 10
    folder.permanent(10).unlink()
    with pytest.raises(CheckpointError, match="no usable checkpoint"):
        folder.load_latest()  # never a silent restart from scratch


def test_a_crash_while_writing_leaves_the_old_file(tmp_path, monkeypatch):
    path = save_checkpoint(state_at(1), tmp_path / "c.pt")

    def dies_half_way(obj, f, *args, **kwargs):
        f.write(b"PK half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(state_at(2), path)
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temporary file left behind


def test_rng_state_round_trip():
    generator = torch.Generator().manual_seed(3)
    torch.manual_seed(1)
    np.random.seed(1)
    random.seed(1)
    np.random.randn()  # leaves a cached gaussian in numpy's state
    state = capture_rng_state({"noise": generator})
    state = torch.load(_saved(state), weights_only=True)  # survives a weights_only round trip
    expected = (torch.rand(3), np.random.randn(3), random.random(), torch.rand(3, generator=generator))
    torch.manual_seed(99)
    np.random.seed(99)
    random.seed(99)
    generator.manual_seed(99)
    restore_rng_state(state, {"noise": generator})
    again = (torch.rand(3), np.random.randn(3), random.random(), torch.rand(3, generator=generator))
    assert torch.equal(expected[0], again[0]) and np.array_equal(expected[1], again[1])
    assert expected[2] == again[2] and torch.equal(expected[3], again[3])


def _saved(obj):
    import io

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return buffer


def test_training_resumes_from_previous_when_last_is_corrupted(tmp_path):
    files = data.make_crops(data.demo_photo_paths()[:2], tmp_path / "crops", crop_size=32, scales=(0.5,), crops_per_scale=3)
    config = dict(preset="tiny", image_size=32, batch_size=2, steps=6, warmup_steps=0, num_workers=0, log_every=2,
                  checkpoint_every=2, keep_every=None, tensorboard=False, progress_bar=False,
                  train_files=str(data.write_file_list(tmp_path / "train.txt", files)))
    train(config, tmp_path / "run")
    folder = CheckpointFolder(tmp_path / "run" / "checkpoints")
    assert load_checkpoint(folder.previous)["step"] == 4
    folder.last.write_bytes(folder.last.read_bytes()[:1000])
    final = train({**config, "steps": 8}, tmp_path / "run")  # continues from step 4, not 6, not 0
    assert load_checkpoint(final)["step"] == 8
    log = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in log[1:]] == ["2", "4", "6", "8"]


def test_rotation_never_demotes_a_damaged_last_checkpoint(tmp_path, caplog):
    folder = CheckpointFolder(tmp_path)
    for step in (10, 20):
        folder.save(state_at(step))
    folder.last.write_bytes(folder.last.read_bytes()[:-100])  # damaged behind the writer's back
    with caplog.at_level(logging.ERROR):
        folder.save(state_at(30))
    assert "failed its check" in caplog.text
    assert load_checkpoint(folder.previous)["step"] == 10  # the good fallback survives
    assert load_checkpoint(folder.last)["step"] == 30 and folder.damaged.exists()
    # a new process (nothing known about the files) checks last.pt before demoting it
    fresh = CheckpointFolder(tmp_path)
    fresh.last.write_bytes(b"garbage")
    fresh.save(state_at(40))
    assert load_checkpoint(fresh.previous)["step"] == 10 and load_checkpoint(fresh.last)["step"] == 40
    fresh.save(state_at(50))  # a good last.pt is demoted as before
    assert [load_checkpoint(p)["step"] for p in (fresh.last, fresh.previous)] == [50, 40]


def test_a_second_damage_after_recovering_still_resumes_from_a_good_checkpoint(tmp_path):
    files = data.make_crops(data.demo_photo_paths()[:2], tmp_path / "crops", crop_size=32, scales=(0.5,), crops_per_scale=3)
    config = dict(task="inpainting", preset="tiny", image_size=32, batch_size=2, steps=6, warmup_steps=0, num_workers=0,
                  log_every=2, checkpoint_every=2, keep_every=None, tensorboard=False, progress_bar=False,
                  train_files=str(data.write_file_list(tmp_path / "train.txt", files)))
    train(config, tmp_path / "run")  # last.pt = step 6, previous.pt = step 4
    folder = CheckpointFolder(tmp_path / "run" / "checkpoints")
    folder.last.write_bytes(folder.last.read_bytes()[:1000])  # first damage
    train({**config, "steps": 6}, tmp_path / "run")  # recovers from step 4 and saves step 6 again
    assert load_checkpoint(folder.previous)["step"] == 4, "the damaged last.pt replaced the good previous.pt"
    folder.last.write_bytes(b"\0" * 100)  # second damage
    final = train({**config, "steps": 8}, tmp_path / "run")
    assert load_checkpoint(final)["step"] == 8
    log = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in log[1:]] == ["2", "4", "6", "8"]  # resumed from step 4, not from 0
