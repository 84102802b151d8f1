"""The paper's tables: every number it gives, where our number for each comes from, and how the paper
evaluated it (docs/paper.md, "Target numbers" and "Which set and reference each table uses").

Used by the report's tables (paper beside ours, with a "number reproduced" verdict per cell) and
by the verdicts' claims, which take their paper numbers from here. Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from palette.tasks import COLORIZATION_CTEST10K

# Role of the paper's "ground truth" / "original images" rows: the evaluation targets scored
# against the same FID reference (results/metrics/ground_truth/TASK.json); the row's task is
# a task variant or a prefix of one ("inpainting": the first inpainting variant evaluated).
GROUND_TRUTH = "ground_truth"


@dataclass
class PaperRow:
    """One row of a paper table: where our number comes from, and the paper's."""

    label: str
    paper: dict  # metric key -> number
    role: str | tuple | None = None  # our experiment's role(s), in order of preference; None = paper only
    train_task: str | None = None
    task: str | None = None  # evaluation task variant; None = the experiment's first


@dataclass
class PaperTable:
    title: str
    note: str
    metrics: list
    rows: list = field(default_factory=list)
    # how the paper evaluated this table, per data set: a key of palette.verdict.PROTOCOLS
    protocols: dict = field(default_factory=dict)

    def protocol(self, dataset_kind: str) -> str | None:
        """The protocol of the numbers paper_numbers gives for this data set: its own, else ImageNet's
        (the demo and a user's folder are compared with the ImageNet numbers, so their protocol is the bar)."""
        return self.protocols.get(dataset_kind) or self.protocols.get("imagenet")


def _numbers(fid=None, inception=None, ca=None, pd_=None, lpips=None) -> dict:
    values = {"fid": fid, "is": inception, "ca": ca, "pd": pd_, "lpips_diversity": lpips}
    return {key: value for key, value in values.items() if value is not None}


PAPER_TABLES = [
    PaperTable(
        "Colorization (paper Table 1)",
        "ImageNet, FID-5K: 5,000 outputs against 5,000 other validation images (docs/paper.md). Prior work FID-5K: "
        "pix2pix 24.41, PixColor 24.32, ColTran 19.37. Paper fool rate 47.8 %.",
        ["fid", "is", "ca", "pd"],
        [
            PaperRow("Palette", _numbers(15.78, 200.8, 72.5, 46.2), "task_model", "colorization", "colorization"),
            PaperRow("Regression (L2)", _numbers(17.89, 169.8, 68.2, 60.0), "regression", "colorization", "colorization"),
            PaperRow("Original images", _numbers(14.68, 229.6, 75.6, 0.0), GROUND_TRUTH, None, "colorization"),
        ],
    ),
    PaperTable(
        "Colorization on ctest10k (paper appendix)",
        "ImageNet ctest10k against the 50,000 validation images (its header says FID-10K): the set of the L1/L2 and "
        "multi-task tables' colorization numbers (docs/paper.md).",
        ["fid", "is", "ca", "pd"],
        [
            PaperRow("Palette (L2)", _numbers(3.4, 212.9, 72.0, 48.0), "task_model", "colorization", COLORIZATION_CTEST10K),
            PaperRow("Palette (L1)", _numbers(3.4, 215.8, 71.9, 45.8), "loss_l1", "colorization", COLORIZATION_CTEST10K),
            PaperRow("Regression (L2)", _numbers(5.5, 176.9, 68.0, 61.1), "regression", "colorization", COLORIZATION_CTEST10K),
            PaperRow("Original images", _numbers(2.7, 250.1, 76.0, 0.0), GROUND_TRUTH, None, COLORIZATION_CTEST10K),
        ],
    ),
    PaperTable(
        "Inpainting (paper Table 2)",
        "ImageNet; Places2 10-20 % free-form: FID 11.6, PD 22.1 (ground truth 11.4). The unconditional model "
        "used by imputation is the paper's baseline, found worse than Palette; the paper gives no numbers for it.",
        ["fid", "is", "ca", "pd"],
        [
            PaperRow("Palette, 10-20 % free-form", _numbers(5.1, 221.0, 73.8, 15.6), "task_model", "inpainting", "inpainting_freeform_10_20"),
            PaperRow("Palette, 20-30 % free-form", _numbers(5.2, 208.6, 72.6, 27.4), "task_model", "inpainting", "inpainting_freeform_20_30"),
            PaperRow("Palette, 30-40 % free-form", _numbers(5.5, 195.2, 71.4, 39.9), "task_model", "inpainting", "inpainting_freeform_30_40"),
            PaperRow("Palette, 128x128 centre", _numbers(6.4, 173.3, 69.7, 58.8), "task_model", "inpainting", "inpainting_center"),
            *(PaperRow(f"Unconditional + imputation, {label}", {}, "unconditional_imputation", "inpainting", task)
              for label, task in (("10-20 % free-form", "inpainting_freeform_10_20"), ("20-30 % free-form", "inpainting_freeform_20_30"),
                                  ("30-40 % free-form", "inpainting_freeform_30_40"), ("128x128 centre", "inpainting_center"))),
            PaperRow("Ground truth", _numbers(5.1, 231.6, 74.6, 0.0), GROUND_TRUTH, None, "inpainting"),
        ],
    ),
    PaperTable(
        "Uncropping (paper Table 3)",
        "ImageNet, right half extended; Places2: Palette FID 3.53, PD 103.3.",
        ["fid", "is", "ca", "pd"],
        [
            PaperRow("Palette", _numbers(5.8, 138.1, 63.4, 85.9), "task_model", "uncropping", "uncropping_right"),
            PaperRow("Boundless (GAN)", _numbers(18.7, 104.1, 58.8, 127.9)),
            PaperRow("Original images", _numbers(2.7, 250.1, 76.0, 0.0), GROUND_TRUTH, None, "uncropping"),
        ],
    ),
    PaperTable(
        "JPEG restoration (paper Table 4)",
        "ImageNet. The paper's header says FID-5K, but its original-image row (FID 2.7, IS 250.1, CA 76.0 %) is "
        "uncropping's, which is scored on ctest10k against the 50,000 validation images: scored that way here (docs/paper.md).",
        ["fid", "is", "ca", "pd"],
        [
            PaperRow(f"{name}, QF {quality}", numbers, role, "jpeg", f"jpeg_q{quality}")
            for name, role, per_quality in (
                ("Palette", "task_model", {5: (8.3, 133.6, 64.2, 95.5), 10: (5.4, 180.5, 70.7, 58.3), 20: (4.3, 208.7, 73.5, 37.1)}),
                ("Regression (L2)", "regression", {5: (29.0, 73.9, 52.8, 155.4), 10: (18.0, 117.2, 63.5, 102.2), 20: (11.5, 158.7, 69.7, 65.4)}),
            )
            for quality, numbers in ((q, _numbers(*v)) for q, v in per_quality.items())
        ] + [PaperRow("Original images", _numbers(2.7, 250.1, 76.0, 0.0), GROUND_TRUTH, None, "jpeg")],
    ),
    PaperTable(
        "Multi-task model (paper Table 6)",
        "The blind model versus the specialists on ctest10k (docs/paper.md). The paper's centre-inpainting specialist "
        "(6.6) was trained on ImageNet and Places2; ours on the preset's data.",
        ["fid"],
        [
            PaperRow("Multi-task, JPEG QF 5", _numbers(7.0), "multitask", "multitask", "jpeg_q5"),
            PaperRow("Specialist, JPEG QF 5", _numbers(8.3), "task_model", "jpeg", "jpeg_q5"),
            PaperRow("Multi-task, 128x128 centre inpainting", _numbers(6.8), "multitask", "multitask", "inpainting_center"),
            PaperRow("Specialist, 128x128 centre inpainting", _numbers(6.6, 173.9, 69.3, 59.5), "task_model", "inpainting", "inpainting_center"),
            PaperRow("Multi-task, colorization", _numbers(3.7), "multitask", "multitask", COLORIZATION_CTEST10K),
            PaperRow("Specialist, colorization", _numbers(3.4, 212.9, 72.0, 48.0), "task_model", "colorization", COLORIZATION_CTEST10K),
        ],
    ),
    PaperTable(
        "L1 versus L2 loss (paper Table 7)",
        "Diversity is LPIPS between samples of one input: L2 gives more diverse samples.",
        ["fid", "pd", "lpips_diversity"],
        [
            PaperRow("Inpainting, L1", _numbers(3.6, pd_=41.9, lpips=0.11), "loss_l1", "inpainting"),
            PaperRow("Inpainting, L2", _numbers(3.6, pd_=43.8, lpips=0.13), "task_model", "inpainting", "@loss_l1"),
            PaperRow("Colorization, L1", _numbers(3.4, pd_=45.8, lpips=0.09), "loss_l1", "colorization"),
            PaperRow("Colorization, L2", _numbers(3.4, pd_=48.0, lpips=0.15), "task_model", "colorization", "@loss_l1"),
        ],
    ),
    PaperTable(
        "Self-attention ablation (paper Table 8)",
        "Inpainting, 500k steps, batch 512, ImageNet.",
        ["fid", "is", "pd"],
        [
            PaperRow("Global self-attention", _numbers(7.4, 164.8, pd_=67.1), ("attention_global", "task_model"), "inpainting", "@attention_local"),
            PaperRow("Local self-attention", _numbers(9.4, 149.8, pd_=78.2), "attention_local", "inpainting"),
            PaperRow("No attention, 2x res blocks", _numbers(8.1, 157.1, pd_=71.9), "attention_none", "inpainting"),
            PaperRow("Dilated convolutions", _numbers(8.0, 157.5, pd_=70.6), "attention_dilated", "inpainting"),
        ],
    ),
]


# Places2 numbers the paper gives (docs/paper.md); the other cells of a Places2 run stay empty.
PLACES2_NUMBERS = {
    ("Inpainting (paper Table 2)", "Palette, 10-20 % free-form"): _numbers(11.6, pd_=22.1),
    ("Inpainting (paper Table 2)", "Ground truth"): _numbers(11.4),
    ("Uncropping (paper Table 3)", "Palette"): _numbers(3.53, pd_=103.3),
}


def paper_numbers(table: PaperTable, row: PaperRow, dataset_kind: str) -> tuple[dict, str]:
    """The paper's numbers for a row on this run's data set, and which data set they are from."""
    if dataset_kind == "places2":
        return PLACES2_NUMBERS.get((table.title, row.label), {}), "Places2"
    if dataset_kind == "celebahq":
        return {}, "none (the paper reports no CelebA-HQ numbers)"
    return row.paper, "ImageNet"




# How the paper evaluated each table (docs/paper.md, "Which set and reference each table uses"):
# FID-5K for the colorization table only; ctest10k against the 50,000 validation images for the
# others (the JPEG, L1/L2 and multi-task numbers imply it); places10k for the Places2 columns.
_PROTOCOLS = {
    "Colorization (paper Table 1)": {"imagenet": "fid5k"},
    "Colorization on ctest10k (paper appendix)": {"imagenet": "ctest10k"},
    "Inpainting (paper Table 2)": {"imagenet": "ctest10k", "places2": "places10k"},
    "Uncropping (paper Table 3)": {"imagenet": "ctest10k", "places2": "places10k"},
    "JPEG restoration (paper Table 4)": {"imagenet": "ctest10k"},
    "Multi-task model (paper Table 6)": {"imagenet": "ctest10k"},
    "L1 versus L2 loss (paper Table 7)": {"imagenet": "ctest10k"},
    "Self-attention ablation (paper Table 8)": {"imagenet": "ctest10k"},
}
for _table in PAPER_TABLES:
    _table.protocols = _PROTOCOLS[_table.title]


def paper_cell(title: str, label: str, metric: str, dataset_kind: str = "imagenet") -> float | None:
    """One number of the paper's (None where it gives none for this data set)."""
    for table in PAPER_TABLES:
        if table.title == title:
            for row in table.rows:
                if row.label == label:
                    return paper_numbers(table, row, dataset_kind)[0].get(metric)
    raise KeyError(f"no paper row {label!r} in {title!r}")


def table_protocol(title: str, dataset_kind: str) -> str | None:
    return next(table.protocol(dataset_kind) for table in PAPER_TABLES if table.title == title)


def palette_rows(task: str, train_task: str, dataset_kind: str = "imagenet") -> list[tuple[PaperTable, PaperRow]]:
    """The paper's Palette rows for one task variant, in table order: its specialist (role task_model,
    trained on `train_task`) scored on that variant, not the ablation tables' partner rows ("@role").
    Where a model trained elsewhere (role external, palette.external) stands beside the paper's Palette."""
    from palette.tasks import colorization_on_test_list

    found = []
    for table in PAPER_TABLES:
        for row in table.rows:
            if row.role != "task_model" or row.train_task != train_task or not row.task or row.task.startswith("@"):
                continue
            variant = colorization_on_test_list(dataset_kind) if row.task == COLORIZATION_CTEST10K else row.task
            if variant == task:
                found.append((table, row))
    return found
