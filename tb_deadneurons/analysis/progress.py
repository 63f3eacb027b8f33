"""What a writer says while it trains: layer scalars, lines and alerts (numpy).

Every writer (Keras callback, PyTorch monitor, Lightning and HF callbacks,
JAX monitor) hands each snapshot to one ``Progress`` and gets, as it asks:

- ``scalars=True``: per layer, ``deadneurons/<tag>/dead_fraction`` and
  ``deadneurons/<tag>/dormant_fraction`` (default thresholds:
  ``classify.Thresholds()``) written next to the snapshot;
- ``verbose=n`` (n >= 1): one line per layer -- dead share, its change
  since the layer's last line, mean |a| -- at every n-th snapshot through
  ``logging`` (logger ``tb_deadneurons``, level INFO), or whenever the
  writer asks (``lines()``, e.g. Keras at each epoch end);
- ``alert_above=x``: a ``UserWarning`` once per layer when its dead share
  first exceeds x, with the likely cause's pattern and remedy
  (``classify.hints`` over the layer's snapshots so far) when one matches.

Interface for writers (small on purpose): ``Progress(writer, scalars,
verbose, alert_above, log_lines=True)`` (``log_lines=False``: the writer
prints ``lines()`` itself); ``snapshot(events, step, codes, with_gradients,
activations, loss)`` after writing a snapshot; ``lines()`` for the current
lines. ``fractions(codes, with_gradients)`` is the one computation of a
snapshot's shares.
"""

from __future__ import annotations

import logging
import math
import warnings
from typing import NamedTuple

import numpy as np

from tb_deadneurons.analysis import classify
from tb_deadneurons.format import checks, codec, metadata
from tb_deadneurons.format import scalars as scalars_lib

logger = logging.getLogger("tb_deadneurons")
# Snapshots of a layer kept for alert hints: the first and the latest.
HISTORY = 64


class Shares(NamedTuple):
    """One snapshot of one layer, at the default thresholds."""

    dead_fraction: float
    dormant_fraction: float
    mean_abs: float  # the layer's mean |a| (``classify.layer_mean_abs``)


class _Loss(NamedTuple):  # what ``classify.hints`` reads of a loss
    step_unit: str
    steps: list
    values: list


def _decoded(codes: np.ndarray, with_gradients: bool) -> dict[str, np.ndarray]:
    layout = metadata.snapshot_plugin_data(with_gradients=with_gradients)
    return codec.decode_snapshot(np.asarray(codes, np.uint8), layout)


def fractions(codes: np.ndarray, with_gradients: bool) -> Shares:
    """The dead and tau-dormant shares and mean |a| of one encoded snapshot
    (``uint8 [num_stats, units]`` of the current format), over units with data.
    """
    decoded = _decoded(codes, with_gradients)
    stats = {name: values[None, :] for name, values in decoded.items()}
    result = classify.classify(stats, [0])
    with_data = max(int(result.has_data.sum()), 1)
    return Shares(
        float(result.dead.sum()) / with_data,
        float(result.dormant.sum()) / with_data,
        float(classify.layer_mean_abs(stats)[0]),
    )


def _alert_above(value) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"alert_above must be a fraction in [0, 1); got {value!r}")
    if not (math.isfinite(value) and 0 <= value < 1):
        raise ValueError(f"alert_above must be a fraction in [0, 1); got {value!r}")
    return float(value)


class Progress:
    """Scalars, lines and alerts of one writer (module docstring).

    Raises:
      ValueError: ``verbose`` not an integer >= 0, ``alert_above`` not a
        fraction in [0, 1).
    """

    def __init__(
        self, writer: str, scalars=False, verbose=0, alert_above=None, log_lines=True
    ):
        self.writer, self.log_lines = writer, bool(log_lines)
        self.scalars = bool(scalars)
        verbose = int(verbose) if isinstance(verbose, bool) else verbose
        self.verbose = checks.non_negative_int("verbose", verbose)
        self.alert_above = _alert_above(alert_above)
        self.alerted: set[str] = set()
        self._count = 0
        self._current: dict[str, Shares] = {}
        self._step = None
        self._said: dict[str, float] = {}  # dead share at each layer's last line
        self._history: dict[str, list] = {}
        self._loss: tuple[list, list] = ([], [])

    def snapshot(self, events, step, codes, with_gradients, activations, loss=None):
        """Takes one snapshot of every layer (``codes``: tag -> uint8 codes).

        ``events``: what ``add_summary(summary, step)`` writes to (the
        writer's ``EventWriter``); ``activations``: tag -> activation name,
        for the alert's hint; ``loss``: the step's loss or None.
        """
        if not (self.scalars or self.verbose or self.alert_above is not None):
            return
        self._step, self._count = int(step), self._count + 1
        if loss is not None and math.isfinite(float(loss)):
            self._loss[0].append(int(step))
            self._loss[1].append(float(loss))
        for tag, layer_codes in codes.items():
            shares = fractions(layer_codes, with_gradients)
            self._current[tag] = shares
            if self.scalars:
                values = shares._asdict()
                events.add_summary(scalars_lib.layer_scalars_pb(tag, values), step)
            if self.alert_above is not None and tag not in self.alerted:
                self._remember(tag, layer_codes)
                if shares.dead_fraction > self.alert_above:
                    self._alert(tag, with_gradients, activations.get(tag, ""))
        every = self.verbose
        if every and self.log_lines and (self._count - 1) % every == 0:
            for line in self.lines():
                logger.info(line)

    def lines(self) -> list[str]:
        """One line per layer of the latest snapshot; each resets the layer's
        "change since the last line"."""
        out = []
        for tag, shares in self._current.items():
            dead = shares.dead_fraction
            before = self._said.get(tag)
            change = "first" if before is None else f"{(dead - before) * 100:+.1f} pts"
            out.append(
                f"{self.writer} step {self._step}: {tag}: {dead:.1%} dead "
                f"({change}), mean |a| {shares.mean_abs:.4g}"
            )
            self._said[tag] = dead
        return out

    def _remember(self, tag: str, codes) -> None:
        history = self._history.setdefault(tag, [])
        history.append((self._step, np.array(codes, np.uint8)))
        if len(history) > HISTORY:
            del history[1]  # keep the first: born-dead units need it

    def _alert(self, tag: str, with_gradients: bool, activation: str) -> None:
        self.alerted.add(tag)
        history = self._history.pop(tag, [])
        steps = [s for s, _ in history]
        decoded = [_decoded(c, with_gradients) for _, c in history]
        stats = {n: np.stack([d[n] for d in decoded]) for n in decoded[0]}
        result = classify.classify(stats, steps)
        loss = _Loss("batch", *self._loss)
        found = classify.hints(result, activation, loss)
        dead = self._current[tag].dead_fraction
        message = (
            f"{self.writer}: layer {tag!r} has {dead:.1%} of its units dead at "
            f"step {self._step} (alert_above={self.alert_above:g})"
        )
        for hint in found:
            message += (
                f"; likely {hint['pattern']}: {hint['evidence']}. "
                f"Remedy: {hint['remedy']}"
            )
        if not found:
            message += "; no known pattern matched yet: see the Dead Neurons dashboard"
        warnings.warn(message, UserWarning, stacklevel=4)
