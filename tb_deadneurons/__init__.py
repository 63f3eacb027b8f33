"""tb_deadneurons: find dead, dormant and revived units in TensorBoard.

Writers: ``summary`` (the TF op and its numpy twin), ``DeadNeuronCallback``
(Keras 3 on any backend; TensorFlow only under its TensorFlow backend) and
``tb_deadneurons.torch`` (PyTorch, no TensorFlow). Readers: the TensorBoard
plugin, ``tb-deadneurons report`` and ``tb_deadneurons.api`` (numpy, no
TensorFlow). Keras names are imported lazily so that ``import
tb_deadneurons`` stays light.
"""

# revive.py imports only numpy at import time; importing it eagerly keeps the
# package attribute the function (a lazy import would be shadowed by the
# submodule as soon as anything imports ``tb_deadneurons.revive``).
from tb_deadneurons.revive import revive

__version__ = "0.2.0"

__all__ = ["DeadNeuronCallback", "revive", "__version__"]


def __getattr__(name):
    if name == "DeadNeuronCallback":
        from tb_deadneurons.callback import DeadNeuronCallback

        return DeadNeuronCallback
    raise AttributeError(f"module 'tb_deadneurons' has no attribute {name!r}")
