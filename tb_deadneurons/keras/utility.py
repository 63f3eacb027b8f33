"""Utility-ranked revival for ``DeadNeuronCallback`` (continual backprop).

``UtilitySelector.choose`` names the units ``revive_select="utility"``
re-initialises: the rule, the running utility and the maturity are
``tb_deadneurons.analysis.utility``'s; this file reads the two weight
magnitudes from the model -- mean |w| into each unit (the layer's kernel)
and out of it (every kernel entry ``revive`` would zero).
"""

from __future__ import annotations

import keras
import numpy as np

from tb_deadneurons.analysis import utility
from tb_deadneurons.format import codec, metadata
from tb_deadneurons.keras import revive as revive_lib


def magnitudes(layer, consumers):
    """``(incoming, outgoing)``: mean |w| into and out of each unit, ``[U]``.

    ``consumers``: ``revive.outgoing(model, layer)``.
    """
    kernel = np.abs(keras.ops.convert_to_numpy(layer.kernel))
    units = kernel.shape[-1]
    incoming = kernel.reshape(-1, units).mean(0)
    outgoing = np.zeros(units)
    for variable, owner in consumers:
        weight = np.abs(keras.ops.convert_to_numpy(variable))
        read = owner >= 0
        total = np.bincount(owner[read], weights=weight[read], minlength=units)
        count = np.bincount(owner[read], minlength=units)
        outgoing += total / np.maximum(count, 1)
    return incoming, outgoing / max(len(consumers), 1)


class UtilitySelector:
    """Per watched layer, continual backprop's choice of units to replace.

    ``rate``, ``maturity``: ``revive_rate``, ``revive_maturity``; ``step``:
    the first training step; ``with_gradients``: the snapshots' layout.
    """

    def __init__(
        self, model, *, rate: float, maturity: int, step: int, with_gradients: bool
    ):
        self._model = model
        self._rate, self._maturity, self._start = rate, maturity, step
        self._layout = metadata.snapshot_plugin_data(with_gradients=with_gradients)
        self._replacers: dict[str, utility.Replacer] = {}
        self._consumers: dict[str, list] = {}

    def choose(self, tag: str, layer, codes, step: int) -> list[int]:
        """The units of ``layer`` (series ``tag``) to replace at ``step``,
        from its latest snapshot ``codes``; sorted, maybe empty.

        Raises:
          ValueError: a topology ``revive`` cannot handle.
        """
        if tag not in self._consumers:  # planned once: the graph does not change
            self._consumers[tag] = revive_lib.outgoing(self._model, layer)
        std = codec.decode_snapshot(np.asarray(codes), self._layout)[metadata.STD]
        incoming, outgoing = magnitudes(layer, self._consumers[tag])
        if tag not in self._replacers:
            self._replacers[tag] = utility.Replacer(
                len(std), rate=self._rate, maturity=self._maturity, step=self._start
            )
        value = utility.contribution(std, incoming, outgoing)
        return self._replacers[tag].replace(value, step)
