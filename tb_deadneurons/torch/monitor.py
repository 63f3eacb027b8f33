"""``DeadNeuronMonitor``: dead-unit snapshots from a plain PyTorch loop."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import torch

from tb_deadneurons.analysis import classify, period, progress
from tb_deadneurons.analysis import utility as utility_rule
from tb_deadneurons.format import checks, metadata, summary
from tb_deadneurons.format import stats as format_stats
from tb_deadneurons.format.events import BackgroundWriter
from tb_deadneurons.torch import modules as modules_lib
from tb_deadneurons.torch import probe as probe_lib
from tb_deadneurons.torch import revive as revive_lib
from tb_deadneurons.torch import transfer
from tb_deadneurons.torch import utility as utility_lib

# Where every_n_steps is not given: the start, fitted to the measured cost
# at the first periodic snapshot (analysis.period; docs/scale.md).
DEFAULT_EVERY_N_STEPS = period.DEFAULT_EVERY


class DeadNeuronMonitor:
    """Logs per-unit activation statistics of a PyTorch model while it trains.

    Snapshots are taken at construction (step ``start_step``, before
    training: units can be born dead), after every ``every_n_steps`` calls of
    ``step`` and at ``close``, from one forward pass of a fixed probe batch
    in the mode training sees (dropout off, BatchNorm on the probe batch's
    statistics) that changes no model state. Statistics are reduced on the
    model's device and moved to the host once per snapshot (on CUDA without
    waiting for the queued steps; written at a later ``step``); steps in
    between cost a counter increment. Under ``torch.distributed`` only rank
    0 logs.

    Args:
      model: the ``nn.Module`` (DDP / ``torch.compile`` wrappers are looked
        through).
      log_dir: the run directory, the one ``SummaryWriter(log_dir)`` writes
        (events land next to its files: same run, same step axis), or a
        ``SummaryWriter`` (its ``get_logdir()`` is used).
      probe_data: the probe batch: a tensor, a dict of tensors (passed as
        keyword arguments), or ``(x, y)``. A few hundred samples suffice.
      every_n_steps: snapshot period in steps. Default (None): 100, and
        at the 100th step the smallest of 100, 200, 500 and 1000 at which
        snapshots take at most 2 % of the measured training time
        (``tb_deadneurons.analysis.period``; the choice is logged once,
        logger ``tb_deadneurons``, INFO, and read from ``every_n_steps``).
      modules: qualified names (``"transformer.h.0.mlp.act"``), unique name
        suffixes (``"0.mlp.act"``) or module objects whose output to watch;
        a name ending in ``":input"`` (``"model.layers.0.mlp.down_proj:input"``)
        watches what the module reads. Every call is a series (``name@2``
        ...). Default: the units derived from the probe pass
        (``tb_deadneurons.torch.discover``): every non-linearity's output
        (activation modules, ``F.relu``/``gelu``/``silu``/``tanh``/``sigmoid``
        as functions, RNN outputs) that a weight layer reads, after the
        element-wise ops on the way (a gated FFN's product), on the axis
        that layer reads; never the model's output.
      gradients: also log mean |dL/da| per unit (needs ``(x, y)`` and
        ``loss_fn``).
      loss_fn: ``loss_fn(model_output, y)`` -> scalar, for ``gradients``.
      epsilon: a position counts as active where |a| > epsilon.
      revive_every: every ``revive_every`` steps, re-initialise the units the
        latest snapshot shows dead (or tau-dormant with ``revive_tau`` > 0)
        with ``tb_deadneurons.torch.revive`` and log the revival.
      revive_tau: ReDo threshold for revival; 0 revives dead units only.
      revive_select: ``"dead"`` (the units above) or ``"utility"``:
        continual backprop's choice (``tb_deadneurons.analysis.utility``):
        at each revival, ``revive_rate`` x mature units x steps since the
        last one, the mature units of lowest utility.
      revive_rate: replacement rate per unit and step for ``"utility"``.
      revive_maturity: for ``"utility"``, steps a unit is protected after
        the start and after its replacement.
      optimizer: the optimizer whose state ``revive`` resets.
      start_step: the step of the first snapshot (when resuming).
      unit_axis: series tag -> axis of its units, for a tensor whose axis
        the probe pass cannot tell (it warns naming the candidates).
      scalars: also log per layer ``deadneurons/<tag>/dead_fraction`` and
        ``.../dormant_fraction`` scalars (``analysis.progress``).
      verbose: n >= 1 logs one line per layer at every n-th snapshot
        (logger ``tb_deadneurons``, INFO); 0 is quiet.
      alert_above: warn once per layer when its dead share exceeds this.

    Raises:
      ValueError: a bad argument, unknown modules, or a probe batch that
        does not fit the model.

    Example:

    ```python
    import torch
    from tb_deadneurons.torch import DeadNeuronMonitor

    model = torch.nn.Sequential(
        torch.nn.Linear(20, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3)
    )
    opt = torch.optim.Adam(model.parameters())
    x, y = torch.randn(512, 20), torch.randint(0, 3, (512,))
    with DeadNeuronMonitor(model, "logs/torch", probe_data=x[:256]) as monitor:
        for i in range(0, 512, 32):
            loss = torch.nn.functional.cross_entropy(model(x[i:i + 32]), y[i:i + 32])
            opt.zero_grad()
            loss.backward()
            opt.step()
            monitor.step(loss)
    ```
    """

    # The snapshot period in steps: as given or set, else as fitted.
    every_n_steps = period.Attribute()

    def __init__(
        self,
        model: torch.nn.Module,
        log_dir,
        probe_data,
        every_n_steps: int | None = None,
        modules=None,
        gradients: bool = False,
        loss_fn: Callable | None = None,
        epsilon: float = 0.0,
        revive_every: int | None = None,
        revive_tau: float = 0.0,
        revive_select: str = "dead",
        revive_rate: float = utility_rule.DEFAULT_RATE,
        revive_maturity: int = utility_rule.DEFAULT_MATURITY,
        optimizer: torch.optim.Optimizer | None = None,
        start_step: int = 0,
        unit_axis: dict | None = None,
        scalars: bool = False,
        verbose: int = 0,
        alert_above: float | None = None,
    ):
        if not isinstance(model, torch.nn.Module):
            raise ValueError(f"model must be a torch.nn.Module; got {model!r}")
        log_dir = checks.log_dir(
            log_dir.get_logdir() if hasattr(log_dir, "get_logdir") else log_dir
        )
        self._period = period.Period("every_n_steps", every_n_steps)
        self.epsilon = checks.epsilon(epsilon)
        self.revive_every = checks.optional_positive_int("revive_every", revive_every)
        self.revive_tau = checks.non_negative_float("revive_tau", revive_tau)
        self.revive_select, rate, maturity = utility_rule.check_selection(
            revive_select, revive_rate, revive_maturity
        )
        self._utility = None
        start_step = checks.non_negative_int("start_step", start_step)
        self.gradients = bool(gradients)
        self.progress = progress.Progress(
            type(self).__name__, scalars, verbose, alert_above
        )
        self.optimizer = optimizer
        self.model = modules_lib.unwrap(model)
        x, y = _split(probe_data, _device(self.model))
        if self.gradients and (y is None or loss_fn is None):
            raise ValueError(
                "gradients=True needs probe_data=(x, y) and loss_fn(output, y)"
            )
        self._step = self._last_snapshot_step = start_step
        self._last_loss = None
        self._last_snapshot: dict[str, np.ndarray] = {}
        self._pending = None  # a snapshot not read yet (_snapshot, _finish)
        self._defer = _device(self.model).type == "cuda"
        self.revivals: list[tuple[int, str, list[int]]] = []
        self._unrevivable: set[str] = set()
        self._writer = None
        self.active = not _is_other_rank()
        if not self.active:
            return  # other DDP ranks: no probe, no file, nothing per step
        self._probe = probe_lib.Probe(
            self.model,
            x,
            y,
            modules_lib.select(self.model, modules),
            gradients=self.gradients,
            loss_fn=loss_fn,
            epsilon=self.epsilon,
            unit_axis=unit_axis,
        )
        self._utility = self._utility_selector(rate, maturity, start_step)
        self._writer = BackgroundWriter(log_dir)  # writes off the training thread
        self.log_dir = log_dir
        self._snapshot(None)

    @property
    def watched(self) -> dict[str, torch.nn.Module]:
        """Tag -> the module whose output (or input) each series watches.

        Empty on other ranks.
        """
        return {s.tag: s.module for s in self._probe.layout} if self.active else {}

    @property
    def last_snapshot(self) -> dict[str, np.ndarray]:
        """Tag -> the uint8 codes ``[num_stats, units]`` of the newest snapshot.

        On CUDA reading it waits for a snapshot still on its way to the host.
        """
        if self._writer is not None:
            self._finish()
        return self._last_snapshot

    def step(self, loss=None, *, global_step: int | None = None) -> None:
        """Counts one training step (call it after ``optimizer.step()``).

        ``loss``: the step's loss, a tensor or a number; read only when a
        snapshot is due, with its statistics (on CUDA without waiting for
        the queued steps: written at a later ``step`` once copied). ``global_step``: set
        the step counter instead of adding one (Lightning, resumed runs).
        """
        if not self.active:
            return
        if self._writer is None:
            raise ValueError("DeadNeuronMonitor.step() called after close()")
        if self._pending is not None and self._pending[-1].ready():
            self._finish()
        previous = self._step
        self._step = previous + 1 if global_step is None else int(global_step)
        self._last_loss = loss.detach() if isinstance(loss, torch.Tensor) else loss
        self._period.tick(self._step)
        if self._period.due(previous, self._step):
            with self._period.timed(type(self).__name__):
                self._snapshot(self._last_loss)
        r = self.revive_every
        if r and self._step // r != previous // r:
            self._revive()

    def close(self) -> None:
        """Takes the last snapshot (unless this step has one) and closes."""
        if self._writer is None:
            return
        if self._last_snapshot_step != self._step:
            self._snapshot(self._last_loss)
        self._finish()
        self._writer.close()
        self._writer = None

    def __enter__(self) -> DeadNeuronMonitor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _snapshot(self, loss) -> None:
        """Runs the probe pass and starts its rows' way to the host.

        On CUDA (``self._defer``) they are read at a later ``step`` once the
        copy is done (``transfer.HostCopy``), so a snapshot never waits for
        the steps queued before it; elsewhere at once. Read later, they are
        the masked statistics from the start: by then no second pass could
        see the weights they were taken at.
        """
        self._finish()  # the one before, first: snapshots stay in order
        masked = self._defer
        rows = self._probe.rows(masked=masked)
        flat = rows.reshape(-1)
        if isinstance(loss, torch.Tensor):
            # The loss rides along: one device-to-host transfer per snapshot.
            flat = torch.cat(
                [flat, loss.detach().reshape(-1)[:1].float().to(flat.device)]
            )
        self._pending = (self._step, rows.shape, loss, masked, transfer.HostCopy(flat))
        self._last_snapshot_step = self._step
        if not self._defer:
            self._finish()

    def _finish(self) -> None:
        """Encodes and queues the pending snapshot, if any."""
        if self._pending is None:
            return
        step, shape, loss, masked, copy = self._pending
        self._pending = None
        host = copy.read()
        if isinstance(loss, torch.Tensor):
            loss = host[-1]
        host = host[: shape.numel()].reshape(shape)
        if not masked and host[metadata.NONFINITE_ROW].any():
            # NaN/Inf somewhere (rare): the masked statistics, a second pass
            # (read at once: the weights are still those of the first).
            host = self._probe.rows(masked=True).cpu().numpy()
        self._write(step, format_stats.encode_rows(host, self.gradients), loss)

    def _write(self, step: int, codes: np.ndarray, loss) -> None:
        self._last_snapshot, start = {}, 0
        for site in self._probe.layout:
            self._last_snapshot[site.tag] = codes[:, start : start + site.units]
            start += site.units
            self._writer.snapshot(
                site.tag,
                self._last_snapshot[site.tag],
                step,
                with_gradients=self.gradients,
                epsilon=self.epsilon,
                layer_class=site.layer_class,
                activation=site.activation,
                # -1 for the last axis, as the other writers record it.
                unit_axis=-1 if site.axis == len(site.shape) - 1 else site.axis,
            )
        activations = {site.tag: site.activation for site in self._probe.layout}
        self.progress.snapshot(
            self._writer,
            step,
            self._last_snapshot,
            self.gradients,
            activations,
            loss,
        )
        if loss is not None and np.isfinite(float(loss)):
            self._writer.scalar(metadata.LOSS_TAG, float(loss), step)
        # Flushed at once so an interrupted run keeps every snapshot so far.
        self._writer.flush()

    def _revive(self) -> None:
        if self._last_snapshot_step != self._step:
            self._snapshot(None)
        for site in self._probe.layout:
            tag = site.tag
            if tag in self._unrevivable:
                continue
            try:
                units = self._units_to_revive(site)
                if not units:
                    continue
                revived = revive_lib.revive_series(
                    self.model, site, units, self.optimizer
                )
            except ValueError as e:
                self._unrevivable.add(tag)
                warnings.warn(
                    f"DeadNeuronMonitor: not reviving {tag!r}: {e}", stacklevel=3
                )
                continue
            self.log_revival(tag, revived)

    def _utility_selector(self, rate: float, maturity: int, step: int):
        """The continual-backprop selection for ``revive_select="utility"``."""
        if self.revive_select != "utility":
            return None
        return utility_lib.UtilitySelector(
            self.model,
            rate=rate,
            maturity=maturity,
            step=step,
            with_gradients=self.gradients,
        )

    def _units_to_revive(self, site) -> list[int]:
        codes = self.last_snapshot[site.tag]
        if self._utility is None:
            return classify.revivable_units(codes, self.gradients, self.revive_tau)
        if site.where != "output":
            raise ValueError("utility selection needs a module's output series")
        return self._utility.choose(site.tag, site.module, codes, self._step)

    def log_revival(self, tag: str, units) -> None:
        """Records that ``units`` of the series ``tag`` were re-initialised now."""
        if not self.active:
            return
        self.revivals.append((self._step, tag, list(units)))
        self._writer.add_summary(summary.revivals_pb(tag, list(units)), self._step)
        self._writer.flush()


def _is_other_rank() -> bool:
    dist = torch.distributed
    return dist.is_available() and dist.is_initialized() and dist.get_rank() != 0


def _device(model: torch.nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def _to(x, device):
    if isinstance(x, torch.Tensor):
        return x.to(device)
    if isinstance(x, dict):
        return {k: _to(v, device) for k, v in x.items()}
    raise ValueError(
        f"probe_data must be a tensor, a dict of tensors or (x, y); got {type(x)!r}"
    )


def _split(probe_data, device):
    """``(x, y)`` on ``device``; ``y`` None without labels."""
    if isinstance(probe_data, (tuple, list)) and len(probe_data) == 2:
        x, y = probe_data
    else:
        x, y = probe_data, None
    x = _to(x, device)
    first = x if isinstance(x, torch.Tensor) else next(iter(x.values()), None)
    if first is None or first.dim() == 0 or first.shape[0] == 0:
        raise ValueError(f"probe_data has no samples: got {probe_data!r:.200}")
    return x, None if y is None else _to(y, device)
