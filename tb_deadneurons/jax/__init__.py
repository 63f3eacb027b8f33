"""JAX / Flax writer: ``DeadNeuronMonitor`` (no TensorFlow, no Keras, no torch)."""

from tb_deadneurons.jax.monitor import DeadNeuronMonitor

__all__ = ["DeadNeuronMonitor"]
