"""Training-framework callbacks that drive a :class:`growcore.torch.Plasticity` engine:
:class:`growcore.torch.integrations.lightning.PlasticityCallback` for PyTorch Lightning (extra
``lightning``) and :class:`growcore.torch.integrations.huggingface.PlasticityCallback` for the
Hugging Face ``Trainer`` (extra ``hf``). Each builds the engine when training starts (the
framework creates the optimizer), steps it after every optimizer step and keeps its state in the
framework's checkpoints."""
