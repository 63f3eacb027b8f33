"""Which tensors of the probe pass are units: derived from the computation.

One forward pass of the probe batch, at construction only, runs under a
``TorchFunctionMode`` plus hooks on every module. A non-linearity (an
activation module, or ``F.relu``/``torch.tanh``/``Tensor.sigmoid``... called
as a function) starts a *chain*; the chain follows its tensor through
element-wise ops (a product with a same-shaped tensor -- the gated FFN's
``act(gate(x)) * up(x)`` --, dropout, normalisation, transposes, pooling,
flatten; not a sum, which makes a residual stream) until a weight layer
(``Linear``, ``ConvNd``, Hugging Face's ``Conv1D``, an RNN, or
``F.linear``/``F.conv*``) reads it. The
watched tensor is the last one a value-changing element-wise op made (the
product, not the gate half); its unit axis is the axis the weight reads its
features on (Linear: the last, ConvNd: 1), mapped back through transposes
and pooling. RNN outputs (``nn.LSTM``/``GRU``/``RNN``, every timestep) are
units themselves. A chain no weight layer reads (a softmax, an SE gate, the
model output) is no unit. Nothing of this runs after construction: the
probe passes capture the found tensors with plain forward hooks
(``Site.module``, ``Site.where``, ``Site.call``).
"""

from __future__ import annotations

import dataclasses

import torch
from torch.overrides import TorchFunctionMode

from tb_deadneurons.torch import modules as modules_lib

NONLINEAR = frozenset(
    "relu relu_ relu6 leaky_relu leaky_relu_ elu elu_ selu selu_ celu celu_ gelu "
    "silu mish hardtanh hardtanh_ hardswish hardsigmoid softplus softsign tanh "
    "tanh_ sigmoid sigmoid_ prelu rrelu logsigmoid".split()
)
# Element-wise ops that change values: the watched tensor moves on to their
# output (a gated product, a scaling, a padding mask, Primer's squared ReLU).
# A sum ends the chain: ``x + act(y)`` is a residual stream, not units.
MOVE = frozenset(
    "mul mul_ multiply __mul__ __rmul__ __imul__ div div_ true_divide __truediv__ "
    "__itruediv__ neg __neg__ masked_fill masked_fill_ "
    "square square_ pow pow_ __pow__ __ipow__".split()
)
# Ops that keep the values (dropout is off in the probe): where the watched
# tensor itself reaches no hook, their output is captured instead.
SAME = frozenset(
    "dropout dropout1d dropout2d dropout3d alpha_dropout feature_alpha_dropout "
    "contiguous clone to float half bfloat16 type_as detach".split()
)
# Ops that keep each feature where it is.
PASS = SAME | frozenset(
    "layer_norm batch_norm group_norm instance_norm rms_norm "
    "max_pool1d max_pool2d max_pool3d "
    "avg_pool1d avg_pool2d avg_pool3d adaptive_avg_pool1d adaptive_avg_pool2d "
    "adaptive_avg_pool3d adaptive_max_pool1d adaptive_max_pool2d "
    "adaptive_max_pool3d".split()
)
_WEIGHT_FUNCTIONS = {"linear": -1, "conv1d": 1, "conv2d": 1, "conv3d": 1}
# Products that read a tensor against a weight too, but with no feature axis
# we can name: a mixture of experts' experts (``_grouped_mm``, ``bmm`` of
# each row against its expert's slice), ``x @ self.w``. A chain one of them
# reads against a weight is reported as unseen, never watched.
_PRODUCTS = frozenset(
    "matmul __matmul__ __rmatmul__ mm bmm baddbmm addmm einsum _grouped_mm".split()
)
# Ops whose output is (a view or a copy of) part of a weight.
_WEIGHT_VIEWS = frozenset(
    "__getitem__ __get__ index_select select transpose t permute view reshape "
    "contiguous to float half bfloat16 chunk split unbind".split()
)
_RNN = (torch.nn.RNNBase,)
_CONV = (torch.nn.modules.conv._ConvNd,)


@dataclasses.dataclass
class Site:
    """One watched tensor: where the probe passes find it, and its units."""

    tag: str
    module: torch.nn.Module  # the module whose hook sees the tensor
    where: str  # "output" or "input" (its first positional argument)
    call: int  # which call of ``module`` in one forward pass (1-based)
    axis: int  # the unit axis, non-negative
    units: int
    layer_class: str
    activation: str
    shape: tuple = ()  # the tensor's shape on the probe batch
    candidates: tuple = ()  # the plausible axes where unsure (a warning)
    gated: tuple = ()  # (gate, up) modules of a gated product revive can redo


@dataclasses.dataclass
class _Chain:
    activation: str
    origin: str  # the activation or RNN module's name; "" for a function
    site: str  # the module whose forward made the watched tensor
    watch: torch.Tensor
    axes: dict  # id(tensor) -> per-axis index into ``watch`` (None: reduced)
    same: list = dataclasses.field(default_factory=list)  # ``watch``'s copies
    consumer: str = ""  # the weight module (or the module calling F.linear)
    axis: int | None = None  # the unit axis of ``watch``, once read
    origin_call: int = 0
    site_call: int = 0
    source: object = None  # what the non-linearity read
    product: str = ""  # a ``_PRODUCTS`` op that read it against a weight
    factors: tuple = ()  # a gated product: (gate, up, [tensors used once])


def reading_axis(module: torch.nn.Module) -> int | None:
    """The axis a weight module reads its features on (-1 or 1); None if none."""
    if isinstance(module, (torch.nn.Linear, *_RNN)):
        return -1
    if isinstance(module, _CONV):
        return 1
    if type(module).__name__ == "Conv1D" and hasattr(module, "nf"):
        return -1  # Hugging Face's transposed Linear (GPT-2)
    return None


def first_tensor(value):
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)) and value:
        return first_tensor(value[0])
    return None


class Tracer(TorchFunctionMode):
    """Records chains and every module call's input and output tensors."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.names = {id(m): n for n, m in model.named_modules()}
        self.modules = {n: m for n, m in model.named_modules()}
        self.stack: list[str] = []
        self.calls: dict[str, int] = {}
        self.opaque = 0  # inside an activation or RNN module: ops not traced
        self.busy = 0  # inside our own hooks: ops not traced
        self.chains: list[_Chain] = []
        self.of: dict[int, _Chain] = {}  # id(tensor) -> its chain
        self.inputs: dict[int, tuple] = {}  # id -> first (module, call) given it
        self.outputs: dict[int, tuple] = {}  # id -> innermost (module, call)
        self.seen: dict[tuple, torch.Tensor] = {}  # (name, where, call) -> tensor
        self.alive: list = []  # keeps the recorded tensors' ids unique
        self.tracked: set[int] = set()  # their ids
        self.uses: dict[int, int] = {}  # id(tensor) -> ops and modules reading it
        # ids of the parameters and of the views ``_WEIGHT_VIEWS`` made of them
        self.weights: set[int] = {id(p) for p in model.parameters()}

    def _keep(self, t) -> None:
        self.alive.append(t)
        self.tracked.add(id(t))

    def hooks(self, model) -> list:
        """Registers the module hooks; returns their handles."""
        handles = []
        for m in model.modules():
            handles.append(m.register_forward_pre_hook(self._quiet(self._before)))
            handles.append(m.register_forward_hook(self._quiet(self._after_module)))
        return handles

    def _quiet(self, hook):
        """``hook`` with its own tensor calls (``t.dim()``) left untraced."""

        def quiet(*args):
            self.busy += 1
            try:
                return hook(*args)
            finally:
                self.busy -= 1

        return quiet

    def _before(self, module, args):
        name = self.names[id(module)]
        self.calls[name] = call = self.calls.get(name, 0) + 1
        self.stack.append(name)
        x = first_tensor(args)
        if x is not None:
            self._keep(x)
            self.seen[(name, "input", call)] = x
            self.inputs.setdefault(id(x), (module, call))
            axis = reading_axis(module)
            if axis is not None and not self.opaque:
                self._consume(x, axis, name)
        if modules_lib.activation_name(module) or isinstance(module, _RNN):
            if x is not None and not self.opaque:
                self.uses[id(x)] = self.uses.get(id(x), 0) + 1
            self.opaque += 1

    def _after_module(self, module, args, out):
        name = self.stack.pop()
        call = self.calls[name]
        activation = modules_lib.activation_name(module)
        rnn = isinstance(module, _RNN)
        if activation or rnn:
            self.opaque -= 1
        t = first_tensor(out)
        if t is None:
            return
        self._keep(t)
        self.seen[(name, "output", call)] = t
        self.outputs.setdefault(id(t), (module, call))
        if self.opaque:
            return
        if rnn:
            chain = self._start(t, "", name, None)
            chain.consumer, chain.axis = name, t.dim() - 1
        elif activation:
            self._start(t, activation, name, first_tensor(args))

    def _start(self, t, activation: str, origin: str, source) -> _Chain:
        site = self.stack[-1] if self.stack else ""
        chain = _Chain(activation, origin, site, t, {id(t): tuple(range(t.dim()))})
        chain.origin_call = self.calls.get(origin, 0) if origin else 0
        chain.source = source
        chain.site_call = self.calls.get(site, 0)
        self.chains.append(chain)
        self.of[id(t)] = chain
        return chain

    def _consume(self, x, axis: int, consumer: str) -> None:
        chain = self.of.get(id(x))
        if chain is None or chain.consumer:
            return
        mapped = chain.axes[id(x)][axis]
        if mapped is not None:
            chain.consumer, chain.axis = consumer, mapped

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if self.busy:
            return out
        if not self.opaque:
            for a in (*args, *(kwargs or {}).values()):
                for t in a if isinstance(a, (tuple, list)) else (a,):
                    if isinstance(t, torch.Tensor) and id(t) in self.tracked:
                        self.uses[id(t)] = self.uses.get(id(t), 0) + 1
        if not self.opaque:
            self._trace_weights(getattr(func, "__name__", ""), args, kwargs, out)
        if not self.opaque and isinstance(out, torch.Tensor):
            self._trace(getattr(func, "__name__", ""), args, kwargs or {}, out)
        return out

    def _trace_weights(self, name: str, args, kwargs, out) -> None:
        """Follows views of the weights; marks a chain a product reads
        against one (``_Chain.product``)."""
        tensors = [*args, *(kwargs or {}).values()]
        if name in _WEIGHT_VIEWS and tensors and id(tensors[0]) in self.weights:
            for t in out if isinstance(out, (tuple, list)) else (out,):
                if isinstance(t, torch.Tensor):
                    self._keep(t)
                    self.weights.add(id(t))
        if name not in _PRODUCTS:
            return
        tensors = [t for t in tensors if isinstance(t, torch.Tensor)]
        if not any(id(t) in self.weights for t in tensors):
            return
        for t in tensors:
            chain = self.of.get(id(t))
            if chain is not None and not chain.consumer:
                chain.product = name

    def _trace(self, name: str, args, kwargs, out) -> None:
        if name in NONLINEAR:
            self._keep(out)
            self._start(out, name.rstrip("_"), "", first_tensor(args))
            return
        if name in _WEIGHT_FUNCTIONS:
            x = args[0] if args else kwargs.get("input")
            if isinstance(x, torch.Tensor):
                site = self.stack[-1] if self.stack else ""
                self._consume(x, _WEIGHT_FUNCTIONS[name], site)
            return
        for x in list(args) + list(kwargs.values()):
            chain = self.of.get(id(x)) if isinstance(x, torch.Tensor) else None
            if chain is not None and not chain.consumer:
                axes = _follow(name, args, kwargs, x, out, chain.axes[id(x)])
                if axes is not None:
                    self._extend(chain, name, out, axes, args)
                    return

    def _extend(self, chain: _Chain, name: str, out, axes: tuple, args) -> None:
        self._keep(out)
        if name in MOVE and out is not chain.watch:
            chain.factors = self._factors(chain, name, args)
            chain.source = None  # a later product is no gated FFN's
            # The product (or sum) is what is read now: it becomes the unit.
            chain.watch, chain.axes, chain.same = out, {}, []
            chain.site, chain.origin = (self.stack[-1] if self.stack else ""), ""
            chain.site_call = self.calls.get(chain.site, 0)
            axes = tuple(range(out.dim()))
        elif name in SAME and out.shape == chain.watch.shape:
            chain.same.append(out)
        chain.axes[id(out)] = axes
        self.of[id(out)] = chain

    def _factors(self, chain: _Chain, name: str, args) -> tuple:
        """``(gate, up, tensors)`` when ``act(gate(x)) * up(x)`` is made now.

        ``gate``/``up``: the modules whose outputs are the non-linearity's
        input and the other factor; ``tensors``: what must have one reader
        each for a revival to leave the model's outputs unchanged.
        """
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        if name not in ("mul", "multiply", "__mul__", "__rmul__") or len(tensors) != 2:
            return ()
        act = next((t for t in tensors if t is chain.watch), None)
        other = next((t for t in tensors if t is not act), None)
        if act is None or other is None or chain.source is None:
            return ()
        gate = self.outputs.get(id(chain.source), (None,))[0]
        up = self.outputs.get(id(other), (None,))[0]
        if gate is None or up is None:
            return ()
        return (gate, up, [chain.source, act, other])


def _follow(name, args, kwargs, x, out, axes):
    """``out``'s axes as indices into the watched tensor; None: chain ends."""
    if name in MOVE:
        return axes if out.shape == x.shape else None  # no broadcast up
    if name in PASS:
        return axes if out.dim() == x.dim() else None
    if name in ("transpose", "swapaxes", "swapdims"):
        a, b = (list(args[1:3]) + [kwargs.get("dim0"), kwargs.get("dim1")])[:2]
        a, b = a % x.dim(), b % x.dim()
        new = list(axes)
        new[a], new[b] = new[b], new[a]
        return tuple(new)
    if name == "permute":
        dims = args[1:] if len(args) > 2 else (list(args[1:]) or [kwargs["dims"]])[0]
        return tuple(axes[d % x.dim()] for d in dims)
    if name in ("mean", "amax", "sum") and out.dim() == x.dim() and x.dim() > 2:
        return axes  # keepdim: pooled
    if name in ("mean", "amax", "sum") and 2 <= out.dim() < x.dim():
        dims = args[1] if len(args) > 1 else kwargs.get("dim")
        dims = {d % x.dim() for d in ([dims] if isinstance(dims, int) else dims)}
        return tuple(a for i, a in enumerate(axes) if i not in dims)
    if name == "unsqueeze" and out.dim() == x.dim() + 1:
        dim = (args[1] if len(args) > 1 else kwargs["dim"]) % out.dim()
        return (*axes[:dim], None, *axes[dim:])
    if name == "flatten" and out.dim() == 2 and x.dim() > 2:
        start = args[1] if len(args) > 1 else kwargs.get("start_dim", 0)
        return (axes[0], axes[1]) if start == 1 else None
    return None


def _tagged(name: str, call: int) -> str:
    return name if call <= 1 else f"{name}@{call}"


def default_sites(tracer: Tracer, outputs: set) -> list[Site]:
    """One ``Site`` per chain a weight layer read, in the order they ran.

    Tags: the activation or RNN module's path when its own output is read;
    else the path of the module whose forward made the watched tensor (a
    gated FFN's product: the FFN module); else, at the model's top level,
    ``<consumer>:input``. Calls after the first get ``@2``, ``@3``...
    """
    found, tags = [], set()
    for chain, place in _read_chains(tracer, outputs):
        if place is None:
            continue  # made and read inside one forward: ``unseen`` names it
        w = chain.watch
        where, module, call = place
        name = tracer.names[id(module)]
        own = _tagged(name + (":input" if where == "input" else ""), call)
        site = chain.origin or chain.site
        holder = tracer.modules.get(site) if site else None
        if holder is None or reading_axis(holder) is not None:
            tag, holder = own, module  # the top level, or inside a weight module
        else:
            tag = _tagged(site, chain.origin_call or chain.site_call)
        tag = own if tag in tags else tag
        if tag in tags:
            continue
        tags.add(tag)
        found.append(
            Site(
                tag,
                module,
                where,
                call,
                chain.axis,
                int(w.shape[chain.axis]),
                type(holder).__name__,
                chain.activation,
                tuple(w.shape),
                gated=_gated(tracer, chain, module, where),
            )
        )
    return found


def _read_chains(tracer: Tracer, outputs: set):
    """``(chain, place)`` of each chain a weight read (``_place``'s answer,
    None where no hook sees it); not the model's outputs, nor rank < 2."""
    for chain in tracer.chains:
        w = chain.watch
        if chain.axis is None or id(w) in outputs or w.dim() < 2:
            continue
        yield chain, _place(tracer, chain)


def unseen(tracer: Tracer, outputs: set) -> list[str]:
    """Units a weight reads that no series can hold, so none is watched:
    made and read inside one ``forward`` (``F.linear(act(x @ w1), w2)``, an
    eager mixture of experts' loop), then those a ``_PRODUCTS`` op reads
    against a weight (batched or grouped experts). One ``"<module>
    (<activation> xN[, read by <op>])"`` per module whose forward holds them."""
    counts: dict[tuple, int] = {}
    for chain, place in _read_chains(tracer, outputs):
        if place is None:
            key = (chain.site or "<model>", chain.activation, "")
            counts[key] = counts.get(key, 0) + 1
    for chain in tracer.chains:
        if chain.axis is None and chain.product and id(chain.watch) not in outputs:
            key = (chain.site or "<model>", chain.activation, chain.product)
            counts[key] = counts.get(key, 0) + 1
    return [
        f"{site} ({act or 'product'} x{n}{', read by ' + op if op else ''})"
        for (site, act, op), n in counts.items()
    ]


def _gated(tracer: Tracer, chain: _Chain, module, where: str) -> tuple:
    """``(gate, up)`` of a product only ``module`` reads, each part read once."""
    if not chain.factors or where != "input":
        return ()
    gate, up, parts = chain.factors
    once = all(tracer.uses.get(id(t), 0) == 1 for t in [*parts, chain.watch])
    return (gate, up) if once else ()


def _place(tracer: Tracer, chain: _Chain) -> tuple | None:
    """``(where, module, call)`` of a hook that sees the watched tensor."""
    if chain.origin:  # its own output (an in-place act returns its input)
        return ("output", tracer.modules[chain.origin], chain.origin_call)
    for t in [chain.watch, *chain.same]:
        if id(t) in tracer.inputs:
            return ("input", *tracer.inputs[id(t)])
        if id(t) in tracer.outputs:
            return ("output", *tracer.outputs[id(t)])
    return None


def explicit_sites(tracer: Tracer, requested: list[tuple[str, str]]) -> list[Site]:
    """One ``Site`` per call of each named ``(module name, "output"/"input")``.

    Raises:
      ValueError: a named module not called, or with no tensor of rank >= 2.
    """
    found, missing = [], []
    for name, where in requested:
        calls = [
            (call, t)
            for (n, w, call), t in tracer.seen.items()
            if n == name and w == where and t.dim() >= 2
        ]
        if not calls:
            missing.append(name + (":input" if where == "input" else ""))
        for call, t in calls:
            tag = _tagged(name + (":input" if where == "input" else ""), call)
            axis, candidates = _axis_of(tracer, name, where, t)
            module = tracer.modules[name]
            found.append(
                Site(
                    tag,
                    module,
                    where,
                    call,
                    axis,
                    int(t.shape[axis]),
                    type(module).__name__,
                    _activation_of(tracer, t, module),
                    tuple(t.shape),
                    candidates,
                )
            )
    if missing:
        raise ValueError(
            f"modules: {sorted(missing)} not called by forward on probe_data "
            "(or their output is not a tensor of rank >= 2)"
        )
    return found


def _axis_of(tracer: Tracer, name: str, where: str, t) -> tuple[int, tuple]:
    """The unit axis of a named module's tensor, and the candidates if unsure."""
    chain = tracer.of.get(id(t))
    if chain is not None and chain.axis is not None:
        axes = chain.axes.get(id(t), ())
        if chain.axis in axes:
            return axes.index(chain.axis), ()
    module = tracer.modules[name]
    read = reading_axis(module)
    if where == "input" and read is not None:
        return read % t.dim(), ()
    if where == "output" and read is not None and not isinstance(module, _RNN):
        return read % t.dim(), ()  # a Linear's / Conv's own features
    if t.dim() == 2:
        return 1, ()
    return t.dim() - 1, tuple(range(1, t.dim()))


def _activation_of(tracer: Tracer, t, module) -> str:
    chain = tracer.of.get(id(t))
    return modules_lib.activation_name(module) or (chain.activation if chain else "")
