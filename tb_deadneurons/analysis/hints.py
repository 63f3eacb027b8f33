"""Name the likely cause of a layer's dead units and the usual remedy (numpy).

``diagnose`` looks at one layer's per-snapshot dead mask (and, optionally, the
training loss) and returns hints, each ``{"pattern", "remedy", "evidence",
"steps", "units"}``. A hint is returned only when its evidence is present;
a healthy run gives ``[]``. Patterns and thresholds (``U`` = units in the
layer, "snapshot" = one column of ``dead``):

``initialisation``
  At least ``max(INIT_MIN_UNITS, INIT_MIN_SHARE * U)`` units dead at the
  first snapshot, and that
  snapshot is early: its step is at most ``INIT_MAX_FIRST_STEP_SHARE`` of the
  last snapshot's step. Units explained by ``saturation`` are left out.
``learning_rate``
  A burst: the dead count rises by at least ``max(BURST_MIN_UNITS,
  BURST_MIN_SHARE * U)`` within ``BURST_WINDOW`` snapshot intervals, and a loss
  spike lies nearby: a loss value that is non-finite or above ``SPIKE_RATIO``
  times the median of the ``SPIKE_BASELINE`` values before it, logged between
  one median snapshot interval before the burst and one after it.
``burst``
  The same burst without a loss spike nearby (or without a loss logged):
  reported, with the evidence that the loss does not back it.
``slow_rise``
  The dead count rises by at least ``max(SLOW_MIN_UNITS, SLOW_MIN_SHARE * U)``
  from the first to the last snapshot, over at least ``SLOW_MIN_RISES``
  intervals that add deaths, and no ``BURST_WINDOW`` window holds more than
  ``SLOW_MAX_WINDOW_SHARE`` of the rise (else it is a burst).
``saturation``
  ``activation`` is tanh/sigmoid-like and at least ``SAT_MIN_UNITS`` unit(s)
  have a constant output (``constant`` if given, else ``dead``) at some
  snapshot.
``plasticity``
  A long run (at least ``PLASTICITY_MIN_SNAPSHOTS`` snapshots) whose dead
  share climbs through it: split into ``PLASTICITY_PARTS`` equal parts, the
  mean dead share of each part is at least the previous part's, and the
  last part's is at least ``PLASTICITY_MIN_RISE`` above the first's. The
  continual-learning signature of lost plasticity (Dohare et al. 2024); the
  remedy names revival and continual backprop with their settings.
``plasticity_without_dead``
  A long run whose dead share stays flat (the parts' means within
  ``FLAT_MAX_SHARE``) while the loss stalls above its best: the median
  loss of the last part is at least ``STALL_RATIO`` x the part before's
  (no longer falling) and at least ``STALL_ABOVE_BEST`` x the lowest median
  of the earlier parts. Plasticity can be lost without dead units (Lyle et
  al. 2023).
``gradient_starved``
  Only with ``grad_dormant`` (a logged gradient row): at least
  ``GRAD_MIN_UNITS`` unit(s) not dead but grad-dormant at the last snapshot.
  The evidence says how many, since which step (the start of the earliest
  unit's final starved stretch), the next layer's dead share when the caller
  knows it, and that zero outgoing weights cannot be seen in the logs.
"""

from __future__ import annotations

import numpy as np

INIT_MIN_UNITS = 1
# A few born-dead units are normal (e.g. ReLU on non-negative inputs with He
# init: ~5 % on the demo's healthy run); a tenth of the layer is not.
INIT_MIN_SHARE = 0.1
INIT_MAX_FIRST_STEP_SHARE = 0.1
BURST_WINDOW = 3
BURST_MIN_UNITS = 2
BURST_MIN_SHARE = 0.15
SPIKE_RATIO = 2.0
SPIKE_BASELINE = 5
SLOW_MIN_UNITS = 2
SLOW_MIN_SHARE = 0.1
SLOW_MIN_RISES = 3
SLOW_MAX_WINDOW_SHARE = 0.5
SAT_MIN_UNITS = 1
PLASTICITY_MIN_SNAPSHOTS = 30
PLASTICITY_PARTS = 4
PLASTICITY_MIN_RISE = 0.1
FLAT_MAX_SHARE = 0.05
STALL_RATIO = 0.95
STALL_ABOVE_BEST = 1.2
GRAD_MIN_UNITS = 1
SATURATING = frozenset({"tanh", "sigmoid", "hard_sigmoid", "hard_tanh", "softsign"})

REMEDIES = {
    "initialisation": "Initialisation: use He (Kaiming) init for ReLU-family "
    "layers, a small positive bias (e.g. 0.01) or an asymmetric init, and check "
    "that inputs are centred and scaled.",
    "learning_rate": "Learning rate too high: lower it, add warm-up or gradient "
    "clipping; one large step pushed these units' biases/weights into the "
    "region where they never fire.",
    "burst": "Sudden deaths: usually a too-high learning rate or an outlier "
    "batch; try a lower learning rate, warm-up or gradient clipping.",
    "slow_rise": "Units die gradually: add weight decay or normalisation "
    "(BatchNorm/LayerNorm), use a leaky activation (LeakyReLU, ELU, GELU), or "
    "lower the learning rate.",
    "saturation": "Saturated units: scale or normalise the inputs, add "
    "normalisation before the activation, or use a smaller (Glorot) init.",
    "plasticity": "Loss of plasticity: units die through a long or continual "
    "run and the network learns new data worse (Dohare et al. 2024). Revive "
    "them: revive_every=N (N about one task, or a few hundred steps) re-"
    "initialises the dead units (ReDo; revive_tau=0.025 or 0.1 takes "
    "tau-dormant units too), or continual backprop: revive_select='utility', "
    "revive_rate=1e-4, revive_maturity=100. Weight decay or a leaky "
    "activation slow it down.",
    "plasticity_without_dead": "Plasticity can be lost without dead units "
    "(Lyle et al. 2023): a flat dead-unit curve is not proof the network "
    "still learns. Look at the tau-dormant share (tau 0.025, 0.1), the "
    "weight norm and the features' rank; remedies that act on every unit: "
    "weight decay, layer normalisation, shrink-and-perturb, or continual "
    "backprop (revive_select='utility', revive_rate=1e-4).",
    "gradient_starved": "Active units that no longer learn: look for zero, "
    "pruned or masked outgoing weights, dead units in the next layer (revive "
    "them or use a leaky activation there), saturated tanh/sigmoid units "
    "(normalise inputs, normalisation before the activation, a smaller init) "
    "and a detached branch (stop_gradient/detach, an output the loss ignores).",
}


def _bool_matrix(name: str, value, shape) -> np.ndarray:
    array = np.asarray(value)
    if array.shape != shape or array.dtype != np.bool_:
        raise ValueError(
            f"{name} must be a bool array of shape {shape}; got "
            f"{array.dtype} {array.shape}"
        )
    return array


def _hint(pattern: str, evidence: str, steps, units) -> dict:
    return {
        "pattern": pattern,
        "remedy": REMEDIES[pattern],
        "evidence": evidence,
        "steps": [int(s) for s in steps],
        "units": [int(u) for u in units],
    }


def _loss_spikes(loss_steps: np.ndarray, loss: np.ndarray) -> np.ndarray:
    """Steps at which the loss spikes (non-finite, or > ratio x recent median)."""
    spikes = []
    for j in range(len(loss)):
        baseline = loss[max(0, j - SPIKE_BASELINE) : j]
        baseline = baseline[np.isfinite(baseline)]
        if not np.isfinite(loss[j]) and j > 0:
            spikes.append(loss_steps[j])
        elif baseline.size and loss[j] > SPIKE_RATIO * np.median(baseline) > 0:
            spikes.append(loss_steps[j])
    return np.asarray(spikes, dtype=np.int64)


def _burst(steps, dead, count, loss_steps, loss) -> dict | None:
    units, t = dead.shape
    need = max(BURST_MIN_UNITS, BURST_MIN_SHARE * units)
    best = None
    for end in range(1, t):
        start = max(0, end - BURST_WINDOW)
        rise = int(count[end] - count[start])
        if rise >= need and (best is None or rise > best[2]):
            best = (start, end, rise)
    if best is None:
        return None
    start, end, rise = best
    died = np.flatnonzero(dead[:, end] & ~dead[:, start])
    evidence = (
        f"dead units rose from {count[start]} to {count[end]} of {units} between "
        f"step {steps[start]} and step {steps[end]} ({end - start} snapshots)"
    )
    if loss is None:
        return _hint("burst", evidence + "; no loss logged", steps[[start, end]], died)
    gap = int(np.median(np.diff(steps))) if t > 1 else 0
    lo, hi = max(int(steps[0]), int(steps[start]) - gap), int(steps[end]) + gap
    spikes = _loss_spikes(loss_steps, loss)
    near = spikes[(spikes >= lo) & (spikes <= hi)]
    if not near.size:
        return _hint(
            "burst",
            evidence + f"; no loss spike between step {lo} and step {hi}",
            steps[[start, end]],
            died,
        )
    at = int(near[0])
    value = loss[np.flatnonzero(loss_steps == at)[0]]
    return _hint(
        "learning_rate",
        evidence + f"; the loss spiked to {value:.4g} at step {at}",
        steps[[start, end]],
        died,
    )


def _slow_rise(steps, dead, count) -> dict | None:
    units, t = dead.shape
    total = int(count[-1] - count[0])
    if t < 4 or total < max(SLOW_MIN_UNITS, SLOW_MIN_SHARE * units):
        return None
    rises = int(np.sum(np.diff(count) > 0))
    window = max(int(count[e] - count[max(0, e - BURST_WINDOW)]) for e in range(1, t))
    if rises < SLOW_MIN_RISES or window > SLOW_MAX_WINDOW_SHARE * total:
        return None
    return _hint(
        "slow_rise",
        f"dead units rose from {count[0]} to {count[-1]} of {units} between step "
        f"{steps[0]} and step {steps[-1]}, in {rises} of {t - 1} intervals; at "
        f"most {window} within any {BURST_WINDOW} snapshots",
        steps[[0, -1]],
        np.flatnonzero(dead[:, -1] & ~dead[:, 0]),
    )


def _parts(values: np.ndarray) -> list[np.ndarray]:
    return np.array_split(values, PLASTICITY_PARTS)


def _plasticity(steps, dead, count) -> dict | None:
    units, t = dead.shape
    if t < PLASTICITY_MIN_SNAPSHOTS:
        return None
    means = [float(part.mean()) / units for part in _parts(count)]
    rising = all(b >= a for a, b in zip(means[:-1], means[1:], strict=True))
    if not rising or means[-1] - means[0] < PLASTICITY_MIN_RISE:
        return None
    shares = ", ".join(f"{m:.0%}" for m in means)
    return _hint(
        "plasticity",
        f"the dead share climbed through the run: {shares} on average in "
        f"{PLASTICITY_PARTS} equal parts of {t} snapshots (step {steps[0]} to "
        f"step {steps[-1]}); {count[0]} of {units} units dead at the first "
        f"snapshot, {count[-1]} at the last",
        steps[[0, -1]],
        np.flatnonzero(dead[:, -1] & ~dead[:, 0]),
    )


def _plasticity_without_dead(steps, dead, count, loss_steps, loss) -> dict | None:
    units, t = dead.shape
    if t < PLASTICITY_MIN_SNAPSHOTS or loss is None:
        return None
    means = [float(part.mean()) / units for part in _parts(count)]
    if max(means) - min(means) > FLAT_MAX_SHARE:
        return None
    inside = (loss_steps >= steps[0]) & (loss_steps <= steps[-1]) & np.isfinite(loss)
    if inside.sum() < PLASTICITY_PARTS:
        return None
    medians = [float(np.median(part)) for part in _parts(loss[inside])]
    last, before, best = medians[-1], medians[-2], min(medians[:-1])
    if not (last >= STALL_RATIO * before and last >= STALL_ABOVE_BEST * best > 0):
        return None
    return _hint(
        "plasticity_without_dead",
        f"the dead share stayed between {min(means):.0%} and {max(means):.0%} "
        f"in {PLASTICITY_PARTS} equal parts of {t} snapshots, while the "
        f"loss stalled: median {last:.4g} in the last part, {before:.4g} in "
        f"the part before, {best:.4g} at best (step {steps[0]} to step "
        f"{steps[-1]})",
        steps[[0, -1]],
        [],
    )


def _check_masks(steps, dead, never_active, constant, grad_dormant):
    """``(steps, dead, constant, grad_dormant)`` checked (see ``diagnose``)."""
    steps = np.asarray(steps)
    if steps.ndim != 1 or not np.issubdtype(steps.dtype, np.integer):
        raise ValueError(
            f"steps must be a 1-D int array; got {steps.dtype} {steps.shape}"
        )
    if np.any(np.diff(steps) < 0):
        raise ValueError("steps must be non-decreasing")
    dead = np.asarray(dead)
    if dead.ndim != 2:
        raise ValueError(f"dead must be [units, T]; got shape {dead.shape}")
    dead = _bool_matrix("dead", dead, (dead.shape[0], steps.size))
    if never_active is not None:
        _bool_matrix("never_active", never_active, dead.shape)
    if constant is not None:
        constant = _bool_matrix("constant", constant, dead.shape)
    if grad_dormant is not None:
        grad_dormant = _bool_matrix("grad_dormant", grad_dormant, dead.shape)
    return steps, dead, constant, grad_dormant


def _check_loss(loss_steps, loss_values):
    """``(steps, values)`` sorted by step, or ``(None, None)`` without a loss."""
    if loss_values is None and loss_steps is None:
        return None, None
    loss_steps = np.asarray(loss_steps, dtype=np.int64).reshape(-1)
    loss = np.asarray(loss_values, dtype=np.float64).reshape(-1)
    if loss.shape != loss_steps.shape:
        raise ValueError("loss_steps and loss_values must have the same length")
    order = np.argsort(loss_steps, kind="stable")
    return loss_steps[order], loss[order]


def _share(name: str, value) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not 0.0 <= number <= 1.0:  # also refuses NaN
        raise ValueError(f"{name} must be a number in [0, 1] or None; got {value!r}")
    return number


def _initialisation(steps, dead, never_active, explained) -> dict | None:
    units, t = dead.shape
    first = np.flatnonzero(dead[:, 0] & ~explained[:, 0])
    if len(first) < max(INIT_MIN_UNITS, INIT_MIN_SHARE * units):
        return None
    if not (steps[0] <= INIT_MAX_FIRST_STEP_SHARE * steps[-1] or t == 1):
        return None
    still = int(np.sum(dead[first, -1]))
    evidence = (
        f"{len(first)} of {units} units were dead at the first snapshot "
        f"(step {steps[0]})"
    )
    if never_active is not None:
        evidence += f", {int(np.sum(never_active[first, 0]))} of them never active"
    evidence += f"; {still} still dead at the last snapshot (step {steps[-1]})"
    return _hint("initialisation", evidence, steps[[0, -1]], first)


def _saturation(steps, flat, activation: str) -> dict | None:
    units = flat.shape[0]
    per_step = flat.sum(axis=0)
    ever = np.flatnonzero(flat.any(axis=1))
    if len(ever) < SAT_MIN_UNITS:
        return None
    peak = int(np.argmax(per_step))
    return _hint(
        "saturation",
        f"{len(ever)} of {units} {activation} units had a constant output; "
        f"most at step {steps[peak]} ({per_step[peak]} units), "
        f"{per_step[-1]} at the last snapshot (step {steps[-1]})",
        steps[[peak, -1]],
        ever,
    )


def _starved_since(starved: np.ndarray) -> np.ndarray:
    """Per row of ``starved`` (True at the end), the index its last stretch starts."""
    t = starved.shape[1]
    fed = ~starved * np.arange(1, t + 1)  # 1-based index of snapshots with gradient
    return fed.max(axis=1, initial=0)


def _gradient_starved(steps, dead, grad_dormant, tau, activation, next_dead):
    units = dead.shape[0]
    starved = grad_dormant & ~dead
    now = np.flatnonzero(starved[:, -1])
    if len(now) < GRAD_MIN_UNITS:
        return None
    since = _starved_since(starved[now])
    first = int(since.min())
    evidence = (
        f"{len(now)} of {units} units are active but receive "
        + (
            "no gradient"
            if tau == 0
            else f"a mean |dL/da| of at most {tau:g} x the layer's mean"
        )
        + f" at the last snapshot (step {steps[-1]}), the first of them since "
        f"step {steps[first]}"
    )
    if next_dead is None:
        evidence += "; the next layer's dead share is not known"
    elif next_dead > 0:
        evidence += (
            f"; {next_dead:.0%} of the next layer's units are dead and pass no "
            "gradient back"
        )
    else:
        evidence += "; the next layer has no dead unit"
    evidence += "; zero or pruned outgoing weights are not in the logs"
    if activation.lower() in SATURATING:
        evidence += f"; a saturated {activation} passes almost no gradient"
    return _hint("gradient_starved", evidence, steps[[first, -1]], now)


def diagnose(
    steps,
    dead,
    *,
    never_active=None,
    constant=None,
    activation: str = "",
    loss_steps=None,
    loss_values=None,
    grad_dormant=None,
    tau: float = 0.0,
    next_layer_dead_share: float | None = None,
) -> list[dict]:
    """Hints about why one layer's units die, each with the evidence behind it.

    Args:
      steps: int array ``[T]``, the snapshot steps, non-decreasing.
      dead: bool array ``[units, T]``, dead per unit per snapshot.
      never_active, constant: optional bool ``[units, T]``, the two reasons
        for ``dead`` (never active on the probe; constant output).
      activation: the layer's activation name (e.g. ``"relu"``, ``"tanh"``).
      loss_steps, loss_values: optional training loss, same length ``[N]``.
      grad_dormant: optional bool ``[units, T]``, gradient-negligible per
        unit per snapshot (only with a logged gradient row).
      tau: the threshold ``grad_dormant`` was computed with (for the text).
      next_layer_dead_share: optional share (0..1) of the next layer's units
        dead at the last snapshot, evidence for ``gradient_starved``.

    Returns:
      A list of ``{"pattern": str, "remedy": str, "evidence": str,
      "steps": [first, last], "units": [int, ...]}``, in the order
      initialisation, saturation, learning_rate/burst, slow_rise,
      plasticity, plasticity_without_dead, gradient_starved; patterns
      whose evidence is absent are left out.

    Raises:
      ValueError: shapes or dtypes that do not match the above, or a
        ``next_layer_dead_share`` outside [0, 1].
    """
    steps, dead, constant, grad_dormant = _check_masks(
        steps, dead, never_active, constant, grad_dormant
    )
    loss_steps, loss = _check_loss(loss_steps, loss_values)
    next_dead = _share("next_layer_dead_share", next_layer_dead_share)
    units, t = dead.shape
    if t == 0 or units == 0:
        return []
    saturating = activation.lower() in SATURATING
    flat = constant if constant is not None else dead
    explained = flat if saturating else np.zeros_like(dead)
    count = dead.sum(axis=0)
    found = [
        _initialisation(steps, dead, never_active, explained),
        _saturation(steps, flat, activation) if saturating else None,
        _burst(steps, dead, count, loss_steps, loss),
    ]
    if found[-1] is None:
        found.append(_slow_rise(steps, dead, count))
    found.append(_plasticity(steps, dead, count))
    found.append(_plasticity_without_dead(steps, dead, count, loss_steps, loss))
    if grad_dormant is not None:
        found.append(
            _gradient_starved(steps, dead, grad_dormant, tau, activation, next_dead)
        )
    return [hint for hint in found if hint is not None]
