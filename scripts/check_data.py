"""Snakemake entry point: the data check before training (JSON report and a short table).

The report is printed to the log before any error is raised, so a failing check (a leak between
splits, or an unreadable file with dataset.on_bad_file: fail) still shows what it found.
"""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from palette.errors import brief_script_errors

brief_script_errors(f"rule {snakemake.rule}")  # bad input: one line in the log, exit 2

import json

from palette.data import read_file_list
from palette.datacheck import check_splits, enforce, problems, summary_table, write_table
from palette.files import atomic_write
from palette.workflow_data import read_pairs

splits = {name: read_file_list(snakemake.input[name]) for name in ("train", "val", "test")}
sources = read_pairs(snakemake.input.pairs[0]) if snakemake.input.pairs else None
report = check_splits(splits, snakemake.params.image_size, snakemake.params.on_bad_file, sources=sources,
                      workers=snakemake.threads)
report["problems"] = problems(report)
rows = summary_table(report)
for row in rows:
    print("  ".join(f"{key}={value}" for key, value in row.items()))
for item in report["unreadable"]:
    print(f"unreadable ({report['on_bad_file']}): {item['path']}: {item['error']}")
for line in report["problems"]:
    print(f"ERROR {line}")
enforce(report)
with atomic_write(snakemake.output.json, "w") as handle:
    json.dump(report, handle, indent=1)
write_table(rows, snakemake.output.table)
