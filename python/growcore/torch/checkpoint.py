"""Strict checks shared by the torch-side ``load_state_dict`` methods: every key present and no
other, the right version, a valid step, and a graph that fits the one in use."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import growcore
from growcore.errors import StateDictError, is_int


def check_state(state: Any, keys: set[str], version: int) -> int:
    """Checks the keys, the version and the step of a saved state; returns the step."""
    if not isinstance(state, Mapping) or set(state) != keys:
        got = sorted(state) if isinstance(state, Mapping) else type(state).__name__
        raise StateDictError(f"state: expected the keys {sorted(keys)}, got {got}")
    if not is_int(state["version"]) or state["version"] != version:  # True and 1.0 compare equal to 1
        raise StateDictError(f"state['version']: expected {version}, got {state['version']!r}")
    step = state["step"]
    if not is_int(step) or step < 0:
        raise StateDictError(f"state['step']: expected a non-negative integer, got {step!r}")
    return int(step)  # a numpy integer is kept as a Python int


def check_config(saved: Any, mine: Mapping[str, Any]) -> None:
    """Refuses a checkpoint whose options (``state['config']``) differ from the loading
    object's: a run resumed with another interval, strategy or density would not continue the
    saved one. Tuples and lists compare alike (a state that went through JSON still loads)."""
    if not isinstance(saved, Mapping) or set(saved) != set(mine):
        got = sorted(saved) if isinstance(saved, Mapping) else repr(saved)
        raise StateDictError(f"state['config']: expected the keys {sorted(mine)}, got {got}")
    for key, value in mine.items():
        if _plain(saved[key]) != _plain(value):
            raise StateDictError(
                f"state['config'][{key!r}]: saved {saved[key]!r}, this one has {value!r} "
                "(a resumed run must be built with the same options)"
            )


def _plain(x: Any) -> Any:
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, Mapping):
        return {k: _plain(v) for k, v in x.items()}
    return x


def load_graph(data: Any, like: growcore.Graph) -> growcore.Graph:
    """The saved graph, which must have the layer sizes and blocks of ``like``."""
    try:
        graph = growcore.Graph.from_bytes(data)
    except (growcore.GrowcoreError, TypeError) as e:
        raise StateDictError(f"state['graph']: {e}") from e
    if graph.layer_sizes != like.layer_sizes or graph.blocks != like.blocks:
        raise StateDictError(
            f"state['graph']: layers {graph.layer_sizes} with blocks {graph.blocks} do not fit "
            f"{like.layer_sizes} with blocks {like.blocks}"
        )
    return graph
