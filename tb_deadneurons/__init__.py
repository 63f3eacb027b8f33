"""tb_deadneurons: find dead, dormant and revived units in TensorBoard.

Writers: ``summary`` (the TF op and its numpy twin), ``DeadNeuronCallback``
(Keras 3 on any backend; TensorFlow only under its TensorFlow backend) and
``tb_deadneurons.torch`` (PyTorch, no TensorFlow). Readers: the TensorBoard
plugin, ``tb-deadneurons report`` and ``tb_deadneurons.api`` (numpy, no
TensorFlow). Keras names are imported lazily so that ``import
tb_deadneurons`` stays light.

The package has one folder per part: ``format/`` (what is written),
``analysis/`` (what it means), ``board/`` (the TensorBoard side), and one
writer folder per framework (``keras/``, ``tf/``, ``torch/``).
"""

import importlib

__version__ = "0.2.0"

__all__ = ["DeadNeuronCallback", "revive", "__version__"]

# Modules that moved into a part's folder, still importable by their old name
# as attributes (``from tb_deadneurons import events``).
_MOVED = {"events": "tb_deadneurons.format.events"}


def __getattr__(name):
    # Lazy: the Keras writer imports Keras, which the torch and jax writers
    # and the readers must not pull in.
    if name == "DeadNeuronCallback":
        from tb_deadneurons.keras.callback import DeadNeuronCallback

        return DeadNeuronCallback
    if name == "revive":
        from tb_deadneurons.keras.revive import revive

        return revive
    if name in _MOVED:
        return importlib.import_module(_MOVED[name])
    raise AttributeError(f"module 'tb_deadneurons' has no attribute {name!r}")
