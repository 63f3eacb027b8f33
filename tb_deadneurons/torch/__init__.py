"""PyTorch writer: ``DeadNeuronMonitor`` and ``revive`` (no TensorFlow, no Keras).

The Lightning callback lives in ``tb_deadneurons.torch.lightning`` (it needs
the optional ``lightning`` package).
"""

from tb_deadneurons.torch.monitor import DeadNeuronMonitor
from tb_deadneurons.torch.revive import revive

__all__ = ["DeadNeuronMonitor", "revive"]
