"""The training engine end to end on the CPU: resume to the bit after SIGKILL, SIGTERM and the
time budget leave a resumable checkpoint with the documented exit code, NaN stops cleanly, and
the regression baseline and the multi-task mixture learn.

Every run is the `tiny` U-Net on 32x32 crops of the installed photos, batch 4, tens of steps.
"""

from __future__ import annotations

import csv
import os
import random
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
import torch
import yaml

from palette import data
from palette.checkpoint import CheckpointFolder, load_checkpoint, load_model
from palette.train import (
    CONFIG_EXIT_CODE, NONFINITE_LOSS_EXIT_CODE, RESUME_EXIT_CODE, NonFiniteLossError, TrainingPreempted, train,
)
from palette.train_cli import add_arguments, run

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def crop_list(tmp_path_factory) -> Path:
    """A file list of 18 small real crops (40 px; training takes random 32 px windows)."""
    folder = tmp_path_factory.mktemp("crops")
    files = data.make_crops(data.demo_photo_paths()[:3], folder, crop_size=40, scales=(0.5, 0.25), crops_per_scale=3)
    return data.write_file_list(folder / "train.txt", files)


def tiny_config(crop_list: Path, **changes) -> dict:
    config = dict(
        name="test", task="inpainting", preset="tiny", image_size=32, batch_size=4, steps=30,
        warmup_steps=5, lr=1e-3, ema_decay=0.9, num_workers=0, log_every=1, checkpoint_every=3,
        keep_every=None, tensorboard=False, progress_bar=False, train_files=str(crop_list),
        model_overrides={"dropout": 0.1},  # so the dropout RNG has to be restored too
    )
    config.update(changes)
    return config


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def trainer(config_path: Path, workdir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "palette.cli", "train", "--config", str(config_path),
            "--workdir", str(workdir), "--no-lease", *extra]


def environment() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(REPO))
    env.pop("CUDA_VISIBLE_DEVICES", None)
    return env


def logged_step(workdir: Path) -> int:
    try:
        rows = (workdir / "log.csv").read_text().splitlines()[1:]
    except FileNotFoundError:
        return 0
    return int(rows[-1].split(",")[0]) if rows else 0


def wait_for_step(process: subprocess.Popen, workdir: Path, step: int, timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = logged_step(workdir)
        if current >= step or process.poll() is not None:
            return current
        time.sleep(0.02)
    process.kill()
    raise AssertionError(f"trainer did not reach step {step} within {timeout} s")


def log_rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_sigkill_at_a_random_step_then_resume_is_bitwise_identical(crop_list, tmp_path):
    # log rows every 2 steps, saves every 3: a resumed run must also restore the log row in progress
    config = write_config(tmp_path / "config.yaml", tiny_config(crop_list, log_every=2))
    whole = subprocess.run(trainer(config, tmp_path / "whole"), env=environment(), capture_output=True, text=True)
    assert whole.returncode == 0, whole.stderr

    # A save happens every 3 steps, so the kill lands anywhere relative to a save; from step 4 on
    # (log rows come every 2 steps) the step-3 checkpoint exists, so there is something to resume.
    # The step varies from run to run; its seed is printed (pytest shows it with a failure) and
    # PALETTE_TEST_KILL_SEED=SEED replays it.
    seed = int(os.environ.get("PALETTE_TEST_KILL_SEED") or random.SystemRandom().randrange(2**32))
    kill_step = random.Random(seed).randint(4, 25)
    print(f"kill at step {kill_step} (PALETTE_TEST_KILL_SEED={seed})")
    interrupted = tmp_path / "interrupted"
    process = subprocess.Popen(trainer(config, interrupted), env=environment(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    reached = wait_for_step(process, interrupted, kill_step)
    process.send_signal(signal.SIGKILL)
    process.wait()
    print(f"killed at step {reached} or later")
    assert not (interrupted / "final.pt").exists(), f"the run finished before the kill (step {reached})"

    # resume with a data-loader worker this time: the data order must not depend on it
    resumed = subprocess.run(trainer(config, interrupted, "--set", "num_workers=1"), env=environment(),
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stderr, f"killed at step {reached}: {resumed.stderr}"

    a, b = load_checkpoint(tmp_path / "whole" / "final.pt"), load_checkpoint(interrupted / "final.pt")
    assert a["step"] == b["step"] == 30
    for part in ("model", "ema"):
        differing = [name for name in a[part] if not torch.equal(a[part][name], b[part][name])]
        assert not differing, f"killed at step {reached}: {part} tensors differ: {differing[:3]}"
    a_last = load_checkpoint(tmp_path / "whole" / "checkpoints" / "last.pt")
    b_last = load_checkpoint(interrupted / "checkpoints" / "last.pt")
    for index, state in a_last["optimizer"]["state"].items():
        for key, value in state.items():
            assert torch.equal(value, b_last["optimizer"]["state"][index][key]), (index, key)
    # the logged losses too: the resumed log has every step once, with the same values
    losses_a = [row["loss"] for row in log_rows(tmp_path / "whole" / "log.csv")]
    losses_b = [row["loss"] for row in log_rows(interrupted / "log.csv")]
    assert losses_a == losses_b and len(losses_a) == 15


def test_sigterm_saves_a_loadable_checkpoint_and_exits_with_the_resume_code(crop_list, tmp_path):
    config = write_config(tmp_path / "config.yaml", tiny_config(crop_list, steps=10_000, checkpoint_every=1000))
    workdir = tmp_path / "run"
    process = subprocess.Popen(trainer(config, workdir), env=environment(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for_step(process, workdir, 4)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == RESUME_EXIT_CODE == 75, stderr
    assert "SIGTERM" in stderr
    state = load_checkpoint(workdir / "checkpoints" / "last.pt")  # loads with weights_only=True
    assert state["step"] >= 4 and state["kind"] == "training"
    model, loaded_config = load_model(workdir / "checkpoints" / "last.pt")
    assert loaded_config.preset == "tiny" and not (workdir / "final.pt").exists()
    with torch.no_grad():
        assert model(torch.zeros(1, 6, 32, 32), torch.ones(1)).shape == (1, 3, 32, 32)


def test_time_budget_saves_and_asks_to_be_resumed(crop_list, tmp_path, monkeypatch):
    """On a clock the test drives (set-up 3 s, each step 1 s), not the machine's: the budget counts
    from train()'s start, and the run stops at the first step after which less than two steps and
    5 s remain (palette.train.Trainer.stop_reason), saves there and asks to be resumed."""
    import palette.train

    clock = types.SimpleNamespace(now=0.0, steps=0)
    monkeypatch.setattr(palette.train, "time", types.SimpleNamespace(monotonic=lambda: clock.now))
    real_set_up, real_step = palette.train.Trainer._set_up, palette.train.Trainer.run_step

    def set_up(self, *args):
        real_set_up(self, *args)
        clock.now += 3.0

    def step(self, batches):
        lr = real_step(self, batches)
        clock.now += 1.0
        clock.steps += 1
        return lr

    monkeypatch.setattr(palette.train.Trainer, "_set_up", set_up)
    monkeypatch.setattr(palette.train.Trainer, "run_step", step)
    config = tiny_config(crop_list, steps=10_000, checkpoint_every=1000, log_every=2, time_budget=12.0)
    with pytest.raises(TrainingPreempted) as stopped:
        train(config, tmp_path / "run")
    assert stopped.value.code == RESUME_EXIT_CODE and stopped.value.reason == "time budget"
    state = load_checkpoint(stopped.value.checkpoint)
    # after step 2 the clock reads 5 s: 7 s left, not less than 2 x 1 s + 5 s; after step 3, 6 s
    assert state["step"] == clock.steps == 3 and clock.now == 6.0
    # the retry resumes where the budget stopped it and redoes no step: 2 steps, one log row per 2
    final = train({**config, "steps": 5, "time_budget": None}, tmp_path / "run")
    assert load_checkpoint(final)["step"] == 5 and clock.steps == 3 + 2
    assert [int(row["step"]) for row in log_rows(tmp_path / "run" / "log.csv")] == [2, 4, 5]


def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(crop_list, tmp_path, monkeypatch):
    import palette.diffusion

    real_loss, calls = palette.diffusion.diffusion_loss, []

    def loss_that_turns_nan(*args, **kwargs):
        calls.append(1)
        loss = real_loss(*args, **kwargs)
        return loss * float("nan") if len(calls) >= 8 else loss

    monkeypatch.setattr(palette.diffusion, "diffusion_loss", loss_that_turns_nan)
    workdir = tmp_path / "run"
    with pytest.raises(NonFiniteLossError, match="nan") as error:
        train(tiny_config(crop_list, steps=20, checkpoint_every=3, log_every=5), workdir)
    assert "last.pt" in str(error.value)
    state = load_checkpoint(workdir / "checkpoints" / "last.pt")
    assert state["step"] == 6  # saved at 3 and 6; the NaN of step 8 is caught before the save at 9
    assert all(torch.isfinite(t).all() for t in state["model"].values())
    assert not (workdir / "final.pt").exists()


def mean_loss(rows: list[dict], first: int, last: int) -> float:
    values = [float(row["loss"]) for row in rows[first:last]]
    return sum(values) / len(values)


@pytest.mark.parametrize("task, objective", [("colorization", "regression"), ("multitask", "diffusion")])
def test_regression_baseline_and_multitask_mixture_learn(crop_list, tmp_path, task, objective):
    config = tiny_config(crop_list, task=task, objective=objective, steps=40, warmup_steps=0, lr=2e-3,
                         model_overrides={}, checkpoint_every=40, tensorboard=True)
    final = train(config, tmp_path / "run", final_checkpoint=tmp_path / "model.pt")
    rows = log_rows(tmp_path / "model.csv")  # the log travels with the final checkpoint
    early, late = mean_loss(rows, 0, 5), mean_loss(rows, -5, None)
    assert late < 0.7 * early, f"{objective} {task}: loss {early:.4f} -> {late:.4f}"
    model, loaded = load_model(final)
    assert loaded.objective == objective and model.in_channels == (3 if objective == "regression" else 6)
    raw, _ = load_model(final, ema=False)  # sampling uses the EMA; the raw weights are there too
    assert any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(), raw.state_dict().values()))
    assert any((tmp_path / "run" / "tensorboard").iterdir())


def test_regression_predict_keeps_known_pixels():
    from palette.models import regression_predict
    from palette.unet import build_unet

    torch.manual_seed(0)
    model = build_unet("tiny", in_channels=3).eval()
    source = torch.rand(2, 3, 32, 32) * 2 - 1
    mask = torch.zeros(2, 1, 32, 32)
    mask[0, :, 8:24, 8:24] = 1  # sample 1 has no mask: every pixel is predicted
    out = regression_predict(model, source, mask)
    assert torch.equal(out[0][:, mask[0, 0] == 0], source[0][:, mask[0, 0] == 0])
    assert not torch.equal(out[1], source[1]) and out.abs().max() <= 1


def test_command_line_refuses_bad_config_naming_the_key(tmp_path, capsys):
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    config = write_config(tmp_path / "bad.yaml", {"preset": "tiny", "learning_rate": 1e-4})
    assert run(parser.parse_args(["--config", str(config), "--workdir", str(tmp_path / "w"), "--no-lease"])) == CONFIG_EXIT_CODE
    assert "unknown key 'learning_rate'" in capsys.readouterr().err
    config = write_config(tmp_path / "bad2.yaml", {"ema_decay": 2})
    assert run(parser.parse_args(["--config", str(config), "--workdir", str(tmp_path / "w"), "--no-lease"])) == CONFIG_EXIT_CODE
    assert "'ema_decay' has value 2" in capsys.readouterr().err
    assert len({RESUME_EXIT_CODE, NONFINITE_LOSS_EXIT_CODE, CONFIG_EXIT_CODE, 0, 1, 2}) == 6


def test_incompatible_checkpoint_is_refused_with_what_differs(crop_list, tmp_path):
    from palette.checkpoint import CheckpointError

    config = tiny_config(crop_list, steps=3)
    train(config, tmp_path / "run")
    with pytest.raises(CheckpointError, match=r"lr: checkpoint has 0.001, config has 0.002"):
        train({**config, "lr": 2e-3, "steps": 6}, tmp_path / "run")
    with pytest.raises(CheckpointError, match="preset"):
        train({**config, "preset": "small", "steps": 6}, tmp_path / "run")
    assert CheckpointFolder(tmp_path / "run" / "checkpoints").load_latest()[0]["step"] == 3


def test_a_checkpoint_past_the_configured_steps_is_refused(crop_list, tmp_path):
    from palette.checkpoint import CheckpointError

    train(tiny_config(crop_list, steps=4), tmp_path / "run")
    with pytest.raises(CheckpointError, match=r"last\.pt is at step 4, past this config's steps=2"):
        train(tiny_config(crop_list, steps=2), tmp_path / "run")


def test_micro_batch_size_derives_the_accumulation_and_may_change_on_resume(crop_list, tmp_path, capsys):
    # batch 4 in micro-batches of 2 is grad_accumulation 2 on one process, bitwise
    config = tiny_config(crop_list, steps=4, batch_size=4, log_every=2, checkpoint_every=2, progress_bar=False)
    explicit = load_checkpoint(train({**config, "grad_accumulation": 2}, tmp_path / "explicit"))
    derived = load_checkpoint(train({**config, "micro_batch_size": 2}, tmp_path / "derived"))
    assert "batch 4 = 2 x 1 x 2" in capsys.readouterr().err
    for name, value in explicit["model"].items():
        assert torch.equal(value, derived["model"][name]), name

    # the split is not part of what a checkpoint must share: a run resumes with another one, and
    # (each sample's noise being seeded by its number in the run) trains the same model up to
    # float rounding; dropout masks would differ, so this part runs without dropout
    config = {**config, "model_overrides": {}}
    train({**config, "steps": 2}, tmp_path / "mixed")
    resumed = load_checkpoint(train({**config, "micro_batch_size": 1}, tmp_path / "mixed"))
    log = capsys.readouterr().err
    assert resumed["step"] == 4 and "resumed from" in log and "batch 4 = 4 x 1 x 1" in log
    one_piece = load_checkpoint(train(config, tmp_path / "one_piece"))
    for name, value in one_piece["model"].items():
        torch.testing.assert_close(resumed["model"][name], value, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_compiled_training_matches_eager(crop_list, tmp_path):
    """`compile: true` (torch.compile, inductor: C++ on a CPU, Triton on a GPU) trains the same model
    and saves plain U-Net weights that load without torch.compile."""
    config = tiny_config(crop_list, steps=3, model_overrides={"dropout": 0.0})
    eager = load_checkpoint(train(config, tmp_path / "eager"))
    compiled = load_checkpoint(train({**config, "compile": True}, tmp_path / "compiled"))
    assert list(compiled["model"]) == list(eager["model"])  # no "_orig_mod." prefixes
    for name, value in eager["model"].items():
        torch.testing.assert_close(compiled["model"][name], value, rtol=1e-4, atol=1e-5)
    losses = [[float(row["loss"]) for row in log_rows(tmp_path / run / "log.csv")] for run in ("eager", "compiled")]
    assert losses[1] == pytest.approx(losses[0], rel=1e-4)


def test_sigusr1_also_saves_and_stops(crop_list, tmp_path):
    import threading

    workdir = tmp_path / "run"

    def signal_when_training():
        deadline = time.monotonic() + 120
        while logged_step(workdir) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGUSR1)

    threading.Thread(target=signal_when_training, daemon=True).start()
    with pytest.raises(TrainingPreempted) as stopped:
        train(tiny_config(crop_list, steps=10_000, checkpoint_every=1000), workdir)
    assert stopped.value.reason == "SIGUSR1"
    assert load_checkpoint(workdir / "checkpoints" / "last.pt")["step"] >= 2
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL  # the trainer's handlers are removed again


@pytest.mark.slow
def test_ddp_through_torchrun_trains_saves_every_rank_and_resumes(crop_list, tmp_path):
    config = write_config(tmp_path / "config.yaml", tiny_config(
        crop_list, steps=4, batch_size=4, grad_accumulation=2, checkpoint_every=2, log_every=2, device="cpu",
        model_overrides={}))

    def torchrun(*extra):
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc_per_node=2",
                   *trainer(config, tmp_path / "run", *extra)[1:]]
        return subprocess.run(command, env=environment(), capture_output=True, text=True, timeout=300)

    first = torchrun()
    assert first.returncode == 0, first.stderr[-2000:]
    assert "cpu x2" in first.stderr and "batch 4 = 2 x 2 x 1" in first.stderr
    state = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert state["step"] == 4 and len(state["ranks"]) == 2
    # 2 ranks x 2 micro-batches of 1 train what one process does with the whole batch: the same
    # samples, the same noise per sample, gradients averaged (no dropout here)
    alone = load_checkpoint(train(tiny_config(crop_list, steps=4, batch_size=4, checkpoint_every=2, log_every=2,
                                              model_overrides={}), tmp_path / "alone"))
    for name, value in alone["model"].items():
        torch.testing.assert_close(state["model"][name], value, rtol=1e-4, atol=1e-6)
    second = torchrun("--steps", "6")
    assert second.returncode == 0 and "resumed from" in second.stderr, second.stderr[-2000:]
    assert load_checkpoint(tmp_path / "run" / "final.pt")["step"] == 6


def test_a_second_trainer_on_the_same_work_folder_is_refused(crop_list, tmp_path):
    from palette.checkpoint import CheckpointError
    from palette.train import lock_workdir

    holder = lock_workdir(tmp_path / "run")  # as if another process were training there
    with pytest.raises(CheckpointError, match=f"pid {os.getpid()}.*is using the work folder"):
        train(tiny_config(crop_list, steps=2), tmp_path / "run")
    holder.close()
    assert load_checkpoint(train(tiny_config(crop_list, steps=2), tmp_path / "run"))["step"] == 2


def test_log_rows_time_speed_after_the_first_step(crop_list, tmp_path):
    """The first step of a process (compilation, autotuning) is left out of images/s: with a row
    per step the first row has it blank, later rows a positive rate; MFU is blank on a CPU."""
    train(tiny_config(crop_list, steps=3), tmp_path / "run")
    rows = log_rows(tmp_path / "run" / "log.csv")
    assert [row["images_per_s"] == "" for row in rows] == [True, False, False]
    assert all(float(row["images_per_s"]) > 0 for row in rows[1:]) and all(row["mfu"] == "" for row in rows)
    train(tiny_config(crop_list, steps=5), tmp_path / "run")  # resumed: its first step is untimed too
    assert [row["images_per_s"] == "" for row in log_rows(tmp_path / "run" / "log.csv")] == [True, False, False, True, False]


def signal_group_when_at(config: Path, workdir: Path, step: int, signum: int) -> tuple[subprocess.CompletedProcess, int]:
    """Start a trainer in its own process group (as a shell job, `timeout` or a SLURM step would),
    signal the whole group once it has logged `step`, and wait for every process of it to end."""
    process = subprocess.Popen(trainer(config, workdir), env=environment(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    reached = wait_for_step(process, workdir, step)
    os.killpg(process.pid, signum)  # the main process and its DataLoader workers alike
    _, stderr = process.communicate(timeout=120)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the workers leave with the main process
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.killpg(process.pid, signal.SIGKILL)
        raise AssertionError("DataLoader workers outlived the trainer")
    return subprocess.CompletedProcess(process.args, process.returncode, "", stderr), reached


def test_group_signals_with_workers_save_exit_75_and_resume_bitwise(crop_list, tmp_path):
    """SIGTERM, then SIGINT (Ctrl-C), to the whole process group of a trainer with 2 DataLoader
    workers: each time a loadable checkpoint and exit 75, and the resumed run ends bitwise equal
    to an uninterrupted one."""
    config = write_config(tmp_path / "config.yaml", tiny_config(crop_list, num_workers=2, steps=16, checkpoint_every=1000))
    whole = subprocess.run(trainer(config, tmp_path / "whole"), env=environment(), capture_output=True, text=True)
    assert whole.returncode == 0, whole.stderr

    workdir = tmp_path / "interrupted"
    for signum, at_step in ((signal.SIGTERM, 3), (signal.SIGINT, 8)):
        stopped, reached = signal_group_when_at(config, workdir, at_step, signum)
        name = signal.Signals(signum).name
        assert stopped.returncode == RESUME_EXIT_CODE, f"{name}: exit {stopped.returncode}\n{stopped.stderr[-3000:]}"
        assert f"training stopped ({name})" in stopped.stderr
        for symptom in ("Traceback", "KeyboardInterrupt", "DataLoader worker"):
            assert symptom not in stopped.stderr, f"{name}:\n{stopped.stderr[-3000:]}"
        state = load_checkpoint(workdir / "checkpoints" / "last.pt")
        assert at_step <= state["step"] < 16 and not (workdir / "final.pt").exists(), (name, reached)
        if signum == signal.SIGINT:
            assert "resumed from" in stopped.stderr

    finished = subprocess.run(trainer(config, workdir), env=environment(), capture_output=True, text=True)
    assert finished.returncode == 0 and "resumed from" in finished.stderr, finished.stderr
    a, b = load_checkpoint(tmp_path / "whole" / "final.pt"), load_checkpoint(workdir / "final.pt")
    for part in ("model", "ema"):
        differing = [name for name in a[part] if not torch.equal(a[part][name], b[part][name])]
        assert not differing, f"{part} tensors differ: {differing[:3]}"
    assert [row["loss"] for row in log_rows(tmp_path / "whole" / "log.csv")] == \
        [row["loss"] for row in log_rows(workdir / "log.csv")]


def test_a_second_ctrl_c_aborts_at_once():
    from palette.signals import StopSignals

    # the handler in place before: Python's default_int_handler, or SIG_IGN in a process started in
    # the background by a non-interactive shell (which ignores SIGINT for it)
    before = signal.getsignal(signal.SIGINT)
    with StopSignals() as signals:
        os.kill(os.getpid(), signal.SIGINT)
        assert signals.received == "SIGINT"  # the first one asks for a save at the step's end
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before  # put back as it was


def test_an_empty_or_paper_scale_config_is_refused_before_anything_is_written(tmp_path, capsys):
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    workdir = tmp_path / "w"
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert run(parser.parse_args(["--config", str(empty), "--workdir", str(workdir), "--no-lease"])) == CONFIG_EXIT_CODE
    assert "names no 'task' and no 'preset'" in capsys.readouterr().err
    paper = write_config(tmp_path / "paper.yaml", {"task": "inpainting", "preset": "paper", "device": "cpu"})
    assert run(parser.parse_args(["--config", str(paper), "--workdir", str(workdir), "--no-lease"])) == CONFIG_EXIT_CODE
    error = capsys.readouterr().err
    assert "552.8 M parameters" in error and "--allow-cpu-paper-scale" in error
    assert not workdir.exists()
