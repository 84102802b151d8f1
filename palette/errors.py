"""One error path for the `palette` command and the workflow's scripts.

Bad input (a missing or unreadable file, a wrong key or value, a damaged checkpoint, a YAML
syntax error) ends with ONE line naming the file, key or value at fault and exit code 2; set
PALETTE_DEBUG=1 for the full traceback. Anything else (a bug) keeps its traceback. The trainer's
own exit codes (75 resume, 65 NaN loss, 78 bad config) are palette.train's and stay as documented.

    palette.cli.main                    -> report_bad_input(prog, error)
    scripts/*.py (Snakemake `script:`)  -> brief_script_errors() right after the log redirect

Torch-free and quick to import: `palette --help` and the Snakefile import it.
"""

from __future__ import annotations

import os
import sys
import warnings

BAD_INPUT_EXIT_CODE = 2
DEBUG_ENV = "PALETTE_DEBUG"


class InputError(Exception):
    """Marks an error class as bad input (reported in one line) when it is neither a ValueError
    nor an OSError; palette.checkpoint.CheckpointError is one."""


def debugging() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def is_bad_input(error: BaseException) -> bool:
    if isinstance(error, (ValueError, OSError, InputError)):
        return True
    yaml = sys.modules.get("yaml")  # only loaded YAML can have raised a YAML error
    return yaml is not None and isinstance(error, yaml.YAMLError)


def one_line(error: BaseException) -> str:
    """The error's message on one line (YAML errors as 'FILE line L column C: problem')."""
    mark = getattr(error, "problem_mark", None)
    if mark is not None:
        problem = getattr(error, "problem", None) or type(error).__name__
        return f"{mark.name} line {mark.line + 1} column {mark.column + 1}: YAML syntax error: {problem}"
    text = str(error).strip() or type(error).__name__
    lines = [line.strip().removeprefix("- ") for line in text.splitlines() if line.strip()]
    joined = lines[0]
    for line in lines[1:]:  # a list introduced by "...:" reads "...: a; b"
        joined += (" " if joined.endswith(":") else "; ") + line
    return joined


def report_bad_input(prog: str, error: BaseException) -> int:
    """Print `prog: error: MESSAGE` to stderr and return the exit code for bad input."""
    print(f"{prog}: error: {one_line(error)}", file=sys.stderr, flush=True)
    return BAD_INPUT_EXIT_CODE


def short_warnings() -> None:
    """Warnings as one `warning: MESSAGE` line (not the file, line number and source line)."""
    warnings.formatwarning = lambda message, category, *args, **kwargs: f"warning: {message}\n"


def brief_script_errors(prog: str | None = None) -> None:
    """For Snakemake scripts: an uncaught bad-input error becomes one line in the job's log and
    exit code 2; other errors keep their traceback (and exit code 1)."""
    name = prog or os.path.basename(sys.argv[0] or "script")
    previous = sys.excepthook
    short_warnings()

    def hook(kind, error, traceback):
        if debugging() or not is_bad_input(error):
            previous(kind, error, traceback)
            return
        report_bad_input(name, error)
        sys.stdout.flush()
        os._exit(BAD_INPUT_EXIT_CODE)  # the only way to choose the exit status from an excepthook

    sys.excepthook = hook


def positive_int(text: str) -> int:
    """argparse type for counts and sizes: `--samples 0` or `--size -4` is refused by name."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def schema_problem(values: dict, schema: dict, origin: str = "config") -> str | None:
    """The first way `values` breaks a JSON schema, in one line naming the key ('a.b.c'), with a
    'did you mean' for a misspelt key; None when it validates. (Snakemake's own `validate`
    prints the whole schema after the message.)"""
    import difflib

    import jsonschema

    validator = jsonschema.validators.validator_for(schema)(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(values))
    if error is None:
        return None
    where = ".".join(map(str, error.absolute_path))
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = list(error.schema.get("properties", {}))
        unknown = [key for key in error.instance if key not in known]
        if unknown:
            key = f"{where}.{unknown[0]}" if where else str(unknown[0])
            close = difflib.get_close_matches(str(unknown[0]), known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f"; known keys here: {', '.join(known)}"
            return f"{origin}: unknown key '{key}'{hint}"
    value = repr(error.instance)
    value = value if len(value) <= 80 else value[:77] + "..."
    return f"{origin}: key '{where or '(top level)'}' has value {value}: {error.message.splitlines()[0][:200]}"


def add_renamed_option(parser, flag: str, old_flag: str, **kwargs):
    """Add option `flag` that also answers to its former spelling `old_flag`, hidden from --help
    (kept for one release, docs/restore.md). A required option stays required under either name."""
    import argparse

    group = parser.add_mutually_exclusive_group(required=kwargs.pop("required", False))
    action = group.add_argument(flag, **kwargs)
    shared = {key: kwargs[key] for key in ("type", "default", "choices", "action", "metavar") if key in kwargs}
    group.add_argument(old_flag, dest=action.dest, help=argparse.SUPPRESS, **shared)
    return action
