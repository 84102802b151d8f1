"""The data check before training: what the splits hold, and what would silently go wrong.

`check_splits` opens every listed image the way training reads it (`palette.imageio.load_image`:
verified, fully decoded, truncation an error) and reports, per split: image count, sizes
(min / median / max), modes (gray, RGBA, palette, 16-bit, CMYK, ...) and how each is converted
to 8-bit RGB, unreadable or truncated files, images smaller than `image_size` (upscaled by the
prepare stage), and exact duplicates by content hash (sha256 of the file's bytes).

`enforce` turns the report into errors: a file present in two splits is a leak between
training and evaluation and always an error naming both files; unreadable files are skipped
(listed in the report, left out by the prepare stage) or an error, as `on_bad_file` says.
"""

from __future__ import annotations

import hashlib
import os
import statistics
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tqdm import tqdm

ON_BAD_FILE = ("skip", "fail")

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_COLOUR_TYPES = {0: "gray", 2: "RGB", 3: "palette", 4: "gray+alpha", 6: "RGBA"}

CONVERSIONS = {
    "RGB": "none",
    "L": "gray: the channel repeated to RGB",
    "1": "1-bit: expanded to RGB",
    "P": "palette: expanded to RGB (transparent entries composited on white)",
    "RGBA": "alpha composited on white",
    "LA": "gray + alpha: composited on white, repeated to RGB",
    "PA": "palette + alpha: composited on white",
    "I;16": "16-bit gray: scaled to 8 bits (value / 257), repeated to RGB",
    "I": "32-bit integer gray (16-bit file): scaled to 8 bits as 16-bit, repeated to RGB",
    "CMYK": "CMYK: converted to RGB by Pillow",
    "YCbCr": "YCbCr: converted to RGB by Pillow",
}
"""How palette.imageio.load_image turns each mode into 8-bit RGB (the report's explanations)."""


class DataCheckError(ValueError):
    """The data would leak between splits, or an unreadable file met on_bad_file: fail."""


def _mode_label(path: Path, pillow_mode: str) -> str:
    with open(path, "rb") as handle:
        header = handle.read(26)
    if len(header) == 26 and header[:8] == _PNG_SIGNATURE and header[24] == 16:
        return f"16-bit {_PNG_COLOUR_TYPES.get(header[25], 'PNG')}"
    return "I;16" if pillow_mode.startswith("I;16") else pillow_mode


def conversion(label: str) -> str:
    if label.startswith("16-bit"):
        alpha = ", alpha composited on white" if "alpha" in label or label.endswith("RGBA") else ""
        return f"{label}: scaled to 8 bits (value / 257){alpha}"
    return CONVERSIONS.get(label, f"{label}: converted to RGB by Pillow")


def inspect_image(path: str | os.PathLike) -> dict:
    """One file: sha256, width, height, mode label, and the error when it cannot be read."""
    from PIL import Image

    from palette.imageio import load_image

    path = Path(path)
    record = {"path": str(path), "sha256": None, "width": None, "height": None, "mode": None, "error": None}
    try:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        record["sha256"] = digest.hexdigest()
        image = load_image(path)  # the training reader: verify, full decode, truncation = error
        with Image.open(path) as probe:
            record["mode"] = _mode_label(path, probe.mode)
        record["height"], record["width"] = (int(v) for v in image.shape[:2])
    except Exception as error:  # ImageLoadError, OSError: listed, never raised from here
        record["error"] = str(error).splitlines()[0] if str(error) else type(error).__name__
    return record


def _inspect_all(paths: list[str], workers: int) -> list[dict]:
    if workers <= 1 or len(paths) < 64:
        return [inspect_image(p) for p in tqdm(paths, desc="check", unit="image", mininterval=5)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(tqdm(pool.map(inspect_image, paths, chunksize=32), total=len(paths), desc="check",
                         unit="image", mininterval=5))


def _spread(values: list[int]) -> dict:
    if not values:
        return {"min": None, "median": None, "max": None}
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def check_splits(splits: dict[str, list], image_size: int, on_bad_file: str = "skip",
                 sources: dict[str, str] | None = None, workers: int = 1) -> dict:
    """The data check's report (a JSON-ready dict) for `splits` (name -> image paths).

    With `sources` (target -> source, the user's pairs) every source is inspected too, counted
    under "NAME (source)", and a pair with an unreadable source is skipped as a whole.
    Keys: image_size, on_bad_file, splits (per split: listed, usable, width, height, modes,
    smaller_than_image_size), conversions (mode -> how it is converted), unreadable, smaller,
    duplicates_within_split, duplicates_across_splits, skipped (the targets the prepare stage
    leaves out). `enforce` decides what is an error.
    """
    if on_bad_file not in ON_BAD_FILE:
        raise ValueError(f"dataset.on_bad_file has value {on_bad_file!r}; choose one of {', '.join(ON_BAD_FILE)}")
    groups: list[tuple[str, str, str]] = []  # (group name, path, the target it belongs to)
    for split, files in splits.items():
        groups += [(split, str(f), str(f)) for f in files]
        if sources is not None:
            groups += [(f"{split} (source)", str(sources[str(f)]), str(f)) for f in files]
    records = _inspect_all([path for _, path, _ in groups], workers)
    per_group: dict[str, dict] = {}
    for name in splits:
        per_group[name] = []
        if sources is not None:
            per_group[f"{name} (source)"] = []
    unreadable, smaller, skipped = [], [], []
    by_hash: dict[str, list[tuple[str, str]]] = {}
    for (group, path, target), record in zip(groups, records):
        per_group[group].append(record)
        if record["error"]:
            unreadable.append({"split": group, "path": path, "error": record["error"]})
            if target not in skipped:
                skipped.append(target)
            continue
        if min(record["width"], record["height"]) < image_size:
            smaller.append({"split": group, "path": path, "width": record["width"], "height": record["height"]})
        if not group.endswith("(source)"):
            by_hash.setdefault(record["sha256"], []).append((group, path))
    summary, labels = {}, set()
    for group, group_records in per_group.items():
        good = [r for r in group_records if not r["error"]]
        modes: dict[str, int] = {}
        for record in good:
            modes[record["mode"]] = modes.get(record["mode"], 0) + 1
        labels.update(modes)
        summary[group] = {
            "listed": len(group_records),
            "usable": len(good),
            "width": _spread([r["width"] for r in good]),
            "height": _spread([r["height"] for r in good]),
            "modes": dict(sorted(modes.items())),
            "smaller_than_image_size": sum(min(r["width"], r["height"]) < image_size for r in good),
        }
    within, across = [], []
    for digest, members in sorted(by_hash.items()):
        if len(members) < 2:
            continue
        names = sorted({split for split, _ in members})
        entry = {"sha256": digest, "files": [{"split": s, "path": p} for s, p in members]}
        (across if len(names) > 1 else within).append(entry)
    return {
        "image_size": int(image_size),
        "on_bad_file": on_bad_file,
        "splits": summary,
        "conversions": {label: conversion(label) for label in sorted(labels)},
        "unreadable": unreadable,
        "smaller": smaller,
        "duplicates_within_split": within,
        "duplicates_across_splits": across,
        "skipped": skipped if on_bad_file == "skip" else [],
    }


def problems(report: dict) -> list[str]:
    """The report's errors, one line each (empty when the data may be used)."""
    lines = []
    for entry in report["duplicates_across_splits"]:
        files = entry["files"]
        first, other = files[0], next(f for f in files if f["split"] != files[0]["split"])
        lines.append(f"data leak: {first['path']} ({first['split']}) and {other['path']} ({other['split']}) "
                     f"are the same file (sha256 {entry['sha256'][:12]}...)")
    if report["on_bad_file"] == "fail":
        lines += [f"unreadable image {item['path']}: {item['error']}" for item in report["unreadable"]]
    return lines


def enforce(report: dict) -> None:
    """Raise DataCheckError with the first problem (and how many more) when there is any."""
    found = problems(report)
    if found:
        more = f" (and {len(found) - 1} more problems; see the data check's JSON)" if len(found) > 1 else ""
        raise DataCheckError(found[0] + more)


def summary_table(report: dict) -> list[dict]:
    """One row per split (and per split's sources): the short table the report shows."""
    rows = []
    for group, entry in report["splits"].items():
        width, height = entry["width"], entry["height"]
        size = "–" if width["min"] is None else (
            f"{width['min']}-{width['max']} x {height['min']}-{height['max']} "
            f"(median {width['median']:g} x {height['median']:g})")
        unreadable = sum(1 for item in report["unreadable"] if item["split"] == group)
        rows.append({
            "split": group, "images": entry["listed"], "usable": entry["usable"], "unreadable": unreadable,
            "smaller_than_image_size": entry["smaller_than_image_size"], "sizes (w x h)": size,
            "modes": ", ".join(f"{mode} {count}" for mode, count in entry["modes"].items()) or "–",
        })
    return rows


def write_table(rows: list[dict], path: str | os.PathLike) -> Path:
    from palette.files import atomic_write

    path = Path(path)
    columns = list(rows[0]) if rows else ["split"]
    with atomic_write(path, "w") as handle:
        handle.write("\t".join(columns) + "\n")
        for row in rows:
            handle.write("\t".join(str(row[c]) for c in columns) + "\n")
    return path
