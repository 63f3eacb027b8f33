"""Which modules a ``DeadNeuronMonitor`` watches, and how their outputs read.

Activation modules are recognised by class name (``ACTIVATIONS``), so the
activation modules of third-party model code (Hugging Face's ``act``
modules such as ``NewGELUActivation``) count without importing that code;
what the monitor watches by default is derived from the probe pass
(``discover``), which also sees functional activations.
"""

from __future__ import annotations

import torch

from tb_deadneurons.format import checks

# Class name -> the activation name recorded in the metadata (Keras's names,
# so readers and hints treat both writers alike).
ACTIVATIONS = {
    "ReLU": "relu",
    "ReLU6": "relu6",
    "LeakyReLU": "leaky_relu",
    "PReLU": "prelu",
    "RReLU": "rrelu",
    "ELU": "elu",
    "CELU": "celu",
    "SELU": "selu",
    "GELU": "gelu",
    "SiLU": "silu",
    "Mish": "mish",
    "Tanh": "tanh",
    "Sigmoid": "sigmoid",
    "Hardtanh": "hard_tanh",
    "Hardsigmoid": "hard_sigmoid",
    "Hardswish": "hard_swish",
    "Softplus": "softplus",
    "Softsign": "softsign",
    "LogSigmoid": "log_sigmoid",
    "Tanhshrink": "tanh_shrink",
    # transformers.activations
    "GELUActivation": "gelu",
    "NewGELUActivation": "gelu",
    "FastGELUActivation": "gelu",
    "QuickGELUActivation": "gelu",
    "GELUTanh": "gelu",
    "PytorchGELUTanh": "gelu",
    "AccurateGELUActivation": "gelu",
    "ClippedGELUActivation": "gelu",
    "SiLUActivation": "silu",
    "MishActivation": "mish",
    "ReLUSquaredActivation": "relu",
    "LaplaceActivation": "laplace",
    # timm.layers.activations
    "Swish": "silu",
    "HardSwish": "hard_swish",
    "HardSigmoid": "hard_sigmoid",
}


def activation_name(module: torch.nn.Module) -> str:
    """The recorded activation name of ``module`` ("" if not an activation)."""
    return ACTIVATIONS.get(type(module).__name__, "")


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The user's module inside DDP/DataParallel and ``torch.compile`` wrappers."""
    while True:
        if isinstance(
            model,
            (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel),
        ):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


INPUT_SUFFIX = ":input"


def _find(named: dict, item) -> tuple[str, str]:
    where = "output"
    if isinstance(item, str) and item.endswith(INPUT_SUFFIX):
        item, where = item[: -len(INPUT_SUFFIX)], "input"
    if isinstance(item, torch.nn.Module):
        found = [n for n, m in named.items() if m is item]
    elif isinstance(item, str):
        found = checks.path_matches(item, named, ".")
    else:
        raise ValueError(f"modules: expected names or modules; got {item!r}")
    if len(found) != 1:
        what = "matches several modules" if found else "is not a module of the model"
        raise ValueError(f"modules: {item!r} {what} {found or list(named)[:20]}")
    return found[0], where


def select(model: torch.nn.Module, requested) -> list[tuple[str, str]] | None:
    """``(qualified name, "output" or "input")`` per named module, or None.

    ``requested`` None means the default (units found from the probe pass,
    ``discover``). A name ending in ``":input"`` watches what the module
    reads (its first positional argument) instead of what it returns.

    Raises:
      ValueError: a name that is unknown or ambiguous, an item that is
        neither a name nor a module, or an empty list.
    """
    if requested is None:
        return None
    if isinstance(requested, (str, torch.nn.Module)) or not list(requested):
        raise ValueError(
            f"modules must be a non-empty list of names or modules; got {requested!r}"
        )
    named = {n: m for n, m in model.named_modules() if n}
    return [_find(named, item) for item in requested]
