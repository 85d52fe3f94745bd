"""growcore's torch integration: one plasticity engine whose rules (RigL, SET, Static,
Apoptosis, Senescence) compose on any model, driven by one growcore Graph.

    from growcore.torch import Apoptosis, Plasticity, RigL

    engine = Plasticity(model, optimizer, rules=[RigL(), Apoptosis()], density=0.1, total_steps=steps)
    for x, y in batches:
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        engine.step(loss)

``SparseController`` (connection rules alone), ``Lifecycle`` and ``Grower`` are the older entry
points.
"""

from growcore.torch.apoptosis import Apoptosis, Senescence
from growcore.torch.controller import SparseController
from growcore.torch.engine import Plasticity
from growcore.torch.events import check_event
from growcore.torch.growing import GrowingMLP
from growcore.torch.growth import Grower, Growth
from growcore.torch.lifecycle import Lifecycle
from growcore.torch.optim import zero_state
from growcore.torch.policies import SET, Policy, RigL, Static, make_policy
from growcore.torch.rules import Rule
from growcore.torch.stats import ActivationStats
from growcore.torch.triggers import GradVariance, Interval, Plateau, Trigger, make_trigger

__all__ = [
    "SET",
    "ActivationStats",
    "Apoptosis",
    "GradVariance",
    "Grower",
    "Growth",
    "GrowingMLP",
    "Interval",
    "Lifecycle",
    "Plasticity",
    "Plateau",
    "Policy",
    "RigL",
    "Rule",
    "Senescence",
    "SparseController",
    "Static",
    "Trigger",
    "check_event",
    "make_policy",
    "make_trigger",
    "zero_state",
]
