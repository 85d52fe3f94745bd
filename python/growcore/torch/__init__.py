"""growcore's torch integration: dynamic sparse training (static, SET, RigL) of any model's
``nn.Linear`` and ``nn.Conv2d`` layers, driven by a growcore Graph.

    from growcore.torch import SparseController, RigL

    controller = SparseController(model, optimizer, density=0.1, total_steps=steps, policy=RigL())
    for x, y in batches:
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()
        controller.step()
"""

from growcore.torch.controller import SparseController
from growcore.torch.growing import GrowingMLP
from growcore.torch.growth import Grower
from growcore.torch.lifecycle import Lifecycle
from growcore.torch.optim import zero_state
from growcore.torch.policies import SET, Policy, RigL, Static, make_policy
from growcore.torch.stats import ActivationStats
from growcore.torch.triggers import GradVariance, Interval, Plateau, Trigger, make_trigger

__all__ = [
    "SET",
    "ActivationStats",
    "GradVariance",
    "Grower",
    "GrowingMLP",
    "Interval",
    "Lifecycle",
    "Plateau",
    "Policy",
    "RigL",
    "SparseController",
    "Static",
    "Trigger",
    "make_policy",
    "make_trigger",
    "zero_state",
]
