"""Where a run's methods depart from the paper's, in words, each named by the option that turns it on.

Used by the report's departures list (one row per experiment or sampler that departs) and by the
verdicts, which name on every row the departures of both sides' runs. Scale (a smaller U-Net,
fewer training steps, smaller images) is not a departure of method: the experiments' settings
show it. Torch-free.
"""

from __future__ import annotations

from palette.sampler_presets import sampler_departures

TRAINING_DEPARTURES = {
    # key: (its paper value, how a run that changes it departs)
    "prediction": ("eps", lambda value: f"the network predicts {value} instead of the noise (prediction: {value})"),
    "residual": (False, lambda value: "diffuses the target minus the source instead of the target (residual: true)"),
}


def training_departures(train: dict) -> list[str]:
    """How a diffusion experiment's training departs from the paper's (none for regression)."""
    if train.get("objective", "diffusion") != "diffusion":
        return []
    return [describe(train[key]) for key, (paper, describe) in TRAINING_DEPARTURES.items() if train.get(key, paper) != paper]


def run_departures(train: dict | None, sampler: dict | None) -> list[str]:
    """The departures of one sampled run: its experiment's training, then its sampler's."""
    changes = training_departures(train or {})
    if sampler and sampler.get("name") != "regression":  # the regression baselines' single forward pass
        changes += sampler_departures(sampler)
    return changes


def departures_from_paper(train_configs: dict, samplers: dict) -> list[dict]:
    """One row per diffusion experiment or sampler of this run that departs from the paper."""
    rows = []
    for name, train in train_configs.items():
        changes = training_departures(train)
        if changes:
            rows.append({"kind": "experiment", "name": name, "changes": changes})
    for name, settings in samplers.items():
        changes = run_departures(None, settings)
        if changes:
            rows.append({"kind": "sampler", "name": name, "changes": changes})
    return rows
