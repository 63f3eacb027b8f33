"""Which units continual backprop replaces: utility-ranked selection (numpy).

Continual backprop (Dohare et al., Nature 2024) keeps, per hidden unit, a
running utility and re-initialises a small share of the least useful mature
units at a steady rate. Here a unit's utility is estimated at each revival
check from the writer's own snapshot and the model's weights::

    contribution_i = std_i * mean |w_out_i| / mean |w_in_i|

``std_i`` is the unit's standard deviation over the probe batch (the probe's
estimate of continual backprop's ``|h_i - running mean of h_i|``),
``w_out_i`` the weights that read the unit, ``w_in_i`` those that make it.
The utility is the running average of the contribution with a decay of
``DEFAULT_DECAY`` per training step (so ``DEFAULT_DECAY ** elapsed`` between
two checks), bias-corrected by the unit's age. A unit is mature when it is
older than ``maturity`` steps (since the start or its last replacement);
only mature units are replaced, so a new unit is protected until its
utility means something. Every check adds ``rate`` per mature unit and step
since the last check to a per-layer allowance (continual backprop's
per-step count, summed); its whole part is the number of units replaced,
the mature units of lowest utility.

The writers (``torch/utility.py``, ``keras/utility.py``) compute the weight
magnitudes; this module holds the one implementation of the rest.
"""

from __future__ import annotations

import numpy as np

SELECTIONS = ("dead", "utility")
DEFAULT_RATE = 1e-4
DEFAULT_MATURITY = 100
DEFAULT_DECAY = 0.99
# A unit whose incoming weights are all zero makes a constant: its
# contribution is its std (0) over this floor, not a division by zero.
_MIN_MAGNITUDE = 1e-12


def check_selection(select, rate, maturity) -> tuple[str, float, int]:
    """``(revive_select, revive_rate, revive_maturity)`` validated.

    Raises:
      ValueError: naming the argument: ``revive_select`` not one of
        ``SELECTIONS``, ``revive_rate`` not a number in (0, 1],
        ``revive_maturity`` not an integer >= 0.
    """
    if select not in SELECTIONS:
        raise ValueError(f"revive_select must be one of {SELECTIONS}; got {select!r}")
    try:
        number = float(rate)
    except (TypeError, ValueError):
        number = float("nan")
    if isinstance(rate, bool) or not 0.0 < number <= 1.0:
        raise ValueError(f"revive_rate must be a number in (0, 1]; got {rate!r}")
    if isinstance(maturity, bool) or not isinstance(maturity, (int, np.integer)):
        raise ValueError(f"revive_maturity must be an integer >= 0; got {maturity!r}")
    if maturity < 0:
        raise ValueError(f"revive_maturity must be an integer >= 0; got {maturity!r}")
    return select, number, int(maturity)


def contribution(std, incoming, outgoing) -> np.ndarray:
    """``std * outgoing / incoming`` per unit, float64 ``[U]``.

    ``std``: the units' std on the probe (NaN, no data: counts as 0);
    ``incoming`` / ``outgoing``: mean |weight| into and out of each unit.
    """
    std = np.nan_to_num(np.asarray(std, dtype=np.float64), nan=0.0)
    incoming = np.maximum(np.asarray(incoming, dtype=np.float64), _MIN_MAGNITUDE)
    return std * np.asarray(outgoing, dtype=np.float64) / incoming


class Replacer:
    """One layer's running utility, unit ages and replacement allowance.

    ``units``: the layer's width; ``step``: the training step it starts at.
    """

    def __init__(
        self,
        units: int,
        *,
        rate: float,
        maturity: int,
        step: int,
        decay: float = DEFAULT_DECAY,
    ):
        self.rate, self.maturity, self.decay = rate, maturity, decay
        self.utility = np.zeros(units)
        self.born = np.full(units, int(step), dtype=np.int64)
        self._last = int(step)
        self._allowance = 0.0

    def replace(self, contribution: np.ndarray, step: int) -> list[int]:
        """Updates the utility at ``step`` and returns the units to replace.

        ``contribution``: float ``[U]`` (see ``contribution``). The chosen
        units (sorted) count as new from ``step`` on: utility 0, age 0.
        """
        step = int(step)
        elapsed = max(step - self._last, 0)
        self._last = step
        kept = self.decay**elapsed
        self.utility = kept * self.utility + (1.0 - kept) * contribution
        age = step - self.born
        # As continual backprop's per-step count: each unit adds ``rate`` for
        # every step since the last check in which it was already mature.
        credit = np.clip(age - self.maturity, 0, elapsed)
        eligible = np.flatnonzero(age > self.maturity)
        self._allowance += self.rate * float(credit.sum())
        n = min(int(self._allowance), len(eligible))
        # What too few eligible units could not take is dropped, not saved up.
        self._allowance = self._allowance - n if n < len(eligible) else 0.0
        if n == 0:
            return []
        # Bias correction: a unit's weights in the average sum to 1 - decay**age.
        corrected = self.utility[eligible] / (1.0 - self.decay ** age[eligible])
        chosen = np.sort(eligible[np.argsort(corrected, kind="stable")[:n]])
        self.utility[chosen] = 0.0
        self.born[chosen] = step
        return chosen.tolist()
