"""Which tensors of the probe pass are units: one eager pass, traced.

A unit is a feature of a tensor that a non-linearity made and that a weight
layer (Dense, EinsumDense, Conv) then reads (DESIGN.md, "What a unit is").
``find_sites`` runs the probe batch once, eagerly, before the first
snapshot, with every layer's ``call`` and the backend's non-linear ops
shadowed (``private.shadowed_calls`` / ``shadowed_ops``), and notes where
such tensors appear. Each place is a ``Site``; the compiled probe catches
exactly those tensors and nothing runs between snapshots.

Sites, by kind (the tag in brackets):

- a layer call that made a non-linear tensor and returned it (``path``):
  a Dense/Conv with an activation, an Activation/ReLU layer, a block whose
  own ``call`` ends in ``keras.ops.relu``; a leaf layer with a non-linear
  ``activation`` attribute is one whatever ops it used (PReLU);
- a weight layer's input that a non-linearity made inside a block's
  ``call`` and no layer returned (``path:input``): ``down(gelu(up(x)))``,
  and the gated product ``up(x) * silu(gate(x))`` (``keras.ops.multiply``)
  of keras-hub's Llama/Mistral/Gemma/Qwen feed-forward layers;
- an RNN layer (LSTM, GRU, SimpleRNN, inside Bidirectional too): its
  outputs at every timestep, and a ``TimeDistributed`` layer wrapping a
  layer with an activation: its output over every timestep.

A non-linear tensor a layer's own ``call`` reads with ``keras.ops.einsum``
(``matmul``, ...) against one of its variables is no site (keras-hub's
Mixtral, Qwen-MoE experts: ``einsum("eti,eih->eth", act, w)`` reads each
expert's slice against its own kernel): ``find_sites`` names it as unseen,
and the layer's ``activation`` attribute no longer makes its output a site
(what it returns is the product, not the activation).

Every call of a layer is its own site: ``path``, ``path@2``, ... (the
PyTorch monitor's rule). Softmax is no non-linearity here and the model's
outputs are left out by default. Casts, ``keras.ops.multiply`` (``a * b``
too), ``square`` and ``power`` (``a ** 2``: a squared ReLU) carry a
non-linear tensor on; anything else (add, norm, reshape) ends it.
"""

from __future__ import annotations

import dataclasses
import re
import warnings

import keras

from tb_deadneurons.keras import discovery, private

INPUT = ":input"


@dataclasses.dataclass
class Site:
    """One watched tensor: call ``call`` (1-based, per pass) of ``layer``;
    its output, or with ``where == "input"`` its first input.

    ``gate``/``up``: the weight layers a gated product was made from (the
    activated and the linear operand), for revival; None otherwise.
    """

    tag: str
    layer: keras.layers.Layer
    call: int
    where: str
    activation: str
    unit_axis: int = -1
    gate: keras.layers.Layer | None = None
    up: keras.layers.Layer | None = None
    axis_known: bool = False
    once: bool = True  # its layer (and gate, up) ran once in the pass


def tag_of(path: str, where: str, call: int) -> str:
    """``path``, ``path:input``, with ``@k`` for the k-th call (k > 1)."""
    return path + (INPUT if where == "input" else "") + (f"@{call}" if call > 1 else "")


def is_rnn(layer) -> bool:
    return isinstance(layer, keras.layers.RNN)


def _timedistributed_inner(layer):
    return layer.layer if isinstance(layer, keras.layers.TimeDistributed) else None


def is_opaque(layer) -> bool:
    """Layers whose sub-layers run in a loop (per timestep): watched whole."""
    return is_rnn(layer) or _timedistributed_inner(layer) is not None


_WEIGHT_TYPES = ("Dense", "EinsumDense", "Conv1D", "Conv2D", "Conv3D")


def is_weight(layer) -> bool:
    """Dense, EinsumDense, Conv1D/2D/3D, or TimeDistributed of one of them."""
    inner = _timedistributed_inner(layer)
    return isinstance(
        inner or layer, tuple(getattr(keras.layers, n) for n in _WEIGHT_TYPES)
    )


def _einsum_axis(equation: str, of_input: bool) -> int | None:
    """The input's contracted axis (or the output's kernel axis), counted
    from the end; None if that is not exactly one axis."""
    match = re.fullmatch(r"([a-z.]+),([a-z]+)->([a-z.]+)", equation.replace(" ", ""))
    if not match:
        return None
    inp, kernel, out = match.groups()
    side, other = (inp, out) if of_input else (out, inp)
    axes = [i for i, c in enumerate(side) if c in kernel and c not in other]
    if len(axes) != 1 or "." in side[axes[0] :]:
        return None
    return axes[0] - len(side)


def feature_axis(layer, of_input: bool, rank: int) -> int | None:
    """The axis of ``layer``'s input (or output) that holds its features;
    None where that is not one axis (an EinsumDense that contracts two)."""
    inner = _timedistributed_inner(layer)
    if inner is not None:
        axis = feature_axis(inner, of_input, rank - 1)
        return None if axis is None else (axis + 1 if axis >= 0 else axis)
    if type(layer).__name__ == "EinsumDense":
        return _einsum_axis(layer.equation, of_input)
    if getattr(layer, "data_format", None) == "channels_first":
        return 1
    return -1


class _Trace:
    """The state of one traced pass: marks on non-linear tensors, sites."""

    def __init__(self, paths: dict, requested: dict | None, batchnorms: list):
        self.paths = paths  # id(layer) -> path
        self.requested = requested  # id(layer) -> {"output", "input"} or None
        self.forced = {id(b) for b in batchnorms}
        self.marks: dict[int, tuple] = {}  # id -> (name, serial, gate, up)
        self.origins: dict[int, keras.layers.Layer] = {}  # id -> weight layer
        self.keep: list = []  # tensors whose ids are keys above
        self.serial = 0
        self.calls: dict[int, int] = {}
        self.sites: list[Site] = []
        self.tensors: dict[str, object] = {}  # tag -> tensor (this pass)
        self.site_of: dict[int, Site] = {}  # id(tensor) -> its site
        self.stack: list = []  # the layers whose ``call`` runs, innermost last
        # (id(layer), mark serial, "<path> (<activation>, read by <op>)"): a
        # non-linear tensor a layer's own ``call`` read against a variable
        self.unseen: list[tuple] = []

    # -- ops -----------------------------------------------------------------

    def op(self, group: str, name: str, original):
        nonlinear = name in private.NONLINEAR_OPS.get(group, ())

        def traced(*args, **kwargs):
            out = original(*args, **kwargs)
            if nonlinear:
                self._mark(out, name, self.origins.get(id(args[0])), None)
            elif name in ("cast", "square", "power"):
                self._carry(args[0], out)
            elif name == "multiply" and len(args) == 2:
                self._multiply(*args, out)
            elif name in private.PRODUCT_OPS.get(group, ()):
                self._product_read(name, args)
            return out

        return traced

    def _product_read(self, op: str, args) -> None:
        """Notes a non-linear tensor read against a variable inside a layer
        that is no weight layer (whose input ``_read`` handles) and not in an
        RNN (whose state its recurrent kernel reads: the RNN is the site)."""
        layer = self.stack[-1] if self.stack else None
        if layer is None or is_weight(layer) or any(map(is_opaque, self.stack)):
            return
        if not any(isinstance(a, keras.Variable) for a in args):
            return
        for a in args:
            mark = self.marks.get(id(a))
            if mark is not None:
                name = (
                    f"{self.paths.get(id(layer), layer.name)} ({mark[0]}, read by {op})"
                )
                self.unseen.append((id(layer), mark[1], name))

    def _mark(self, out, name, gate, up):
        self.serial += 1
        self.keep.append(out)
        self.marks[id(out)] = (name, self.serial, gate, up)

    def _carry(self, x, out):
        self.keep.append(out)
        if id(x) in self.marks:
            self.marks[id(out)] = self.marks[id(x)]
        if id(x) in self.origins:
            self.origins[id(out)] = self.origins[id(x)]

    def _multiply(self, a, b, out):
        ma, mb = self.marks.get(id(a)), self.marks.get(id(b))
        if ma is None and mb is None:
            return
        if ma is None:
            a, b, ma, mb = b, a, mb, ma
        other_is_linear = (
            mb is None and keras.ops.is_tensor(b) and tuple(b.shape) == tuple(a.shape)
        )
        if other_is_linear:
            self._mark(out, f"{ma[0]}_gated", ma[2], self.origins.get(id(b)))
        else:
            self._mark(out, ma[0], ma[2], ma[3])

    def product(self, name, original):
        def traced(a, b):
            out = original(a, b)
            if out is NotImplemented:
                return out
            if name == "__pow__":
                self._carry(a, out)
            else:
                self._multiply(a, b, out)
            return out

        return traced

    # -- layer calls ---------------------------------------------------------

    def call(self, layer, original):
        def traced(*args, **kwargs):
            self.stack.append(layer)
            try:
                return run(*args, **kwargs)
            finally:
                self.stack.pop()

        def run(*args, **kwargs):
            if id(layer) in self.forced:
                kwargs["training"] = True
            k = self.calls[id(layer)] = self.calls.get(id(layer), 0) + 1
            start = self.serial
            inp = args[0] if args else kwargs.get("inputs")
            if _is_unit_tensor(inp):
                self._read(layer, k, inp)
            if is_rnn(layer) and self._wants(layer, "output", True):

                def seen(seq):
                    name = discovery.activation_name(layer) or ""
                    self._site(layer, k, "output", seq, name)
                    return seq

                return private.call_for_sequences(layer, original, args, kwargs, seen)
            out = original(*args, **kwargs)
            self._returned(layer, k, out, start)
            return out

        return traced

    def _wants(self, layer, where: str, by_default: bool) -> bool:
        if self.requested is None:
            return by_default
        return where in self.requested.get(id(layer), ())

    def _read(self, layer, k, inp):
        site = self.site_of.get(id(inp))
        if site is not None and not site.axis_known and is_weight(layer):
            axis = feature_axis(layer, True, len(inp.shape))
            if axis is not None:  # the consumer says where the features are
                site.unit_axis, site.axis_known = axis, True
        mark = self.marks.get(id(inp))
        default = is_weight(layer) and mark is not None and site is None
        if self._wants(layer, "input", default):
            new = self._site(layer, k, "input", inp, mark[0] if mark else "")
            if mark is not None:
                new.gate, new.up = mark[2], mark[3]

    def _returned(self, layer, k, out, start):
        if is_weight(layer) and keras.ops.is_tensor(out):
            self.keep.append(out)
            self.origins[id(out)] = layer
        if not _is_unit_tensor(out) or id(out) in self.site_of:
            return
        mark = self.marks.get(id(out))
        made_here = mark is not None and mark[1] > start
        inner = _timedistributed_inner(layer)
        named = discovery.activation_name(inner if inner is not None else layer)
        projected = any(i == id(layer) and s > start for i, s, _ in self.unseen)
        by_rule = (discovery.watched_by_default(layer) and not projected) or (
            inner is not None and named not in (None, *discovery.NOT_UNITS)
        )
        if self._wants(layer, "output", made_here or by_rule):
            self._site(layer, k, "output", out, named or (mark[0] if mark else ""))

    def _site(self, layer, k, where, tensor, activation) -> Site:
        tag = tag_of(self.paths[id(layer)], where, k)
        site = Site(tag, layer, k, where, activation)
        axis = feature_axis(layer, where == "input", len(tensor.shape))
        site.axis_known = axis is not None and (
            where == "input" or hasattr(layer, "data_format") or is_weight(layer)
        )
        site.unit_axis = -1 if axis is None else axis
        if axis is None:
            warnings.warn(
                f"DeadNeuronCallback: the unit axis of {tag!r} is ambiguous "
                f"(shape {tuple(tensor.shape)}); taking -1, pass "
                f"unit_axis={{{tag!r}: axis}} to choose",
                stacklevel=2,
            )
        self.sites.append(site)
        self.tensors[tag] = tensor
        self.site_of[id(tensor)] = site
        self.keep.append(tensor)
        return site


def _is_unit_tensor(value) -> bool:
    return keras.ops.is_tensor(value) and len(value.shape) >= 2


def find_sites(model, x, requested, batchnorms) -> tuple[list[Site], dict, set, list]:
    """Runs ``x`` through ``model`` once, eagerly, and finds the sites.

    ``requested``: None for the default rule, else ``id(layer) ->
    {"output", "input"}`` (``layers=``: every call of those layers). Returns
    ``(sites, tag -> tensor, ids of the model's output tensors, unseen)``:
    ``unseen`` names the non-linear tensors read inside a layer's ``call``
    against its variables, which no site holds.
    """
    walked = discovery.walk(model)
    paths = {id(la): p for p, la in walked}
    inside = _inside_opaque(model)
    trace = _Trace(paths, requested, batchnorms)
    layers = [la for _, la in walked if id(la) not in inside]
    with (
        private.shadowed_calls(layers, trace.call),
        private.shadowed_ops(trace.op),
        private.shadowed_products(keras.tree.flatten(x)[0], trace.product),
        keras.StatelessScope(),
    ):
        y_pred = model(x, training=False)
    final = {id(t) for t in keras.tree.flatten(y_pred)}
    for site in trace.sites:
        used = [la for la in (site.layer, site.gate, site.up) if la is not None]
        site.once = all(trace.calls.get(id(la)) == 1 for la in used)
    unseen = list(dict.fromkeys(name for _, _, name in trace.unseen))
    return trace.sites, trace.tensors, final, unseen


def _inside_opaque(model) -> set[int]:
    """Ids of the layers below an RNN or TimeDistributed layer."""
    inside: set[int] = set()

    def below(layer):
        for child in discovery.children(layer):
            if id(child) not in inside:
                inside.add(id(child))
                below(child)

    for _, layer in discovery.walk(model):
        if is_opaque(layer):
            below(layer)
    return inside
