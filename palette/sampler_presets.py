"""The named sampler settings users choose between, defined once for the `palette` command, the
workflow and the tests. Torch-free, so the Snakefile can read them (docs/snakemake.md).

- "paper": Algorithm 2 over all 1000 steps of the inference schedule (linear beta 1e-4..0.09),
  variance 1 - alpha_t, no clipping (docs/paper.md, "Diffusion").
- "fast": DPM-Solver++(2M) in 50 steps, x0 clipped to [-1, 1], noise levels taken from the
  training schedule's range (gamma 4.4e-5..1, what the network has seen) instead of the inference
  schedule's (down to 7e-21, which briefly trained networks cannot denoise), and, for the
  ancestral sampler, DDPM's posterior variance instead of Algorithm 2's 1 - alpha_t (the smaller
  of the two: the demo's inpainting noise ratio fell from 1.99 to 1.54 and its uncropping ratio
  from 1.81 to 1.37 with it, docs/demo.md). The `palette` command's default; a named departure
  from the paper.

A workflow sampler entry (config `samplers.NAME`) or a `SamplerConfig.from_dict` mapping may name
a `preset`; its own keys override the preset's.
"""

from __future__ import annotations

# The paper's training schedule (palette.diffusion.TRAINING_SCHEDULE; a test keeps them equal).
TRAINING_NOISE_RANGE = {"beta_start": 1e-6, "beta_end": 0.01, "schedule_steps": 2000}

# Every setting of the paper's sampler (palette.diffusion.SamplerConfig's defaults; a test keeps
# them equal): what the report compares a run's samplers with.
PAPER_SAMPLER = {"name": "paper", "steps": 1000, "eta": 0.0, "variance": "paper", "clip_x0": False,
                 "spacing": "log_snr", "noise_scale": 1.0, "beta_start": 1e-4, "beta_end": 0.09, "schedule_steps": 1000}

# The samplers that take Algorithm 2's ancestral step (their `variance` applies, and they add fresh
# noise at every step but the last; DDIM adds it only with eta > 0, DPM-Solver++ never).
ANCESTRAL_SAMPLERS = ("paper", "ancestral")
SAMPLER_NAMES = ("paper", "ancestral", "ddim", "dpm_solver_pp")  # palette.diffusion.SAMPLERS

SAMPLER_PRESETS: dict[str, dict] = {
    "paper": {"name": "paper", "steps": 1000},
    "fast": {"name": "dpm_solver_pp", "steps": 50, "clip_x0": True, "variance": "posterior", **TRAINING_NOISE_RANGE},
}


def sampler_problem(values: dict) -> str | None:
    """What is wrong with a sampler's settings (resolved over its preset, the paper's defaults
    for what it does not give), or None: the checks of palette.diffusion.SamplerConfig, here so
    that the workflow refuses a bad sampler while it builds the DAG, not in its jobs."""
    settings = {**PAPER_SAMPLER, **resolve_sampler(values)}
    if "steps" not in values and settings["name"] == "paper":  # the paper's sampler visits every step
        settings["steps"] = settings["schedule_steps"]
    unknown = sorted(set(settings) - set(PAPER_SAMPLER))
    if unknown:
        return f"unknown sampler keys {unknown}; known keys: {sorted(PAPER_SAMPLER)}"
    if settings["name"] not in SAMPLER_NAMES:
        return f"unknown sampler {settings['name']!r}; choose one of {', '.join(SAMPLER_NAMES)}"
    if settings["variance"] not in ("paper", "posterior"):
        return f"variance must be 'paper' or 'posterior', got {settings['variance']!r}"
    if settings["spacing"] not in ("log_snr", "index"):
        return f"spacing must be 'log_snr' or 'index', got {settings['spacing']!r}"
    if not 0.0 <= settings["noise_scale"] <= 2.0:
        return f"noise_scale must be in [0, 2] (1 = the paper), got {settings['noise_scale']}"
    if not 1 <= settings["steps"] <= settings["schedule_steps"]:
        return f"steps must be in 1..{settings['schedule_steps']}, got {settings['steps']}"
    if settings["name"] == "paper" and settings["steps"] != settings["schedule_steps"]:
        return (f"the paper sampler uses every step of its schedule ({settings['schedule_steps']}); set "
                f"schedule_steps too, or use 'ancestral' for {settings['steps']} respaced steps")
    return None


def resolve_sampler(values: dict) -> dict:
    """`values` merged over its `preset` (the paper's sampler when it names none)."""
    values = dict(values)
    preset = values.pop("preset", "paper")
    if preset not in SAMPLER_PRESETS:
        raise ValueError(f"unknown sampler preset {preset!r}; choose one of {', '.join(SAMPLER_PRESETS)}")
    return {**SAMPLER_PRESETS[preset], **values}


def sampler_departures(values: dict) -> list[str]:
    """How a sampler entry (with or without a preset) departs from the paper's sampler, in words."""
    settings = {**PAPER_SAMPLER, **resolve_sampler(values)}
    changes = []
    if settings["name"] != "paper":
        kind = {"ancestral": "respaced ancestral", "ddim": f"DDIM (eta {settings['eta']})",
                "dpm_solver_pp": "DPM-Solver++(2M)"}[settings["name"]]
        changes.append(f"{kind} sampling in {settings['steps']} steps instead of Algorithm 2's 1000")
    if settings["variance"] != "paper" and settings["name"] in ANCESTRAL_SAMPLERS:
        changes.append("DDPM's posterior variance instead of 1 - alpha_t")
    if settings["clip_x0"]:
        changes.append("clean-image estimate clipped to [-1, 1]")
    noise_range = {key: settings[key] for key in TRAINING_NOISE_RANGE}
    if noise_range != {key: PAPER_SAMPLER[key] for key in TRAINING_NOISE_RANGE}:
        which = "the training schedule's" if noise_range == TRAINING_NOISE_RANGE else "another schedule's"
        changes.append(f"noise levels from {which} range (beta {settings['beta_start']:g}..{settings['beta_end']:g}, "
                       f"{settings['schedule_steps']} steps)")
    if settings["noise_scale"] != 1.0 and (settings["name"] in ANCESTRAL_SAMPLERS or settings["eta"] > 0):
        changes.append(f"fresh noise scaled by {settings['noise_scale']:g} (noise_scale)")
    return changes


# ---- the sampler that travels with a model ----------------------------------------------------
# The workflow writes, beside each diffusion model's checkpoint EXPERIMENT.pt, EXPERIMENT.sampler.yaml:
# the settings of the sampler its evaluation used (rules/train.smk). `palette infer` and `palette
# sample` read it when the command line names no sampler.
RECORD_SUFFIX = ".sampler.yaml"


def sampler_record_path(checkpoint) -> "Path":
    from pathlib import Path

    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.stem + RECORD_SUFFIX)


def write_sampler_record(path, name: str, settings: dict) -> None:
    """Write the sampler record: its workflow name and its complete settings (resolved over the preset)."""
    import yaml

    from palette.files import atomic_write

    problem = sampler_problem(settings)
    if problem:
        raise ValueError(f"sampler {name!r}: {problem}")
    text = ("# The sampler this model's evaluation used (written by the workflow; read by palette infer / sample)\n"
            + yaml.safe_dump({"name": name, "settings": resolve_sampler(settings)}, sort_keys=True))
    with atomic_write(path, "w") as handle:
        handle.write(text)


def read_sampler_record(checkpoint) -> tuple[str, dict] | None:
    """(workflow name, settings) recorded beside `checkpoint`, or None when there is no record.
    A record that does not parse, or names settings no sampler accepts, is refused naming the file."""
    import yaml

    path = sampler_record_path(checkpoint)
    if not path.is_file():
        return None
    try:
        values = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not a sampler record ({type(error).__name__}); delete it or pass --sampler") from None
    if not (isinstance(values, dict) and isinstance(values.get("settings"), dict) and isinstance(values.get("name"), str)):
        raise ValueError(f"{path}: a sampler record needs 'name' and 'settings'; delete it or pass --sampler")
    problem = sampler_problem(values["settings"])
    if problem:
        raise ValueError(f"{path}: {problem}")
    return values["name"], resolve_sampler(values["settings"])
