"""The contract every lth model keeps: a population of N networks with named prunable tensors."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lth.models.layers import PopBatchNorm2d, PopConv2d, PopGroupNorm, PopLinear, PopScalar

INITIALIZERS = ("kaiming_normal", "kaiming_uniform", "xavier_normal", "xavier_uniform")


def init_weight(w: Tensor, init: str, generator: torch.Generator) -> None:
    """Initialise one member's weight tensor in place with the named initialiser."""
    if init == "kaiming_normal":
        nn.init.kaiming_normal_(w, generator=generator)
    elif init == "kaiming_uniform":
        nn.init.kaiming_uniform_(w, generator=generator)
    elif init == "xavier_normal":
        nn.init.xavier_normal_(w, generator=generator)
    elif init == "xavier_uniform":
        nn.init.xavier_uniform_(w, generator=generator)
    else:
        raise ValueError(f"unknown initialiser {init!r}; allowed: {', '.join(INITIALIZERS)}")


class PopModel(nn.Module):
    """A population of ``n`` networks of one architecture.

    ``forward`` takes ``[N, B, *example_shape]`` (or ``[1, B, ...]``, shared by all members) and returns logits
    ``[N, B, classes]``. Every parameter and buffer has the member dimension first; member ``i``'s state dict is
    ``{name: tensor[i]}``. Subclasses set ``output_layer`` (the name of the output layer's weight) and may
    override :meth:`_init_extra` for architecture-specific initialisation (Fixup).
    """

    output_layer: str = ""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    # -- the names the pruning code works with
    def prunable(self) -> list[str]:
        """Names of the prunable tensors: every convolution and linear weight, output layer included."""
        return [f"{name}.weight" for name, m in self.named_modules() if isinstance(m, PopLinear | PopConv2d)]

    # -- initialisation, one member at a time so each member depends only on its own seed
    @torch.no_grad()
    def init_member(self, i: int, init: str, generator: torch.Generator) -> None:
        """(Re)initialise member ``i`` from ``generator``: weights by ``init``, biases zero, norms identity."""
        for m in self.modules():
            if isinstance(m, PopLinear | PopConv2d):
                # drawn on the CPU whatever the device, so an initialisation is the same everywhere
                w = torch.empty(m.weight.shape[1:])
                init_weight(w, init, generator)
                m.weight[i].copy_(w)
                if m.bias is not None:
                    m.bias[i].zero_()
            elif isinstance(m, PopBatchNorm2d):
                m.weight[i].fill_(1.0)
                m.bias[i].zero_()
                m.running_mean[i].zero_()
                m.running_var[i].fill_(1.0)
            elif isinstance(m, PopGroupNorm):
                m.weight[i].fill_(1.0)
                m.bias[i].zero_()
        self._init_extra(i, init, generator)

    def _init_extra(self, i: int, init: str, generator: torch.Generator) -> None:
        """Architecture-specific initialisation after the generic one (default: nothing)."""

    # -- per-member state
    def member_state(self, i: int) -> dict[str, Tensor]:
        """Member ``i``'s state dict (a copy), keyed by the model's own parameter and buffer names."""
        return {k: v[i].detach().clone() for k, v in self.state_dict().items()}

    @torch.no_grad()
    def load_member(self, i: int, state: dict[str, Tensor]) -> None:
        """Write a single-network state dict into member ``i``; keys and shapes must match."""
        own = self.state_dict()
        missing = set(own) - set(state)
        extra = set(state) - set(own)
        if missing or extra:
            raise ValueError(f"state does not fit the model: missing {sorted(missing)}, unexpected {sorted(extra)}")
        for k, v in own.items():
            if v[i].shape != state[k].shape:
                raise ValueError(f"state tensor {k} has shape {tuple(state[k].shape)}, model expects "
                                 f"{tuple(v[i].shape)}")
            v[i].copy_(state[k])

    def num_params(self, member_only: bool = True) -> int:
        """Number of trainable parameters of one member (or of the whole population)."""
        total = sum(p.numel() for p in self.parameters())
        return total // self.n if member_only else total


__all__ = ["PopModel", "init_weight", "INITIALIZERS", "PopScalar"]
