"""tb_deadneurons: find dead, dormant and revived units in TensorBoard.

The writer (``summary``, ``DeadNeuronCallback``) needs TensorFlow; the
viewer (the TensorBoard plugin, ``analysis``, the CLI) does not. Keras names
are imported lazily so that ``import tb_deadneurons`` stays light.
"""

# revive.py imports only numpy at import time; importing it eagerly keeps the
# package attribute the function (a lazy import would be shadowed by the
# submodule as soon as anything imports ``tb_deadneurons.revive``).
from tb_deadneurons.revive import revive

__version__ = "0.1.0"

__all__ = ["DeadNeuronCallback", "revive", "__version__"]


def __getattr__(name):
    if name == "DeadNeuronCallback":
        from tb_deadneurons.callback import DeadNeuronCallback

        return DeadNeuronCallback
    raise AttributeError(f"module 'tb_deadneurons' has no attribute {name!r}")
