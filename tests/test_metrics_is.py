"""IS: computed only with the TF Inception's own 1008-logit head; otherwise unavailable, with why."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from palette.metrics.inception_score import inception_score, inception_score_from_logits


def test_is_reports_unavailable_with_reason_when_head_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("PALETTE_WEIGHTS_DIR", str(tmp_path))
    result = inception_score(np.zeros((4, 2048)), allow_network=False)
    assert result["is"] is None and result["is_std"] is None
    reason = result["is_unavailable"]
    assert "1008-logit head" in reason and "no pip package ships it" in reason
    assert str(tmp_path / "inception-2015-12-05.pt") in reason  # the places tried are named


def test_is_from_logits_bounds():
    # every image confidently a different class: IS = number of classes per split
    logits = np.full((20, 1008), -50.0)
    logits[np.arange(20), np.arange(20)] = 50.0
    mean, std = inception_score_from_logits(logits, splits=2)
    assert mean == pytest.approx(10.0, rel=1e-6) and std == pytest.approx(0.0, abs=1e-6)
    # identical predictions: IS = 1
    assert inception_score_from_logits(np.tile(logits[:1], (20, 1)), splits=2)[0] == pytest.approx(1.0)


def test_is_uses_the_head_of_a_full_inception_file_and_refuses_altered_convolutions(tmp_path):
    """A stand-in for the full TorchScript file (pool3 graph + a 1008-way `output` layer), built
    from the checked pool3 weights: accepted, its head used; with one convolution changed: refused."""
    import torch

    from palette.metrics.inception import InceptionV3
    from palette.weights import ChecksumMismatchError, inception_head_state_dict, inception_state_dict

    class FullInception(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = InceptionV3()
            self.layers.load_state_dict(inception_state_dict(weights_dir_override=tmp_path / "w"))
            self.output = torch.nn.Linear(2048, 1008)

        def forward(self, x):
            return self.output(self.layers(x))

    torch.manual_seed(0)
    model = FullInception().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.trace is deprecated; the real file is TorchScript
        traced = torch.jit.trace(model, torch.zeros(1, 3, 299, 299))
    path = tmp_path / "inception-2015-12-05.pt"
    traced.save(str(path))

    head = inception_head_state_dict(path)
    torch.testing.assert_close(head["weight"], model.output.weight.detach())
    features = np.random.default_rng(0).normal(size=(30, 2048)).clip(0) * 0.5
    result = inception_score(features, splits=3, weights_path=path)
    expected, _ = inception_score_from_logits(features @ model.output.weight.detach().double().numpy().T, 3)
    assert result["is"] == pytest.approx(expected) and "is_unavailable" not in result

    with torch.no_grad():
        traced.layers.conv.weight.add_(1e-3)
    traced.save(str(path))
    unavailable = inception_score(features, weights_path=path)
    assert unavailable["is"] is None and "convolution weights differ" in unavailable["is_unavailable"]
    with pytest.raises(ChecksumMismatchError):
        inception_head_state_dict(path)
