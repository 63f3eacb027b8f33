"""A Lightning ``Callback`` that writes into the run of ``TensorBoardLogger``.

Needs the optional ``lightning`` package (``pip install -e ".[lightning]"``
from a checkout).
"""

from __future__ import annotations

import lightning.pytorch as pl

from tb_deadneurons.torch.monitor import DeadNeuronMonitor


class DeadNeuronCallback(pl.Callback):
    """Dead-unit snapshots of the ``LightningModule`` during ``fit``.

    Snapshots go to the ``log_dir`` of the trainer's ``TensorBoardLogger``
    (the run Lightning's own scalars are in) at step = ``trainer.global_step``,
    on global rank 0 only. The probe calls the module's ``forward`` on
    ``probe_data``. Arguments as ``DeadNeuronMonitor``'s (no model and no
    log_dir: they come from the trainer).

    The loss is Lightning's own: the callback writes no ``deadneurons/loss``.
    ``self.log("train_loss", loss)`` logs the loss of the state after k
    optimizer steps at step k, the state of the snapshot at step k, so the
    reader's ``train_loss`` (or ``train_loss_step``; any other scalar with
    ``loss_tag``) lines up with the snapshots; a loss of our own, known only
    after the optimizer step, would sit one step off it.

    Example:

    ```python
    import lightning.pytorch as pl, torch
    from tb_deadneurons.torch.lightning import DeadNeuronCallback

    class Net(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(
                torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2)
            )

        def forward(self, x):  # what the probe runs
            return self.net(x)

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = torch.nn.functional.cross_entropy(self(x), y)
            self.log("train_loss", loss)
            return loss

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters())

    x, y = torch.randn(64, 8), torch.randint(0, 2, (64,))
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), 16)
    trainer = pl.Trainer(
        max_epochs=2, logger=pl.loggers.TensorBoardLogger("logs"),
        callbacks=[DeadNeuronCallback(probe_data=x, every_n_steps=2)],
        enable_progress_bar=False, enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(Net(), data)
    ```
    """

    def __init__(self, probe_data, every_n_steps: int | None = None, **monitor_kwargs):
        super().__init__()
        self._kwargs = dict(
            probe_data=probe_data, every_n_steps=every_n_steps, **monitor_kwargs
        )
        self.monitor: DeadNeuronMonitor | None = None

    def on_train_start(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero or self.monitor is not None:
            return
        logger = next(
            (
                lg
                for lg in trainer.loggers
                if isinstance(lg, pl.loggers.TensorBoardLogger)
            ),
            None,
        )
        if logger is None:
            raise ValueError(
                "DeadNeuronCallback needs a TensorBoardLogger in the Trainer"
            )
        self.monitor = DeadNeuronMonitor(
            pl_module, logger.log_dir, start_step=trainer.global_step, **self._kwargs
        )

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.monitor is not None:
            self.monitor.step(None, global_step=trainer.global_step)

    def on_train_end(self, trainer, pl_module) -> None:
        if self.monitor is not None:
            self.monitor.close()
            self.monitor = None
