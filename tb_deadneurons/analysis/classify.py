"""Classification of units as dead, dormant, dying or revived (numpy only).

The one implementation the plugin routes and ``tb-deadneurons report`` share.
Input is a layer's decoded statistics: a mapping from stat name to a float
array of shape ``[T, U]`` (T snapshots, U units), with at least
``active_fraction`` and ``mean_abs``; ``std`` enables the constant-output
test and ``count`` marks units without data. ``reader.Series.stats`` is
such a mapping.

Definitions (per snapshot t, unit u; "with data" means ``count > 0``):

- dead: ``active_fraction == 0`` (never |a| > epsilon on the probe), or a
  constant output: ``std <= constant_std * median std`` (lower median) of
  the layer's units with data and nonzero std at that snapshot (``std == 0``
  when no unit varies). ``constant_std`` defaults to 1e-3: a unit whose output varies a
  thousand times less than its neighbours' is effectively a bias (saturated
  tanh/sigmoid, ReLU pinned on a constant); the log codec keeps std to +-7 %,
  so the test is far from quantisation noise. Or a negligible output:
  ``max_abs <= NEGLIGIBLE_MAX_ABS * the layer's largest max_abs`` (1e-6, over
  its units with data) -- the rule for smooth activations (GELU, SiLU,
  tanh, sigmoid), whose dead units output tiny nonzero values (a SiLU unit
  with pre-activation <= -20 on every sample gives |a| <= 4e-8, at -40
  about 1e-16) that ``active_fraction`` counts as active. The constant-output
  test usually catches them too, but compares with the median unit, so it
  misses them once most of a layer is dead; this one compares with the
  largest. A ReLU-family unit is dead by it only when its largest output is
  a millionth of the layer's largest. The log codec keeps max_abs down to
  2**-32 (2e-10), so with a layer scale near 1 the rule sees such units.
- tau-dormant (ReDo, Sokar et al. 2023): ``score = mean_abs_u / mean_j
  mean_abs_j`` over units with data; dormant where ``score <= tau``. When the
  layer's mean is 0 every score is 0. A dead unit with zero output is also
  dormant; the cell state of the matrix shows dead before dormant.
- grad-dormant (only when the stats have the ``grad_mean_abs`` row, mean
  |dL/da|): the same score on gradients, ``g_u / mean_j g_j`` over units with
  data; grad-dormant where ``<= tau``. Tau 0 means exactly zero gradient;
  when the layer's mean gradient is 0 every unit is grad-dormant. A unit can
  be active and grad-dormant at once (zero outgoing weights, dead units
  downstream, a detached branch): it fires but no longer learns. Without the
  row ``Classification.grad_dormant`` is None, and classifying by the
  ``"grad_dormant"`` definition raises ``MissingGradientsError``.
- died_at (by ``definition``: "dead", "dormant" or "grad_dormant"): the step
  of the first snapshot after which the unit is dead at every snapshot with
  data up to the last one; None if it is not dead at its last snapshot with
  data.
- revived: dead (by ``definition``) at some snapshot, not dead at a later one.
- dying: not dead now (by ``definition``); over the last ``DYING_WINDOW``
  snapshots (at least 3, all with data) the active fraction has a negative
  least-squares slope, has at least halved, and extrapolates to 0 within
  another window.

The heat-map cell (``Classification.matrix``, one byte per unit and
snapshot): bits 7-6 the state (``STATE_ACTIVE`` 0, ``STATE_DORMANT`` 1,
``STATE_DEAD`` 2, ``STATE_NO_DATA`` 3; dead shown before dormant); bit 5
(the mask ``GRAD_DORMANT_BIT`` = 32) set where the unit is grad-dormant,
never without the gradient row or without data; bits 4-0
``round(active_fraction * ACTIVITY_LEVELS)`` (31), a nonzero share kept
>= 1 so that 0 means never active.

``layer_mean_abs`` gives each layer's mean |a| per snapshot, the number the
classic "print each layer's mean activation every epoch" recipe watches.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from tb_deadneurons.analysis.hints import diagnose
from tb_deadneurons.format import codec, metadata
from tb_deadneurons.format.metadata import (
    ACTIVE_FRACTION,
    COUNT,
    MAX_ABS,
    MEAN_ABS,
    STD,
)

DEFINITIONS = ("dead", "dormant", "grad_dormant")
GRAD_STAT = metadata.GRAD_MEAN_ABS
# The stats ``classify`` cannot do without.
REQUIRED_STATS = frozenset({ACTIVE_FRACTION, MEAN_ABS})
DEFAULT_TAU = 0.1
DEFAULT_CONSTANT_STD = 1e-3
# A unit whose largest |a| is this share of the layer's largest |a| is dead
# (module docstring): smooth activations never output exactly 0.
NEGLIGIBLE_MAX_ABS = 1e-6
DYING_WINDOW = 8
DYING_MIN_SNAPSHOTS = 3

# Cell byte of the heat map (module docstring, docs/routes.md).
STATE_ACTIVE, STATE_DORMANT, STATE_DEAD, STATE_NO_DATA = 0, 1, 2, 3
STATE_SHIFT = 6
GRAD_DORMANT_BIT = 1 << 5
ACTIVITY_LEVELS = 31


class MissingGradientsError(ValueError):
    """The ``grad_dormant`` definition asked of a series without gradients."""

    def __init__(self):
        super().__init__(
            "definition 'grad_dormant' needs the grad_mean_abs row, which this "
            "series does not have: log it with gradients=True"
        )


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """The thresholds a classification used; ``as_dict`` goes into responses."""

    definition: str = "dead"
    tau: float = DEFAULT_TAU
    epsilon: float = 0.0
    constant_std: float = DEFAULT_CONSTANT_STD

    def __post_init__(self):
        if self.definition not in DEFINITIONS:
            raise ValueError(
                f"definition must be one of {DEFINITIONS}: {self.definition!r}"
            )
        if not (np.isfinite(self.tau) and self.tau >= 0):
            raise ValueError(f"tau must be a finite number >= 0: {self.tau!r}")
        if not (np.isfinite(self.constant_std) and self.constant_std >= 0):
            raise ValueError(
                f"constant_std must be finite and >= 0: {self.constant_std!r}"
            )

    def as_dict(self) -> dict:
        return {
            "definition": self.definition,
            "tau": float(self.tau),
            "epsilon": float(self.epsilon),
            "constant_std": float(self.constant_std),
        }


@dataclasses.dataclass
class Classification:
    """Per-snapshot masks ``[T, U]`` and per-unit verdicts of one layer."""

    steps: np.ndarray  # int64 [T]
    thresholds: Thresholds
    has_data: np.ndarray  # bool [T, U]
    dead: np.ndarray  # bool [T, U]
    dormant: np.ndarray  # bool [T, U]
    score: np.ndarray  # float32 [T, U]; NaN where no data
    active_fraction: np.ndarray  # float [T, U]
    # Both None when the stats have no grad_mean_abs row.
    grad_dormant: np.ndarray | None = None  # bool [T, U]
    grad_score: np.ndarray | None = None  # float32 [T, U]; NaN where no data

    @property
    def units(self) -> int:
        return self.dead.shape[1]

    @property
    def by_definition(self) -> np.ndarray:
        """The ``[T, U]`` mask ``thresholds.definition`` names.

        Raises:
          MissingGradientsError: "grad_dormant" without the gradient row.
        """
        definition = self.thresholds.definition
        if definition == "grad_dormant":
            if self.grad_dormant is None:
                raise MissingGradientsError()
            return self.grad_dormant
        return self.dead if definition == "dead" else self.dormant

    @property
    def dead_count(self) -> list[int]:
        return self.dead.sum(axis=1).tolist()

    @property
    def dormant_count(self) -> list[int]:
        return self.dormant.sum(axis=1).tolist()

    @property
    def dead_now(self) -> list[int]:
        """Units dead at the last snapshot (empty without snapshots)."""
        return np.flatnonzero(self.dead[-1]).tolist() if len(self.steps) else []

    @property
    def dormant_now(self) -> list[int]:
        return np.flatnonzero(self.dormant[-1]).tolist() if len(self.steps) else []

    @property
    def grad_dormant_count(self) -> list[int] | None:
        """Grad-dormant units per snapshot; None without the gradient row."""
        if self.grad_dormant is None:
            return None
        return self.grad_dormant.sum(axis=1).tolist()

    @property
    def grad_dormant_now(self) -> list[int] | None:
        """Units grad-dormant at the last snapshot; None without the row."""
        if self.grad_dormant is None:
            return None
        return np.flatnonzero(self.grad_dormant[-1]).tolist() if len(self.steps) else []

    def died_at(self) -> list[int | None]:
        """Per unit, the step it died at (by ``definition``) or None."""
        index = died_at_index(self.by_definition, self.has_data)
        steps = self.steps.tolist()
        return [steps[i] if i >= 0 else None for i in index.tolist()]

    def revived(self) -> np.ndarray:
        return revived(self.by_definition, self.has_data)

    def dying(self) -> np.ndarray:
        return dying(self.active_fraction, self.by_definition, self.has_data)

    def matrix(self) -> np.ndarray:
        """The ``uint8 [U, T]`` cell matrix of docs/routes.md (unit-major)."""
        state = self.dead.view(np.uint8) * np.uint8(STATE_DEAD)
        state |= (self.dormant & ~self.dead).view(np.uint8) * np.uint8(STATE_DORMANT)
        state |= (~self.has_data).view(np.uint8) * np.uint8(STATE_NO_DATA)
        af = np.asarray(self.active_fraction, dtype=np.float32)
        level = np.rint(af * np.float32(ACTIVITY_LEVELS))
        np.clip(level, 1, ACTIVITY_LEVELS, out=level)
        level = level.astype(np.uint8) * ((af > 0) & self.has_data).view(np.uint8)
        cell = state << STATE_SHIFT | level
        if self.grad_dormant is not None:
            flag = (self.grad_dormant & self.has_data).view(np.uint8)
            cell |= flag * np.uint8(GRAD_DORMANT_BIT)
        return np.ascontiguousarray(cell.T)


def classify(
    stats: Mapping[str, np.ndarray], steps, thresholds: Thresholds = Thresholds()
) -> Classification:
    """Classifies every unit at every snapshot.

    Args:
      stats: stat name -> float array ``[T, U]``; needs ``active_fraction``
        and ``mean_abs``; uses ``std``, ``count`` and ``grad_mean_abs``
        when present.
      steps: the T snapshot steps, ascending.
      thresholds: definition, tau and constant_std to apply.

    Raises:
      KeyError: a required stat is missing.
      MissingGradientsError (a ValueError): ``thresholds.definition`` is
        "grad_dormant" and ``stats`` has no ``grad_mean_abs`` row.
      ValueError: arrays of different shapes, or steps of another length.
    """
    if thresholds.definition == "grad_dormant" and GRAD_STAT not in stats:
        raise MissingGradientsError()
    af = np.asarray(stats[ACTIVE_FRACTION])
    mean_abs = np.asarray(stats[MEAN_ABS], dtype=np.float32)
    steps = np.asarray(steps, dtype=np.int64).reshape(-1)
    if af.ndim != 2 or mean_abs.shape != af.shape or len(steps) != af.shape[0]:
        raise ValueError(
            f"stats must be [T, U] arrays for {len(steps)} steps; got "
            f"{af.shape} and {mean_abs.shape}"
        )
    has_data = (
        np.asarray(stats[COUNT]) > 0 if COUNT in stats else np.ones(af.shape, bool)
    )
    dead = (af <= 0) & has_data
    if STD in stats:
        dead |= constant_output(np.asarray(stats[STD]), has_data, thresholds)
    if MAX_ABS in stats:
        dead |= negligible_output(np.asarray(stats[MAX_ABS]), has_data)
    score = dormant_score(mean_abs, has_data)
    dormant = (score <= thresholds.tau) & has_data
    grad_dormant = grad_score = None
    if GRAD_STAT in stats:
        grad = np.asarray(stats[GRAD_STAT], dtype=np.float32)
        if grad.shape != af.shape:
            raise ValueError(f"{GRAD_STAT} must be {af.shape}; got {grad.shape}")
        grad_score = dormant_score(grad, has_data)
        grad_dormant = (grad_score <= thresholds.tau) & has_data
    return Classification(
        steps, thresholds, has_data, dead, dormant, score, af, grad_dormant, grad_score
    )


def revivable_units(codes: np.ndarray, with_gradients: bool, tau: float = 0.0):
    """The units an encoded snapshot shows dead: what ReDo re-initialises.

    ``codes`` is one writer-side ``uint8 [num_stats, units]`` snapshot of the
    current format; with ``tau > 0`` tau-dormant units count too. Returns a
    sorted list of unit indices.
    """
    layout = metadata.snapshot_plugin_data(with_gradients=with_gradients)
    decoded = codec.decode_snapshot(codes, layout)
    verdict = classify(
        {name: values[None, :] for name, values in decoded.items()},
        [0],
        Thresholds(tau=tau),
    )
    mask = verdict.dead[0] | (verdict.dormant[0] if tau else False)
    return np.flatnonzero(mask).tolist()


def layer_mean_abs(stats: Mapping[str, np.ndarray]) -> np.ndarray:
    """Each snapshot's layer mean |a|, float64 ``[T]``.

    The average of the units' ``mean_abs`` weighted by their ``count`` (equal
    weights without a ``count`` row), so it is the mean |a| over every
    position the snapshot saw; units without data are left out, and a
    snapshot where no unit has data gives NaN.
    """
    mean_abs = np.asarray(stats[MEAN_ABS], dtype=np.float32)
    if COUNT in stats:
        weight = np.asarray(stats[COUNT], dtype=np.float32)
    else:
        weight = np.ones_like(mean_abs)
    weight = np.where(weight > 0, weight, np.float32(0))
    mean_abs = np.where(weight > 0, mean_abs, np.float32(0))
    # Accumulated in float64 without float64 copies of [T, U]: ~18x faster
    # than converting first at LLM width (11,008 units x 500 snapshots).
    total = weight.sum(axis=1, dtype=np.float64)
    weighted = np.einsum("tu,tu->t", mean_abs, weight, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, weighted / np.where(total > 0, total, 1), np.nan)


def constant_output(std: np.ndarray, has_data: np.ndarray, thresholds: Thresholds):
    """``[T, U]`` mask of units whose std is tiny relative to the layer's."""
    varying = has_data & (std > 0)
    n = varying.sum(axis=1)
    ordered = np.sort(np.where(varying, std, np.inf), axis=1)
    # The lower median of the varying units' std; 0 where no unit varies.
    middle = np.maximum(n - 1, 0)[:, None] // 2
    typical = np.where(n[:, None] > 0, np.take_along_axis(ordered, middle, axis=1), 0)
    return has_data & (std <= thresholds.constant_std * typical)


def negligible_output(max_abs: np.ndarray, has_data: np.ndarray) -> np.ndarray:
    """``[T, U]`` mask of units whose max |a| is negligible beside the layer's.

    ``max_abs <= NEGLIGIBLE_MAX_ABS * the layer's largest max_abs`` over its
    units with data. The largest, not a median, so that a layer where most
    units died still shows them all; a unit with max_abs 0 is left to the
    ``active_fraction`` test (it is never active).
    """
    largest = np.where(has_data, max_abs, 0).max(axis=1, keepdims=True, initial=0)
    return has_data & (max_abs > 0) & (max_abs <= NEGLIGIBLE_MAX_ABS * largest)


def dormant_score(mean_abs: np.ndarray, has_data: np.ndarray) -> np.ndarray:
    """ReDo score ``mean_abs_u / mean_j mean_abs_j``; NaN where no data.

    Also the gradient score, given mean |dL/da| instead of mean |a|.
    """
    all_data = bool(has_data.all())
    masked = mean_abs if all_data else np.where(has_data, mean_abs, 0)
    n = has_data.sum(axis=1, keepdims=True)
    layer_mean = masked.sum(axis=1, keepdims=True, dtype=np.float64) / np.maximum(n, 1)
    positive = layer_mean > 0
    scale = np.where(positive, 1.0 / np.where(positive, layer_mean, 1.0), 0.0)
    score = masked * scale.astype(np.float32)
    return score if all_data else np.where(has_data, score, np.float32(np.nan))


def died_at_index(mask: np.ndarray, has_data: np.ndarray) -> np.ndarray:
    """Per unit, the snapshot index from which ``mask`` holds at every
    snapshot with data to the end; -1 where it does not hold at the last one.
    """
    t = mask.shape[0]
    if t == 0:
        return np.full(mask.shape[1], -1, dtype=np.int64)
    last_alive = _last_true(has_data & ~mask)
    return _first_true(has_data & (np.arange(t)[:, None] > last_alive))


def _last_true(mask: np.ndarray) -> np.ndarray:
    """Per column, the index of the last True; -1 where none."""
    # max-reductions along axis 0 run row by row; argmax(axis=0) does not.
    index = np.arange(1, mask.shape[0] + 1, dtype=np.int32)[:, None]
    return (mask * index).max(axis=0, initial=0) - 1


def _first_true(mask: np.ndarray) -> np.ndarray:
    """Per column, the index of the first True; -1 where none."""
    t = mask.shape[0]
    reverse = np.arange(t, 0, -1, dtype=np.int32)[:, None]
    top = (mask * reverse).max(axis=0, initial=0)
    return np.where(top > 0, t - top, -1)


def revived(mask: np.ndarray, has_data: np.ndarray) -> np.ndarray:
    """Per unit: ``mask`` held at some snapshot and not at a later one with data."""
    if mask.shape[0] == 0:
        return np.zeros(mask.shape[1], dtype=bool)
    first_dead = _first_true(mask)
    return (first_dead >= 0) & (_last_true(has_data & ~mask) > first_dead)


def dying(
    active_fraction: np.ndarray,
    mask: np.ndarray,
    has_data: np.ndarray,
    window: int = DYING_WINDOW,
) -> np.ndarray:
    """Per unit: active share falling towards zero over the last snapshots."""
    t, u = mask.shape
    w = min(window, t)
    if w < DYING_MIN_SNAPSHOTS:
        return np.zeros(u, dtype=bool)
    af = np.asarray(active_fraction[-w:], dtype=np.float64)
    x = np.arange(w) - (w - 1) / 2.0
    slope = (x[:, None] * af).sum(axis=0) / (x * x).sum()
    fit_last = af.mean(axis=0) + slope * x[-1]
    return (
        has_data[-w:].all(axis=0)
        & ~mask[-1]
        & (slope < 0)
        & (af[-1] <= 0.5 * af[0])
        & (fit_last + slope * w <= 0)
    )


def hints(
    result: Classification,
    activation: str = "",
    loss=None,
    next_layer_dead_share: float | None = None,
) -> list[dict]:
    """Likely causes and remedies for a classified layer (``hints.diagnose``).

    Args:
      result: the layer's classification.
      activation: the layer's activation name from its metadata.
      loss: a ``reader.LossSeries`` (anything with its ``step_unit``,
        ``steps`` and ``values`` attributes) or None; used only when its
        steps are training batches, the snapshots' step axis.
      next_layer_dead_share: optional share (0..1) of the next layer's units
        dead at the last snapshot: evidence for gradient-starved units.
    """
    if not len(result.steps):
        return []
    never_active = (result.active_fraction <= 0) & result.has_data
    loss_steps = loss_values = None
    if loss is not None and loss.step_unit == "batch" and len(loss.steps):
        loss_steps, loss_values = np.asarray(loss.steps), np.asarray(loss.values)
    grad = result.grad_dormant
    return diagnose(
        result.steps,
        result.dead.T,
        never_active=never_active.T,
        constant=(result.dead & ~never_active).T,
        activation=activation,
        loss_steps=loss_steps,
        loss_values=loss_values,
        grad_dormant=None if grad is None else grad.T,
        tau=result.thresholds.tau,
        next_layer_dead_share=next_layer_dead_share,
    )
