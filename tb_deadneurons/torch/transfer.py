"""``HostCopy``: a snapshot's rows on their way to the host, read when ready.

On CUDA the copy goes into pinned memory with ``non_blocking=True`` and an
event marks its end on the current stream, so the training thread goes on
dispatching steps while the probe pass and the copy run behind them on the
GPU; ``ready`` asks the event without waiting, ``read`` waits for it. Since
the copy is queued after the probe pass and before the next training step
on the same stream, the values are those of the step that asked for them.
Elsewhere (CPU) the copy is made at once and is always ready.
"""

from __future__ import annotations

import numpy as np
import torch


class HostCopy:
    """Starts copying the 1-D ``values`` to the host."""

    def __init__(self, values: torch.Tensor):
        if values.device.type == "cuda":
            self._host = torch.empty(values.shape, dtype=values.dtype, pin_memory=True)
            self._host.copy_(values, non_blocking=True)
            self._done = torch.cuda.Event()
            self._done.record()
        else:
            self._host, self._done = values.cpu(), None

    def ready(self) -> bool:
        """Whether ``read`` would return without waiting."""
        return self._done is None or self._done.query()

    def read(self) -> np.ndarray:
        """The values on the host (waits for the copy where it runs)."""
        if self._done is not None:
            self._done.synchronize()
        return self._host.numpy()
