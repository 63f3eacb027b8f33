"""Which modules a ``DeadNeuronMonitor`` watches, and how their outputs read.

Activation modules are recognised by class name (``ACTIVATIONS``), so the
activation modules of third-party model code (Hugging Face's ``act``
modules such as ``NewGELUActivation``) count without importing that code.
Functional activations (``F.relu`` inside ``forward``) are no module and
cannot be hooked.
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
}

# Modules after which an output's units sit on axis 1 (channels-first).
_CHANNELS_FIRST = (
    torch.nn.modules.conv._ConvNd,
    torch.nn.modules.batchnorm._BatchNorm,
    torch.nn.modules.instancenorm._InstanceNorm,
    torch.nn.GroupNorm,
    torch.nn.modules.pooling._MaxPoolNd,
    torch.nn.modules.pooling._AvgPoolNd,
    torch.nn.modules.pooling._AdaptiveAvgPoolNd,
    torch.nn.modules.pooling._AdaptiveMaxPoolNd,
    torch.nn.Dropout1d,
    torch.nn.Dropout2d,
    torch.nn.Dropout3d,
)


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


def _find(named: dict, item) -> tuple[str, torch.nn.Module]:
    if isinstance(item, torch.nn.Module):
        found = [n for n, m in named.items() if m is item]
    elif isinstance(item, str):
        found = checks.path_matches(item, named, ".")
    else:
        raise ValueError(f"modules: expected names or modules; got {item!r}")
    if len(found) != 1:
        what = "matches several modules" if found else "is not a module of the model"
        raise ValueError(f"modules: {item!r} {what} {found or list(named)[:20]}")
    return found[0], named[found[0]]


def select(model: torch.nn.Module, requested) -> dict[str, torch.nn.Module]:
    """Qualified name -> module to watch; ``requested`` None means the default.

    Raises:
      ValueError: a name that is unknown or ambiguous, an item that is
        neither a name nor a module, or no activation module to watch.
    """
    named = {n: m for n, m in model.named_modules() if n}
    if requested is None:
        chosen = {n: m for n, m in named.items() if activation_name(m)}
        if not chosen:
            raise ValueError(
                "modules: the model has no activation module (nn.ReLU, nn.GELU, "
                "...); functional activations (F.relu in forward) cannot be "
                "hooked: use an nn.ReLU module, or pass modules=[...] naming the "
                "layer before it"
            )
        return chosen
    if isinstance(requested, (str, torch.nn.Module)) or not list(requested):
        raise ValueError(
            f"modules must be a non-empty list of names or modules; got {requested!r}"
        )
    return dict(_find(named, item) for item in requested)


def unit_axis(producer: torch.nn.Module | None, rank: int) -> int:
    """Where the units sit in an output of ``rank`` made after ``producer``."""
    return 1 if rank > 2 and isinstance(producer, _CHANNELS_FIRST) else -1
