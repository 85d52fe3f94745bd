"""A layered MLP whose structure is a growcore Graph: every layer may read any earlier layer
through a sparse block, hidden layers can gain (and lose) neurons, and skip blocks can appear.

Layer ``l`` of :class:`GrowingMLP` computes ``h_l = act(b_l + sum_a h_a @ W_al^T)`` over the
blocks ``(a, l)`` of its graph (``h_0`` is the flattened input; the last layer has no
activation). Each block's weight is a dense ``(size_l, size_a)`` parameter whose entries outside
the block's edges are exactly zero (re-masked after every optimizer step by whoever drives the
structure, e.g. :class:`growcore.torch.Grower`); a boolean mask per block mirrors the graph.

Resizing never rebuilds the optimizer: a parameter keeps its identity, its data and every
optimizer state tensor of its shape (SGD's momentum, Adam's moments) or factored along it
(Adafactor's row and column variances) are re-laid out so that the old coordinates keep their
values bit for bit and the new ones start at zero. (A weight with a single row or column is
ambiguous for factored state: its column variance has the weight's own shape.) A new block's
parameter joins the optimizer's param group that holds the model's other weights.

Parameters are kept in one ``ParameterDict`` in creation order (biases, then blocks as they
appear), so ``model.parameters()`` lists them in the order the optimizer received them and a
checkpoint resumes with a fresh ``optimizer(model.parameters())``. ``load_state_dict`` first
rebuilds the saved structure (sizes and blocks, from the graph in the state dict), then loads.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

import growcore
from growcore.errors import InvalidArgumentError, StateDictError
from growcore.torch.masking import mask_in_place

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
Block = tuple[int, int]


def _block_name(key: Block) -> str:
    return f"w{key[0]}_{key[1]}"


class GrowingMLP(nn.Module):
    """An MLP over a layered graph with adjacent and skip blocks that can grow.

    Args:
        sizes: layer sizes ``[inputs, hidden..., outputs]`` (at least one hidden layer).
        activation: ``"relu"``, ``"tanh"`` or ``"sigmoid"`` after every hidden layer.
        density: fraction of each adjacent block's weights present at the start, in [0, 1]
            (0: no edges; growth adds them).
        skips: skip blocks ``(a, b)``, ``b > a + 1``, to create (empty) at the start.
        seed: fixes the initial structure and weights.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        *,
        activation: str = "relu",
        density: float = 1.0,
        skips: Sequence[Block] = (),
        seed: int = 0,
    ) -> None:
        super().__init__()
        given = list(sizes) if isinstance(sizes, Iterable) and not isinstance(sizes, (str, bytes)) else []
        if len(given) < 3 or not all(_is_positive_int(s) for s in given):
            raise InvalidArgumentError(f"sizes: expected [inputs, hidden..., outputs] of positive integers, got {sizes!r}")
        sizes = [operator.index(s) for s in given]
        if activation not in ACTIVATIONS:
            raise InvalidArgumentError(f"activation: expected one of {sorted(ACTIVATIONS)}, got {activation!r}")
        self.activation = activation
        self.graph = growcore.Graph(sizes, density, seed=seed)
        for a, b in skips:
            self.graph.add_block(a, b)
        self.acts = nn.ModuleList([ACTIVATIONS[activation]() for _ in sizes[1:-1]])
        self.params = nn.ParameterDict()
        generator = torch.Generator().manual_seed(seed)
        for layer in range(1, len(sizes)):
            self.params[f"b{layer}"] = nn.Parameter(torch.zeros(sizes[layer]))
        for key in self.graph.blocks:
            self.params[_block_name(key)] = nn.Parameter(torch.zeros(sizes[key[1]], sizes[key[0]]))
        with torch.no_grad():
            for layer in range(1, len(sizes)):
                fan_in = sum(sizes[a] for a, b in self.graph.blocks if b == layer)
                bound = 1.0 / math.sqrt(max(fan_in, 1))  # nn.Linear's default initialisation
                for a, b in self.graph.blocks:
                    if b == layer:
                        w = self.weight((a, b))
                        w.copy_(torch.rand(w.shape, generator=generator) * 2 * bound - bound)
                bias = self.bias(layer)
                bias.copy_(torch.rand(bias.shape, generator=generator) * 2 * bound - bound)
        self.masks: dict[Block, torch.Tensor] = {}
        self.refresh_masks()
        self.apply_masks()

    # ------------------------------------------------------------------ structure

    @property
    def sizes(self) -> list[int]:
        """Current layer sizes, input to output."""
        return [int(s) for s in self.graph.layer_sizes]

    @property
    def num_layers(self) -> int:
        return len(self.graph.layer_sizes)

    def blocks(self) -> list[Block]:
        """The blocks, in key order."""
        return [(int(a), int(b)) for a, b in self.graph.blocks]

    def weight(self, key: Block) -> nn.Parameter:
        p: nn.Parameter = self.params[_block_name(key)]
        return p

    def bias(self, layer: int) -> nn.Parameter:
        p: nn.Parameter = self.params[f"b{layer}"]
        return p

    def refresh_masks(self) -> None:
        """Rebuilds every block's mask from the graph."""
        self.masks = {
            key: torch.from_numpy(self.graph.to_dense(*key)).to(self.weight(key).device) for key in self.blocks()
        }

    def _apply(self, fn: Any, recurse: bool = True) -> Any:
        out = super()._apply(fn, recurse)  # type: ignore[no-untyped-call]
        self.masks = {k: m.to(self.weight(k).device) for k, m in self.masks.items()}
        return out

    @torch.no_grad()
    def apply_masks(self) -> None:
        """Zeroes every weight outside its block's edges."""
        for key, mask in self.masks.items():
            mask_in_place(self.weight(key), mask)

    def active_params(self) -> int:
        """Edges plus biases: the parameters that can be nonzero."""
        return int(self.graph.nnz) + sum(self.sizes[1:])

    # ------------------------------------------------------------------ forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hs = [x.flatten(1)]
        last = self.num_layers - 1
        incoming: dict[int, list[int]] = {}
        for a, b in self.masks:
            incoming.setdefault(b, []).append(a)
        for layer in range(1, last + 1):
            z = self.bias(layer).expand(hs[0].shape[0], -1)
            for a in incoming.get(layer, []):
                z = torch.addmm(z, hs[a], self.weight((a, layer)).t())
            hs.append(self.acts[layer - 1](z) if layer < last else z)
        return hs[-1]

    # ------------------------------------------------------------------ resizing

    def sync(self, optimizer: torch.optim.Optimizer | None) -> list[Block]:
        """Brings the tensors up to the graph after neurons were appended and blocks added or
        removed: parameters (and their optimizer state) of grown layers gain zero coordinates,
        new blocks get a zero weight (joining the optimizer), removed blocks leave. Returns the
        new blocks."""
        sizes = self.sizes
        for layer in range(1, self.num_layers):
            old = self.bias(layer).shape[0]
            if sizes[layer] > old:
                index = torch.cat([torch.arange(old), torch.full((sizes[layer] - old,), -1)])
                self._reindex(layer, index, optimizer)
            elif sizes[layer] < old:
                raise RuntimeError(f"layer {layer} shrank in the graph; use keep_slots")
        blocks = set(self.blocks())
        added = [k for k in self.blocks() if _block_name(k) not in self.params]
        for key in added:
            p = nn.Parameter(self.bias(key[1]).new_zeros(sizes[key[1]], sizes[key[0]]))
            self.params[_block_name(key)] = p
            if optimizer is not None:
                _group_of_weights(optimizer, self).setdefault("params", []).append(p)
        for name in [n for n in self.params if n.startswith("w")]:
            a, b = (int(x) for x in name[1:].split("_"))
            if (a, b) not in blocks:
                p = self.params[name]
                del self.params[name]
                if optimizer is not None:
                    _forget(optimizer, p)
        self.refresh_masks()
        return added

    def keep_slots(self, layer: int, kept: Sequence[int] | np.ndarray, optimizer: torch.optim.Optimizer | None) -> None:
        """After ``graph.remove_neurons(layer, ...)`` returned ``kept`` (new slot ``i`` holds old
        slot ``kept[i]``): re-lays out the tensors touching ``layer`` and their optimizer state."""
        self._reindex(layer, torch.as_tensor(np.asarray(kept), dtype=torch.int64), optimizer)
        self.refresh_masks()

    @torch.no_grad()
    def _reindex(self, layer: int, index: torch.Tensor, optimizer: torch.optim.Optimizer | None) -> None:
        """New slot ``i`` of ``layer`` takes old slot ``index[i]`` (-1: a new, zero coordinate),
        in every tensor touching the layer and in its optimizer state."""
        touched: list[tuple[str, int]] = [(f"b{layer}", 0)]
        for a, b in self.masks:
            if b == layer:
                touched.append((_block_name((a, b)), 0))
            if a == layer:
                touched.append((_block_name((a, b)), 1))
        for name, dim in touched:
            self._replace(name, index, dim, optimizer)

    def _replace(self, name: str, index: torch.Tensor, dim: int, optimizer: torch.optim.Optimizer | None) -> None:
        """Swaps parameter ``name`` for one re-laid out along ``dim`` by ``index``, in the module
        and in the optimizer (its param group entry and its state).

        A state tensor of the parameter's shape is re-laid out the same way; so is a factored
        one that spans ``dim`` (Adafactor's ``row_var`` of shape ``(rows, 1)`` when rows change),
        while one of size 1 along ``dim`` (its ``col_var`` then) is kept. New coordinates start
        at zero. A new Parameter rather than a resized ``.data``: autograd caches a leaf's shape
        in its gradient accumulator, which lives as long as any graph that used it (such as the
        last step's loss), and would reject gradients of the new shape."""
        old = self.params[name]
        new = nn.Parameter(_relaid(old.detach(), index, dim), requires_grad=old.requires_grad)
        self.params[name] = new
        if optimizer is None:
            return
        for group in optimizer.param_groups:
            group["params"] = [new if q is old else q for q in group["params"]]
        if old in optimizer.state:
            state = optimizer.state.pop(old)
            for key, value in state.items():
                if _spans(value, old, dim):
                    state[key] = _relaid(value, index, dim)
            optimizer.state[new] = state

    # ------------------------------------------------------------------ checkpoints

    def get_extra_state(self) -> dict[str, Any]:
        return {"graph": self.graph.to_bytes(), "order": list(self.params.keys()), "activation": self.activation}

    def set_extra_state(self, state: Any) -> None:
        # The structure was rebuilt by _load_from_state_dict before the tensors were loaded.
        pass

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        """Rebuilds the saved structure (graph, sizes, blocks, parameter order), then loads the
        tensors; if anything fails, the model is left as it was. The model's optimizer must be
        created (or re-created) afterwards. (Loading through a parent module rebuilds the
        structure too, but a failure there leaves what torch had loaded, as torch does.)"""
        before = self.graph, self.params, self.masks
        try:
            return super().load_state_dict(state_dict, strict=strict, assign=assign)
        except BaseException:
            self.graph, self.params, self.masks = before
            raise

    def _load_from_state_dict(
        self,
        state_dict: Mapping[str, Any],
        prefix: str,
        local_metadata: Any,
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        # torch calls this on the module before loading its children (``params``): swapping in
        # the saved structure here makes the parameters the right shapes when their turn comes,
        # whether the model is loaded directly or as part of a larger module.
        self.graph, self.params = self._saved_structure(state_dict.get(prefix + "_extra_state"), prefix)
        self.refresh_masks()
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def _saved_structure(self, extra: Any, prefix: str = "") -> tuple[growcore.Graph, nn.ParameterDict]:
        """The graph and (zero) parameters of a state dict's ``_extra_state``, checked against
        this model; nothing of the model changes here."""
        key = f"state[{prefix + '_extra_state'!r}]"
        if not isinstance(extra, Mapping) or set(extra) != {"graph", "order", "activation"}:
            raise StateDictError(f"{key}: missing or malformed; not a GrowingMLP state dict")
        if extra["activation"] != self.activation:
            raise StateDictError(f"{key}['activation']: saved {extra['activation']!r}, this model has {self.activation!r}")
        try:
            graph = growcore.Graph.from_bytes(extra["graph"])
        except Exception as err:
            raise StateDictError(f"{key}['graph']: {err}") from err
        saved, mine = [int(n) for n in graph.layer_sizes], self.sizes
        if len(saved) != len(mine) or (saved[0], saved[-1]) != (mine[0], mine[-1]):
            raise StateDictError(
                f"{key}['graph']: layer sizes {saved}, this model's are {mine} "
                "(the number of layers, the inputs and the outputs must match)"
            )
        order = extra["order"]
        expected = {f"b{layer}" for layer in range(1, len(saved))} | {_block_name(k) for k in graph.blocks}
        if not isinstance(order, (list, tuple)) or len(order) != len(expected) or set(order) != expected:
            raise StateDictError(f"{key}['order']: expected the parameters {sorted(expected)} of the saved graph, got {order!r}")
        device = self.bias(1).device
        params = nn.ParameterDict()
        for name in order:
            if name.startswith("b"):
                shape: tuple[int, ...] = (saved[int(name[1:])],)
            else:
                a, b = (int(x) for x in name[1:].split("_"))
                shape = (saved[b], saved[a])
            params[name] = nn.Parameter(torch.zeros(shape, device=device))
        return graph, params


def _is_positive_int(value: object) -> bool:
    """An integer (Python's or numpy's, not a bool) of at least 1."""
    if isinstance(value, (bool, np.bool_)):
        return False
    try:
        return operator.index(value) >= 1  # type: ignore[arg-type]
    except TypeError:
        return False


def _spans(value: Any, param: torch.Tensor, dim: int) -> bool:
    """Whether optimizer state ``value`` holds one entry per coordinate of ``param`` along
    ``dim``: a tensor of the parameter's shape, or a factored one (size 1 or the parameter's
    size along every dimension) of full size along ``dim``."""
    if not isinstance(value, torch.Tensor) or value.dim() == 0 or value.dim() != param.dim():
        return False
    if any(v not in (p, 1) for v, p in zip(value.shape, param.shape)):
        return False
    return bool(value.shape[dim] == param.shape[dim])


def _relaid(t: torch.Tensor, index: torch.Tensor, dim: int) -> torch.Tensor:
    """``t`` with its ``dim`` re-laid out by ``index`` (-1: zeros)."""
    shape = list(t.shape)
    shape[dim] = len(index)
    out = t.new_zeros(shape)
    keep = (index >= 0).nonzero().flatten().to(t.device)
    src = index.to(t.device)[keep]
    out.index_copy_(dim, keep, t.index_select(dim, src))
    return out


def _group_of_weights(optimizer: torch.optim.Optimizer, model: GrowingMLP) -> dict[str, Any]:
    """The param group holding the model's block weights (else its biases, else the first)."""
    ids = {id(p) for n, p in model.params.items() if n.startswith("w")}
    for group in optimizer.param_groups:
        if any(id(p) in ids for p in group["params"]):
            return group
    ids = {id(p) for p in model.params.values()}
    for group in optimizer.param_groups:
        if any(id(p) in ids for p in group["params"]):
            return group
    return optimizer.param_groups[0]


def _forget(optimizer: torch.optim.Optimizer, p: torch.Tensor) -> None:
    for group in optimizer.param_groups:
        group["params"] = [q for q in group["params"] if q is not p]
    optimizer.state.pop(p, None)
