"""Every private Keras API the writer relies on, in one place, with why.

Keras 3 has no public way to do these things; each is used only through a
function here, so a Keras release that changes one breaks one function
(tests/test_keras_backends.py and the revive tests exercise all of them).
Replaced by public equivalents where Keras has one: ``Model.compute_loss``
(was ``_compute_loss``), ``Functional.operations``/``outputs`` (were
``_operations``/``_outputs``), ``model.layers`` plus attributes for the
layer walk (``discovery``; was ``_flatten_layers``); the callback writes
through ``events.EventWriter`` and no longer reads TensorFlow's private
default-writer state.

Each private API, where it is used, and why there is no public way:

- ``Layer.call`` shadowed per instance (``wrapped_calls``): Keras has no
  forward hooks, and a subclassed model or a layer inside a block has no
  symbolic output to wire a sub-model from.
- ``Sequential._functional`` (``functional_graph``): the graph behind a
  Sequential model.
- ``Functional._nodes``, ``Layer._inbound_nodes`` / ``_outbound_nodes``,
  ``keras.src.ops.function.make_node_key`` (``nodes_in``,
  ``outbound_nodes``): which calls of a layer belong to this model; revive
  follows a unit's outgoing edges.
- ``KerasTensor._keras_history`` (``producer``): the layer that produced a
  symbolic tensor.
- ``Optimizer._trainable_variables``, ``_var_key``,
  ``_trainable_variables_indices`` (``optimizer_slots``): which slot variable
  (Adam's m and v, momentum) belongs to which model variable.
"""

from __future__ import annotations

import contextlib


@contextlib.contextmanager
def wrapped_calls(layers: dict, batchnorms: list, deltas: dict | None):
    """Within the block, each watched layer's first output lands in the dict.

    ``layers``: tag → layer whose output to keep (plus ``deltas[tag]`` when
    given, a zero offset to take dL/da at). ``batchnorms``: layers to run
    with ``training=True`` (batch statistics) whatever the model's mode.
    Instance attributes shadow the class's ``call``; they are removed on
    exit, whatever happens.
    """
    captured: dict = {}
    forced = {id(la) for la in batchnorms}
    patched = {}
    for layer in [*layers.values(), *batchnorms]:
        if id(layer) not in patched:
            patched[id(layer)] = layer
    tags = {id(la): t for t, la in layers.items()}
    for layer in patched.values():
        object.__setattr__(
            layer,
            "call",
            _wrapper(layer, tags.get(id(layer)), forced, captured, deltas),
        )
    try:
        yield captured
    finally:
        for layer in patched.values():
            object.__delattr__(layer, "call")


def _wrapper(layer, tag, forced, captured, deltas):
    original = type(layer).call.__get__(layer)
    force = id(layer) in forced

    def call(*args, **kwargs):
        if force:
            kwargs["training"] = True
        out = original(*args, **kwargs)
        if tag is None or tag in captured or not _is_tensor(out):
            return out
        if deltas is not None:
            out = out + deltas[tag]
        captured[tag] = out
        return out

    return call


def _is_tensor(value) -> bool:
    import keras

    return keras.ops.is_tensor(value) and len(value.shape) >= 2


def functional_graph(model):
    """The Functional graph of a functional or Sequential model, or None."""
    import keras

    graph = model._functional if isinstance(model, keras.Sequential) else model
    return graph if hasattr(graph, "_nodes") else None


def nodes_in(graph, layer) -> list:
    """The nodes (calls) of ``layer`` that belong to ``graph``."""
    from keras.src.ops.function import make_node_key

    return [
        node
        for i, node in enumerate(layer._inbound_nodes)
        if make_node_key(layer, i) in graph._nodes
    ]


def outbound_nodes(tensor) -> list:
    """The nodes that consume the symbolic ``tensor``'s producer."""
    return list(producer(tensor)._outbound_nodes)


def producer(tensor):
    """The layer that produced a symbolic (Keras) tensor."""
    return tensor._keras_history.operation


def optimizer_slots(optimizer) -> list:
    """``(optimizer, slot list, index_of)`` per per-variable slot list.

    ``index_of(variable)`` is the variable's index in the lists, or None when
    the optimizer does not train it.
    """
    import keras

    found = []
    for opt in (optimizer, getattr(optimizer, "inner_optimizer", None)):
        if opt is None or not getattr(opt, "built", False):
            continue
        n = len(opt._trainable_variables)

        def index_of(var, opt=opt):
            return opt._trainable_variables_indices.get(opt._var_key(var))

        for name, value in vars(opt).items():
            if name in ("_variables", "_trainable_variables") or not isinstance(
                value, (list, tuple)
            ):
                continue
            if len(value) == n and all(
                v is None or isinstance(v, keras.Variable) for v in value
            ):
                found.append((value, index_of, name))
    return found
