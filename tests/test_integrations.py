"""The Lightning and Hugging Face Trainer callbacks drive the engine on tiny models."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from growcore.torch import Apoptosis, RigL, check_event  # noqa: E402


def _data(n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 10, generator=g), torch.randint(0, 3, (n,), generator=g)


def _check(engine, steps: int) -> None:
    assert engine is not None and engine.step_count == steps
    kinds = {e["kind"] for e in engine.events}
    assert {"rewire", "apoptosis"} <= kinds
    for e in engine.events:
        check_event(e)
    for site in engine.sparse_sites:
        assert torch.count_nonzero(site.matrix(site.weight.detach())[~site.mask]) == 0


def test_lightning_callback_steps_the_engine_and_checkpoints_it(tmp_path: Path) -> None:
    lightning = pytest.importorskip("lightning")
    from growcore.torch.integrations.lightning import PlasticityCallback

    class Module(lightning.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 3))

        def training_step(self, batch, batch_idx):
            x, y = batch
            return nn.functional.cross_entropy(self.net(x), y)

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-2)

    def fit(callback, ckpt: str | None = None):
        torch.manual_seed(0)
        saver = lightning.pytorch.callbacks.ModelCheckpoint(
            dirpath=tmp_path, every_n_train_steps=4, save_top_k=-1, filename="{step}"
        )
        trainer = lightning.Trainer(
            max_steps=8, accelerator="cpu", logger=False, enable_progress_bar=False,
            enable_model_summary=False, default_root_dir=tmp_path, callbacks=[callback, saver],
            accumulate_grad_batches=2,
        )
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*_data()), batch_size=8)
        module = Module()
        trainer.fit(module, loader, ckpt_path=ckpt)
        return module

    def rules():
        return [RigL(interval=2), Apoptosis(interval=2, maturity_age=0, fraction=0.25)]

    callback = PlasticityCallback(rules(), density=0.5)
    module = fit(callback)
    _check(callback.engine, 8)  # optimizer steps, not batches (accumulate_grad_batches=2)
    assert not any(m._forward_hooks for m in module.modules())  # removed at the end of fit
    resumed = PlasticityCallback(rules(), density=0.5)
    again = fit(resumed, str(tmp_path / "step=4.ckpt"))
    assert resumed.engine.step_count == 8 and resumed.engine.events == callback.engine.events
    assert resumed.engine.graph == callback.engine.graph
    for (name, p), q in zip(module.named_parameters(), again.parameters()):
        assert torch.equal(p, q), name


def test_huggingface_trainer_callback_steps_the_engine(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    from growcore.torch.integrations.huggingface import PlasticityCallback

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 3))

        def forward(self, x, labels=None):
            logits = self.net(x)
            return {"loss": nn.functional.cross_entropy(logits, labels), "logits": logits}

    x, y = _data()
    data = [{"x": x[i], "labels": y[i]} for i in range(len(x))]
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path), max_steps=6, per_device_train_batch_size=8, learning_rate=1e-2,
        report_to=[], use_cpu=True, save_strategy="no", logging_strategy="no", disable_tqdm=True,
        gradient_accumulation_steps=2, seed=0,
    )
    callback = PlasticityCallback([RigL(interval=2), Apoptosis(interval=2, maturity_age=0, fraction=0.25)], density=0.5)
    torch.manual_seed(0)
    model = Model()
    transformers.Trainer(model=model, args=args, train_dataset=data, callbacks=[callback]).train()
    _check(callback.engine, 6)
    assert not any(m._forward_hooks for m in model.modules())
