"""Real PyTorch-tutorial and Lightning runs: their own loss scalars (``Loss/train``,
``train_loss``) are found and the hints use them.

Planted truth: at step ``KILL`` a bad update kills ``KILLED`` (bias -1e4)
and blows up the output layer (weights x 50), so the dead count bursts and
the loss spikes in the same snapshot interval: ``learning_rate`` when the
hints see the loss, ``burst`` ("no loss logged") when they do not.
"""

from __future__ import annotations

import os

import lightning.pytorch as pl
import torch

from tb_deadneurons import api
from tb_deadneurons.torch import DeadNeuronMonitor
from tb_deadneurons.torch.lightning import DeadNeuronCallback

KILL, KILLED, STEPS, EVERY = 40, [2, 5, 7, 11], 80, 10


def _net() -> torch.nn.Sequential:
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3)
    )
    with torch.no_grad():
        net[0].bias[:] = 1.0  # no unit dies by chance
    return net


def _bad_update(net: torch.nn.Sequential) -> None:
    with torch.no_grad():
        net[0].bias[KILLED] = -1e4
        net[2].weight *= 50.0


def _data():
    g = torch.Generator().manual_seed(1)
    return torch.randn(512, 8, generator=g), torch.randint(0, 3, (512,), generator=g)


def _hints(logdir: str, run: str, tag: str) -> dict:
    logs = api.load(logdir)
    return {h["pattern"]: h for h in logs.layers[run][tag].hints}


def test_pytorch_tutorial_loss_train_is_found_and_used(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    net, (x, y) = _net(), _data()
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    writer = SummaryWriter(str(tmp_path / "run"))
    monitor = DeadNeuronMonitor(net, writer, x[:128], every_n_steps=EVERY)
    for step in range(1, STEPS + 1):
        i = (step * 32) % 512
        loss = torch.nn.functional.cross_entropy(net(x[i : i + 32]), y[i : i + 32])
        opt.zero_grad()
        loss.backward()
        opt.step()
        writer.add_scalar("Loss/train", loss.item(), step)  # the tutorial's tag
        monitor.step()  # no loss of ours: Loss/train is the only one
        if step == KILL:
            _bad_update(net)
    monitor.close()
    writer.close()
    hints = _hints(str(tmp_path), "run", "1")
    assert "learning_rate" in hints, hints
    assert hints["learning_rate"]["units"] == KILLED


class _Net(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = _net()

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


class _BadUpdate(pl.Callback):
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == KILL:
            _bad_update(pl_module.net)


def test_lightning_train_loss_is_found_and_used(tmp_path):
    x, y = _data()
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), 32)
    logger = pl.loggers.TensorBoardLogger(str(tmp_path), name="lit", version=0)
    trainer = pl.Trainer(
        max_steps=STEPS,
        logger=logger,
        log_every_n_steps=1,
        callbacks=[DeadNeuronCallback(x[:128], every_n_steps=EVERY), _BadUpdate()],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(_Net(), data)
    hints = _hints(str(tmp_path), os.path.join("lit", "version_0"), "net.1")
    assert "learning_rate" in hints, hints
    assert hints["learning_rate"]["units"] == KILLED
