"""Per-neuron statistics of sparsified modules, reduced on the device.

A forward hook on each module reduces its output (before any activation function that follows
the module; or, with ``on="input"``, its input: the activations of the layer before it) to four
numbers per neuron, summed over every training-mode forward pass since
the last collection: the mean, the mean of squares, the fraction of samples at or above the high
saturation threshold, and the fraction at or below the low one (with the default low threshold 0
and a ReLU after the module, that is the fraction of samples on which the neuron is dead). For a
convolution a neuron is an output channel, and every spatial position counts as a sample.

:meth:`ActivationStats.collect` adds the gradient norm of each neuron's incoming weights and moves
the lot to the host in one transfer per module: only O(neurons) numbers cross per step. On the
CPU the reduction is one pass of the core (:func:`growcore.add_activation_sums`) into float64
sums on the host, instead of several torch operations per module; elsewhere it runs in torch on
the tensors' device.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from growcore._core import add_activation_sums
from growcore.torch.hooks import CopyDropped


#: The activation summaries, in the order of the rows of the sums.
_SUMMARIES = ("mean", "sq_mean", "frac_high", "frac_low")


class ActivationStats:
    """Forward hooks that accumulate per-neuron summaries of some modules' outputs."""

    def __init__(
        self,
        modules: Sequence[tuple[str, nn.Module]],
        saturation: tuple[float, float] = (0.0, 2.0),
        *,
        on: str = "output",
    ) -> None:
        low, high = saturation
        if not low < high:
            raise ValueError(f"saturation: expected (low, high) with low < high, got {saturation!r}")
        if on not in ("output", "input"):
            raise ValueError(f'on: expected "output" or "input", got {on!r}')
        self.low, self.high = float(low), float(high)
        # Per module: (4, neurons) sums, a float64 array on the host for CPU activations or a
        # float32 tensor on their device otherwise, and the samples they sum.
        self._sums: dict[str, np.ndarray | torch.Tensor] = {}
        self._samples: dict[str, int] = {}
        # (CopyDropped: a saved or deep-copied model neither fails to pickle nor feeds these sums.)
        if on == "output":
            self._handles = [m.register_forward_hook(CopyDropped(self._hook(name, m))) for name, m in modules]
        else:  # a module's input: the activations of the layer before it
            self._handles = []
            for name, m in modules:
                hook = self._hook(name, m)
                pre = CopyDropped(lambda mod, inputs, h=hook: h(mod, inputs, inputs[0]))
                self._handles.append(m.register_forward_pre_hook(pre))

    def _hook(self, name: str, module: nn.Module) -> Any:
        # Neurons are a convolution's channels (dimension 1) and a linear layer's features (last).
        channels_first = isinstance(module, nn.modules.conv._ConvNd)
        # A convolution also takes one unbatched sample (channels, *spatial).
        unbatched_dims = -1
        if channels_first:
            weight = module.weight
            assert isinstance(weight, torch.Tensor)
            unbatched_dims = weight.dim() - 1

        def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
            if not module.training or output.numel() == 0:  # an empty batch adds no sample
                return
            with torch.no_grad():
                x = output.detach()
                if x.dim() == unbatched_dims:
                    x = x.unsqueeze(0)
                # Under torch.compile the reduction is torch operations that the compiled graph
                # fuses (a call into the core would break the graph at every hook).
                if x.device.type == "cpu" and not torch.compiler.is_compiling():
                    self._add_on_host(name, x, channels_first)
                else:
                    self._add_on_device(name, x, channels_first)

        return hook

    def _add_on_host(self, name: str, x: torch.Tensor, channels_first: bool) -> None:
        # (outer, neurons, inner) without a copy when x is contiguous float32.
        if channels_first and x.dim() > 2:
            x = x.reshape(x.shape[0], x.shape[1], -1)
        else:
            x = x.reshape(-1, x.shape[-1], 1)
        x = x.to(torch.float32).contiguous()
        sums = self._sums.get(name)
        if sums is None:
            sums = self._sums[name] = np.zeros((4, x.shape[1]))
            self._samples[name] = 0
        elif isinstance(sums, torch.Tensor):  # the module moved to the CPU since the last collection
            sums = self._sums[name] = sums.double().cpu().numpy()
        self._samples[name] += add_activation_sums(x.numpy(), sums, self.low, self.high)

    def _add_on_device(self, name: str, x: torch.Tensor, channels_first: bool) -> None:
        # Neurons last, samples (batch and spatial positions) first.
        x = x.movedim(1, -1) if channels_first and x.dim() > 2 else x
        x = x.reshape(-1, x.shape[-1]).float()
        # Counting the comparisons' bytes in int32 takes half the time of summing the bool
        # tensors (which torch widens to int64); the comparisons cost the same.
        sums = torch.stack(
            [
                x.sum(0),
                (x * x).sum(0),
                (x >= self.high).view(torch.uint8).sum(0, dtype=torch.int32),
                (x <= self.low).view(torch.uint8).sum(0, dtype=torch.int32),
            ]
        )
        previous = self._sums.get(name)
        if previous is None:
            self._sums[name] = sums
            self._samples[name] = x.shape[0]
            return
        if isinstance(previous, np.ndarray):  # the module moved off the CPU since the last collection
            previous = self._sums[name] = torch.from_numpy(previous).to(sums)
        previous += sums
        self._samples[name] += x.shape[0]

    def collect(
        self,
        grads: Mapping[str, torch.Tensor],
        masks: Mapping[str, torch.Tensor] | None = None,
        *,
        grad_norms: Mapping[str, np.ndarray] | None = None,
    ) -> dict[str, dict[str, np.ndarray]]:
        """Summaries since the last call, per module name, as float32 arrays over the output
        neurons: ``mean``, ``sq_mean``, ``frac_high``, ``frac_low`` (when the module ran forward
        in training mode) and ``grad_norm``: given in ``grad_norms`` (e.g. read by the core from
        the graph), or the row norms of the module's (out, in) weight gradient in ``grads``,
        restricted to ``masks`` when given. Resets the sums."""
        grad_norms = grad_norms or {}
        out: dict[str, dict[str, np.ndarray]] = {}
        with torch.no_grad():
            for name in set(self._sums) | set(grads) | set(grad_norms):
                summary: dict[str, np.ndarray] = {}
                on_device: list[torch.Tensor] = []  # moved to the host in one transfer
                sums = self._sums.get(name)
                if isinstance(sums, np.ndarray):
                    summary.update(zip(_SUMMARIES, (sums / self._samples[name]).astype(np.float32)))
                elif sums is not None:
                    on_device.append(sums / self._samples[name])
                norm_on_device = name in grads and name not in grad_norms
                if name in grad_norms:
                    summary["grad_norm"] = np.asarray(grad_norms[name], dtype=np.float32)
                elif norm_on_device:
                    mask = masks.get(name) if masks is not None else None
                    g = grads[name] if mask is None else grads[name] * mask
                    on_device.append(g.float().norm(dim=1)[None, :])
                if on_device:
                    host = torch.cat(on_device).cpu().numpy().astype(np.float32, copy=False)
                    if isinstance(sums, torch.Tensor):
                        summary.update(zip(_SUMMARIES, host))
                    if norm_on_device:
                        summary["grad_norm"] = host[-1]
                out[name] = summary
        self._sums.clear()
        self._samples.clear()
        return out

    def reset(self) -> None:
        """Discards the sums since the last collection (e.g. after the modules were resized)."""
        self._sums.clear()
        self._samples.clear()

    def remove(self) -> None:
        """Detaches the hooks."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
