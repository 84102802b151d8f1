"""The network only where it exists: every rule whose code can open a connection is a local rule
(it runs where Snakemake runs, the login node on a cluster), and the compute jobs that read
metric weights check the staged record and never download.

The rules that open a connection are found from the code, not from a list: the palette functions
that call urlopen or `pip download`, and every palette function that calls one of them, by name;
then each rule's script, by what it calls. A rule that reaches such a function must be in the
Snakefile's (or its rule file's) `localrules`, unless its script first calls
palette.weights.check_staged (which turns downloads off for the process).
"""

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PRIMITIVES = {"urlopen", "create_connection"}  # and subprocess runs of `pip download` (below)


def imported_names(tree: ast.AST) -> set[str]:
    """Names bound to palette modules (`from palette import weights`, `import palette.data`)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "palette":
            names |= {alias.asname or alias.name for alias in node.names}
        elif isinstance(node, ast.Import):
            names |= {alias.asname or "palette" for alias in node.names if alias.name.startswith("palette")}
    return names


def called_names(tree: ast.AST, imported: set[str] | None = None) -> set[str]:
    """Functions called by name: `f(...)`, `palette_module.f(...)`, and the primitives however
    reached (`urllib.request.urlopen`); a method of an object (`path.resolve()`) or of another
    library (`subprocess.run`) is not a palette function."""
    imported = imported_names(tree) if imported is None else imported
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            function = node.func
            if isinstance(function, ast.Name):
                names.add(function.id)
            elif isinstance(function, ast.Attribute):
                base = function.value
                while isinstance(base, ast.Attribute):
                    base = base.value
                if (isinstance(base, ast.Name) and base.id in imported) or function.attr in PRIMITIVES:
                    names.add(function.attr)
    return names


def runs_pip_download(function: ast.AST) -> bool:
    strings = {node.value for node in ast.walk(function) if isinstance(node, ast.Constant) and isinstance(node.value, str)}
    return "download" in strings and "pip" in strings


def network_functions() -> set[str]:
    """Names of palette functions that can open a connection (directly or through another)."""
    calls: dict[str, set[str]] = {}
    direct = set()
    for path in (REPO / "palette").rglob("*.py"):
        tree = ast.parse(path.read_text())
        imported = imported_names(tree)
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names = called_names(node, imported)
                calls.setdefault(node.name, set()).update(names)
                if names & PRIMITIVES or runs_pip_download(node):
                    direct.add(node.name)
    network = set(direct)
    while True:
        more = {name for name, called in calls.items() if called & network} - network
        if not more:
            return network
        network |= more


def rule_scripts() -> dict[str, Path]:
    """rule name -> its script, from every rule file (rules of every data set kind)."""
    scripts = {}
    for path in (REPO / "rules").glob("*.smk"):
        text = path.read_text()
        for match in re.finditer(r"^\s*rule (\w+):\n(.*?)(?=^\s*rule \w+:|\Z)", text, re.M | re.S):
            script = re.search(r'script:\s*\n\s*"([^"]+)"', match.group(2))
            if script:
                scripts[match.group(1)] = (path.parent / script.group(1)).resolve()
    return scripts


def local_rules() -> set[str]:
    """Every rule named by a `localrules:` directive, in the Snakefile or a rule file."""
    names = set()
    for path in [REPO / "Snakefile", *(REPO / "rules").glob("*.smk")]:
        for block in re.finditer(r"^[ \t]*localrules:\n((?:[ \t]+\w+,?\n)+)", path.read_text(), re.M):
            names |= set(re.findall(r"\w+", block.group(1)))
    return names


def test_every_rule_that_can_open_a_connection_is_local():
    network = network_functions()
    assert {"download", "stage", "fetch_all"} <= network  # the finder finds what is known to download
    local = local_rules()
    reaching, guarded = set(), set()
    for rule, script in rule_scripts().items():
        calls = called_names(ast.parse(script.read_text()))
        if calls & network:
            (guarded if "check_staged" in calls else reaching).add(rule)
    # the rules known to download are found by the code, not listed by hand
    assert {"download_ctest10k_list", "download_places2_archive", "stage_weights"} <= reaching, reaching
    not_local = sorted(reaching - local)
    assert not not_local, f"rules that can open a connection but would run on a compute node: {not_local}"
    assert {"evaluate", "evaluate_ground_truth", "reference_statistics"} <= guarded | (set(rule_scripts()) - reaching)


def test_a_compute_job_checks_the_staged_record_and_never_downloads(tmp_path, monkeypatch):
    import json
    import urllib.request

    from palette import weights

    monkeypatch.delenv(weights.OFFLINE_ENV, raising=False)
    record = tmp_path / weights.MANIFEST_FILENAME
    staged_file = tmp_path / "inception.pt"
    staged_file.write_bytes(b"x")
    record.write_text(json.dumps({"weights": {"inception_fid": {"path": str(staged_file)},
                                              "inception_full": {"unavailable": "no network on the login node"}}}))
    weights.check_staged(record, ["inception_fid", "inception_full"])  # staged, and known unavailable: fine

    def no_network(*args, **kwargs):
        raise AssertionError("a compute job opened a connection")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    with pytest.raises(weights.WeightsNotFoundError, match="not attempted"):
        weights.resolve("resnet50", weights_dir_override=tmp_path / "empty")
    with pytest.raises(weights.WeightsNotStagedError, match="resnet50: not staged in .*palette weights fetch"):
        weights.check_staged(record, ["resnet50"])
    staged_file.unlink()
    with pytest.raises(weights.WeightsNotStagedError, match="which this node .* does not see"):
        weights.check_staged(record, ["inception_fid"])
    with pytest.raises(weights.WeightsNotStagedError, match="no readable record"):
        weights.check_staged(tmp_path / "missing.json", ["inception_fid"])
    assert weights.weights_for(["psnr", "ssim"]) == []
    assert weights.weights_for(["fid", "is", "lpips"]) == ["inception_fid", "inception_full", "lpips_alexnet_backbone",
                                                           "lpips_alexnet_linear"]


def test_stage_records_every_file_or_why_it_could_not_be_had(tmp_path):
    from palette import weights

    manifest = weights.stage(["efficientnet_lite0", "inception_full"], tmp_path, allow_network=False)
    assert manifest["weights"]["efficientnet_lite0"]["path"] == str((tmp_path / "efficientnet-lite0-57934424.pth")
                                                                    .resolve())
    assert "not attempted" in manifest["weights"]["inception_full"]["unavailable"]
    assert (tmp_path / weights.MANIFEST_FILENAME).is_file()
    weights.check_staged(tmp_path / weights.MANIFEST_FILENAME, ["efficientnet_lite0", "inception_full"])
