"""Exponential moving average of the weights (Palette: decay 0.9999; sampling uses the EMA).

    ema <- decay * ema + (1 - decay) * weights      after every optimizer step

done as one `torch._foreach_lerp_` over all floating tensors (one kernel launch per group
instead of one per tensor, which matters for the 552 M-parameter paper model's ~700 tensors).
Non-floating buffers are copied. The state is a plain state_dict with the model's own keys, so
`model.load_state_dict(ema.state_dict())` gives the averaged network.
"""

from __future__ import annotations

import torch
from torch import nn


class EMA:
    def __init__(self, model: nn.Module, decay: float, foreach: bool = True):
        self.decay = decay
        self.foreach = foreach
        live = model.state_dict(keep_vars=True)
        self.averages = {name: tensor.detach().clone().float() if tensor.is_floating_point() else tensor.detach().clone()
                         for name, tensor in live.items()}
        self._bind(model)

    def _bind(self, model: nn.Module) -> None:
        live = model.state_dict(keep_vars=True)
        if set(live) != set(self.averages):
            raise KeyError(f"EMA keys differ from the model's: {sorted(set(live) ^ set(self.averages))[:5]}")
        floating = [name for name, t in live.items() if t.is_floating_point()]
        self._live_floats = [live[name].detach() for name in floating]
        self._ema_floats = [self.averages[name] for name in floating]
        self._live_other = [live[name] for name in live if name not in set(floating)]
        self._ema_other = [self.averages[name] for name in live if name not in set(floating)]

    @torch.no_grad()
    def update(self) -> None:
        weight = 1.0 - self.decay
        if self.foreach:
            torch._foreach_lerp_(self._ema_floats, self._live_floats, weight)
        else:
            for average, live in zip(self._ema_floats, self._live_floats):
                average.lerp_(live, weight)
        for average, live in zip(self._ema_other, self._live_other):
            average.copy_(live)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.averages)

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing, unexpected = set(self.averages) - set(state), set(state) - set(self.averages)
        if missing or unexpected:
            raise KeyError(f"EMA state does not match the model: missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}")
        for name, tensor in state.items():
            self.averages[name].copy_(tensor)
