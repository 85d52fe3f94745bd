"""A Hugging Face ``Trainer`` callback that drives a plasticity engine (extra ``hf``).

    trainer = Trainer(model, args, train_dataset=data, callbacks=[PlasticityCallback([Apoptosis()])])

The engine is built when training begins, over the trainer's model and optimizer (the torch
optimizer inside accelerate's wrapper), with ``total_steps = state.max_steps``; it steps at every
optimizer step, before the trainer zeroes the gradients.
"""

from __future__ import annotations

from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from growcore.errors import InvalidArgumentError
from growcore.torch.integrations._common import CallbackBase


class PlasticityCallback(CallbackBase, TrainerCallback):
    """Args: the engine's ``rules``, and its other options (``density``, ``layers``, ``seed``,
    ...; everything but ``total_steps``, which comes from the trainer)."""

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        model, optimizer = kwargs.get("model"), kwargs.get("optimizer")
        if model is None or optimizer is None:
            raise InvalidArgumentError("PlasticityCallback: the Trainer passed no model or optimizer to on_train_begin")
        self._holder.start(model, optimizer, state.max_steps)

    def on_optimizer_step(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self._holder.engine is not None:
            self._holder.engine.step()

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        self._holder.stop()
