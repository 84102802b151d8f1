"""The workflow's `external` role (palette.external, docs/import.md "In the workflow: the external
role"): an experiment that names a model instead of training one. Checked when the DAG is built
(one line naming the key), brought in by the import_checkpoint job (converted or copied, checked
by loading), never matched by the training rules, and shown in the report beside the paper's
Palette as "public reproduction (imported)" with the numbers its own project reports."""

from __future__ import annotations

import copy
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from palette.external import IMPORTED_LABEL, external_problem, reported_text
from palette.external_model import bring_in

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "public_reproduction"
NETWORK = DATA / "8_Network.pth"
CONFIG_32 = DATA / "config_32.json"  # the fixture network at the CI DAG's 32x32 (its README says why)
CI_CONFIG = ROOT / "config" / "test.yaml"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _external(**given) -> dict:
    settings = {"role": "external", "train": {"task": "inpainting"}, "evaluate_on": ["inpainting_center"],
                "checkpoint": None, "import": None, "reported": None, "reported_note": "", "segment_steps": None}
    settings.update(given)
    return settings


# --------------------------------------------------------------------------------------------
# When the DAG is built


def test_the_settings_are_checked_when_the_dag_is_built_naming_the_key(tmp_path):
    imported = {"network": str(NETWORK), "config": str(CONFIG_32)}

    def problem(settings, size=32):
        return external_problem("public", settings, size, tmp_path / "results" / "checkpoints" / "public.pt")

    assert problem(_external(**{"import": imported})) is None
    assert "give 'checkpoint'" in problem(_external())  # neither
    assert "gives both 'checkpoint' and 'import'" in problem(_external(checkpoint=str(NETWORK), **{"import": imported}))
    missing = problem(_external(checkpoint=str(tmp_path / "gone.pt")))
    assert missing.startswith("key 'experiments.public.checkpoint' is ") and "does not exist" in missing
    assert "a folder" in problem(_external(checkpoint=str(tmp_path)))
    gone = problem(_external(**{"import": dict(imported, network=str(tmp_path / "9_Network.pth"))}))
    assert gone.startswith("key 'experiments.public.import.network'") and "does not exist" in gone
    assert "give 'network'" in problem(_external(**{"import": {"config": str(CONFIG_32)}}))
    # their config says what the model is: its task and its image size must be the run's
    wrong_task = problem(_external(train={"task": "colorization"}, **{"import": imported}))
    assert wrong_task.startswith("key 'experiments.public.train.task' is 'colorization'") and "'inpainting'" in wrong_task
    assert "model.which_networks.0.args.unet.image_size" in problem(_external(**{"import": dict(imported, config=str(DATA / "config.json"))}))
    assert "dataset.image_size is 64" in problem(_external(**{"import": imported}), size=64)
    broken = tmp_path / "broken.json"
    broken.write_text("{ not json")
    assert problem(_external(**{"import": dict(imported, config=str(broken))})).startswith("key 'experiments.public.import.config': ")
    # it is not trained here: training settings are refused, not silently ignored
    assert problem(_external(train={"task": "inpainting", "lr": 0.1}, **{"import": imported})).startswith(
        "key 'experiments.public.train.lr': an external experiment is not trained here")
    assert "segment_steps" in problem(_external(segment_steps=10, **{"import": imported}))
    # a reported number must stand beside one of ours
    assert "reported.jpeg_q5" in problem(_external(reported={"jpeg_q5": {"fid": 1.0}}, **{"import": imported}))
    # its own output as its source would be a cycle
    output = tmp_path / "results" / "checkpoints" / "public.pt"
    output.parent.mkdir(parents=True)
    output.write_bytes(b"x")
    assert "the workflow's own output" in problem(_external(checkpoint=str(output)))
    # the keys belong to role external only
    trained = {"role": "task_model", "train": {"task": "inpainting"}, "evaluate_on": ["inpainting_center"],
               "checkpoint": str(NETWORK), "import": None, "reported": None, "reported_note": ""}
    assert problem(trained).startswith("key 'experiments.public.checkpoint' is for an experiment with role external")
    assert problem(dict(trained, checkpoint=None)) is None


def snakemake(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snakemake", *arguments], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def _ci_config(tmp_path: Path, change=None) -> Path:
    config = yaml.safe_load(CI_CONFIG.read_text())
    config["results_dir"], config["work_dir"] = str(tmp_path / "results"), str(tmp_path / "work")
    if change:
        change(config)
    path = tmp_path / "ci.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_the_ci_dag_imports_the_external_model_and_never_trains_it(tmp_path):
    """config/test.yaml's external experiment: import_checkpoint makes its checkpoint, no training
    rule matches it, no training log is asked of it; it is sampled, evaluated and reported."""
    result = snakemake("-n", "--configfile", str(_ci_config(tmp_path)))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rules_of = {}  # experiment -> the rules whose outputs are its checkpoint or training log
    for rule, block in re.findall(r"^(?:local)?rule (\w+):\n((?:    .*\n)+)", result.stdout, re.MULTILINE):
        output = re.search(r"^    output: (.*)$", block, re.MULTILINE)
        for name in re.findall(r"checkpoints/(\w+)\.(?:pt|csv)\b", output[1] if output else ""):
            rules_of.setdefault(name, set()).add(rule)
    assert rules_of["inpainting_public"] == {"import_checkpoint"}
    assert rules_of["inpainting"] == {"train"}
    assert "checkpoints/inpainting_public.csv" not in result.stdout
    assert "work/train/inpainting_public" not in result.stdout
    assert "metrics/inpainting_public/inpainting_center/ddim_2.json" in result.stdout
    assert "checkpoints/inpainting_public.external.json" in result.stdout.split("rule html_report:")[1]


def test_a_bad_external_experiment_stops_the_dry_run_in_one_line(tmp_path):
    def both(config):
        config["experiments"]["inpainting_public"]["checkpoint"] = str(NETWORK)

    result = snakemake("-n", "--configfile", str(_ci_config(tmp_path, both)))
    assert result.returncode != 0
    assert "experiments.inpainting_public: gives both 'checkpoint' and 'import'" in result.stdout + result.stderr


def commented_example(preset: Path) -> dict:
    """The commented external experiment of a paper preset, uncommented: {name: settings}."""
    lines = preset.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if re.fullmatch(r"  # \w+_public:", line))
    end = start + 1
    while end < len(lines) and lines[end].startswith("  #   "):  # its indented keys
        end += 1
    return yaml.safe_load("\n".join(line.replace("# ", "", 1) for line in lines[start:end]))


@pytest.mark.parametrize("preset, their_config", [("celebahq", "inpainting_celebahq"), ("places2", "inpainting_places2")])
def test_the_presets_commented_example_is_a_valid_external_experiment(tmp_path, preset, their_config):
    """Uncommented, with stand-ins for their files (their released config's network part), the
    example passes the schema and the DAG-time checks at the preset's image size."""
    import jsonschema

    path = ROOT / "config" / "presets" / f"{preset}.yaml"
    config = yaml.safe_load(path.read_text())
    (name, settings), = commented_example(path).items()
    assert settings["role"] == "external" and name not in config["experiments"]
    config["experiments"][name] = settings
    schema = yaml.safe_load((ROOT / "config" / "schema.yaml").read_text())
    assert not [error.message for error in jsonschema.Draft202012Validator(schema).iter_errors(config)]
    full_size = json.loads((DATA / "full_size_networks.json").read_text())["networks"][their_config]["config"]
    stand_ins = {"network": tmp_path / "N_Network.pth", "config": tmp_path / f"{their_config}.json"}
    stand_ins["network"].write_bytes(b"")
    stand_ins["config"].write_text(json.dumps(full_size))
    settings = {**_external(), **settings, "import": {key: str(stand_ins[key]) for key in settings["import"]}}
    assert external_problem(name, settings, config["dataset"]["image_size"], tmp_path / "out.pt") is None


# --------------------------------------------------------------------------------------------
# The job


EXPECTED = {"task": "inpainting", "objective": "diffusion", "image_size": 32}


def test_the_job_converts_or_copies_the_model_checks_it_and_leaves_the_users_files_alone(tmp_path):
    from palette.checkpoint import load_model

    before = {path: _digest(path) for path in (NETWORK, CONFIG_32)}
    record = bring_in("public", {"import": {"network": str(NETWORK), "config": str(CONFIG_32)}}, EXPECTED,
                      tmp_path / "public.pt", tmp_path / "public.external.json")
    assert {path: _digest(path) for path in (NETWORK, CONFIG_32)} == before
    model, config = load_model(tmp_path / "public.pt")
    assert (config.task, config.image_size, config.preset) == ("inpainting", 32, "public")
    written = json.loads((tmp_path / "public.external.json").read_text())
    assert written == json.loads(json.dumps(record)) and record["label"] == IMPORTED_LABEL
    assert record["files"]["network"]["sha256"] == before[NETWORK] and record["kind"] == "imported"
    assert any("raw gamma" in change for change in record["departures"])
    assert record["imported"]["sampler"]["variance"] == "posterior"  # their sampler, recorded
    # a checkpoint of ours (here the converted one) is copied byte for byte, once it loads
    copied = bring_in("again", {"checkpoint": str(tmp_path / "public.pt")}, EXPECTED, tmp_path / "again.pt",
                      tmp_path / "again.external.json")
    assert (tmp_path / "again.pt").read_bytes() == (tmp_path / "public.pt").read_bytes()
    assert copied["label"] == IMPORTED_LABEL and copied["departures"] == record["departures"]
    # a model that is not the experiment's is refused, naming the key, and nothing is written
    with pytest.raises(ValueError, match=r"^key 'experiments.wrong.train.task' is 'colorization'"):
        bring_in("wrong", {"checkpoint": str(tmp_path / "public.pt")}, dict(EXPECTED, task="colorization"),
                 tmp_path / "wrong.pt", tmp_path / "wrong.external.json")
    with pytest.raises(ValueError, match="trained at 16x16 .* dataset.image_size is 32"):
        bring_in("small", {"import": {"network": str(NETWORK), "config": str(DATA / "config.json")}}, EXPECTED,
                 tmp_path / "small.pt", tmp_path / "small.external.json")
    assert not list(tmp_path.glob("wrong*")) and not list(tmp_path.glob("small*"))
    # a damaged file is refused by its name
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes((tmp_path / "public.pt").read_bytes()[:1000])
    with pytest.raises(Exception, match="damaged.pt"):
        bring_in("damaged", {"checkpoint": str(damaged)}, EXPECTED, tmp_path / "d.pt", tmp_path / "d.external.json")


# --------------------------------------------------------------------------------------------
# The report


def _write_run(path: Path, names, reference: Path, pool3, evaluation_set="demo_photos_test"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"experiment": path.parent.parent.name, "task": path.parent.name, "sampler": path.stem,
                                "n_images": len(names), "fid": 10.0, "is": 2.0, "fid_comparable": False,
                                "evaluation_set": {"name": evaluation_set, "count": len(names)},
                                "fid_reference": {"name": reference.stem, "path": str(reference), "count": 200}}))
    np.savez(path.with_suffix(".npz"), names=np.array(names), pool3=pool3.astype(np.float32))
    return str(path)


RECORD = {"experiment": "public", "label": IMPORTED_LABEL, "kind": "imported", "files": {"network": {"name": "8_Network.pth",
          "sha256": "ab" * 32}}, "departures": ["noise level embedded as raw gamma"], "sampler_departures": ["posterior variance"],
          "imported": {"source": "github.com/Janspiry/Palette-Image-to-Image-Diffusion-Models", "weights": "network", "epoch": 8}}
REPORTED = {"inpainting_center": {"fid": 5.7873, "is": 3.0705}}


def fake_run(tmp_path, with_palette=True, n=40, dim=16):
    """Our inpainting Palette (optional) and an imported model, evaluated on inpainting_center."""
    rng = np.random.default_rng(2)
    results = tmp_path / "results"
    reference = results / "reference" / "demo_val.npz"
    reference.parent.mkdir(parents=True)
    features = rng.normal(size=(200, dim))
    np.savez(reference, mu=features.mean(0), sigma=np.cov(features.T), count=200, name="demo_val")
    names = [f"img{i:03d}" for i in range(n)]
    experiments = {"public": _external(**{"import": {"network": "8_Network.pth", "config": "c.json"}}, reported=REPORTED,
                                       reported_note="its README, CelebA-HQ")}
    if with_palette:
        experiments = {"inpainting": {"role": "task_model", "train": {"task": "inpainting"}, "evaluate_on": ["inpainting_center"]},
                       **experiments}
    runs = [(name, "inpainting_center", "ddim_2") for name in experiments]
    paths = [_write_run(results / "metrics" / e / t / f"{s}.json", names, reference, rng.normal(size=(n, dim)))
             for e, t, s in runs]
    samplers = {"ddim_2": {"preset": "fast", "name": "ddim", "steps": 2}}
    return experiments, runs, paths, samplers, results


def test_the_report_tables_show_the_imported_model_beside_the_papers_palette_with_its_own_numbers(tmp_path):
    from palette.report import load_metrics, numbers_reproduced, paper_tables
    from palette.verdict import Statistics

    experiments, runs, paths, samplers, results = fake_run(tmp_path)
    metrics = {tuple(run): flat for run, flat in zip(runs, load_metrics(paths))}
    shown = {(e, t): s for e, t, s in runs}
    tables = paper_tables(experiments, metrics, shown, "demo_photos", number=numbers_reproduced(Statistics(), runs, paths, []),
                          externals={"public": RECORD})
    rows = {row["label"]: row for table in tables for row in table["rows"]}
    imported = rows[f"Palette, 128x128 centre, {IMPORTED_LABEL}"]
    assert imported["external"] and imported["run"] == {"experiment": "public", "task": "inpainting_center", "sampler": "ddim_2"}
    fid, inception = imported["cells"][0], imported["cells"][1]
    assert fid["paper"] == 6.4 and fid["ours"] == 10.0 and fid["reported"] == 5.7873 and inception["reported"] == 3.0705
    # judged against the paper's Palette number where the protocol is the table's: the demo's is not
    assert fid["number"]["verdict"] == "not comparable" and "demo_photos_test" in fid["number"]["reason"]
    # and in Table 6, beside the paper's Palette (I+P) specialist
    assert rows[f"Specialist, 128x128 centre inpainting, {IMPORTED_LABEL}"]["cells"][0]["paper"] == 6.6
    # our own Palette's row is still ours alone; no imported row where it is not evaluated
    assert rows["Palette, 128x128 centre"]["run"]["experiment"] == "inpainting"
    assert f"Palette, 10-20 % free-form, {IMPORTED_LABEL}" not in rows
    assert all(cell["reported"] is None for cell in rows["Palette, 128x128 centre"]["cells"])


def test_the_verdicts_judge_the_imported_model_against_the_papers_palette_and_ours(tmp_path):
    from palette.verdict import reproduction_verdicts

    for with_palette in (True, False):
        experiments, runs, paths, samplers, results = fake_run(tmp_path / str(with_palette), with_palette)
        section = reproduction_verdicts(experiments, runs, paths, samplers, results, samples=200, fid_samples=100,
                                        externals={"public": RECORD})
        own = {row["claim"]: row for finding in section["own_findings"] for row in finding["rows"]}
        row = own["inpainting_center: public's FID is within 10% of our Palette's"]
        assert row["a"] == f"{IMPORTED_LABEL}: public / inpainting_center / ddim_2" and row["source"] == "ours"
        assert row["paper"] == "Palette 6.4 (Inpainting (paper Table 2), Palette, 128x128 centre)"
        # its side names palette import's departures, then its run's sampler's
        assert row["departures_a"][0] == "noise level embedded as raw gamma" and len(row["departures_a"]) > 1
        assert "Its own project reports FID 5.7873, IS 3.0705 (its README, CelebA-HQ)." in row["note"]
        # the number against the paper's Palette stands even without a Palette of ours to compare with
        assert row["number_a"]["verdict"] == "not comparable" and row["number_a"]["paper"] == 6.4
        if with_palette:
            assert row["b"].startswith("our Palette (inpainting / inpainting_center") and row["difference"] is not None
        else:
            assert row["verdict"] == "inconclusive" and "no experiment with role 'task_model'" in row["reason"]
        # kept out of the paper's tally
        assert all(r["claim"] != row["claim"] for finding in section["findings"] for r in finding["rows"])


def test_the_rendered_report_names_the_imported_model_its_source_and_departures(tmp_path):
    from palette.report import build_report

    experiments, runs, paths, samplers, results = fake_run(tmp_path, n=12, dim=16)
    experiments = {name: dict(settings, description="") for name, settings in experiments.items()}
    record = tmp_path / "public.external.json"
    record.write_text(json.dumps(RECORD))
    curves = tmp_path / "curves.png"
    Image.new("RGB", (4, 4)).save(curves)
    (tmp_path / "benchmarks").mkdir()
    html = build_report(
        tmp_path / "report.html", title="t", dataset={"name": "demo", "kind": "demo_photos", "image_size": 32, "evaluation_images": 12},
        experiments=experiments, runs=runs, samplers=samplers, sweep=None, metric_paths=paths, table_paths=[], training_log_paths=[],
        training_curves=curves, quality_vs_steps=None, results_dir=results, benchmarks_dir=tmp_path / "benchmarks", config_hash="abc",
        train_configs={"inpainting": {"task": "inpainting"}, "public": {"task": "inpainting", "objective": "diffusion"}},
        external_paths=[record],
    ).read_text()
    tables = html.split('id="reproduce"')[0]
    assert f"Palette, 128x128 centre, {IMPORTED_LABEL}" in tables and "they report 5.7873" in tables
    assert "Not trained here: public reproduction (imported) from github.com/Janspiry" in html
    departures = html.split('id="departures"')[1].split("<h2")[0]
    assert f"{IMPORTED_LABEL} <code>public</code>: noise level embedded as raw gamma" in departures


def test_reported_text_says_whose_numbers_they_are():
    settings = _external(reported=REPORTED, reported_note="its README")
    assert reported_text(settings, "inpainting_center") == "Its own project reports FID 5.7873, IS 3.0705 (its README)."
    assert reported_text(settings, "inpainting_freeform_10_20") == ""


# --------------------------------------------------------------------------------------------
# palette plan


def test_palette_plan_prices_no_training_for_an_external_model():
    from palette.plan import plan

    config = yaml.safe_load(CI_CONFIG.read_text())
    result = plan(copy.deepcopy(config), mfu=0.3)
    trained = {row["job"] for row in result["rows"] if row["stage"] == "train"}
    assert "inpainting" in " ".join(trained) and not any("inpainting_public" in job for job in trained)
    assert any(row["stage"] == "sample" and row["job"].startswith("inpainting_public/") for row in result["rows"])
