"""Hostile and careless configs, round 2 (issue 22): numbers that are not finite, folders that
would put outputs at the filesystem root or into the repository, YAML that repeats a key or
expands without bound, an unknown U-Net preset or a size it cannot take, and a SIGTERM before
training has begun. As in tests/test_hostile.py: each ends with its documented exit code (78 for
`palette train`, a failed dry run for the workflow) and one line naming the key or file, and the
user's files are left as they were.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from palette.config import (
    MAX_YAML_VALUES, YAMLRefused, expanded_size, folder_problem, load_yaml, non_finite, read_yaml,
)
from test_dry_run import snakemake
from test_hostile import refused, snapshot

REPO = Path(__file__).resolve().parents[1]

TINY = dict(task="inpainting", preset="tiny", image_size=32, batch_size=2, steps=2, warmup_steps=0, num_workers=0,
            log_every=1, checkpoint_every=2, tensorboard=False, progress_bar=False, device="cpu")


def billion_laughs(levels: int = 9, key: str = "lol") -> str:
    """A YAML document of `levels` levels of ten aliases each: 10^levels strings once expanded."""
    lines = [f"{key}0: &{key}0 [" + ", ".join(['"lol"'] * 10) + "]"]
    lines += [f"{key}{i}: &{key}{i} [" + ", ".join([f"*{key}{i - 1}"] * 10) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


@pytest.fixture
def tiny_config(tmp_path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


def train_refused(config: Path, capsys, *extra: str) -> str:
    """`palette train` must exit 78 with one line, and make no work folder."""
    workdir = config.parent / "work"
    message = refused(["train", "--config", str(config), "--workdir", str(workdir), "--no-lease", *extra],
                      capsys, expected_code=78)
    assert not workdir.exists()
    return message


# ----------------------------------------------------------------------------- palette train
def test_non_finite_or_out_of_range_numbers_are_refused_by_key(tiny_config, tmp_path, capsys):
    written = tmp_path / "nan.yaml"
    written.write_text(yaml.safe_dump(TINY) + "ema_decay: .nan\n")
    before = snapshot(tmp_path)
    for setting, key, value in (("ema_decay=.nan", "ema_decay", "nan"), ("lr=.inf", "lr", "inf"),
                                ("lr=-.inf", "lr", "-inf"), ("adam_betas=[0.9, .nan]", "adam_betas[1]", "nan"),
                                ("model_overrides={dropout: .nan}", "model_overrides.dropout", "nan")):
        message = train_refused(tiny_config, capsys, "--set", setting)
        assert f"key '{key}' has value {value}: not a finite number" in message, message
    message = train_refused(tiny_config, capsys, "--time-budget", "nan")
    assert "key 'time_budget' has value nan" in message
    message = train_refused(tiny_config, capsys, "--set", "ema_decay=1")  # the average would stay the random start
    assert "'ema_decay' has value 1" in message
    message = train_refused(written, capsys)
    assert str(written) in message and "key 'ema_decay' has value nan: not a finite number" in message
    assert snapshot(tmp_path) == before


def test_an_unknown_preset_or_a_size_the_network_cannot_take_is_refused(tiny_config, capsys):
    message = train_refused(tiny_config, capsys, "--set", "preset=gigantic")
    assert "key 'preset' has value 'gigantic': no such U-Net preset" in message
    assert "known presets: paper, paper_local, paper_no_attention, paper_dilated, public, small, tiny" in message
    message = train_refused(tiny_config, capsys, "--set", "image_size=33")
    assert str(tiny_config) in message and "key 'image_size' has value 33" in message
    assert "halves the image 2 times, so the size must be a multiple of 4" in message
    message = train_refused(tiny_config, capsys, "--set", "model_overrides={attn_res: [16]}")
    assert "key 'model_overrides' names 'attn_res', not a U-Net option" in message
    message = train_refused(tiny_config, capsys, "--set", "model_overrides={dropout: 2}")
    assert "key 'model_overrides' has value {'dropout': 2}" in message and "between 0 and 1" in message


def test_a_repeated_key_or_an_alias_bomb_in_a_train_config_is_refused_by_line(tmp_path, capsys):
    repeated = tmp_path / "repeated.yaml"
    repeated.write_text(yaml.safe_dump(TINY) + "lr: 0.1\nlr: 0.2\n")
    message = train_refused(repeated, capsys)
    lines = len(repeated.read_text().splitlines())
    assert f"{repeated} line {lines}: key 'lr' given twice (first at line {lines - 1})" in message, message
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(yaml.safe_dump(TINY) + billion_laughs())
    started = time.monotonic()
    message = train_refused(bomb, capsys)
    assert time.monotonic() - started < 5
    assert str(bomb) in message and f"expand it past {MAX_YAML_VALUES:,} values" in message, message
    message = train_refused(repeated, capsys, "--set", "model_overrides={dropout: 0.1, dropout: 0.2}")
    assert "--set 'model_overrides={dropout: 0.1, dropout: 0.2}': key 'dropout' given twice" in message


def test_the_yaml_reader_keeps_merges_and_counts_aliases_as_written_out(tmp_path):
    # `<<` merges are meant to be overridden, and a few aliases are fine
    assert load_yaml("base: &b {lr: 1}\nrun:\n  <<: *b\n  lr: 2\nboth: [*b, *b]\n") == \
        {"base": {"lr": 1}, "run": {"lr": 2}, "both": [{"lr": 1}, {"lr": 1}]}
    for text, problem in (("a: 1\nb: {c: 2, c: 3}\n", "line 2: key 'c' given twice (first at line 2)"),
                          ("a: &a [1, *a]\n", "line 1: alias *a refers to the node that contains it"),
                          (billion_laughs(5), "expand it past 1,000 values")):
        with pytest.raises(YAMLRefused, match=problem.replace("(", r"\(").replace(")", r"\)").replace("*", r"\*")):
            load_yaml(text, limit=1000)
    path = tmp_path / "a.yaml"
    path.write_text("x: 1\nx: 2\n")
    with pytest.raises(YAMLRefused, match=f"{path} line 2: key 'x' given twice"):
        read_yaml(path)
    # a config Snakemake already loaded: shared objects count at each place, quickly
    assert expanded_size(yaml.safe_load(billion_laughs(9))) == MAX_YAML_VALUES + 1
    assert expanded_size({"a": [1, 2], "b": "c"}) == 7
    assert non_finite({"a": {"b": [1.0, float("-inf")]}}) == "key 'a.b[1]' has value -inf: not a finite number"
    assert non_finite({"a": 1e308, "b": [True, None, "nan"]}) is None


def test_folders_that_would_put_outputs_in_the_wrong_place_are_refused(tmp_path, monkeypatch):
    repository = tmp_path / "repo"
    repository.mkdir()
    (tmp_path / "a_file").write_text("mine")
    monkeypatch.chdir(repository)  # relative folders are read against the working directory
    expected = {"": "is empty", " ": "is empty", "/": "the filesystem root", ".": "the repository itself",
                str(repository): "the repository itself", "..": "a folder above the repository",
                str(tmp_path / "a_file"): "which is a file, not a folder"}
    for value, problem in expected.items():
        message = folder_problem("results_dir", value, repository)
        assert message and message.startswith("key 'results_dir' is") and problem in message, (value, message)
    for value in ("results", "../elsewhere", str(tmp_path / "results"), "results/../results2"):
        assert folder_problem("work_dir", value, repository) is None, value


# ----------------------------------------------------------------------------- SIGTERM before the first step
def environment() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(REPO))
    env.pop("CUDA_VISIBLE_DEVICES", None)
    env.pop("PALETTE_DEBUG", None)
    return env


def catches_sigterm(pid: int) -> bool:
    """Whether the process has a handler for SIGTERM (Linux: the SigCgt mask of /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    return False


def wait_until(condition, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"the trainer ended first (exit {process.returncode}): {process.stderr.read()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("timed out")
        time.sleep(0.005)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc/PID/status (Linux)")
def test_sigterm_during_set_up_exits_75_and_leaves_no_lock(tmp_path):
    """SIGTERM as soon as `palette train` has its handler (before torch is imported), then once
    the work folder is locked: each time exit 75, one line, and no train.lock left behind."""
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(dict(TINY, steps=100_000, checkpoint_every=100_000, log_every=100_000)))
    workdir = tmp_path / "work"
    command = [sys.executable, "-m", "palette.cli", "train", "--config", str(config), "--workdir", str(workdir),
               "--no-lease"]

    started = []  # a failed assertion must not leave a 100,000-step trainer running
    try:
        process = subprocess.Popen(command, env=environment(), stderr=subprocess.PIPE, text=True)
        started.append(process)
        wait_until(lambda: catches_sigterm(process.pid), process)
        assert not workdir.exists(), "the handler must be there before the set-up starts"
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 75, f"exit {process.returncode}: {stderr}"
        assert stderr.strip() == "palette train: training stopped (SIGTERM during set-up) before its first step; " \
                                 "nothing to save; run again to start", stderr
        assert not workdir.exists()

        process = subprocess.Popen(command, env=environment(), stderr=subprocess.PIPE, text=True)
        started.append(process)
        wait_until((workdir / "train.lock").exists, process)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 75, f"exit {process.returncode}: {stderr}"
        assert "training stopped (SIGTERM" in stderr and "Traceback" not in stderr, stderr
        assert not (workdir / "train.lock").exists()
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
                process.wait()


def test_the_work_folder_lock_is_removed_when_a_run_ends_and_a_stale_one_is_taken(tmp_path):
    from palette.checkpoint import CheckpointError
    from palette.train import lock_workdir, train

    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "train.lock").write_text("12345\n")  # left by a trainer killed with SIGKILL: not locked
    train(dict(TINY, steps=1), workdir)
    assert (workdir / "final.pt").is_file() and not (workdir / "train.lock").exists()
    holder = lock_workdir(workdir)
    with pytest.raises(CheckpointError, match="another trainer"):
        lock_workdir(workdir)
    holder.close()
    assert not (workdir / "train.lock").exists()
    lock_workdir(workdir).close()


# ----------------------------------------------------------------------------- the workflow's dry run
def dry_run_config(tmp_path: Path, change=None, text: str | None = None) -> Path:
    """config/test.yaml with its folders in tmp_path, changed by `change(config)`, or `text` as is."""
    config = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
    config.update(results_dir=str(tmp_path / "results"), work_dir=str(tmp_path / "work"))
    if change:
        change(config)
    path = tmp_path / "config.yaml"
    path.write_text(text if text is not None else yaml.safe_dump(config, sort_keys=False))
    return path


def setting(key: str, value):
    def change(config):
        *parents, last = key.split(".")
        for part in parents:
            config = config[part]
        config[last] = value
    return change


WORKFLOW_CASES = {
    "nan ema_decay": (setting("train_defaults.ema_decay", float("nan")),
                      "config: key 'train_defaults.ema_decay' has value nan: not a finite number"),
    "inf lr": (setting("experiments.inpainting.train.lr", float("inf")),
               "config: key 'experiments.inpainting.train.lr' has value inf: not a finite number"),
    "nan split": (setting("dataset.split.test", float("nan")), "key 'dataset.split.test' has value nan"),
    "empty results_dir": (setting("results_dir", ""), "config: key 'results_dir' is empty"),
    "root results_dir": (setting("results_dir", "/"), "config: key 'results_dir' is '/', the filesystem root"),
    "repository work_dir": (setting("work_dir", "."), "config: key 'work_dir' is '.', the repository itself"),
    "parent results_dir": (setting("results_dir", ".."), "a folder above the repository"),
    "root weights_dir": (setting("evaluation.weights_dir", "/"),
                         "config: key 'evaluation.weights_dir' is '/', the filesystem root"),
    "unknown preset": (setting("train_defaults.preset", "gigantic"),
                       "experiments.inpainting.train (merged over train_defaults): key 'preset' has value 'gigantic': "
                       "no such U-Net preset; known presets: paper,"),
    "image_size 33": (setting("dataset.image_size", 33),
                      "experiments.inpainting.train (image_size from dataset.image_size): key 'image_size' has value "
                      "33, which preset 'tiny' cannot take"),
    "folder root missing": (lambda config: config["dataset"].update(kind="folder", root="/nonexistent/images"),
                            "config: key 'dataset.root' is '/nonexistent/images', which does not exist"),
    "folder root a file": (lambda config: config["dataset"].update(kind="paired", root=str(REPO / "README.md")),
                           f"config: key 'dataset.root' is '{REPO / 'README.md'}', which is a file, not a folder"),
}


@pytest.mark.parametrize("case", list(WORKFLOW_CASES))
def test_the_dry_run_refuses_a_config_naming_the_key(tmp_path, case):
    change, expected = WORKFLOW_CASES[case]
    config = dry_run_config(tmp_path, change)
    before = snapshot(tmp_path)
    code, output = snakemake("-n", "--configfile", str(config))
    assert code != 0 and expected in output, output[-3000:]
    assert "Building DAG of jobs" not in output and len(output.splitlines()) < 10, output
    assert snapshot(tmp_path) == before  # no results or work folder made, the config untouched


def test_the_dry_run_refuses_a_repeated_key_or_an_alias_bomb_by_line(tmp_path):
    text = (REPO / "config" / "test.yaml").read_text().replace("seed: 0\n", "seed: 0\nseed: 1\n", 1)
    config = dry_run_config(tmp_path, text=text)
    line = text.splitlines().index("seed: 1") + 1
    code, output = snakemake("-n", "--configfile", str(config))
    assert code != 0 and f"config file {config} line {line}: key 'seed' given twice (first at line {line - 1})" \
        in output, output[-3000:]
    text = (REPO / "config" / "test.yaml").read_text() + billion_laughs(9, key="x_")
    config = dry_run_config(tmp_path, text=text)
    started = time.monotonic()
    code, output = snakemake("-n", "--configfile", str(config), timeout=120)
    assert code != 0 and f"config file {config} line" in output and "expand it past" in output, output[-3000:]
    assert time.monotonic() - started < 60  # was 57 s and 5.6 GB inside the schema validator


def test_a_stop_signal_ends_the_wait_for_a_gpu_lease(tmp_path, monkeypatch):
    from palette.lease import LeaseError, lease_gpus

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    held = lease_gpus(1, tmp_path, total=1)  # the machine's one GPU, taken by another job
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")  # as in a second job
    started = time.monotonic()
    with pytest.raises(LeaseError, match="stopped by SIGTERM while waiting for 1 free GPU"):
        lease_gpus(1, tmp_path, total=1, wait_seconds=600, poll_seconds=0.01, stopped=lambda: "SIGTERM")
    assert time.monotonic() - started < 5
    held.release()
