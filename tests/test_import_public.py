"""`palette import`: a checkpoint of the public reproduction (Janspiry/Palette-Image-to-Image-Diffusion-
Models) converted into ours computes what their code computes.

The fixtures in tests/data/public_reproduction/ were made once with their code
(make_fixtures.py there says how); their project is not needed here. The small network's outputs
and one step of their sampler must come out of our U-Net and sampler to float32 rounding; their
full-size CelebA-HQ and Places2 networks (key names and shapes only) must convert.
"""

import copy
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from palette.checkpoint import load_checkpoint, load_model
from palette.cli import main
from palette.data import demo_photo_paths
from palette.diffusion import SamplerConfig, _Denoiser, ancestral_step
from palette.imageio import load_image, save_image
from palette.import_public import (SCHEDULE_BUFFERS, build_public_network, convert_state_dict, import_checkpoint,
                                   read_public_config, settings_from_config, strip_json_comments)
from palette.unet import attention_layout, count_parameters

DATA = Path(__file__).parent / "data" / "public_reproduction"
CONFIG = DATA / "config.json"
NETWORK = DATA / "8_Network.pth"
FLOAT32_ROUNDING = 1e-5  # their float32 network vs ours: measured 2e-6 on the forward pass


@pytest.fixture(scope="module")
def outputs():
    return torch.load(DATA / "outputs.pt", weights_only=True)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    path = tmp_path_factory.mktemp("import") / "converted.pt"
    assert main(["import", "--config", str(CONFIG), "--network", str(NETWORK), "--output", str(path)]) == 0
    return path


def refused(argv, capsys) -> str:
    """`palette ARGV` must exit 2 with one line on stderr, no traceback; returns that line."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------------------
# Equivalence with their code.


def test_converted_network_computes_their_noise_estimate(converted, outputs):
    model, config = load_model(converted)
    given = outputs["forward"]
    with torch.no_grad():
        eps = model(torch.cat([given["condition"], given["y_noisy"]], dim=1), given["gamma"])
    torch.testing.assert_close(eps, given["eps"], rtol=0, atol=FLOAT32_ROUNDING)
    assert config.preset == "public" and config.task == "inpainting" and config.image_size == 16


def test_their_attention_is_where_their_code_puts_it(converted):
    """attn_res [2, 16] are down-sampling factors: 2 is level 1 (8x8 maps); no level has factor
    16 (although 16 is level 0's map size), so level 0 has no attention."""
    model, config = load_model(converted)
    assert config.model_overrides["attention_resolutions"] == [8]
    assert config.model_overrides["noise_embedding"] == "raw_gamma"
    assert attention_layout(model) == [("encoder", 8), ("middle", 8), ("decoder", 8), ("decoder", 8)]
    assert model.noise_embedding == "raw_gamma"


def test_one_step_of_our_sampler_configured_as_theirs_matches_theirs(converted, outputs):
    model, _ = load_model(converted)
    imported = load_checkpoint(converted)["imported"]
    sampler = SamplerConfig.from_dict(imported["sampler"])
    assert (sampler.variance, sampler.clip_x0, sampler.steps) == ("posterior", True, 50)
    gammas = sampler.gammas().tolist()  # gammas[i] is their gammas[T - 1 - i]; the last one is 1
    steps = sampler.schedule_steps
    torch.testing.assert_close(torch.tensor(gammas[:-1][::-1], dtype=torch.float32), outputs["test_gammas"])
    for step in outputs["steps"]:
        t = int(step["t"][0])
        i = steps - 1 - t
        eps, _ = _Denoiser(model, step["condition"], sampler.clip_x0)(step["y_t"], gammas[i])
        y_previous = ancestral_step(step["y_t"], eps, gammas[i], gammas[i + 1], sampler.variance, step["noise"])
        assert step["clipped"] > 0.1  # their clamp of x0 changed values at this step: the clip is exercised
        torch.testing.assert_close(y_previous, step["y_previous"], rtol=0, atol=FLOAT32_ROUNDING)


def test_the_checkpoint_records_their_schedules_sampler_and_departures(converted):
    state = load_checkpoint(converted)
    imported = state["imported"]
    assert state["kind"] == "imported" and imported["weights"] == "network" and imported["epoch"] == 8
    assert imported["files"]["network"] == {"name": NETWORK.name, "sha256": digest(NETWORK)}
    assert imported["beta_schedule"] == {
        "train": {"schedule": "linear", "n_timestep": 100, "linear_start": 1e-6, "linear_end": 0.01},
        "test": {"schedule": "linear", "n_timestep": 50, "linear_start": 1e-4, "linear_end": 0.2},
    }
    departures = " | ".join(imported["departures"])
    assert "raw_gamma" in departures and "over 100 steps instead of linear 1e-06..0.01 over 2000 steps" in departures
    assert "[16] is compared with the down-sampling factor" in departures
    assert any("posterior variance" in change for change in imported["sampler_departures"])
    assert any("clipped" in change for change in imported["sampler_departures"])
    assert state["config"]["lr"] == 5e-5 and state["config"]["warmup_steps"] == 0
    assert imported["parameters"] == 274587 - len(SCHEDULE_BUFFERS) * 100  # their state dict's values, less buffers
    # one file given: sampling and raw weights are the same tensors, stored once
    assert all(torch.equal(state["model"][key], state["ema"][key]) for key in state["model"])


def test_the_ema_file_is_what_sampling_uses_when_given(tmp_path):
    network = torch.load(NETWORK, weights_only=True)
    # their EMA file has no schedule buffers
    ema = {key: value * 0.5 for key, value in network.items() if key not in SCHEDULE_BUFFERS}
    torch.save(ema, tmp_path / "8_Network_ema.pth")
    record = import_checkpoint(CONFIG, tmp_path / "both.pt", network=NETWORK, ema=tmp_path / "8_Network_ema.pth")
    assert record["weights"] == "ema"
    state = load_checkpoint(tmp_path / "both.pt")
    key, theirs = "input_conv.weight", "denoise_fn.input_blocks.0.0.weight"
    assert torch.equal(state["ema"][key], ema[theirs].float())
    assert torch.equal(state["model"][key], network[theirs].float())
    sampled, _ = load_model(tmp_path / "both.pt")
    assert torch.equal(sampled.input_conv.weight, ema[theirs].float())
    assert import_checkpoint(CONFIG, tmp_path / "ema.pt", ema=tmp_path / "8_Network_ema.pth")["weights"] == "ema"


# ---------------------------------------------------------------------------------------------
# Their full-size released networks (names and shapes, generated from their code).


@pytest.mark.parametrize("name", ["inpainting_celebahq", "inpainting_places2"])
def test_their_full_size_networks_convert(name, tmp_path):
    fixture = json.loads((DATA / "full_size_networks.json").read_text())["networks"][name]
    settings = settings_from_config(fixture["config"], name)
    assert settings.overrides == {"attention_resolutions": [], "noise_embedding": "raw_gamma"}  # `public`, as theirs
    target = build_public_network(settings)
    assert count_parameters(target) == fixture["parameters"] == 62_641_347  # docs/paper.md: 62.6 M
    assert attention_layout(target) == [("middle", 32)]  # attn_res [16] matches no down-sampling factor
    shapes = {key: torch.empty(shape, device="meta") for key, shape in fixture["state_dict"].items()}
    for state in (shapes, {k: v for k, v in shapes.items() if k not in SCHEDULE_BUFFERS}):  # network file, EMA file
        converted = convert_state_dict(state, target, settings, name)
        assert {key: tuple(value.shape) for key, value in converted.items()} == \
            {key: tuple(value.shape) for key, value in target.state_dict().items()}
    assert settings.train_schedule == {"schedule": "linear", "n_timestep": 2000, "linear_start": 1e-6,
                                       "linear_end": 0.01}  # the paper's: no schedule departure
    from palette.import_public import import_departures, public_sampler
    from palette.sampler_presets import sampler_departures

    assert not any("beta schedule" in change for change in import_departures(settings))
    assert any("middle block only (32x32)" in change for change in import_departures(settings))
    assert sampler_departures(public_sampler(settings)) == ["DDPM's posterior variance instead of 1 - alpha_t",
                                                            "clean-image estimate clipped to [-1, 1]"]


# ---------------------------------------------------------------------------------------------
# Refusals: one line naming the first key or shape that does not fit; nothing written.


def _altered(tmp_path, change) -> Path:
    state = torch.load(NETWORK, weights_only=True)
    change(state)
    path = tmp_path / "altered_Network.pth"
    torch.save(state, path)
    return path


QKV = "denoise_fn.middle_block.1.qkv.bias"
CONV = "denoise_fn.input_blocks.1.0.in_layers.2.weight"


@pytest.mark.parametrize("change, expected", [
    (lambda state: state.pop(QKV), f"has no key '{QKV}' (shape [96])"),
    (lambda state: state.__setitem__(CONV, torch.zeros(32, 32, 1, 1)),
     f"key '{CONV}' has shape [32, 32, 1, 1], but the network its config describes has [32, 32, 3, 3]"),
    (lambda state: state.__setitem__("denoise_fn.extra.weight", torch.zeros(2)), "key 'denoise_fn.extra.weight'"),
    (lambda state: state.__setitem__("gammas", state["gammas"][:10]), "key 'gammas' has shape [10]"),
], ids=["key-removed", "shape-changed", "key-added", "schedule-length"])
def test_a_state_dict_of_another_layout_is_refused_naming_the_key(tmp_path, capsys, change, expected):
    path = _altered(tmp_path, change)
    before = digest(path)
    message = refused(["import", "--config", str(CONFIG), "--network", str(path), "--output",
                       str(tmp_path / "out.pt")], capsys)
    assert message.startswith(f"palette import: error: {path}: ") and expected in message
    assert not (tmp_path / "out.pt").exists() and digest(path) == before


def test_our_own_checkpoint_and_a_mismatched_config_are_refused(converted, tmp_path, capsys):
    message = refused(["import", "--config", str(CONFIG), "--network", str(converted), "--output",
                       str(tmp_path / "out.pt")], capsys)
    assert "key 'format' does not fit" in message and "palette checkpoint" in message
    full_size = json.loads((DATA / "full_size_networks.json").read_text())["networks"]["inpainting_celebahq"]
    (tmp_path / "celebahq.json").write_text(json.dumps(full_size["config"]))
    message = refused(["import", "--config", str(tmp_path / "celebahq.json"), "--network", str(NETWORK), "--output",
                       str(tmp_path / "out.pt")], capsys)
    assert "key 'gammas' has shape [100]" in message  # the file's first key: its schedule is not the config's
    network = torch.load(NETWORK, weights_only=True)
    torch.save({key: value for key, value in network.items() if key not in SCHEDULE_BUFFERS}, tmp_path / "8_ema.pth")
    message = refused(["import", "--config", str(tmp_path / "celebahq.json"), "--ema", str(tmp_path / "8_ema.pth"),
                       "--output", str(tmp_path / "out.pt")], capsys)
    assert "key 'denoise_fn.cond_embed.0.weight' has shape [32, 8], but the network its config describes has " \
           "[256, 64]" in message
    assert not (tmp_path / "out.pt").exists()


def _config_with(change) -> dict:
    config = copy.deepcopy(read_public_config(CONFIG))
    change(config)
    return config


def _network(config):
    return config["model"]["which_networks"][0]["args"]


@pytest.mark.parametrize("change, expected", [
    (lambda c: _network(c).pop("module_name"), "key 'model.which_networks.0.args.module_name' is 'sr3'"),
    (lambda c: _network(c)["unet"].update(use_scale_shift_norm=False), "unet.use_scale_shift_norm' is False"),
    (lambda c: _network(c)["unet"].update(resblock_updown=False), "unet.resblock_updown' is False"),
    (lambda c: _network(c)["unet"].update(attention=True), "unet.attention' is not an argument"),
    (lambda c: _network(c)["unet"].pop("attn_res"), "no key 'model.which_networks.0.args.unet.attn_res'"),
    (lambda c: _network(c)["beta_schedule"]["test"].update(schedule="cosine"),
     "beta_schedule.test.schedule' is 'cosine'"),
    (lambda c: c["model"]["which_model"]["args"].update(task="deblurring"), "task' is 'deblurring'"),
    (lambda c: _network(c)["unet"].update(num_head_channels=12),
     "unet' describes a network that cannot be built: attention width 32 is not divisible by num_head_channels=12"),
], ids=["sr3", "no-scale-shift", "no-resblock-updown", "unknown-key", "no-attn-res", "cosine-test", "task", "heads"])
def test_a_config_our_network_or_sampler_cannot_follow_is_refused_naming_the_key(tmp_path, capsys, change, expected):
    (tmp_path / "config.json").write_text(json.dumps(_config_with(change)))
    message = refused(["import", "--config", str(tmp_path / "config.json"), "--network", str(NETWORK), "--output",
                       str(tmp_path / "out.pt")], capsys)
    assert message.startswith(f"palette import: error: config {tmp_path / 'config.json'}: ") and expected in message


def test_a_fixed_number_of_heads_becomes_our_channels_per_head():
    """num_head_channels -1: their layers have num_heads heads (num_heads_upsample in the decoder)
    whatever their width; ours take one head size, so it must come out the same everywhere."""
    two_heads = _config_with(lambda c: _network(c)["unet"].update(num_head_channels=-1, num_heads=2))
    assert settings_from_config(two_heads, "config").overrides["num_head_channels"] == 16  # 32 channels, 2 heads
    uneven = _config_with(lambda c: _network(c)["unet"].update(num_head_channels=-1, num_heads=2,
                                                                 num_heads_upsample=4))
    with pytest.raises(ValueError, match=r"num_head_channels' is -1: its attention layers then have \[8, 16\]"):
        settings_from_config(uneven, "config")


def test_their_configs_comments_are_read_as_their_parser_does(tmp_path, capsys):
    text = '{"name": "a//b", // a comment\n "path": "http://x" // another\n}'
    assert json.loads(strip_json_comments(text)) == {"name": "a//b", "path": "http://x"}
    (tmp_path / "broken.json").write_text('{"name": "x",\n "model": }')
    message = refused(["import", "--config", str(tmp_path / "broken.json"), "--network", str(NETWORK), "--output",
                       str(tmp_path / "out.pt")], capsys)
    assert f"config {tmp_path / 'broken.json'} line 2 column 11: not JSON" in message
    message = refused(["import", "--config", str(CONFIG), "--output", str(tmp_path / "out.pt")], capsys)
    assert "nothing to import" in message
    message = refused(["import", "--config", str(CONFIG), "--network", str(NETWORK), "--output", str(NETWORK)], capsys)
    assert "would be overwritten" in message


# ---------------------------------------------------------------------------------------------
# Photo restoration with a converted checkpoint.


def _save_mask(path, mask):
    save_image(path, np.repeat(np.where(mask, 255, 0).astype(np.uint8)[..., None], 3, axis=2))


def test_infer_restores_a_photo_with_a_converted_checkpoint(converted, tmp_path):
    photo = load_image(demo_photo_paths()[0])
    small, large = np.ascontiguousarray(photo[:16, :16]), np.ascontiguousarray(photo[:40, :56])
    save_image(tmp_path / "small.png", small)
    save_image(tmp_path / "large.png", large)
    small_mask, large_mask = np.zeros((16, 16), bool), np.zeros((40, 56), bool)
    small_mask[4:10, 5:12] = True
    large_mask[6:14, 4:12] = large_mask[24:36, 30:50] = True  # two holes, one larger than the 16-pixel window
    _save_mask(tmp_path / "small_mask.png", small_mask)
    _save_mask(tmp_path / "large_mask.png", large_mask)
    common = ["infer", "--checkpoint", str(converted), "--steps", "2", "--device", "cpu"]
    assert main(common + ["--image", str(tmp_path / "small.png"), "--mask", str(tmp_path / "small_mask.png"),
                          "--output", str(tmp_path / "small_out.png")]) == 0
    result = load_image(tmp_path / "small_out.png")
    assert result.shape == small.shape and np.array_equal(result[~small_mask], small[~small_mask])
    assert main(common + ["--image", str(tmp_path / "large.png"), "--mask", str(tmp_path / "large_mask.png"),
                          "--full-resolution", "--output", str(tmp_path / "large_out.png")]) == 0
    result = load_image(tmp_path / "large_out.png")
    assert result.shape == large.shape and np.array_equal(result[~large_mask], large[~large_mask])
    assert not np.array_equal(result[large_mask], large[large_mask])


def test_their_sampler_is_recorded_beside_the_converted_checkpoint(converted):
    """palette infer / sample default to it (palette.inference.sampler_from_arguments)."""
    from palette.sampler_presets import read_sampler_record

    name, settings = read_sampler_record(converted)
    checkpoint = torch.load(converted, map_location="cpu", weights_only=False)
    assert name == "public_reproduction" and settings == checkpoint["imported"]["sampler"]
    assert settings["variance"] == "posterior" and settings["clip_x0"] is True
