"""Revive dead units of a Keras 3 model (ReDo, Sokar et al. 2023).

``revive(model, layer, units, optimizer)`` re-initialises the incoming weights
of ``units`` with the layer's own kernel initializer (fresh draw), zeroes their
bias, zeroes their outgoing weights in every layer that consumes them and, when
``optimizer`` is given, zeroes the optimizer's slot variables (Adam's m and v,
SGD momentum, ...) of exactly the weight entries it changed. Because the
outgoing weights are zero, the model computes the same outputs right after
wherever the revived units output zero (dead ReLU units); what a dormant unit
contributed, or a saturated unit's constant, is dropped with its weights.

Supported: ``Dense`` and ``Conv1D/2D/3D`` (either ``data_format``) producers
with an element-wise activation, inside a functional or ``Sequential`` model
(its layer order is its graph), followed by any chain of element-wise layers
(Dropout family, Activation, ReLU, LeakyReLU, ELU, PReLU, ...), pooling and
global pooling over the non-unit axes, and Flatten, ending in ``Dense`` or
``Conv`` (groups=1) consumers. Everything else - normalisation, merges,
reshapes, custom or nested layers, a path to a model output, shared layers -
raises ``ValueError`` before anything is changed.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from tb_deadneurons.keras import private, trace

_ELEMENTWISE_ACTIVATIONS = frozenset(
    "linear relu relu6 leaky_relu elu selu gelu tanh sigmoid hard_sigmoid "
    "hard_silu hard_swish silu swish softplus softsign exponential mish celu "
    "log_sigmoid sparse_plus squareplus tanh_shrink hard_tanh soft_shrink "
    "hard_shrink threshold".split()
)


def _keras():
    import keras

    return keras


_LAYER_KINDS = {
    "dense": "Dense",
    "conv": "Conv1D Conv2D Conv3D",
    "elementwise": "Dropout SpatialDropout1D SpatialDropout2D SpatialDropout3D "
    "GaussianNoise GaussianDropout AlphaDropout Identity ActivityRegularization "
    "ReLU LeakyReLU ELU PReLU",
    "pooling": "MaxPooling1D MaxPooling2D MaxPooling3D AveragePooling1D "
    "AveragePooling2D AveragePooling3D GlobalMaxPooling1D GlobalMaxPooling2D "
    "GlobalMaxPooling3D GlobalAveragePooling1D GlobalAveragePooling2D "
    "GlobalAveragePooling3D",
    "norm": "BatchNormalization LayerNormalization GroupNormalization "
    "UnitNormalization RMSNormalization",
}


def _layer_sets(keras) -> dict[str, tuple]:
    return {
        kind: tuple(getattr(keras.layers, n) for n in names.split())
        for kind, names in _LAYER_KINDS.items()
    }


def _is(layer, kinds) -> bool:
    # Exact types: a subclass may override call() and break the index mapping.
    return type(layer) in kinds


def _activation_name(fn) -> str:
    return getattr(fn, "__name__", type(fn).__name__)


def _graph(model):
    """The functional graph of ``model`` (a Sequential's is its layer chain)."""
    graph = private.functional_graph(model)
    if graph is None:
        raise ValueError(
            f"model {model.name!r} has no layer graph (build it with an Input, "
            "or use a functional/Sequential model)"
        )
    return graph


def _single_node(graph, layer):
    nodes = private.nodes_in(graph, layer)
    if len(nodes) != 1:
        raise ValueError(
            f"layer {layer.name!r} is called {len(nodes)} times in the model; "
            "shared layers are not supported"
        )
    return nodes[0]


def _dims(tensor) -> tuple[int, ...]:
    # Unknown non-batch sizes become 1: masks are constant along them.
    return tuple(1 if d is None else int(d) for d in tensor.shape[1:])


def _profile(mask: np.ndarray, axis: int, layer) -> np.ndarray:
    """The unit profile of ``mask`` along ``axis``; raises if it mixes units."""
    others = tuple(a for a in range(mask.ndim) if a != axis % mask.ndim)
    profile = mask.any(axis=others)
    if not np.array_equal(mask.all(axis=others), profile):
        raise ValueError(
            f"layer {layer.name!r} mixes revived and other units on axis {axis}"
        )
    return profile


def _channel_axis(layer) -> int:
    fmt = getattr(layer, "data_format", "channels_last")
    return 0 if fmt == "channels_first" else -1


def _kernel_and_bias(layer):
    keras = _keras()
    if getattr(layer, "lora_enabled", False) or getattr(
        layer, "quantization_mode", None
    ):
        raise ValueError(f"layer {layer.name!r} is LoRA-enabled or quantized")
    kernel = layer.kernel
    bias = layer.bias if getattr(layer, "use_bias", False) else None
    expected = [w for w in (kernel, bias) if w is not None]
    if not isinstance(kernel, keras.Variable) or len(layer.weights) != len(expected):
        raise ValueError(f"layer {layer.name!r} has weights other than kernel/bias")
    return kernel, bias


def _plan_outgoing(graph, out, mask: np.ndarray, sets, edits: list) -> None:
    """Appends ``(variable, bool mask)`` zero-edits for what ``out`` feeds."""
    if any(out is t for t in graph.outputs):
        raise ValueError(
            f"revived units reach model output {private.producer(out).name!r}"
            " without a weighted layer in between"
        )
    for node in private.outbound_nodes(out):
        layer = node.operation
        if not any(t is out for t in node.arguments.keras_tensors) or not any(
            node is n for n in private.nodes_in(graph, layer)
        ):
            continue  # another output of a shared layer, or outside this model
        if len(node.arguments.keras_tensors) != 1:
            raise ValueError(f"revived units feed merge layer {layer.name!r}")
        if len(node.outputs) != 1:
            raise ValueError(f"revived units feed multi-output layer {layer.name!r}")
        nxt = node.outputs[0]
        if _is(layer, sets["norm"]):
            raise ValueError(
                f"revived units feed normalisation layer {layer.name!r}; "
                "its statistics would change"
            )
        if _is(layer, sets["elementwise"]) or (
            _is(layer, (_keras().layers.Activation,))
            and _activation_name(layer.activation) in _ELEMENTWISE_ACTIVATIONS
        ):
            _plan_outgoing(graph, nxt, mask, sets, edits)
        elif _is(layer, sets["pooling"]):
            axis = _channel_axis(layer)
            profile = _profile(mask, axis, layer)
            shape = _dims(nxt)
            view = [1] * len(shape)
            view[axis] = profile.size
            new = np.broadcast_to(profile.reshape(view), shape)
            _plan_outgoing(graph, nxt, np.array(new), sets, edits)
        elif _is(layer, (_keras().layers.Flatten,)):
            if any(d is None for d in out.shape[1:]):
                raise ValueError(f"Flatten {layer.name!r} input has unknown size")
            if _channel_axis(layer) == 0 and mask.ndim > 1:
                mask = np.moveaxis(mask, 0, -1)  # what Flatten does to its input
            _plan_outgoing(graph, nxt, mask.reshape(-1), sets, edits)
        elif _is(layer, sets["dense"]) or (
            _is(layer, sets["conv"]) and layer.groups == 1
        ):
            _single_node(graph, layer)
            kernel, _ = _kernel_and_bias(layer)
            axis = -1 if _is(layer, sets["dense"]) else _channel_axis(layer)
            rows = _profile(mask, axis, layer)
            zero = np.zeros(kernel.shape, dtype=bool)
            zero[..., rows, :] = True
            edits.append((kernel, zero, None))
        else:
            raise ValueError(
                f"revived units feed layer {layer.name!r} "
                f"({type(layer).__name__}), which revive() does not support"
            )


def _check_optimizer(optimizer, variables) -> list:
    """The optimizer's slot lists; ValueError unless it trains ``variables``.

    Resetting the slots of an optimizer that does not hold the layer's
    weights (a string, another model's optimizer) would leave the real one's
    moments in place while reporting success.
    """
    if optimizer is None:
        return []
    if not isinstance(optimizer, _keras().optimizers.Optimizer):
        raise ValueError(
            f"optimizer must be a keras.optimizers.Optimizer or None; got {optimizer!r}"
        )
    slots = private.optimizer_slots(optimizer)
    if getattr(optimizer, "built", False) and slots:
        _, index_of, _ = slots[0]
        foreign = [v.path for v in variables if v.trainable and index_of(v) is None]
        if foreign:
            raise ValueError(
                f"optimizer does not train {foreign}: pass the optimizer of the "
                "model being revived (model.optimizer)"
            )
    return slots


def _fresh_initializer(init):
    # An unseeded Keras initializer replays one seed: a revived unit would get
    # its first weights back. Draw a new seed from numpy's global state so
    # keras.utils.set_random_seed still makes runs reproducible.
    if hasattr(init, "get_config") and "seed" in init.get_config():
        seed = int(np.random.randint(0, 2**31 - 1))
        return type(init).from_config({**init.get_config(), "seed": seed})
    return init


def outgoing(model, layer) -> list[tuple[object, np.ndarray]]:
    """The kernels that read the units of ``layer`` (a ``Dense``/``ConvND``).

    Returns ``(kernel, owner)`` per consumer: ``owner`` is an int array of
    the kernel's shape holding, per entry, the unit whose revival zeroes it
    (-1: none), as ``revive`` plans it.

    Raises:
      ValueError: as ``revive`` does for a topology it cannot handle.
    """
    sets = _layer_sets(_keras())
    graph = _graph(model)
    _check_layer(graph, layer, sets)
    owners: dict[int, tuple] = {}
    for unit in range(int(layer.kernel.shape[-1])):
        out, mask = _unit_mask(graph, layer, sets, unit)
        edits: list = []
        _plan_outgoing(graph, out, mask, sets, edits)
        for var, where, _ in edits:
            _, owner = owners.setdefault(id(var), (var, np.full(var.shape, -1)))
            owner[where] = unit
    return list(owners.values())


def revive(model, layer, units: Iterable[int], optimizer=None) -> list[int]:
    """Re-initialises ``units`` of ``layer`` so that ``model``'s outputs stay put.

    Args:
      model: a built functional or ``Sequential`` Keras 3 model.
      layer: a top-level ``Dense`` or ``Conv1D/2D/3D`` layer of ``model``, or
        its name.
      units: indices of the units (Dense) or channels (Conv) to revive.
      optimizer: if given, its slot variables for the changed weight entries
        are reset (moments to zero; an EMA copy to the new weights).

    Returns:
      The sorted, de-duplicated unit indices that were revived.

    Raises:
      ValueError: an unknown layer, a unit out of range, or a topology that
        cannot be handled safely (the message names the layer). Nothing is
        changed when it is raised.
    """
    sets = _layer_sets(_keras())
    graph = _graph(model)
    if isinstance(layer, str):
        layer = model.get_layer(layer)
    _check_layer(graph, layer, sets)
    kernel, bias = _kernel_and_bias(layer)
    chosen = _check_units(units, int(kernel.shape[-1]))
    edits = _plan(graph, layer, kernel, bias, chosen, sets)
    slots = _check_optimizer(optimizer, [var for var, _, _ in edits])
    # Everything is validated; compute every new value, then assign.
    for var, new in _new_values(edits, slots):
        var.assign(new)
    return chosen


def revive_site(model, site, units: Iterable[int], optimizer=None) -> list[int]:
    """Revives ``units`` of a watched series (a ``trace.Site``), where safe.

    A layer's output (called once): ``revive``. A gated product
    ``act(gate(x)) * up(x)`` read by ``down`` (keras-hub Llama/Mistral/
    Gemma/Qwen): ``revive_gated``.

    Raises:
      ValueError: any other kind of series (a functional activation read by
        a projection, an RNN, ``TimeDistributed``, a shared layer's call),
        naming it; nothing is changed.
    """
    if site.where == "output" and site.once and not trace.is_opaque(site.layer):
        return revive(model, site.layer, units, optimizer)
    if site.where == "input" and site.gate is not None and site.up is not None:
        if not site.once:
            raise ValueError(
                f"series {site.tag!r}: its gate, up or down projection is called "
                "more than once; revive cannot change one call"
            )
        return revive_gated(site.gate, site.up, site.layer, units, optimizer)
    raise ValueError(
        f"series {site.tag!r} ({type(site.layer).__name__} {site.where}, call "
        f"{site.call}) is no layer output or gated product revive() can change "
        "without changing the model's outputs"
    )


def revive_gated(gate, up, down, units: Iterable[int], optimizer=None) -> list[int]:
    """Re-initialises gated units ``act(gate(x)) * up(x)`` read by ``down``.

    Unit i: column i of ``gate``'s and ``up``'s kernels drawn afresh from
    their initializers, their biases zeroed, row i of ``down``'s kernel
    zeroed (so the model's outputs stay put), and the optimizer's slots of
    exactly those entries reset.

    Raises:
      ValueError: a layer that is not a plain ``Dense`` (LoRA, quantized,
        other weights), widths that do not match, a unit out of range.
    """
    dense = _keras().layers.Dense
    for layer in (gate, up, down):
        if type(layer) is not dense:
            raise ValueError(
                f"layer {layer.name!r} ({type(layer).__name__}) is not Dense"
            )
    width = int(gate.kernel.shape[-1])
    if int(up.kernel.shape[-1]) != width or int(down.kernel.shape[0]) != width:
        raise ValueError(
            f"gate {gate.name!r}, up {up.name!r} and down {down.name!r} "
            "disagree on the number of units"
        )
    chosen = _check_units(units, width)
    edits: list = []
    for layer in (gate, up):
        kernel, bias = _kernel_and_bias(layer)
        cols = np.zeros(kernel.shape, dtype=bool)
        cols[..., chosen] = True
        init = _fresh_initializer(layer.kernel_initializer)
        fresh = _keras().ops.convert_to_numpy(
            init(tuple(kernel.shape), dtype=kernel.dtype)
        )
        edits.append((kernel, cols, fresh))
        if bias is not None:
            bias_mask = np.zeros(bias.shape, dtype=bool)
            bias_mask[chosen] = True
            edits.append((bias, bias_mask, None))
    kernel, _ = _kernel_and_bias(down)
    rows = np.zeros(kernel.shape, dtype=bool)
    rows[chosen] = True
    edits.append((kernel, rows, None))
    slots = _check_optimizer(optimizer, [var for var, _, _ in edits])
    for var, new in _new_values(edits, slots):
        var.assign(new)
    return chosen


def _check_layer(graph, layer, sets) -> None:
    if not any(layer is op for op in graph.operations):
        raise ValueError(f"layer {layer.name!r} is not a top-level layer of the model")
    if not (_is(layer, sets["dense"]) or _is(layer, sets["conv"])):
        raise ValueError(
            f"layer {layer.name!r} ({type(layer).__name__}) is not Dense or "
            "Conv1D/2D/3D"
        )
    if _activation_name(layer.activation) not in _ELEMENTWISE_ACTIVATIONS:
        raise ValueError(
            f"layer {layer.name!r} has activation "
            f"{_activation_name(layer.activation)!r}, which is not element-wise"
        )


def _check_units(units, n_units: int) -> list[int]:
    """Sorted, de-duplicated unit indices; ValueError for bad ones."""
    units = list(units)
    if not all(
        isinstance(u, (int, np.integer)) and not isinstance(u, bool) for u in units
    ):
        raise ValueError(f"units must be integers; got {units!r}")
    chosen = sorted({int(u) for u in units})
    if chosen and not (0 <= chosen[0] and chosen[-1] < n_units):
        raise ValueError(f"units {chosen} out of range for {n_units} units")
    return chosen


def _unit_mask(graph, layer, sets, units):
    """``(layer's output tensor, bool mask of its shape)``: True on ``units``
    (an index or a list) along the layer's unit axis."""
    out = _single_node(graph, layer).outputs[0]
    axis = -1 if _is(layer, sets["dense"]) else _channel_axis(layer)
    mask = np.zeros(_dims(out), dtype=bool)
    index = [slice(None)] * mask.ndim
    index[axis] = units
    mask[tuple(index)] = True
    return out, mask


def _plan(graph, layer, kernel, bias, chosen, sets) -> list:
    """``(variable, bool mask, fill or None)`` edits: incoming weights drawn
    afresh, bias and outgoing weights zeroed."""
    out, mask = _unit_mask(graph, layer, sets, chosen)
    edits: list = []
    _plan_outgoing(graph, out, mask, sets, edits)

    incoming = np.zeros(kernel.shape, dtype=bool)
    incoming[..., chosen] = True
    init = _fresh_initializer(layer.kernel_initializer)
    fresh = _keras().ops.convert_to_numpy(init(tuple(kernel.shape), dtype=kernel.dtype))
    edits.append((kernel, incoming, fresh))
    if bias is not None:
        bias_mask = np.zeros(bias.shape, dtype=bool)
        bias_mask[chosen] = True
        edits.append((bias, bias_mask, None))
    return edits


def _new_values(edits, slots) -> list:
    """``(variable, new value)`` for every edited weight and optimizer slot.

    Raises:
      ValueError: a factored slot (e.g. Adafactor) that cannot be reset
        entry by entry; raised before anything is assigned.
    """
    to_numpy = _keras().ops.convert_to_numpy
    assigns = []
    new_values = {}
    for var, where, fill in edits:
        old = to_numpy(var)
        new = np.where(where, 0 if fill is None else fill, old).astype(old.dtype)
        assigns.append((var, new))
        new_values[id(var)] = new
    for var, where, _ in edits:
        for lst, index_of, name in slots:
            index = index_of(var)
            slot = None if index is None else lst[index]
            if slot is None:
                continue
            if tuple(slot.shape) != tuple(var.shape):
                raise ValueError(
                    f"optimizer slot {slot.path!r} is factored "
                    f"({tuple(slot.shape)} vs {tuple(var.shape)}); cannot "
                    "reset single entries"
                )
            is_average = name == "_model_variables_moving_average"
            old = to_numpy(slot)
            new = np.where(where, new_values[id(var)] if is_average else 0, old)
            assigns.append((slot, new.astype(old.dtype)))
    return assigns
