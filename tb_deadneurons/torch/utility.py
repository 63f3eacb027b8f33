"""Utility-ranked revival for ``DeadNeuronMonitor`` (continual backprop).

``UtilitySelector.choose`` names the units ``revive_select="utility"``
re-initialises: the rule, the running utility and the maturity are
``tb_deadneurons.analysis.utility``'s; this file reads the two weight
magnitudes from the model -- mean |w| into each unit (its ``Linear`` /
``ConvNd`` producer) and out of it (every weight ``revive`` would zero).
"""

from __future__ import annotations

import numpy as np
import torch

from tb_deadneurons.analysis import utility
from tb_deadneurons.format import codec, metadata
from tb_deadneurons.torch import revive as revive_lib


def magnitudes(producer: torch.nn.Module, consumers):
    """``(incoming, outgoing)``: mean |w| into and out of each unit, ``[U]``.

    ``consumers``: ``revive.outgoing(model, producer)``.
    """
    with torch.no_grad():
        incoming = producer.weight.abs().flatten(1).mean(1)
        units = incoming.shape[0]
        outgoing = torch.zeros_like(incoming)
        for weight, columns in consumers:
            read = weight.abs()[:, columns].transpose(0, 1)
            outgoing += read.reshape(units, -1).mean(1)
        outgoing /= max(len(consumers), 1)
    return incoming.cpu().numpy(), outgoing.cpu().numpy()


class UtilitySelector:
    """Per watched output, continual backprop's choice of units to replace.

    ``rate``, ``maturity``: ``revive_rate``, ``revive_maturity``; ``step``:
    the monitor's first step; ``with_gradients``: the snapshots' layout.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        rate: float,
        maturity: int,
        step: int,
        with_gradients: bool,
    ):
        self._model = model
        self._rate, self._maturity, self._start = rate, maturity, step
        self._layout = metadata.snapshot_plugin_data(with_gradients=with_gradients)
        self._replacers: dict[str, utility.Replacer] = {}
        self._graph: dict[str, tuple] = {}

    def choose(self, tag: str, module: torch.nn.Module, codes, step: int):
        """The units of ``tag`` (the output of ``module``) to replace at
        ``step``, from its latest snapshot ``codes``; sorted, maybe empty.

        Raises:
          ValueError: a topology ``revive`` cannot handle.
        """
        if tag not in self._graph:  # traced once: the topology does not change
            producer = revive_lib.producer_of(self._model, module)
            self._graph[tag] = producer, revive_lib.outgoing(self._model, producer)
        std = codec.decode_snapshot(np.asarray(codes), self._layout)[metadata.STD]
        incoming, outgoing = magnitudes(*self._graph[tag])
        if tag not in self._replacers:
            self._replacers[tag] = utility.Replacer(
                len(std), rate=self._rate, maturity=self._maturity, step=self._start
            )
        value = utility.contribution(std, incoming, outgoing)
        return self._replacers[tag].replace(value, step)
