"""The Lightning callback writes into the run of Lightning's TensorBoardLogger."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from tensorboard.backend.event_processing import event_accumulator

from tb_deadneurons.board import reader
from tb_deadneurons.format import metadata
from tb_deadneurons.torch.lightning import DeadNeuronCallback

DEAD = [2, 9]


class Net(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2)
        )
        with torch.no_grad():
            self.net[0].bias[DEAD] = -1e4
        self.seen = {}

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        # The loss of the state after global_step optimizer steps.
        self.seen[self.trainer.global_step] = float(loss.detach())
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_callback_snapshots_land_in_the_loggers_run_on_its_steps(tmp_path):
    torch.manual_seed(0)
    x, y = torch.randn(64, 8), torch.randint(0, 2, (64,))
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), 16)
    logger = pl.loggers.TensorBoardLogger(str(tmp_path))
    callback = DeadNeuronCallback(probe_data=x, every_n_steps=3)
    trainer = pl.Trainer(
        max_epochs=2,
        logger=logger,
        log_every_n_steps=1,
        callbacks=[callback],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    net = Net()
    trainer.fit(net, data)
    acc = event_accumulator.EventAccumulator(logger.log_dir)
    acc.Reload()
    snapshots = acc.Tensors("net.1")
    assert [e.step for e in snapshots] == [0, 3, 6, 8]
    active = [tensor_row(e, 0) for e in snapshots]
    assert all([u for u, a in enumerate(row) if a == 0] == DEAD for row in active)
    # One loss curve, Lightning's: train_loss at step s is the loss of the
    # state the snapshot at step s shows (no deadneurons/loss one step off).
    assert metadata.LOSS_TAG not in acc.Tags()["scalars"]
    theirs = {e.step: e.value for e in acc.Scalars("train_loss")}
    assert sorted(theirs) == list(range(8))
    assert all(abs(theirs[s] - net.seen[s]) < 1e-6 for s in theirs)
    provider, _ = reader.local_data_provider(logger.log_dir)
    rd = reader.Reader(provider, "", downsample=reader.ALL_SAMPLES)
    loss = rd.loss(".")
    assert loss.tag == "train_loss" and loss.step_unit == "batch"
    snapshot_steps = [e.step for e in snapshots]
    assert all(s in theirs for s in snapshot_steps[:-1])  # 8: after the last batch


def tensor_row(event, row: int) -> list[int]:
    from tensorboard.util import tensor_util

    return tensor_util.make_ndarray(event.tensor_proto)[row].tolist()
