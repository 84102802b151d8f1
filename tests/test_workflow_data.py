"""Data rules' helpers: safe extraction, checked downloads, the evaluation lists, layout checks."""

from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from palette.workflow_data import (
    ChecksumError,
    DataLayoutError,
    UnsafeArchiveError,
    check_celebahq_layout,
    check_imagenet_layout,
    download,
    places10k_names,
    read_ctest10k,
    safe_extract,
)


def _tar_with(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return path


def _file(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def test_safe_extract_writes_regular_files(tmp_path):
    archive = _tar_with(tmp_path / "ok.tar", [_file("val_256/a.jpg", b"1"), _file("val_256/sub/b.jpg", b"22")])
    written = safe_extract(archive, tmp_path / "out")
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in written) == ["val_256/a.jpg", "val_256/sub/b.jpg"]
    assert (tmp_path / "out" / "val_256" / "sub" / "b.jpg").read_bytes() == b"22"


@pytest.mark.parametrize("name", ["../evil.txt", "/etc/evil.txt", "a/../../evil.txt"])
def test_safe_extract_refuses_path_traversal(tmp_path, name):
    archive = _tar_with(tmp_path / "bad.tar", [_file("fine.txt"), _file(name)])
    with pytest.raises(UnsafeArchiveError):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()
    assert not (tmp_path / "out" / "fine.txt").exists()  # checked before anything is written


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE])
def test_safe_extract_refuses_links(tmp_path, kind):
    link = tarfile.TarInfo("link")
    link.type, link.linkname = kind, "/etc/passwd"
    archive = _tar_with(tmp_path / "link.tar", [(link, None)])
    with pytest.raises(UnsafeArchiveError):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out" / "link").exists()


def test_safe_extract_zip_refuses_traversal_and_symlinks(tmp_path):
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zipped:
        zipped.writestr("../evil.txt", b"x")
    with pytest.raises(UnsafeArchiveError):
        safe_extract(bad, tmp_path / "out")
    linked = tmp_path / "link.zip"
    with zipfile.ZipFile(linked, "w") as zipped:
        info = zipfile.ZipInfo("link")
        info.external_attr = (0o120777 << 16)  # a symbolic link
        zipped.writestr(info, "/etc/passwd")
    with pytest.raises(UnsafeArchiveError):
        safe_extract(linked, tmp_path / "out")
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w") as zipped:
        zipped.writestr("d/a.txt", b"hello")
    safe_extract(good, tmp_path / "out")
    assert (tmp_path / "out" / "d" / "a.txt").read_bytes() == b"hello"


def test_download_checks_digests_and_keeps_good_files(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(b"palette" * 1000)
    md5 = hashlib.md5(source.read_bytes()).hexdigest()
    target = tmp_path / "data" / "file.bin"
    download(source.as_uri(), target, md5=md5)
    assert target.read_bytes() == source.read_bytes()
    mtime = target.stat().st_mtime_ns
    download(source.as_uri(), target, md5=md5)  # present and correct: kept, not fetched again
    assert target.stat().st_mtime_ns == mtime
    with pytest.raises(ChecksumError):
        download(source.as_uri(), tmp_path / "data" / "other.bin", sha256="0" * 64)
    assert not (tmp_path / "data" / "other.bin").exists()
    assert not list((tmp_path / "data").glob("*.part"))


def test_places10k_takes_the_first_30_of_each_class(tmp_path):
    lines = [f"Places365_val_{i:08d}.jpg {i % 3}" for i in range(1, 301)]
    val_list = tmp_path / "places365_val.txt"
    val_list.write_text("\n".join(lines) + "\n")
    names = places10k_names(val_list, per_class=30)
    assert len(names) == 90 and len(set(names)) == 90
    assert names[:2] == ["Places365_val_00000003.jpg", "Places365_val_00000006.jpg"]  # class 0 first


def test_ctest10k_list_is_checked(tmp_path):
    good = tmp_path / "ctest.txt"
    good.write_text("".join(f"/data/val/ILSVRC2012_val_{i:08d}.JPEG {i % 1000}\n" for i in range(1, 11)))
    assert read_ctest10k(good, expected_count=10)[0] == "ILSVRC2012_val_00000001.JPEG"
    with pytest.raises(DataLayoutError):
        read_ctest10k(good, expected_count=10000)
    bad = tmp_path / "bad.txt"
    bad.write_text("not_an_imagenet_file.png\n")
    with pytest.raises(DataLayoutError, match="ILSVRC2012"):
        read_ctest10k(bad, expected_count=1)


def test_licence_gated_data_fail_with_instructions(tmp_path):
    with pytest.raises(DataLayoutError, match="image-net.org"):
        check_imagenet_layout(tmp_path / "imagenet")
    with pytest.raises(DataLayoutError, match="CelebA"):
        check_celebahq_layout(tmp_path / "celebahq")
    folder = tmp_path / "celebahq"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i:05d}.png").write_bytes(b"")
    assert len(check_celebahq_layout(folder, expected=3)) == 3
