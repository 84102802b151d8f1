"""What the repository ships: no scratch files, and configs that name only paths something produces.

A log, a core dump or an editor's backup committed by accident tells a reader nothing true; a
standalone trainer config that names a training list nothing writes fails for every user who
copies its command. Each shipped trainer config is loaded as `palette train` loads it, and a
`train_files` it names must be a target the workflow plans (a dry run of that file under the
preset of the same dataset)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import unavailable
from palette.config import load_config

REPO = Path(__file__).resolve().parents[1]
SCRATCH_SUFFIXES = {".log", ".out", ".err", ".pyc", ".orig", ".rej", ".swp", ".bak", ".tmp"}
TRAINER_CONFIGS = sorted((REPO / "config" / "train").glob("*.yaml"))


def tracked_files() -> list[str]:
    result = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True)
    if result.returncode != 0:
        unavailable(f"not a git checkout: {result.stderr.strip()}")  # a failure under CI, which always has one
    return result.stdout.splitlines()


def is_scratch(name: str) -> bool:
    path = Path(name)
    return (path.suffix in SCRATCH_SUFFIXES or name.endswith("~") or path.name in {"core", "nohup.out"}
            or path.parts[0] in {"results", "work", ".snakemake"})


def test_no_tracked_file_is_a_log_or_scratch_file():
    scratch = [name for name in tracked_files() if is_scratch(name)]
    assert not scratch, f"scratch files are tracked: {scratch}"


@pytest.mark.parametrize("name, scratch", [("jpeg_v_samplers.log", True), ("results/report.html", True),
                                            ("palette/train.py~", True), ("work/demo/run.json", True),
                                            ("palette/train.py", False), ("docs/paper.md", False),
                                            ("tests/data/public_reproduction/outputs.npz", False)])
def test_the_scratch_check_tells_scratch_from_source(name, scratch):
    assert is_scratch(name) == scratch


@pytest.mark.parametrize("path", TRAINER_CONFIGS, ids=lambda path: path.stem)
def test_each_trainer_config_loads_and_names_a_produced_training_list(path):
    config = load_config(path)
    if config.train_files is None:  # the photos installed with the project
        return
    target = Path(config.train_files)
    assert not target.is_absolute() and target.parts[0] == "results", target
    preset = REPO / "config" / "presets" / f"{target.parts[1]}.yaml"
    assert preset.is_file(), f"{path.name}: {target} belongs to no preset ({preset} missing)"
    result = subprocess.run([sys.executable, "-m", "snakemake", "-n", str(target),
                             "--configfile", str(preset)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{path.name}: the workflow does not produce {target}:\n{result.stderr[-2000:]}"
    assert "prepare_split" in result.stdout + result.stderr


def test_readme_and_docs_lines_fit_120_characters():
    pages = [REPO / "README.md", REPO / "config" / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    long = [f"{page.relative_to(REPO)}:{number}" for page in pages
            for number, line in enumerate(page.read_text().splitlines(), 1) if len(line) > 120]
    assert not long, f"lines over 120 characters: {long}"


def test_the_readme_stays_short_and_links_out():
    lines = (REPO / "README.md").read_text().splitlines()
    first_link = next(number for number, line in enumerate(lines, 1) if "](docs/" in line)
    assert first_link <= 150 and len(lines) <= 200, (first_link, len(lines))
    assert any(line.startswith("**Contents:**") for line in lines[:20])  # the table of contents
