"""A Hugging Face ``TrainerCallback`` that writes into the Trainer's TensorBoard run.

Needs the optional ``transformers`` package (and ``accelerate``, which the
``Trainer`` needs): ``pip install -e ".[transformers]"``. Works with
transformers 4.x and 5.x: the run directory is read from the Trainer's
``TensorBoardCallback`` (its writer's ``log_dir``, else its ``logging_dir``),
else from ``TrainingArguments.logging_dir`` where it still exists (4.x).
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

from transformers import TrainerCallback

from tb_deadneurons.format import checks
from tb_deadneurons.torch.monitor import DeadNeuronMonitor

__all__ = ["DeadNeuronCallback", "OFF_DIR"]

# Where the snapshots go when the Trainer does not report to TensorBoard:
# under ``args.output_dir``.
OFF_DIR = "deadneurons"
_logger = logging.getLogger(__name__)


class DeadNeuronCallback(TrainerCallback):
    """Dead-unit snapshots of the model a ``transformers.Trainer`` trains.

    Snapshots go into the run the Trainer's TensorBoard logging writes
    (``report_to=["tensorboard"]``), at step = ``state.global_step`` (the
    step of ``train/loss``), on the main process only
    (``state.is_world_process_zero``): at the start of training (step 0, or
    the resumed step), every ``every_n_steps`` optimizer steps and at the
    end. The loss the dashboard and the report use is the Trainer's own
    ``train/loss``; the callback writes no loss scalar of its own.

    When the Trainer does not report to TensorBoard, the callback warns once
    and writes to ``TENSORBOARD_LOGGING_DIR`` if set, else
    ``args.logging_dir`` (transformers 4.x), else
    ``<output_dir>/deadneurons``, with the loss the Trainer last logged as
    ``deadneurons/loss``.

    Args:
      probe_data: the probe batch the model is called on: a dict of tensors
        (``{"input_ids": ..., "attention_mask": ...}``, passed as keyword
        arguments), a tensor, or ``(x, y)``. A few dozen sequences suffice.
      every_n_steps: snapshot period in optimizer steps; default: as
        ``DeadNeuronMonitor``'s (100, fitted to the measured cost).
      modules: as ``DeadNeuronMonitor``'s (default: every activation module,
        e.g. GPT-2's ``transformer.h.N.mlp.act``).
      gradients: as ``DeadNeuronMonitor``'s (needs ``loss_fn`` and
        ``probe_data=(x, y)``).
      log_dir: write here instead of the Trainer's TensorBoard run.
      **monitor_kwargs: the other ``DeadNeuronMonitor`` arguments
        (``loss_fn``, ``epsilon``, ``scalars``, ``verbose``,
        ``alert_above``, ...).

    Raises:
      ValueError: at construction for a bad ``every_n_steps``; at the start
        of training for what ``DeadNeuronMonitor`` refuses.

    Example:

    ```python
    import torch, transformers
    from tb_deadneurons.torch.transformers import DeadNeuronCallback

    config = transformers.GPT2Config(
        vocab_size=64, n_positions=16, n_embd=32, n_layer=2, n_head=2
    )
    model = transformers.GPT2LMHeadModel(config)
    ids = torch.randint(0, 64, (64, 16))
    data = [{"input_ids": row, "labels": row} for row in ids]
    args = transformers.TrainingArguments(
        "out", max_steps=4, per_device_train_batch_size=8, logging_steps=1,
        report_to=["tensorboard"], use_cpu=True, save_strategy="no",
    )
    callback = DeadNeuronCallback({"input_ids": ids[:16]}, every_n_steps=2)
    transformers.Trainer(
        model=model, args=args, train_dataset=data, callbacks=[callback]
    ).train()
    ```
    """

    def __init__(
        self,
        probe_data,
        every_n_steps: int | None = None,
        modules=None,
        gradients: bool = False,
        log_dir=None,
        **monitor_kwargs,
    ):
        checks.optional_positive_int("every_n_steps", every_n_steps)
        self._kwargs = dict(
            probe_data=probe_data,
            every_n_steps=every_n_steps,
            modules=modules,
            gradients=gradients,
            **monitor_kwargs,
        )
        self._log_dir = log_dir
        self._own_loss = False  # True when no TensorBoard run holds train/loss
        self._last_loss = None
        self.monitor: DeadNeuronMonitor | None = None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if not state.is_world_process_zero or self.monitor is not None:
            return
        log_dir = self._log_dir or _trainer_run(sys._getframe(1))
        if log_dir is None:
            log_dir = _fallback_dir(args)
            self._own_loss = True
            warnings.warn(
                "DeadNeuronCallback: the Trainer does not report to TensorBoard "
                '(report_to has no "tensorboard"); snapshots and the last logged '
                f"loss (deadneurons/loss) go to {log_dir}. Pass "
                'report_to=["tensorboard"] to have them in the run next to '
                "train/loss.",
                stacklevel=2,
            )
        self.monitor = DeadNeuronMonitor(
            model, log_dir, start_step=int(state.global_step), **self._kwargs
        )
        _logger.info("DeadNeuronCallback writes to %s", log_dir)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if isinstance(logs, dict) and isinstance(logs.get("loss"), int | float):
            self._last_loss = float(logs["loss"])

    def on_step_end(self, args, state, control, **kwargs):
        if self.monitor is not None:
            loss = self._last_loss if self._own_loss else None
            self.monitor.step(loss, global_step=int(state.global_step))

    def on_train_end(self, args, state, control, **kwargs):
        if self.monitor is not None:
            if self._own_loss and self._last_loss is not None:
                self.monitor.step(self._last_loss, global_step=int(state.global_step))
            self.monitor.close()
            self.monitor = None


def _trainer_run(frame) -> str | None:
    """The run directory of the Trainer's ``TensorBoardCallback``, or None.

    A callback is given no handle on its Trainer; ``CallbackHandler.call_event``
    (4.x and 5.x alike) is the caller of every hook, so its ``self`` holds the
    callback list.
    """
    handler = frame.f_locals.get("self") if frame is not None else None
    for callback in getattr(handler, "callbacks", None) or ():
        if type(callback).__name__ != "TensorBoardCallback":
            continue
        writer = getattr(callback, "tb_writer", None)
        for path in (
            getattr(writer, "log_dir", None),  # torch's SummaryWriter, tensorboardX
            getattr(writer, "logdir", None),
            getattr(callback, "logging_dir", None),  # 5.x, set at on_train_begin
        ):
            if isinstance(path, str | os.PathLike) and os.fspath(path):
                return os.fspath(path)
    return None


def _fallback_dir(args) -> str:
    """Where to write without a TensorBoard run (class docstring)."""
    env = os.getenv("TENSORBOARD_LOGGING_DIR")
    if env:
        return os.path.expanduser(env)
    logging_dir = getattr(args, "logging_dir", None)  # gone in transformers 5
    if logging_dir:
        return os.fspath(logging_dir)
    return os.path.join(os.fspath(getattr(args, "output_dir", None) or "."), OFF_DIR)
