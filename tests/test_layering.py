"""A user's config file layered over config.yaml (palette.layering), and typed --config values."""

from __future__ import annotations

from pathlib import Path

import yaml

from palette.layering import deep_merge, layered, typed, workflow_config

REPO = Path(__file__).resolve().parents[1]
DEFAULTS = yaml.safe_load((REPO / "config.yaml").read_text())


def test_a_dataset_block_alone_gets_the_demo_recipe_in_folders_of_its_own():
    mine = {"dataset": {"name": "my_photos", "kind": "folder", "root": "/data/my_photos", "image_size": 64}}
    config = layered(DEFAULTS, mine)
    assert config["dataset"] == mine["dataset"]  # replaced whole: no demo crops or hold-outs leak in
    assert config["experiments"] == DEFAULTS["experiments"] and config["samplers"] == DEFAULTS["samplers"]
    assert (config["results_dir"], config["work_dir"]) == ("results/my_photos", "work/my_photos")


def test_given_keys_replace_whole_and_given_folders_stay():
    mine = {"dataset": {"name": "scans", "kind": "paired", "root": "/data/scans"}, "results_dir": "out",
            "experiments": {"scans": {"train": {"task": "paired"}, "evaluate_on": ["paired"]}}, "study": {}}
    config = layered(DEFAULTS, mine)
    assert list(config["experiments"]) == ["scans"] and config["study"] == {}
    assert (config["results_dir"], config["work_dir"]) == ("out", "work/scans")


def test_the_paper_presets_are_left_as_they_are():
    for preset in sorted((REPO / "config" / "presets").glob("*.yaml")):
        values = yaml.safe_load(preset.read_text())
        config = layered(DEFAULTS, values)
        assert config == values, f"{preset.name} takes {sorted(set(config) - set(values))} from config.yaml"


def test_the_demo_itself_keeps_its_folders():
    assert layered(DEFAULTS, {"seed": 3})["results_dir"] == DEFAULTS["results_dir"]


def test_command_line_values_are_typed_and_merged_key_by_key(tmp_path):
    # what Snakemake's parse_config makes of --config 'train_defaults={steps: 10, lr: 0.5, tensorboard: true}'
    command_line = {"train_defaults": {"steps": "10", "lr": "0.5", "tensorboard": "true"}, "seed": 4}
    config = workflow_config(REPO / "config.yaml", [], command_line)
    assert config["train_defaults"]["steps"] == 10 and config["train_defaults"]["lr"] == 0.5
    assert config["train_defaults"]["tensorboard"] is True and config["seed"] == 4
    assert config["train_defaults"]["preset"] == DEFAULTS["train_defaults"]["preset"]  # the rest kept


def test_typed_keeps_text_that_is_text():
    assert typed({"a": ["1", "x", "null", "[1, 2]", "a: b"]}) == {"a": [1, "x", None, "[1, 2]", "a: b"]}


def test_config_files_merge_in_order_before_layering(tmp_path):
    first = {"dataset": {"name": "mine", "kind": "folder", "root": "/a"}, "train_defaults": {"steps": 5}}
    second = {"dataset": {"root": "/b"}}
    config = workflow_config(REPO / "config.yaml", [first, second], {})
    assert config["dataset"] == {"name": "mine", "kind": "folder", "root": "/b"}
    assert config["train_defaults"] == {"steps": 5}  # given by a file: replaces the demo's whole block
    assert deep_merge({"a": {"b": 1, "c": 2}}, {"a": {"b": 3}}) == {"a": {"b": 3, "c": 2}}


def readme_own_data_snippet() -> str:
    """The first YAML block of the README's "On your own data" section, as a reader copies it."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("## On your own data"):]
    return section.split("```yaml\n", 1)[1].split("```", 1)[0]


def test_the_readmes_own_data_snippet_plans_as_written_and_a_nested_override_takes(tmp_path):
    """Saved as a file and given to `snakemake --configfile`, the README's snippet (only its folder
    pointed at a folder of photos) plans the whole DAG into results/NAME; a nested --config value
    changes what is trained: steps 10 in segments of 5 plans exactly one segment, ending at step 5."""
    import shutil
    import subprocess
    import sys

    from palette.data import demo_photo_paths

    snippet = yaml.safe_load(readme_own_data_snippet())
    photos = tmp_path / "photos"
    photos.mkdir()
    for path in demo_photo_paths():
        shutil.copy(path, photos)
    snippet["dataset"]["root"] = str(photos)
    (tmp_path / "my.yaml").write_text(yaml.safe_dump(snippet))
    name = snippet["dataset"]["name"]
    result = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--configfile", str(tmp_path / "my.yaml"),
                             "--config", "train_defaults={steps: 10}", "training={segment_steps: 5}"],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert f"results/{name}/report.html" in output and f"work/{name}/train/" in output
    assert "/segments/5.json" in output and "/segments/10.json" not in output, output[-3000:]
    assert " results/report.html" not in output  # the demo's results are not touched
