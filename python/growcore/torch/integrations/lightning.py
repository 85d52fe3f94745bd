"""A PyTorch Lightning callback that drives a plasticity engine (extra ``lightning``).

    trainer = lightning.Trainer(callbacks=[PlasticityCallback([RigL(), Apoptosis()], density=0.1)])

The engine is built at the start of fit, over ``pl_module`` and the trainer's first optimizer,
with ``total_steps = trainer.estimated_stepping_batches``; it steps after every optimizer step
(every ``accumulate_grad_batches`` batches) with the step's loss, and its state travels in the
trainer's checkpoints.
"""

from __future__ import annotations

from typing import Any

import lightning

from growcore.torch.integrations._common import CallbackBase


class PlasticityCallback(CallbackBase, lightning.Callback):
    """Args: the engine's ``rules``, and its other options (``density``, ``layers``, ``seed``,
    ...; everything but ``total_steps``, which comes from the trainer)."""

    def on_fit_start(self, trainer: lightning.Trainer, pl_module: lightning.LightningModule) -> None:
        self._holder.start(pl_module, trainer.optimizers[0], int(trainer.estimated_stepping_batches))

    def on_train_batch_end(
        self, trainer: lightning.Trainer, pl_module: lightning.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        engine = self._holder.engine
        if engine is None:
            return
        if (batch_idx + 1) % trainer.accumulate_grad_batches != 0 and not trainer.is_last_batch:
            return  # the optimizer steps at the end of an accumulation
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        engine.step(loss.detach() if loss is not None else None)

    def on_fit_end(self, trainer: lightning.Trainer, pl_module: lightning.LightningModule) -> None:
        self._holder.stop()

    def state_dict(self) -> dict[str, Any]:
        return self._holder.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._holder.load_state_dict(state_dict)
