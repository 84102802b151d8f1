"""Inception Score (Salimans et al. 2016) from pool3 features and the 1008-logit head.

IS needs the TF Inception's classifier head, which no pip package ships (docs/offline-weights.md): where it
cannot be resolved, IS is reported as unavailable with the reason, never computed with another
network. Like the original TF code (and StyleGAN2-ADA's port), the softmax is taken over
pool3 @ W without the output bias, over all 1008 logits, with 10 splits.
"""

from __future__ import annotations

import numpy as np
import torch


def inception_score_from_logits(logits: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """Mean and std over splits of exp(E_x KL(p(y|x) || p(y)))."""
    logits = torch.as_tensor(np.asarray(logits, np.float64))
    probabilities = torch.softmax(logits, dim=1).numpy()
    splits = max(1, min(splits, len(probabilities)))
    scores = []
    for part in np.array_split(probabilities, splits):
        marginal = part.mean(axis=0, keepdims=True)
        kl = part * (np.log(part + 1e-30) - np.log(marginal + 1e-30))
        scores.append(np.exp(kl.sum(axis=1).mean()))
    return float(np.mean(scores)), float(np.std(scores))


def unavailable_reason(error: Exception) -> str:
    return ("the TF Inception 1008-logit head is not available (no pip package ships it; stage "
            "inception-2015-12-05.pt with `palette weights fetch` on a machine with a network): "
            f"{error}")


def inception_logits(features: np.ndarray, weights_path=None, weights_dir=None,
                     allow_network: bool | None = None) -> np.ndarray:
    """float64 [N, 1008] logits pool3 @ W (no bias, as the TF code); raises WeightsNotFoundError
    or ChecksumMismatchError without the head."""
    from palette.weights import inception_head_state_dict

    head = inception_head_state_dict(weights_path, weights_dir, allow_network)
    return np.asarray(features, np.float64) @ head["weight"].double().numpy().T


def inception_score(features: np.ndarray, splits: int = 10, weights_path=None, weights_dir=None,
                    allow_network: bool | None = None) -> dict:
    """`{"is": mean, "is_std": std}`, or `{"is": None, "is_unavailable": reason}` without the head."""
    from palette.weights import ChecksumMismatchError, WeightsNotFoundError

    try:
        logits = inception_logits(features, weights_path, weights_dir, allow_network)
    except (WeightsNotFoundError, ChecksumMismatchError) as error:
        return {"is": None, "is_std": None, "is_unavailable": unavailable_reason(error)}
    mean, std = inception_score_from_logits(logits, splits)
    return {"is": mean, "is_std": std}
