"""Which values of the probe graph are units, along which axis, named how.

A unit is a feature of a tensor that a non-linearity made and that a weight
layer then reads (``DESIGN.md``). Here: every ``dot_general`` or
``conv_general_dilated`` with one operand taken from the variables is a
weight layer; its other operand is followed back through pooling, reshapes
and scaling by constants to the value a non-linearity made -- an activation
call (``nn.relu``, ``jax.nn.gelu``, ``nnx.silu``), ``tanh``/``logistic``,
``max(x, 0)``, an activation written out (``x * sigmoid(x)``), or a gated
product ``act(gate(x)) * up(x)``. A value no non-linearity made (the model's
input, a LayerNorm output, attention probabilities read by ``einsum`` with
values, the model's output) is no unit. The unit axis is the one the weight
reads (Dense: the contracted axis; Conv: the input feature axis), or the
last axis (Flax is channels-last) when a reshape (``Flatten``) lies between.
A ``dot_general`` with batch dimensions on the variable (stacked experts
``einsum("ecd,edf->ecf", x, w)``, per-head weights) makes each slice of its
output with another weight: no one axis holds the units of what a
non-linearity makes of it, so ``find`` lists those as unseen, never as a
series (what such a weight reads is a unit as any other).

A series is named by the weight layer whose output the non-linearity
transforms (``Dense_0`` for ``nn.relu(nn.Dense(32)(x))``); under linen, an
activation made inside its own module (not an ancestor of that layer) is
named by that module. A second series under one name gets ``@2``, ``@3``.
"""

from __future__ import annotations

import dataclasses

from tb_deadneurons.jax import graph as graph_lib

# Carry a variable to the weight op that reads it.
_PASS_WEIGHT = frozenset(
    "convert_element_type reshape transpose broadcast_in_dim squeeze "
    "expand_dims copy copy_p reduce_precision".split()
)
# Between a non-linearity and the weight layer reading it: keep the unit axis
# (pooling, casts, and squaring: Primer's ``relu(x) ** 2``).
_KEEP_AXIS = frozenset(
    "convert_element_type copy copy_p reduce_precision reduce_window_max "
    "reduce_window_sum reduce_window reduce_window_min integer_pow square".split()
)
# ... or move it (Flatten, transposes).
_MOVE_AXIS = frozenset("reshape transpose squeeze expand_dims broadcast_in_dim".split())
_NONLINEAR = {"tanh": "tanh", "logistic": "sigmoid", "erf": "gelu", "erfc": "gelu"}
_INLINE_NAMES = {"tanh": "gelu", "erf": "gelu", "erfc": "gelu", "logistic": "silu"}
_FRONTIER_LIMIT = 2000  # nodes visited looking back for a weight layer


@dataclasses.dataclass(frozen=True)
class Unit:
    """A watched value: graph ``ref``, series ``tag``, negative ``axis``."""

    ref: tuple
    tag: str
    axis: int
    units: int
    layer_class: str
    activation: str


class _Finder:
    def __init__(self, graph: graph_lib.Graph, strip_root: bool):
        self.g = graph
        self.strip_root = strip_root
        self.weights = {}  # node index -> (module path, act operand, axis, class)
        self.batched = set()  # those whose variable has batch dimensions
        for i, node in enumerate(graph.nodes):
            found = self._weight_op(i, node)
            if found:
                self.weights[i] = found

    def node(self, ref):
        return None if ref[0] == "lit" else self.g.nodes[ref[0]]

    def is_const(self, ref) -> bool:
        node = self.node(ref)
        return node is None or node.kind == "const"

    def shape(self, ref) -> tuple:
        node = self.node(ref)
        return () if node is None else tuple(node.shapes[ref[1]])

    def variable(self, ref) -> str | None:
        """The module path of the variable ``ref`` carries, else None."""
        node = self.node(ref)
        while node is not None and node.prim in _PASS_WEIGHT:
            node = self.node(node.operands[0])
        return node.path if node is not None and node.kind == "input" else None

    def _weight_op(self, index: int, node):
        if node.prim == "dot_general":
            (lc, rc), (lb, rb) = node.eqn.params["dimension_numbers"]
            lhs, rhs = node.operands
            for weight, act, contract, batch in (
                (rhs, lhs, lc, rb),
                (lhs, rhs, rc, lb),
            ):
                path = self.variable(weight)
                if path is not None and self.variable(act) is None:
                    axis = contract[0] if len(contract) == 1 else -1
                    cls = "Dense" if len(contract) == 1 and not lb else "Einsum"
                    if batch:
                        self.batched.add(index)
                    return path, act, axis, cls
        if node.prim == "conv_general_dilated":
            path = self.variable(node.operands[1])
            if path is not None:
                spec = node.eqn.params["dimension_numbers"].lhs_spec
                return path, node.operands[0], spec[1], "Conv"
        return None

    def source(self, ref, axis: int):
        """The value a weight operand comes from, past pooling and reshapes."""
        moved = False
        while True:
            node = self.node(ref)
            if node is None or node.kind in ("input", "const"):
                return None, 0
            if node.prim in _KEEP_AXIS | _MOVE_AXIS:
                moved |= node.prim in _MOVE_AXIS
                ref = node.operands[0]
            elif node.prim in ("mul", "div") and self.is_const(node.operands[1]):
                ref = node.operands[0]
            elif node.prim == "mul" and self.is_const(node.operands[0]):
                ref = node.operands[1]
            else:
                break
        rank = len(self.shape(ref))
        if rank < 2:
            return None, 0
        return ref, (-1 if moved else axis % rank - rank)

    def frontier(self, ref) -> set:
        """Weight-op nodes reachable back from ``ref`` without passing one."""
        seen, todo, found = set(), [ref], set()
        while todo and len(seen) < _FRONTIER_LIMIT:
            r = todo.pop()
            if r[0] == "lit" or r[0] in seen:
                continue
            seen.add(r[0])
            if r[0] in self.weights:
                found.add(r[0])
            else:
                todo.extend(self.g.nodes[r[0]].operands)
        return found

    def inline_name(self, ref) -> str:
        """``gelu``/``silu`` for an activation written out as ``x * f(x)``."""
        seen, todo = set(), [ref]
        while todo and len(seen) < _FRONTIER_LIMIT:
            r = todo.pop()
            if r[0] == "lit" or r[0] in seen or r[0] in self.weights:
                continue
            seen.add(r[0])
            node = self.g.nodes[r[0]]
            if node.prim in _INLINE_NAMES:
                return _INLINE_NAMES[node.prim]
            todo.extend(node.operands)
        return "mul"

    def activation(self, ref, nested: bool = False):
        """``(activation name, pre-activation ref)`` if a non-linearity made
        ``ref``, else None."""
        node = self.node(ref)
        if node is None or node.kind in ("input", "const"):
            return None
        if node.kind == "call":
            return graph_lib.activation_of(node), node.operands[0]
        if node.prim in _NONLINEAR and node.prim != "erf":
            return _NONLINEAR[node.prim], node.operands[0]
        if node.prim == "max" and any(map(self.is_const, node.operands)):
            a, b = node.operands
            return "relu", (b if self.is_const(a) else a)
        if node.prim == "mul" and not nested:
            return self._product(ref, *node.operands)
        return None

    def _product(self, ref, a, b):
        fa, fb = self.frontier(a), self.frontier(b)
        if fa and fa == fb:  # x * f(x): gelu or silu written out
            return self.inline_name(ref), a
        for gate, f_other in ((a, fb), (b, fa)):
            act = self.activation(gate, nested=True)
            if act is not None:
                # act(gate(x)) * up(x) is gated; act(x) * a parameter is not.
                return (f"{act[0]}_glu" if f_other else act[0]), act[1]
        return None

    def tag_of(self, ref, pre) -> str:
        producers = self.frontier(pre)
        layer = self.weights[max(producers)][0] if producers else ""
        stack = self.node(ref).stack
        if self.strip_root:
            stack = stack.split("/", 1)[1] if "/" in stack else ""
        if stack and not (layer == stack or layer.startswith(stack + "/")):
            return stack  # an activation module of its own
        return layer or stack or "activation"


def find(graph: graph_lib.Graph, strip_root: bool) -> tuple[list[Unit], list[str]]:
    """Every unit series of ``graph``, in the order the forward pass makes them,
    and the units no series can hold (made by a batched weight): one
    ``"<name> (<activation>, made by <weight>)"`` each.

    ``strip_root``: drop the first name-stack component (linen's top module).
    """
    finder = _Finder(graph, strip_root)
    found, unseen = {}, {}  # ref -> what ``_named`` needs / its description
    for _, (_, act_ref, axis, cls) in sorted(finder.weights.items()):
        ref, unit_axis = finder.source(act_ref, axis)
        if ref is None or ref in found or ref in unseen:
            continue
        act = finder.activation(ref)
        if act is None:
            continue
        producers = finder.frontier(act[1])
        batched = [finder.weights[p][0] for p in producers if p in finder.batched]
        if batched:
            weight = batched[0] or "a variable of the top module"
            unseen[ref] = f"{finder.tag_of(ref, act[1])} ({act[0]}, made by {weight})"
            continue
        layer_class = finder.weights[max(producers)][3] if producers else cls
        found[ref] = (finder.tag_of(ref, act[1]), unit_axis, layer_class, act[0])
    return _named(finder, found), list(unseen.values())


def _named(finder: _Finder, found: dict) -> list[Unit]:
    """``Unit``s of ``found`` (ref -> tag, axis, class, activation), a repeated
    tag numbered ``@2``, ``@3`` ..."""
    units, names = [], {}
    for ref in sorted(found):
        tag, axis, layer_class, activation = found[ref]
        names[tag] = names.get(tag, 0) + 1
        tag = tag if names[tag] == 1 else f"{tag}@{names[tag]}"
        size = finder.shape(ref)[axis]
        units.append(Unit(ref, tag, axis, size, layer_class, activation))
    return units
