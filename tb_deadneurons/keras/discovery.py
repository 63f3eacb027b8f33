"""Which layers of a Keras 3 model to watch, and under which tag.

The walk follows what the model holds, not its class: ``model.layers`` for
models (Sequential, Functional, subclassed), and for any other layer the
sub-layers it holds as attributes, in lists/tuples or in dicts (how
keras-hub's transformer blocks and hand-written residual blocks hold their
``Dense``/``Activation`` layers). Tags are paths of layer names from the
outer model down (``transformer_layer_0/feedforward_intermediate_dense``).

``watched_by_default`` is the attribute half of the default rule (a leaf
layer whose ``activation`` is non-linear: a block that carries an
``activation`` attribute for its inner layers is not one); the rest -- which
tensors a non-linearity made, who reads them -- is found by ``trace``. Softmax outputs
(attention weights, class probabilities) are distributions, not units.
Backend-agnostic: imports Keras only.
"""

from __future__ import annotations

import keras

from tb_deadneurons.format import checks

# Layers whose output is itself a non-linearity, whatever their arguments.
_ACTIVATION_LAYERS = {
    "ReLU": "relu",
    "LeakyReLU": "leaky_relu",
    "ELU": "elu",
    "PReLU": "prelu",
    "Softmax": "softmax",
}
_LINEAR = frozenset({"linear", "identity"})
# Outputs that are distributions over their units, not units.
NOT_UNITS = frozenset({"softmax", "log_softmax"})


def activation_name(layer) -> str | None:
    """The name of the non-linearity a layer's output follows, or None."""
    cls = type(layer).__name__
    if cls == "ReLU" and getattr(layer, "negative_slope", 0):
        return "leaky_relu"  # keras.layers.ReLU(negative_slope=...) leaks
    if cls in _ACTIVATION_LAYERS:
        return _ACTIVATION_LAYERS[cls]
    fn = getattr(layer, "activation", None)
    if isinstance(fn, str):
        name = fn
    elif fn is None or not callable(fn):
        return None
    else:
        name = getattr(fn, "__name__", type(fn).__name__)
    return None if name in _LINEAR else name


def _held_layers(value) -> list:
    """Layers held in ``value``: a layer, or lists/tuples/dicts of them."""
    if isinstance(value, keras.layers.Layer):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [layer for item in value for layer in _held_layers(item)]
    return []


def children(layer) -> list:
    """The layers ``layer`` holds directly, in the order it holds them."""
    if isinstance(layer, keras.Model):
        return list(layer.layers)
    return [child for v in vars(layer).values() for child in _held_layers(v)]


def walk(model) -> list[tuple[str, keras.layers.Layer]]:
    """``(path, layer)`` for every layer below ``model``, each once, depth first."""
    out: list = []
    seen = {id(model)}

    def visit(layer, prefix: str) -> None:
        for child in children(layer):
            if id(child) in seen:
                continue  # shared, or a reference back up the tree
            seen.add(id(child))
            path = prefix + child.name
            out.append((path, child))
            visit(child, path + "/")

    visit(model, "")
    return out


def watched_by_default(layer) -> bool:
    """A leaf layer whose output follows a non-linearity other than softmax."""
    name = activation_name(layer)
    return bool(name) and name not in NOT_UNITS and not children(layer)


def _matches(item, layers: list) -> list:
    if isinstance(item, keras.layers.Layer):
        return [(p, la) for p, la in layers if la is item]
    by_path = dict(layers)
    return [(p, by_path[p]) for p in checks.path_matches(item, by_path, "/")]


def select(model, requested) -> dict[str, keras.layers.Layer]:
    """Tag → layer to consider; ``requested`` None means the default rule.

    ``requested`` items are full paths, unique path suffixes (``"dense"``,
    ``"transformer_layer_0/feedforward_intermediate_dense"``) or layer objects.

    Raises:
      ValueError: an item that is no layer of the model, or a suffix that
        names several (the message lists them).
    """
    layers = walk(model)
    if requested is None:
        return {p: la for p, la in layers if watched_by_default(la)}
    chosen = {}
    for item in requested:
        found = _matches(item, layers)
        if not found:
            paths = [p for p, _ in layers]
            shown = ", ".join(paths[:40]) + (", ..." if len(paths) > 40 else "")
            raise ValueError(f"layers: {item!r} is not a layer of the model: {shown}")
        if len(found) > 1:
            raise ValueError(
                f"layers: {item!r} names {len(found)} layers; pass one of "
                f"{[p for p, _ in found]}"
            )
        chosen.update(found[:1])
    return chosen


INPUT_SUFFIX = ":input"


def requested_sites(model, requested) -> dict[int, set[str]]:
    """``id(layer) -> {"output", "input"}`` for ``layers=``: an item ending
    in ``":input"`` (``"block/down:input"``) names that layer's input, any
    other its output; the layer part as ``select`` takes it.

    Raises:
      ValueError: as ``select``.
    """
    wanted: dict[int, set[str]] = {}
    for item in requested:
        where = "output"
        if isinstance(item, str) and item.endswith(INPUT_SUFFIX):
            item, where = item[: -len(INPUT_SUFFIX)], "input"
        for layer in select(model, [item]).values():
            wanted.setdefault(id(layer), set()).add(where)
    return wanted


def check_requested(layers) -> list | None:
    """``layers`` as a list, or None; ValueError naming ``layers`` otherwise."""
    if layers is None:
        return None
    if isinstance(layers, (str, bytes, keras.layers.Layer)) or not hasattr(
        layers, "__iter__"
    ):
        raise ValueError(
            f"layers must be a non-empty list of names or layers; got {layers!r}"
        )
    items = list(layers)
    bad = [i for i in items if not isinstance(i, (str, keras.layers.Layer))]
    if not items or bad:
        raise ValueError(
            f"layers must be a non-empty list of names or layers; got {layers!r}"
        )
    return items
