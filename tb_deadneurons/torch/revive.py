"""Revive dead units of a PyTorch model (ReDo, Sokar et al. 2023).

``revive(model, module, units, optimizer)`` redraws the incoming weights of
``units`` of a ``Linear`` or ``ConvNd`` with the module's default init,
zeroes their bias and their outgoing weights in every module that consumes
them, and zeroes the optimizer state (Adam's moments, SGD's momentum) of
exactly those entries. With zero outgoing weights the model's outputs are
unchanged wherever the revived units output zero (dead ReLU units).

The graph comes from ``torch.fx.symbolic_trace``. Supported between the
producer and its consumers: element-wise activation and dropout modules or
functions, pooling over the spatial axes, and flatten; consumers are
``Linear`` or ``ConvNd`` with ``groups=1``. Anything else -- normalisation,
residual adds, concatenation, reshapes, a path to the model output, a module
called twice, an untraceable model -- raises ``ValueError`` naming the
module, before anything is changed. ``revive_gated`` does the same for a
gated FFN unit (its ``gate`` and ``up`` rows, its ``down`` column), and
``revive_series`` picks between them for a monitor's series.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from tb_deadneurons.format import checks
from tb_deadneurons.torch import modules as modules_lib

_CONV = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)
_ELEMENTWISE_MODULES = (
    torch.nn.Dropout,
    torch.nn.Dropout1d,
    torch.nn.Dropout2d,
    torch.nn.Dropout3d,
    torch.nn.AlphaDropout,
    torch.nn.Identity,
)
_POOL_MODULES = (
    torch.nn.MaxPool1d,
    torch.nn.MaxPool2d,
    torch.nn.MaxPool3d,
    torch.nn.AvgPool1d,
    torch.nn.AvgPool2d,
    torch.nn.AvgPool3d,
    torch.nn.AdaptiveAvgPool1d,
    torch.nn.AdaptiveAvgPool2d,
    torch.nn.AdaptiveAvgPool3d,
    torch.nn.AdaptiveMaxPool1d,
    torch.nn.AdaptiveMaxPool2d,
    torch.nn.AdaptiveMaxPool3d,
)
_ELEMENTWISE_FUNCTIONS = {
    F.relu,
    F.relu6,
    F.leaky_relu,
    F.elu,
    F.selu,
    F.celu,
    F.gelu,
    F.silu,
    F.mish,
    F.hardtanh,
    F.hardswish,
    F.hardsigmoid,
    F.softplus,
    F.softsign,
    F.dropout,
    F.tanh,
    F.sigmoid,
    torch.relu,
    torch.tanh,
    torch.sigmoid,
}
_ELEMENTWISE_METHODS = {"relu", "tanh", "sigmoid", "contiguous"}
_POOL_FUNCTIONS = {
    F.max_pool1d,
    F.max_pool2d,
    F.max_pool3d,
    F.avg_pool1d,
    F.avg_pool2d,
    F.avg_pool3d,
    F.adaptive_avg_pool1d,
    F.adaptive_avg_pool2d,
    F.adaptive_avg_pool3d,
    F.adaptive_max_pool1d,
    F.adaptive_max_pool2d,
    F.adaptive_max_pool3d,
}


def _trace(model):
    try:
        return torch.fx.symbolic_trace(model).graph
    except Exception as e:
        raise ValueError(
            f"cannot trace {type(model).__name__} with torch.fx to find what "
            f"the revived units feed: {type(e).__name__}: {e}"
        ) from e


def _name_of(model, module) -> str:
    for name, m in model.named_modules():
        if m is module:
            return name
    raise ValueError(f"module {module!r:.80} is not in the model")


def _kind(model, node) -> str:
    """'same' (units pass through), 'pool', 'flatten', 'weighted' or ''."""
    if node.op == "call_module":
        m = model.get_submodule(node.target)
        if modules_lib.activation_name(m) or type(m) in _ELEMENTWISE_MODULES:
            return "same"
        if type(m) in _POOL_MODULES:
            return "pool"
        if type(m) is torch.nn.Flatten and m.start_dim == 1 and m.end_dim == -1:
            return "flatten"
        if type(m) is torch.nn.Linear or (type(m) in _CONV and m.groups == 1):
            return "weighted"
    elif node.op == "call_function":
        if node.target in _ELEMENTWISE_FUNCTIONS:
            return "same"
        if node.target in _POOL_FUNCTIONS:
            return "pool"
        if node.target is torch.flatten and _flat_from_1(node):
            return "flatten"
    elif node.op == "call_method":
        if node.target in _ELEMENTWISE_METHODS:
            return "same"
        if node.target == "flatten" and _flat_from_1(node):
            return "flatten"
    return ""


def _flat_from_1(node) -> bool:
    start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
    return start == 1 and len(node.args) <= 2 and "end_dim" not in node.kwargs


def _describe(model, node) -> str:
    if node.op == "call_module":
        kind = type(model.get_submodule(node.target)).__name__
        return f"module {node.target!r} ({kind})"
    if node.op == "call_function":
        return f"function {getattr(node.target, '__name__', node.target)}"
    if node.op == "call_method":
        return f"method .{node.target}()"
    return "the model output"


def _plan(model, node, layout: str, units: list[int], channels: int, edits: list):
    """Appends ``(parameter, index)`` zero-edits for what ``node`` feeds.

    ``layout``: 'last' (units on the last axis), 'first' (channels-first) or
    'flat' (channels-first flattened, each channel a block of rows).
    """
    for user in node.users:
        kind = _kind(model, user)
        tensor_args = [a for a in user.all_input_nodes]
        if kind and tensor_args != [node]:
            kind = ""  # a second tensor input mixes units in
        if kind == "same":
            _plan(model, user, layout, units, channels, edits)
        elif kind == "pool" and layout == "first":
            _plan(model, user, layout, units, channels, edits)
        elif kind == "flatten" and layout == "first":
            _plan(model, user, "flat", units, channels, edits)
        elif kind == "weighted":
            consumer = model.get_submodule(user.target)
            _plan_weights(consumer, user.target, layout, units, channels, edits)
        else:
            raise ValueError(
                f"revived units feed {_describe(model, user)}, which revive() "
                "does not support"
            )


def _plan_weights(consumer, name, layout, units, channels, edits) -> None:
    w = consumer.weight
    if type(consumer) is torch.nn.Linear and layout == "last":
        edits.append((w, (slice(None), units)))
    elif type(consumer) is torch.nn.Linear and layout == "flat":
        if w.shape[1] % channels:
            raise ValueError(f"{name}: {w.shape[1]} inputs are not {channels} blocks")
        block = w.shape[1] // channels
        rows = [u * block + i for u in units for i in range(block)]
        edits.append((w, (slice(None), rows)))
    elif type(consumer) in _CONV and layout == "first":
        edits.append((w, (slice(None), units)))
    else:
        raise ValueError(
            f"revived units reach {name} ({type(consumer).__name__}) along an "
            "axis it does not take them on"
        )


def producer_of(model: torch.nn.Module, module: torch.nn.Module) -> torch.nn.Module:
    """The ``Linear``/``ConvNd`` whose units ``module`` (an activation) outputs.

    Raises:
      ValueError: no such producer through element-wise steps only.
    """
    model = modules_lib.unwrap(model)
    if type(module) is torch.nn.Linear or type(module) in _CONV:
        return module
    name = _name_of(model, module)
    nodes = [
        n for n in _trace(model).nodes if n.op == "call_module" and n.target == name
    ]
    node = nodes[0] if len(nodes) == 1 else None
    while node is not None and _kind(model, node) == "same":
        args = node.all_input_nodes
        node = args[0] if len(args) == 1 else None
    if node is None or node.op != "call_module" or _kind(model, node) != "weighted":
        raise ValueError(
            f"module {name!r} does not follow a Linear/Conv through element-wise "
            "steps only (e.g. a BatchNorm in between)"
        )
    return model.get_submodule(node.target)


def outgoing(model, module) -> list[tuple[torch.Tensor, list[int]]]:
    """The weights that read the units of ``module`` (a ``Linear``/``ConvNd``).

    Returns ``(weight, columns)`` per consumer: ``weight[:, columns]`` are
    the entries that ``revive`` zeroes when it revives every unit, unit-major
    (unit ``u`` owns the ``u``-th block of ``len(columns) // units``).

    Raises:
      ValueError: as ``revive`` does for a topology it cannot handle.
    """
    model = modules_lib.unwrap(model)
    name = _name_of(model, module)
    nodes = [
        n for n in _trace(model).nodes if n.op == "call_module" and n.target == name
    ]
    if len(nodes) != 1:
        raise ValueError(f"module {name!r} is called {len(nodes)} times in forward")
    n_units = module.weight.shape[0]
    layout = "last" if type(module) is torch.nn.Linear else "first"
    edits = []
    _plan(model, nodes[0], layout, list(range(n_units)), n_units, edits)
    return [(w, list(index[1])) for w, index in edits]


def revive(model, module, units, optimizer=None) -> list[int]:
    """Re-initialises ``units`` of ``module`` so that ``model``'s outputs stay put.

    Args:
      model: the ``nn.Module`` (DDP / compile wrappers are looked through).
      module: a ``Linear`` or ``Conv1d/2d/3d`` of ``model``, or its name.
      units: output units (Linear) or channels (Conv) to revive.
      optimizer: if given, its per-parameter state tensors (Adam moments,
        momentum buffers) are zeroed at exactly the changed entries.

    Returns:
      The sorted, de-duplicated unit indices that were revived.

    Raises:
      ValueError: an unknown module, a unit out of range, or a topology
        revive cannot handle (the message names the module). Nothing is
        changed when it is raised.
    """
    model = modules_lib.unwrap(model)
    if isinstance(module, str):
        name, module = module, model.get_submodule(module)
    else:
        name = _name_of(model, module)
    if not (type(module) is torch.nn.Linear or type(module) in _CONV):
        raise ValueError(
            f"module {name!r} ({type(module).__name__}) is not Linear/ConvNd"
        )
    n_units = module.weight.shape[0]
    chosen = sorted(set(checks.unit_indices("units", units, n_units).tolist()))
    nodes = [
        n for n in _trace(model).nodes if n.op == "call_module" and n.target == name
    ]
    if len(nodes) != 1:
        raise ValueError(f"module {name!r} is called {len(nodes)} times in forward")
    layout = "last" if type(module) is torch.nn.Linear else "first"
    edits = []
    try:
        _plan(model, nodes[0], layout, chosen, n_units, edits)
    except ValueError as e:
        raise ValueError(f"revive {name!r}: {e}") from None
    fresh = torch.empty_like(module.weight)
    torch.nn.init.kaiming_uniform_(fresh, a=math.sqrt(5))  # their reset_parameters
    incoming = [(module.weight, (chosen,), fresh[chosen])]
    if module.bias is not None:
        incoming.append((module.bias, (chosen,), 0.0))
    _apply(optimizer, incoming, edits)
    return chosen


def _optimizer_state(optimizer, params) -> dict:
    """Parameter -> its state tensors of the parameter's shape."""
    if optimizer is None:
        return {}
    found = {}
    for p in params:
        bufs = []
        for key, value in optimizer.state.get(p, {}).items():
            if not isinstance(value, torch.Tensor) or value.dim() == 0:
                continue  # step counters
            if value.shape != p.shape:
                raise ValueError(
                    f"optimizer state {key!r} has shape {tuple(value.shape)}, not "
                    f"the parameter's {tuple(p.shape)}: cannot reset single entries"
                )
            bufs.append(value)
        found[p] = bufs
    return found


def revive_series(model, site, units, optimizer=None) -> list[int]:
    """Revives ``units`` of a monitor series (a ``discover.Site``).

    An activation module's output: its producer's units (``producer_of``,
    ``revive``). A gated FFN's product ``act(gate(x)) * up(x)`` read by a
    ``down`` Linear only: ``revive_gated``. Anything else raises
    ``ValueError`` naming the series, before anything is changed.
    """
    if site.gated:
        gate, up = site.gated
        return revive_gated(model, gate, up, site.module, units, optimizer)
    if site.where == "output" and modules_lib.activation_name(site.module):
        producer = producer_of(model, site.module)
        return revive(model, producer, units, optimizer)
    raise ValueError(
        f"series {site.tag!r} ({site.layer_class}) is neither an activation "
        "module's output nor a gated product act(gate(x)) * up(x) of Linear "
        "layers read once, by one Linear: revive() cannot keep the outputs"
    )


def revive_gated(model, gate, up, down, units, optimizer=None) -> list[int]:
    """Re-initialises units of a gated FFN ``down(act(gate(x)) * up(x))``.

    The units' rows of ``gate`` and ``up`` are redrawn (their biases zeroed)
    and their columns of ``down`` zeroed, so the model's outputs are unchanged
    at revival; optimizer state at those entries is zeroed as in ``revive``.

    Raises:
      ValueError: a layer that is not ``nn.Linear``, widths that disagree, or
        a unit out of range; nothing is changed.
    """
    layers = {"gate": gate, "up": up, "down": down}
    for role, layer in layers.items():
        if type(layer) is not torch.nn.Linear:
            raise ValueError(
                f"revive_gated: {role} is {type(layer).__name__}, not nn.Linear"
            )
    width = gate.out_features
    if up.out_features != width or down.in_features != width:
        raise ValueError(
            f"revive_gated: gate {gate.out_features}, up {up.out_features} and "
            f"down {down.in_features} units disagree"
        )
    chosen = sorted(set(checks.unit_indices("units", units, width).tolist()))
    incoming = []
    for layer in (gate, up):
        fresh = torch.empty_like(layer.weight)
        torch.nn.init.kaiming_uniform_(fresh, a=math.sqrt(5))
        incoming.append((layer.weight, (chosen,), fresh[chosen]))
        if layer.bias is not None:
            incoming.append((layer.bias, (chosen,), 0.0))
    edits = [(down.weight, (slice(None), chosen))]
    _apply(optimizer, incoming, edits)
    return chosen


def _apply(optimizer, incoming: list, edits: list) -> None:
    """Sets ``incoming`` values, zeroes ``edits``, and their optimizer state."""
    state = _optimizer_state(
        optimizer, [p for p, *_ in incoming] + [p for p, _ in edits]
    )
    with torch.no_grad():
        for p, index in edits:
            p[index] = 0.0
        for p, index, value in incoming:
            p[index] = value
        for p, index in [(p, i) for p, i, _ in incoming] + edits:
            for buf in state.get(p, []):
                buf[index] = 0.0
