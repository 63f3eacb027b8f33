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

- ``Layer.call`` shadowed per instance (``shadowed_calls``): Keras has no
  forward hooks, and a subclassed model or a layer inside a block has no
  symbolic output to wire a sub-model from.
- ``keras.src.backend.{nn,numpy,core}`` functions shadowed for the one
  eager discovery pass (``shadowed_ops``): the only place every functional
  activation (``keras.ops.silu``, ``keras.activations.gelu`` held as a
  function, a Dense's ``activation``) passes through; Keras has no op hooks.
- the ``*`` operator of the backend's eager tensor type, for that same
  pass (``shadowed_products``): a product written ``a * b`` never reaches
  ``keras.ops``.
- ``RNN.return_sequences`` set for one call (``call_for_sequences``): the
  only way to see every timestep of a layer that returns its last output.
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
def shadowed_calls(layers, make_call):
    """Within the block, each layer's ``call`` is ``make_call(layer, original)``.

    Instance attributes shadow the class's ``call`` (Keras has no forward
    hooks; ``TimeDistributed`` and ``Bidirectional`` call ``layer.call`` or
    ``layer(...)``, both see the shadow); removed on exit, whatever happens.
    """
    patched = {}
    for layer in layers:
        patched.setdefault(id(layer), layer)
    for layer in patched.values():
        original = type(layer).call.__get__(layer)
        object.__setattr__(layer, "call", make_call(layer, original))
    try:
        yield
    finally:
        for layer in patched.values():
            object.__delattr__(layer, "call")


def call_for_sequences(layer, original, args, kwargs, on_sequence):
    """Calls an RNN layer so that ``on_sequence`` sees every timestep.

    ``return_sequences`` is set for the length of the call (the attribute
    every Keras RNN reads in ``call``): a layer that returns its last output
    only still computes every timestep's. ``on_sequence(outputs)`` returns
    the outputs to go on with (a zero offset added for dL/da); the call
    returns what it would have: those outputs, or their last timestep (the
    order the RNN ran them in, so ``go_backwards`` too), states as they came.
    """
    keep = layer.return_sequences
    object.__setattr__(layer, "return_sequences", True)
    try:
        out = original(*args, **kwargs)
    finally:
        object.__setattr__(layer, "return_sequences", keep)
    states = list(out[1:]) if isinstance(out, (list, tuple)) else None
    sequence = on_sequence(out[0] if states is not None else out)
    result = sequence if keep else sequence[:, -1]
    return result if states is None else [result, *states]


# Keras's ops (``keras.ops.silu``, ``keras.activations.gelu``, a Dense's
# ``activation``) end in these functions of the active backend, looked up on
# the module at every call, so shadowing the module attribute sees every
# functional activation, however the model holds its function.
NONLINEAR_OPS = {
    "nn": "relu relu6 sigmoid sparse_sigmoid softplus softsign silu log_sigmoid "
    "leaky_relu hard_sigmoid hard_silu elu selu gelu celu glu hard_tanh tanh "
    "sparse_plus squareplus".split(),
    "numpy": ["tanh"],
}
PASS_THROUGH_OPS = {"core": ["cast"], "numpy": ["multiply", "square", "power"]}
# Products a layer's own ``call`` may read a non-linear tensor with, against
# one of its variables (keras-hub's mixture of experts: ``ops.einsum``).
PRODUCT_OPS = {"numpy": ["einsum", "matmul", "dot", "tensordot"]}


@contextlib.contextmanager
def shadowed_ops(make_op):
    """Within the block, backend op ``name`` of module ``group`` (``nn``,
    ``numpy``, ``core``) is ``make_op(group, name, original)``.

    Only for the one eager discovery pass: the compiled probe and the
    training step never see it. Restored on exit, whatever happens.
    """
    from keras.src import backend

    saved = []
    for table in (NONLINEAR_OPS, PASS_THROUGH_OPS, PRODUCT_OPS):
        for group, names in table.items():
            module = getattr(backend, group)
            for name in names:
                if hasattr(module, name):
                    original = getattr(module, name)
                    saved.append((module, name, original))
                    setattr(module, name, make_op(group, name, original))
    try:
        yield
    finally:
        for module, name, original in reversed(saved):
            setattr(module, name, original)


@contextlib.contextmanager
def shadowed_products(sample, make_op):
    """Within the block, ``a * b`` and ``a ** b`` on the backend's eager
    tensors (the type of ``sample``) run ``make_op(name, original)`` for
    ``__mul__``, ``__rmul__`` and ``__pow__``: a gated product written with
    ``*`` (keras-hub's Gemma), a squared ReLU with ``**``, go round
    ``keras.ops``. A type that refuses new attributes is left
    alone. Only for the one eager discovery pass; restored on exit.
    """
    cls = type(sample)
    saved = []
    try:
        for name in ("__mul__", "__rmul__", "__pow__"):
            had = name in cls.__dict__
            original = getattr(cls, name)
            try:
                setattr(cls, name, make_op(name, original))
            except TypeError:
                break
            saved.append((name, had, original))
        yield
    finally:
        for name, had, original in reversed(saved):
            if had:
                setattr(cls, name, original)
            else:
                delattr(cls, name)


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
