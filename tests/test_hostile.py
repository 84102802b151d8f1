"""Hostile and careless inputs, as a new user would try them: each ends with a one-line message
naming the file, key or value at fault and the documented exit code (2 for `palette` commands and
the workflow's scripts, 78 for a bad training config), or with the right behaviour, and nothing
the user had is changed or lost. No case answers wrongly with exit 0.

The trained model is the `tiny` U-Net, inpainting, 2 steps on 32x32 crops: seconds.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from palette import data
from palette.cli import main
from palette.imageio import save_image, save_mask

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A tiny inpainting checkpoint (what matters here is its task, not its quality)."""
    from palette.train import train

    folder = tmp_path_factory.mktemp("model")
    files = data.make_crops(data.demo_photo_paths()[:1], folder / "crops", crop_size=32, scales=(0.5,), crops_per_scale=2)
    config = dict(task="inpainting", preset="tiny", image_size=32, batch_size=2, steps=2, warmup_steps=0,
                  num_workers=0, log_every=1, checkpoint_every=2, tensorboard=False, progress_bar=False,
                  train_files=str(data.write_file_list(folder / "train.txt", files)))
    return train(config, folder / "run")


@pytest.fixture
def photo(tmp_path) -> dict:
    """The user's things: a photo, a mask with a hole, an all-black mask."""
    rng = np.random.default_rng(0)
    image = save_image(tmp_path / "photo.png", rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    hole = np.zeros((32, 32), bool)
    hole[8:20, 8:20] = True
    return {"image": image, "mask": save_mask(tmp_path / "mask.png", hole),
            "black": save_mask(tmp_path / "black.png", np.zeros((32, 32), bool))}


def snapshot(folder: Path) -> dict:
    """Every file under `folder` with its content digest: nothing the user had may change."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def refused(argv: list[str], capsys, expected_code: int = 2) -> str:
    """Run `palette ARGV` in this process; it must exit with `expected_code` and one line, no traceback."""
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse refusals
        code = exit_.code
    captured = capsys.readouterr()
    assert code == expected_code, f"exit {code}: {captured.err}"
    message = [line for line in captured.err.splitlines() if line.strip() and not line.startswith("usage:")
               and not line.startswith(" ")]
    assert len(message) == 1 and "Traceback" not in captured.err, captured.err
    return message[0]


def infer(model: Path, photo: dict, output: Path, *extra: str) -> list[str]:
    return ["infer", "--checkpoint", str(model), "--image", str(photo["image"]), "--output", str(output),
            "--steps", "2", "--device", "cpu", *extra]


# ----------------------------------------------------------------------------- wrong answers with exit 0
def test_an_all_black_mask_is_refused(model, photo, tmp_path, capsys):
    before = snapshot(tmp_path)
    message = refused(infer(model, photo, tmp_path / "out.png", "--mask", str(photo["black"])), capsys)
    assert "black.png" in message and "marks no pixel to fill" in message
    assert snapshot(tmp_path) == before


def test_a_task_the_model_never_saw_is_refused(model, photo, tmp_path, capsys):
    message = refused(infer(model, photo, tmp_path / "out.png", "--task", "colorization"), capsys)
    assert "--task colorization" in message and "trained on inpainting only" in message
    assert not (tmp_path / "out.png").exists()


def test_output_over_the_input_is_refused_and_the_photo_kept(model, photo, tmp_path, capsys):
    before = snapshot(tmp_path)
    for output in (photo["image"], tmp_path / "sub" / ".." / "photo.png", photo["mask"]):
        message = refused(infer(model, photo, output, "--mask", str(photo["mask"])), capsys)
        assert "would be overwritten" in message
    assert snapshot(tmp_path) == before


def test_zero_samples_and_negative_sizes_are_refused_by_name(model, photo, tmp_path, capsys):
    for flag, value in (("--samples", "0"), ("--num-samples", "0"), ("--size", "-4"), ("--steps", "0")):
        message = refused(infer(model, photo, tmp_path / "out.png", "--mask", str(photo["mask"]), flag, value), capsys)
        assert f"argument {flag}: expected a positive integer, got {int(value)}" in message
    for flag, value in (("--samples", "0"), ("--batch-size", "0")):
        message = refused(["sample", "--checkpoint", str(model), "--input", str(tmp_path), "--output",
                           str(tmp_path / "samples"), flag, value], capsys)
        assert f"argument {flag}" in message
    assert not (tmp_path / "out.png").exists() and not (tmp_path / "samples").exists()


def test_the_output_format_follows_the_suffix_or_is_refused(model, photo, tmp_path, capsys):
    from PIL import Image

    assert main(infer(model, photo, tmp_path / "filled.jpg", "--mask", str(photo["mask"]))) == 0
    assert (tmp_path / "filled.jpg").read_bytes()[:2] == b"\xff\xd8"  # JPEG, not PNG bytes
    with Image.open(tmp_path / "filled.jpg") as written:
        assert written.format == "JPEG" and written.size == (32, 32)
    capsys.readouterr()
    for name in ("filled.xyz", "filled"):
        message = refused(infer(model, photo, tmp_path / name, "--mask", str(photo["mask"])), capsys)
        assert name in message and "unknown image suffix" in message
        assert not (tmp_path / name).exists()


def test_a_set_without_masks_is_refused_for_an_inpainting_model(model, photo, tmp_path, capsys):
    evaluation_set = tmp_path / "set"
    save_image(evaluation_set / "source" / "a.png", np.zeros((32, 32, 3), np.uint8))
    before = snapshot(evaluation_set)
    message = refused(["sample", "--checkpoint", str(model), "--input", str(evaluation_set), "--output",
                       str(tmp_path / "samples"), "--steps", "2", "--device", "cpu"], capsys)
    assert "has no mask/ folder" in message and "inpainting" in message
    assert snapshot(evaluation_set) == before and not (tmp_path / "samples").exists()


# ----------------------------------------------------------------------------- damaged checkpoints
def damaged_checkpoints(folder: Path) -> dict[str, Path]:
    class RunsCode:
        def __reduce__(self):
            return os.system, (f"touch {folder / 'pwned'}",)

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "random.pt").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    (folder / "empty.pt").write_bytes(b"")
    (folder / "a_folder.pt").mkdir()
    torch.save({"model": RunsCode()}, folder / "malicious.pt")  # a torch file whose pickle runs a command
    return {name: folder / f"{name}.pt" for name in ("random", "empty", "a_folder", "malicious")}


@pytest.mark.parametrize("command", ["infer", "sample"])
def test_damaged_checkpoints_are_refused_in_one_line(photo, tmp_path, capsys, command):
    checkpoints = damaged_checkpoints(tmp_path / "checkpoints")
    evaluation_set = tmp_path / "set"
    save_image(evaluation_set / "source" / "a.png", np.zeros((32, 32, 3), np.uint8))
    before = snapshot(tmp_path)
    expected = {"random": "is unreadable", "empty": "is an empty file", "a_folder": "is a folder",
                "malicious": "unsupported GLOBAL"}
    for name, checkpoint in checkpoints.items():
        if command == "infer":
            argv = infer(checkpoint, photo, tmp_path / "out.png", "--mask", str(photo["mask"]))
        else:
            argv = ["sample", "--checkpoint", str(checkpoint), "--input", str(evaluation_set), "--output",
                    str(tmp_path / "samples")]
        message = refused(argv, capsys)
        assert str(checkpoint) in message and expected[name] in message, message
    assert not (tmp_path / "checkpoints" / "pwned").exists()  # the pickle's code never ran
    assert snapshot(tmp_path) == before


def test_the_real_command_exits_2_and_palette_debug_shows_the_traceback(photo, tmp_path):
    checkpoint = damaged_checkpoints(tmp_path / "checkpoints")["malicious"]
    argv = [sys.executable, "-m", "palette.cli", *infer(checkpoint, photo, tmp_path / "out.png", "--mask", str(photo["mask"]))]
    environment = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    environment.pop("PALETTE_DEBUG", None)
    brief = subprocess.run(argv, env=environment, capture_output=True, text=True)
    assert brief.returncode == 2 and brief.stderr.count("\n") == 1, brief.stderr
    assert brief.stderr.startswith(f"palette infer: error: checkpoint {checkpoint}")
    debug = subprocess.run(argv, env={**environment, "PALETTE_DEBUG": "1"}, capture_output=True, text=True)
    assert debug.returncode == 1 and "Traceback" in debug.stderr


# ----------------------------------------------------------------------------- configs
def test_training_configs_with_yaml_errors_or_nothing_in_them_are_refused(tmp_path, capsys):
    cases = {
        "syntax.yaml": ("task: inpainting\npreset: [tiny\n", "syntax.yaml line 3 column 1: YAML syntax error"),
        "empty.yaml": ("", "names no 'task' and no 'preset'"),
        "only_task.yaml": ("task: inpainting\n", "names no 'preset'"),
        "a_list.yaml": ("- task\n", "expected a mapping"),
        "binary.yaml": (b"\xff\xfe\x00", "not a UTF-8 text file"),
    }
    for name, (content, expected) in cases.items():
        path = tmp_path / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        message = refused(["train", "--config", str(path), "--workdir", str(tmp_path / "work"), "--no-lease"],
                          capsys, expected_code=78)
        assert str(path) in message and expected in message, message
    message = refused(["train", "--config", str(tmp_path / "missing.yaml"), "--workdir", str(tmp_path / "work")],
                      capsys, expected_code=78)
    assert "missing.yaml: no such file" in message
    assert not (tmp_path / "work").exists()


def test_a_workflow_config_typo_is_one_line_not_the_schema(tmp_path):
    config = (REPO / "config" / "test.yaml").read_text().replace("results_dir:", "results_dirr:")
    (tmp_path / "typo.yaml").write_text(config)
    result = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--configfile", str(tmp_path / "typo.yaml")],
                            cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "config: unknown key 'results_dirr' (did you mean 'results_dir'?)" in output
    assert len(output.splitlines()) < 10 and "additionalProperties" not in output, output


def test_schema_problems_name_the_key():
    from palette.errors import schema_problem

    schema = {"type": "object", "additionalProperties": False, "properties": {
        "seed": {"type": "integer"},
        "dataset": {"type": "object", "additionalProperties": False, "properties": {"image_size": {"type": "integer"}}}}}
    assert schema_problem({"seed": 1, "dataset": {"image_size": 8}}, schema) is None
    assert schema_problem({"dataset": {"imag_size": 8}}, schema) == \
        "config: unknown key 'dataset.imag_size' (did you mean 'image_size'?)"
    assert schema_problem({"seed": "zero"}, schema) == "config: key 'seed' has value 'zero': 'zero' is not of type 'integer'"


def test_workflow_scripts_report_bad_input_in_one_line(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent("""
        import sys
        from palette.errors import brief_script_errors
        brief_script_errors("rule demo")
        from palette.imageio import load_image
        load_image(sys.argv[1])
    """))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    environment = dict(os.environ, PYTHONPATH=str(REPO))
    environment.pop("PALETTE_DEBUG", None)
    result = subprocess.run([sys.executable, str(script), str(broken)], env=environment, capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"rule demo: error: cannot load image '{broken}'")
    bug = subprocess.run([sys.executable, "-c", "from palette.errors import brief_script_errors; "
                          "brief_script_errors(); raise KeyError('a bug')"], env=environment, capture_output=True, text=True)
    assert bug.returncode == 1 and "Traceback" in bug.stderr  # a bug keeps its traceback


# ----------------------------------------------------------------------------- evaluation
def test_eval_names_a_truncated_image_and_writes_nothing_into_the_samples_folder(tmp_path, capsys):
    rng = np.random.default_rng(1)
    for name in ("a", "b"):
        image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        save_image(tmp_path / "gt" / f"{name}.png", image)
        save_image(tmp_path / "samples" / f"{name}.png", image)
    before = snapshot(tmp_path / "samples")
    argv = ["eval", "-s", str(tmp_path / "gt"), "-d", str(tmp_path / "samples"), "--metrics", "psnr,ssim",
            "--no-progress", "--device", "cpu"]
    assert main(argv) == 0
    assert snapshot(tmp_path / "samples") == before  # no metrics.json unless --json asks for it
    assert main([*argv, "--json", str(tmp_path / "metrics.json")]) == 0 and (tmp_path / "metrics.json").is_file()
    capsys.readouterr()
    truncated = tmp_path / "samples" / "b.png"
    truncated.write_bytes(truncated.read_bytes()[:200])
    message = refused(argv, capsys)
    assert str(truncated) in message and "truncated or corrupt" in message


def test_fid_from_few_images_warns_with_the_count():
    from palette.metrics.fid import FeatureStatistics

    with pytest.warns(UserWarning, match="FID statistics from 6 images"):
        FeatureStatistics.from_features(np.random.default_rng(0).normal(size=(6, 2048)))


def test_downloads_give_up_quickly_when_the_server_is_unreachable(monkeypatch):
    import socket
    import urllib.request

    from palette import weights

    with socket.socket() as probe:  # a port on this machine that nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    spec = weights.WeightFile(name="x", filename="x.pt", sha256="0" * 64, description="test",
                              url=f"http://127.0.0.1:{port}/x.pt")

    def never(*args, **kwargs):
        raise AssertionError("urlopen was called although the server does not answer")

    monkeypatch.setattr(urllib.request, "urlopen", never)
    monkeypatch.setenv(weights.CONNECT_TIMEOUT_ENV, "1")
    with pytest.raises(ConnectionError, match=f"127.0.0.1:{port} not reachable within 1 s"):
        weights._download_url(spec, Path("unused"))
