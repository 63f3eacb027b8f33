"""When a writer snapshots: the period a user chose, or one fitted to the cost.

Every writer (Keras callback, PyTorch monitor and its Lightning / HF
callbacks, JAX monitor) snapshots every ``every`` steps. A period the user
passes is kept as given. Without one (``None``) the writer starts at
``DEFAULT_EVERY`` and, at the first periodic snapshot, compares what that
snapshot took with the median training step measured since the first step
(wall time between the writer's per-step calls, so data loading counts and a
first step's compilation does not). If snapshots every ``DEFAULT_EVERY``
steps would cost more than ``BUDGET`` of training, the period becomes the
smallest of 200, 500 and 1000 that fits (at most ``MAX_AUTO_EVERY``, so a
run keeps a timeline), and the writer logs the choice once (logger
``tb_deadneurons``, INFO). A cheap snapshot keeps ``DEFAULT_EVERY``.

Interface for writers: ``Period(name, every)``; ``fix(every)`` for a period
the user sets later (through the writer's class attribute
``every_n_steps = period.Attribute()``); ``tick(step)`` at each step call
(a clock read while undecided, nothing after);
``due(previous, step)``; ``with timed(writer): <periodic snapshot>`` (or
``snapshot_took(seconds, writer)``), after which ``every`` is the period,
logged when it changed.
"""

from __future__ import annotations

import contextlib
import logging
import statistics
import time

from tb_deadneurons.format import checks

# 256 probe samples every 100 steps cost 1-2 % of the seed MLP's training
# (docs/scale.md); a small CNN's probe is ~8 steps of work, 8 % at 100.
DEFAULT_EVERY = 100
# The share of training time snapshots may take when the period is chosen.
BUDGET = 0.02
MAX_AUTO_EVERY = 1000
_CHOICES = (200, 500, MAX_AUTO_EVERY)
# Steps timed before the period is chosen (fewer: keep the default).
_MIN_STEPS = 10

_log = logging.getLogger("tb_deadneurons")


def fitted(snapshot_s: float, step_s: float) -> int:
    """The period whose snapshots cost at most ``BUDGET`` of training."""
    if step_s <= 0 or snapshot_s <= BUDGET * step_s * DEFAULT_EVERY:
        return DEFAULT_EVERY
    need = snapshot_s / (BUDGET * step_s)
    return next((n for n in _CHOICES if n >= need), MAX_AUTO_EVERY)


class Period:
    """A writer's snapshot period (``every``), fixed or fitted once."""

    def __init__(self, name: str, every: int | None):
        self._name = name
        self.auto, self.every = True, DEFAULT_EVERY
        self._clock = None  # (time, step) of the last tick, while undecided
        self._per_step: list[float] = []
        if every is not None:
            self.fix(every)

    def fix(self, every: int) -> None:
        """A period the user gives (at construction or later): kept as is."""
        self.every = checks.positive_int(self._name, every)
        self.auto, self._per_step, self._clock = False, [], None

    def tick(self, step: int) -> None:
        """Times the step that ends at this call (only while undecided)."""
        if not self.auto:
            return
        if self._clock is not None and step <= self._clock[1]:
            return  # called again at the same step (a writer's second hook)
        now = time.perf_counter()
        if self._clock is not None:
            self._per_step.append((now - self._clock[0]) / (step - self._clock[1]))
        self._clock = (now, step)

    def due(self, previous: int, step: int) -> bool:
        return step // self.every != previous // self.every

    def snapshot_took(self, seconds: float, writer: str) -> int:
        """Fits the period to this snapshot's cost, once; returns ``every``."""
        if not self.auto or len(self._per_step) < _MIN_STEPS:
            return self.every
        self.auto = False  # decided: no more clock reads
        step_s = statistics.median(self._per_step)
        self._per_step, self._clock = [], None
        chosen = fitted(seconds, step_s)
        if chosen != self.every:
            _log.info(
                "%s: snapshots every %d steps (a snapshot took %.1f ms against "
                "a %.2f ms step: every %d would take %.0f %% of training, "
                "every %d ~%.1f %%; budget %.0f %%). Pass the period to choose it.",
                writer, chosen, seconds * 1e3, step_s * 1e3, self.every,
                100 * seconds / (step_s * self.every),
                chosen, 100 * seconds / (step_s * chosen), 100 * BUDGET,
            )  # fmt: skip
            self.every = chosen
        return self.every

    @contextlib.contextmanager
    def timed(self, writer: str):
        """Times the periodic snapshot inside for ``snapshot_took``."""
        began = time.perf_counter()
        yield
        self.snapshot_took(time.perf_counter() - began, writer)


class Attribute:
    """A writer's ``every_n_steps`` / ``every_n_batches``: reads its
    ``_period``'s period; assigning one fixes it (``Period.fix``)."""

    def __get__(self, writer, owner=None):
        return self if writer is None else writer._period.every

    def __set__(self, writer, every: int) -> None:
        writer._period.fix(every)
