"""The Keras 3 writer, on every backend: ``DeadNeuronCallback`` and revival.

``callback`` (the callback), ``probe`` (the probe pass), ``trace`` (which
tensors are units, from one traced pass), ``discovery`` (the layer walk
and ``layers=``), ``revive`` (ReDo-style re-initialisation),
``private`` (every private Keras API used, with why). TensorFlow only under
Keras's TensorFlow backend. Names are imported lazily so that importing
this package does not import Keras.
"""

__all__ = ["DeadNeuronCallback"]


def __getattr__(name):
    if name == "DeadNeuronCallback":
        from tb_deadneurons.keras.callback import DeadNeuronCallback

        return DeadNeuronCallback
    raise AttributeError(f"module 'tb_deadneurons.keras' has no attribute {name!r}")
