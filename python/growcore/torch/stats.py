"""Per-neuron statistics of sparsified modules, reduced on the device.

A forward hook on each module reduces its output (before any activation function that follows
the module; or, with ``on="input"``, its input: the activations of the layer before it) to four
numbers per neuron, summed over every training-mode forward pass since
the last collection: the mean, the mean of squares, the fraction of samples at or above the high
saturation threshold, and the fraction at or below the low one (with the default low threshold 0
and a ReLU after the module, that is the fraction of samples on which the neuron is dead). For a
convolution a neuron is an output channel, and every spatial position counts as a sample.

:meth:`ActivationStats.collect` adds the gradient norm of each neuron's incoming weights and moves
the lot to the host in one transfer per module: only O(neurons) numbers cross per step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn


#: Elements per block of rows when masking a CPU gradient (1 MB of float32).
_PIECE = 1 << 18


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
        self._sums: dict[str, torch.Tensor] = {}
        self._samples: dict[str, int] = {}
        self._scratch: torch.Tensor | None = None
        if on == "output":
            self._handles = [m.register_forward_hook(self._hook(name)) for name, m in modules]
        else:  # a module's input: the activations of the layer before it
            self._handles = [
                m.register_forward_pre_hook(lambda mod, inputs, n=name: self._hook(n)(mod, inputs, inputs[0]))
                for name, m in modules
            ]

    def _hook(self, name: str) -> Any:
        def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
            if not module.training:
                return
            with torch.no_grad():
                x = output.detach()
                # Neurons last, samples (batch and spatial positions) first.
                x = x.movedim(1, -1) if x.dim() > 2 else x
                x = x.reshape(-1, x.shape[-1]).float()
                # Counting the comparisons' bytes in int32 takes half the time of summing the
                # bool tensors (which torch widens to int64); the comparisons cost the same.
                sums = torch.stack(
                    [
                        x.sum(0),
                        (x * x).sum(0),
                        (x >= self.high).view(torch.uint8).sum(0, dtype=torch.int32),
                        (x <= self.low).view(torch.uint8).sum(0, dtype=torch.int32),
                    ]
                )
                if name in self._sums:
                    self._sums[name] += sums
                    self._samples[name] += x.shape[0]
                else:
                    self._sums[name] = sums
                    self._samples[name] = x.shape[0]

        return hook

    def collect(
        self, grads: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor] | None = None
    ) -> dict[str, dict[str, np.ndarray]]:
        """Summaries since the last call, per module name, as float32 arrays over the output
        neurons: ``mean``, ``sq_mean``, ``frac_high``, ``frac_low`` (when the module ran forward
        in training mode) and ``grad_norm`` (when ``grads`` has the module's (out, in) weight
        gradient; ``masks`` restricts it to kept weights). Resets the sums."""
        out: dict[str, dict[str, np.ndarray]] = {}
        with torch.no_grad():
            for name in set(self._sums) | set(grads):
                rows = []
                if name in self._sums:
                    rows.append(self._sums[name] / self._samples[name])
                if name in grads:
                    mask = masks.get(name) if masks is not None else None
                    rows.append(self._row_norms(grads[name], mask)[None, :])
                host = torch.cat(rows).cpu().numpy().astype(np.float32, copy=False)
                summary: dict[str, np.ndarray] = {}
                if name in self._sums:
                    summary.update(mean=host[0], sq_mean=host[1], frac_high=host[2], frac_low=host[3])
                if name in grads:
                    summary["grad_norm"] = host[-1]
                out[name] = summary
        self._sums.clear()
        self._samples.clear()
        return out

    def _row_norms(self, g: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """The float32 L2 norm of each row of ``g`` (restricted to ``mask`` when given)."""
        norms: torch.Tensor
        if mask is None:
            norms = g.float().norm(dim=1)
            return norms
        fast = g.device.type == "cpu" and g.dim() == 2 and mask.dtype == torch.bool and mask.shape == g.shape
        if not (fast and g.is_contiguous() and mask.is_contiguous()):
            norms = (g * mask).float().norm(dim=1)
            return norms
        # On CPU: multiply by the mask's bytes (torch converts a bool operand several times more
        # slowly than a uint8 one) into a reused 1 MB buffer, a block of rows at a time, rather
        # than allocating a masked copy of the whole gradient (whose fresh pages cost more than
        # the arithmetic). About 0.7 ms for a 1024 x 1024 gradient on one thread instead of 1.5-6.
        rows, cols = g.shape
        if self._scratch is None:
            self._scratch = torch.empty(_PIECE, dtype=torch.float32)
        step = max(1, _PIECE // cols)
        if step * cols > self._scratch.numel():  # one row longer than the buffer
            self._scratch = torch.empty(step * cols, dtype=torch.float32)
        out = torch.empty(rows, dtype=torch.float32)
        m = mask.view(torch.uint8)
        for i in range(0, rows, step):
            n = min(step, rows - i)
            buf = self._scratch[: n * cols].view(n, cols)
            torch.mul(g[i : i + n], m[i : i + n], out=buf)
            torch.linalg.vector_norm(buf, dim=1, out=out[i : i + n])
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
