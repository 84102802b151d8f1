"""The public reproduction's JSON config, read without torch (// comments allowed).

palette.import_public converts a checkpoint with it; the workflow reads an `external` experiment's
config when the DAG is built (palette.external), where importing torch would slow every dry run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# Their model.which_model.args.task -> ours.
TASKS = {"inpainting": "inpainting", "uncropping": "uncropping", "colorization": "colorization"}
# Where their config keeps its network's settings (the U-Net under .unet, schedules under .beta_schedule).
NETWORK_PATH = "model.which_networks.0.args"


def strip_json_comments(text: str) -> str:
    """`text` without its // comments (outside strings), as their config parser reads it."""
    out, index, in_string = [], 0, False
    while index < len(text):
        char = text[index]
        if in_string:
            out.append(char)
            if char == "\\":
                out.append(text[index + 1:index + 2])
                index += 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
            out.append(char)
        elif text.startswith("//", index):
            end = text.find("\n", index)
            index = len(text) if end < 0 else end
            continue
        else:
            out.append(char)
        index += 1
    return "".join(out)


def read_public_config(path: str | Path) -> dict:
    """Their JSON config (// comments allowed), or a ValueError naming the file and the place."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"config {path}: not a UTF-8 text file ({error.reason})") from None
    try:
        config = json.loads(strip_json_comments(text))
    except json.JSONDecodeError as error:
        raise ValueError(f"config {path} line {error.lineno} column {error.colno}: not JSON (after removing "
                         f"// comments): {error.msg}") from None
    if not isinstance(config, dict):
        raise ValueError(f"config {path}: expected a JSON object (the public reproduction's config), "
                         f"got {type(config).__name__}")
    return config


def lookup(config: dict, path: str, origin: str, default: Any = ...) -> Any:
    """config['a']['b'][0]... for path 'a.b.0'; a ValueError naming the key when it is missing."""
    value: Any = config
    for part in path.split("."):
        if isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        elif isinstance(value, dict) and part in value:
            value = value[part]
        elif default is not ...:
            return default
        else:
            raise ValueError(f"{origin}: no key '{path}' (the public reproduction's configs have it; is this one?)")
    return value
