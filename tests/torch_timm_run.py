"""timm CNNs under the torch monitor, for test_torch_timm (a second venv).

timm imports torchvision, whose PyPI wheels do not load beside the CPU torch
of the main venv, so this runs in the interpreter ``TB_DEADNEURONS_TIMM_PYTHON``
names (torch + torchvision + timm, no TensorFlow): ``python -m
tests.torch_timm_run OUT_DIR``. For each model (``pretrained=False``) it
plants dead channels through a ``BatchNormAct2d``'s beta, builds a
``DeadNeuronMonitor`` with no options and prints one JSON line: per model,
per series, the width logged, the channel count of that module's output
(an independent forward hook, axis 1 of ``[B, C, H, W]``) and the dead units
of the default view.
"""

from __future__ import annotations

import json
import sys

import timm
import torch

from tb_deadneurons.analysis import classify
from tb_deadneurons.torch import DeadNeuronMonitor

# model -> (the BatchNormAct2d whose channels are planted dead, channels)
PLANTED = {
    "efficientnet_b0": ("blocks.1.0.bn1", [3, 50]),
    "mobilenetv3_small_100": ("blocks.1.0.bn1", [2, 40]),
}


def channels_of(model, tags, x) -> dict:
    """Tag -> axis-1 size of its module's output on ``x``."""
    found, handles = {}, []

    def record(tag):
        def hook(module, args, out):
            found.setdefault(tag, out.shape[1])  # returns None: output kept

        return hook

    for tag in tags:
        module = model.get_submodule(tag.split("@")[0])
        handles.append(module.register_forward_hook(record(tag)))
    model.eval()
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return found


def run(name: str, out_dir: str) -> dict:
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=10)
    norm, planted = PLANTED[name]
    with torch.no_grad():
        model.get_submodule(norm).bias[planted] = -1e4
    x = torch.randn(4, 3, 64, 64)
    with DeadNeuronMonitor(model, f"{out_dir}/{name}", probe_data=x) as monitor:
        snapshot = dict(monitor.last_snapshot)
    channels = channels_of(model, list(snapshot), x)
    return {
        "planted": {f"{norm}.act": planted},
        "series": {
            tag: {
                "width": int(codes.shape[1]),
                "channels": int(channels[tag]),
                "dead": classify.revivable_units(codes, with_gradients=False),
            }
            for tag, codes in snapshot.items()
        },
    }


if __name__ == "__main__":
    print(json.dumps({name: run(name, sys.argv[1]) for name in PLANTED}))
