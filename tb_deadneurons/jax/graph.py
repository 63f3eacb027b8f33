"""The probe call as a flat graph: trace once, find units, evaluate in jit.

``trace`` turns ``fn(variables, x)`` into a ``Graph``: one ``Node`` per
primitive application of its jaxpr, with plain ``jit``/``closed_call``/
``checkpoint`` sub-jaxprs inlined (so a weight layer inside a jitted helper is
still seen) and activation calls (``jax.nn.relu`` is a ``custom_jvp_call``
around ``jit[name=relu]``, ``nnx.silu`` a ``jit[name=silu]``) kept as one
opaque node each. ``evaluate`` replays the graph on new arguments, under
``jax.jit`` or not, and hands chosen values to a callback the moment they
are made (to measure them, or to add a zero a gradient is taken against).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
from jax.extend import core as jax_core

# Names of jax.nn / flax activation functions as they appear on named calls.
ACTIVATIONS = frozenset(
    (
        "relu relu6 gelu silu swish sigmoid tanh elu celu selu leaky_relu "
        "softplus mish hard_tanh hard_sigmoid hard_silu hard_swish log_sigmoid "
        "squareplus soft_sign sparse_plus sparse_sigmoid"
    ).split()
)
_INLINED = ("pjit", "jit", "closed_call", "core_call", "remat", "checkpoint")

Ref = tuple  # (node index, output index), or ("lit", value) for a literal


@dataclasses.dataclass
class Node:
    """An input leaf (``kind="input"``), a constant, or one primitive call.

    ``path``: for an input leaf of the variables, the module path of the
    variable ("block/fc" for ``params/block/fc/kernel``); None for data.
    ``stack``: the Flax name stack the call was made under ("" if none).
    """

    kind: str
    eqn: object = None
    operands: tuple = ()
    shapes: tuple = ()
    stack: str = ""
    path: str | None = None
    position: int = -1
    value: object = None

    @property
    def prim(self) -> str:
        return self.eqn.primitive.name if self.eqn is not None else self.kind


@dataclasses.dataclass
class Graph:
    nodes: list
    outputs: list
    out_tree: object
    num_inputs: int


def call_name(eqn) -> str:
    """The function name of a named call (``relu`` for ``jax.nn.relu``), else ""."""
    name = eqn.params.get("name")
    if isinstance(name, str):
        return name
    inner = eqn.params.get("call_jaxpr") or eqn.params.get("fun_jaxpr")
    if inner is not None:
        for sub in getattr(inner, "jaxpr", inner).eqns:
            found = call_name(sub)
            if found:
                return found
    return ""


def _activation_name(eqn) -> str:
    name = call_name(eqn)
    return name if name in ACTIVATIONS else ""


def activation_of(node: Node) -> str:
    """The activation name of an opaque activation-call node, else ""."""
    return _activation_name(node.eqn) if node.kind == "call" else ""


def _inner(eqn):
    """The sub-jaxpr to inline (as ClosedJaxpr), or None to keep ``eqn`` whole."""
    if eqn.primitive.name not in _INLINED or _activation_name(eqn):
        return None
    inner = eqn.params.get("jaxpr") or eqn.params.get("call_jaxpr")
    if isinstance(inner, jax_core.Jaxpr):
        return jax_core.ClosedJaxpr(inner, ())
    return inner if isinstance(inner, jax_core.ClosedJaxpr) else None


def _join(prefix: str, stack) -> str:
    stack = str(stack or "")
    return f"{prefix}/{stack}" if prefix and stack else prefix or stack


def trace(fn: Callable, args: tuple, paths: list) -> Graph:
    """The flat graph of ``fn(*args)``; ``paths[i]`` names input leaf ``i``."""
    closed, out_shape = jax.make_jaxpr(fn, return_shape=True)(*args)
    nodes: list[Node] = []
    ins = []
    for i, v in enumerate(closed.jaxpr.invars):
        nodes.append(Node("input", shapes=(v.aval.shape,), path=paths[i], position=i))
        ins.append((i, 0))
    outs = _walk(closed, ins, "", nodes)
    return Graph(nodes, outs, jax.tree_util.tree_structure(out_shape), len(ins))


def _walk(closed, in_refs: list, prefix: str, nodes: list) -> list:
    env = {}
    for v, c in zip(closed.jaxpr.constvars, closed.consts, strict=True):
        nodes.append(Node("const", shapes=(getattr(c, "shape", ()),), value=c))
        env[v] = (len(nodes) - 1, 0)
    env.update(zip(closed.jaxpr.invars, in_refs, strict=True))

    def read(a):
        return ("lit", a.val) if isinstance(a, jax_core.Literal) else env[a]

    for eqn in closed.jaxpr.eqns:
        operands = tuple(read(a) for a in eqn.invars)
        stack = _join(prefix, eqn.source_info.name_stack)
        inner = _inner(eqn)
        if inner is not None:
            outs = _walk(inner, list(operands), stack, nodes)
        else:
            kind = "call" if _activation_name(eqn) else "eqn"
            shapes = tuple(getattr(v.aval, "shape", ()) for v in eqn.outvars)
            nodes.append(Node(kind, eqn, operands, shapes, stack))
            outs = [(len(nodes) - 1, k) for k in range(len(eqn.outvars))]
        env.update(zip(eqn.outvars, outs, strict=True))
    return [read(a) for a in closed.jaxpr.outvars]


def evaluate(graph: Graph, leaves: list, on_value: Callable | None = None):
    """Replays ``graph`` on input ``leaves``; returns the output pytree.

    ``on_value(ref, value)`` is called for every value made; what it returns
    replaces the value for the rest of the graph.
    """
    values = {}

    def read(ref):
        return ref[1] if ref[0] == "lit" else values[ref]

    for i, node in enumerate(graph.nodes):
        if node.kind == "input":
            outs = [leaves[node.position]]
        elif node.kind == "const":
            outs = [node.value]
        else:
            outs = _bind(node.eqn, [read(r) for r in node.operands])
        for k, out in enumerate(outs):
            values[(i, k)] = out if on_value is None else on_value((i, k), out)
    outputs = [read(r) for r in graph.outputs]
    return jax.tree_util.tree_unflatten(graph.out_tree, outputs)


def _bind(eqn, args: list) -> list:
    """``eqn``'s primitive applied to ``args``, as ``jax.core.eval_jaxpr`` does."""
    prim = eqn.primitive
    params = prim.get_bind_params(eqn.params)
    subfuns = []
    if isinstance(params, tuple):  # jax < 0.7: (subfuns, params)
        subfuns, params = params
    with eqn.ctx.manager:
        outs = prim.bind(*subfuns, *args, **params)
    return outs if prim.multiple_results else [outs]
