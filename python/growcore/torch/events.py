"""The engine's event stream: one schema for every structural event, in one place.

Every event is a plain ``dict`` (so it pickles, goes to JSON and into a run folder unchanged)
with at least ``kind`` and ``step``; the ``TypedDict`` classes below are its documented schema,
one per kind, and :func:`check_event` holds an event to it (the tests run every event a
training produces through it).

Kinds:

- ``rewire``: a connection rule (RigL, SET) dropped and grew edges in one site;
- ``apoptosis``: a neuron was killed and a newborn took its slot;
- ``senescence``: a senior neuron's fitness went flat (it is now ``dying``);
- ``escalation``: a senescent neuron is due for replacement;
- ``deferred``: a structural update was due, but the optimizer step before it did not happen
  (a ``torch.amp.GradScaler`` found non-finite gradients and skipped it); the update runs at the
  next step that follows a real optimizer step;
- ``nonfinite``: the loss given to :meth:`Plasticity.step` (``what: "loss"``), a statistic
  (``"statistics"``) or, looked for then, a site's weight (``what``: the site's name) was NaN or
  inf at this step;
- ``growth`` (one per growth event, even one that added nothing), ``clone`` (one per clone),
  ``route`` (one per routed edge) and ``rollback`` (the Braess guard undid an event): the
  :class:`Growth` rule's, on a :class:`GrowingMLP`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypedDict


class RewireEvent(TypedDict):
    kind: Literal["rewire"]
    step: int
    layer: str  #: the site (module name)
    policy: str  #: the rule's name: "rigl", "set"
    fraction: float  #: the scheduled fraction of the site's edges that moved
    dropped: int
    grown: int
    nnz: int  #: the site's edges after the update (unchanged by a rewire)


class ApoptosisEvent(TypedDict):
    kind: Literal["apoptosis"]
    step: int
    layer: str  #: the neuron group (the producer's module name, or ``hiddenN`` for Lifecycle)
    slot: int
    dead: int  #: id of the neuron that died
    born: int  #: id of the newborn in its slot
    strategy: str  #: the regrowth strategy applied
    parents: list[int]  #: the newborn's parent ids (lineage)
    parent_slots: list[int]
    alpha: float | None  #: crossover's weight of the first parent
    fitness: float  #: the dead neuron's normalised fitness
    mean_activation: float
    cause: Literal["fitness", "senescence"]


class SenescenceEvent(TypedDict):
    kind: Literal["senescence", "escalation"]
    step: int
    layer: str
    slot: int
    id: int
    age: int
    slope: float


class DeferredEvent(TypedDict):
    kind: Literal["deferred"]
    step: int
    rules: list[str]  #: the rules whose update was postponed


class NonFiniteEvent(TypedDict):
    kind: Literal["nonfinite"]
    step: int
    what: str  #: "loss", "statistics", or the site whose weight is not finite
    value: str  #: "NaN", "inf" or "-inf" (the first non-finite value)


class GrowthEvent(TypedDict):
    kind: Literal["growth"]
    step: int
    cause: str  #: the trigger's name, or "manual"
    clones: int
    routes: int
    new_blocks: list[list[int]]
    sizes_before: list[int]
    sizes: list[int]
    nnz: int


class CloneEvent(TypedDict):
    kind: Literal["clone"]
    step: int
    type: Literal["vertical", "horizontal"]
    source_layer: int
    source_slot: int
    source_id: int
    layer: int
    slot: int
    id: int


class RouteEvent(TypedDict):
    kind: Literal["route"]
    step: int
    src_layer: int
    src_slot: int
    dst_layer: int
    dst_slot: int


class RollbackEvent(TypedDict):
    kind: Literal["rollback"]
    step: int
    event_step: int  #: the growth event undone
    loss_before: float
    loss_after: float
    clones_removed: int
    routes_removed: int
    sizes: list[int]
    nnz: int


SCHEMAS: dict[str, type] = {
    "rewire": RewireEvent,
    "apoptosis": ApoptosisEvent,
    "senescence": SenescenceEvent,
    "escalation": SenescenceEvent,
    "deferred": DeferredEvent,
    "nonfinite": NonFiniteEvent,
    "growth": GrowthEvent,
    "clone": CloneEvent,
    "route": RouteEvent,
    "rollback": RollbackEvent,
}

#: The Python types each annotation of the schemas accepts.
_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (float, int),
    "str": (str,),
    "list[int]": (list,),
    "list[str]": (list,),
    "list[list[int]]": (list,),
    "float | None": (float, int, type(None)),
}


def check_event(event: Mapping[str, Any]) -> None:
    """Raises ``ValueError`` unless ``event`` has exactly the fields of its kind's schema, each
    of the documented type (the schemas' field types, checked at the top level)."""
    kind = event.get("kind")
    schema = SCHEMAS.get(kind)  # type: ignore[arg-type]
    if schema is None:
        raise ValueError(f"event: unknown kind {kind!r}; expected one of {sorted(SCHEMAS)}")
    fields = schema.__annotations__
    # Growth and other rules may add fields; the schema's must all be there.
    missing = sorted(set(fields) - set(event))
    if missing:
        raise ValueError(f"event {kind!r}: missing fields {missing}")
    for name, annotation in fields.items():
        text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
        if text.startswith("Literal"):
            continue
        allowed = _TYPES.get(text)
        value = event[name]
        if allowed is not None and (not isinstance(value, allowed) or isinstance(value, bool)):
            raise ValueError(f"event {kind!r}: field {name!r} should be {text}, got {value!r}")
