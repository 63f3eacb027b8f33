"""The probe pass: the watched modules' statistics on a fixed probe batch.

A snapshot describes the units as training computes them (``docs/format.md``):
dropout off, BatchNorm on the probe batch's own statistics, and nothing
changed -- ``training`` flags, BatchNorm buffers, parameter ``.grad`` and
the RNG state are as they were before. Forward hooks reduce each watched
output to per-unit rows the moment it is made (an in-place op later in
``forward`` cannot change what is measured).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch

from tb_deadneurons.format import metadata
from tb_deadneurons.torch import modules as modules_lib
from tb_deadneurons.torch import stats


class TrainingView:
    """Dropout off, BatchNorm on batch statistics, no state changed.

    BatchNorm in ``eval`` mode with its running buffers set to None uses the
    batch's statistics and updates nothing (not even ``num_batches_tracked``);
    a BatchNorm already in eval mode (frozen) keeps its running statistics;
    buffers, every module's ``training`` flag and the RNG state are restored.
    The module lists are taken once, at construction.
    """

    def __init__(self, model: torch.nn.Module):
        self._model = model
        self._modules = list(model.modules())
        self._norms = [
            m
            for m in self._modules
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
        ]
        self._devices = sorted(
            {p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"}
        )

    @contextlib.contextmanager
    def __call__(self):
        modes = [m.training for m in self._modules]
        # A BatchNorm the user put in eval mode (frozen) trains on its running
        # statistics, so the probe leaves it so, as Keras does for a BN layer
        # with trainable=False.
        norms = [m for m in self._norms if m.training]
        buffers = [(m.running_mean, m.running_var) for m in norms]
        with torch.random.fork_rng(devices=self._devices):
            try:
                # As eval(); ``training`` is a plain attribute, and setting
                # it through __dict__ skips Module.__setattr__'s checks.
                for m in self._modules:
                    m.__dict__["training"] = False
                for m in norms:
                    m.running_mean = m.running_var = None
                yield
            finally:
                for m, (mean, var) in zip(norms, buffers, strict=True):
                    m.running_mean, m.running_var = mean, var
                for m, mode in zip(self._modules, modes, strict=True):
                    m.__dict__["training"] = mode


def call(model: torch.nn.Module, x):
    """``model(**x)`` for a dict of keyword inputs, else ``model(x)``."""
    return model(**x) if isinstance(x, dict) else model(x)


def _first_tensor(out):
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    return None


def _tensors(out) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _tensors(o)]
    return []


class Probe:
    """Runs the probe batch; gives every watched output's rows at once.

    ``layout`` lists ``(tag, module, unit_axis, units)`` per watched output:
    the module's qualified name, with ``@2``, ``@3`` ... for its second and
    later calls in one forward pass (a module used twice watches two sets of
    units). Outputs that are the model's output are left out unless the
    module was named.

    Raises (at construction):
      ValueError: the probe batch does not fit the model, a named module is
        not called by ``forward``, or nothing is left to watch.
    """

    def __init__(
        self,
        model,
        x,
        y,
        watched: dict,
        *,
        explicit: bool,
        gradients: bool,
        loss_fn: Callable | None,
        epsilon: float,
    ):
        self.model, self._x, self._y = model, x, y
        self._gradients, self._loss_fn, self._epsilon = gradients, loss_fn, epsilon
        self._tags = {id(m): name for name, m in watched.items()}
        self._view = TrainingView(model)
        param = next(model.parameters(), None)
        self._device = param.device if param is not None else torch.device("cpu")
        self.layout = self._discover(watched, explicit)
        if not self.layout:
            raise ValueError(
                "modules: no watched module is called by forward before the "
                "output; pass modules=[...]"
            )

    def _discover(self, watched: dict, explicit: bool) -> list[tuple]:
        """One forward pass that finds each watched output's shape and axis."""
        seen, previous, handles = [], [None], []

        def on_leaf(module, args, out):
            if id(module) in self._tags:
                t = _first_tensor(out)
                if t is not None and t.dim() >= 2:
                    seen.append((module, previous[0], t))
            previous[0] = module

        for m in self.model.modules():
            if id(m) in self._tags or not any(True for _ in m.children()):
                handles.append(m.register_forward_hook(on_leaf))
        try:
            with torch.no_grad(), self._view(), _fits(self.model):
                outputs = {id(t) for t in _tensors(call(self.model, self._x))}
        finally:
            for h in handles:
                h.remove()
        layout, calls = [], {}
        for module, before, t in seen:
            name = self._tags[id(module)]
            calls[name] = calls.get(name, 0) + 1
            if id(t) in outputs and not explicit:
                continue
            tag = name if calls[name] == 1 else f"{name}@{calls[name]}"
            producer = before if modules_lib.activation_name(module) else module
            axis = modules_lib.unit_axis(producer, t.dim())
            layout.append((tag, module, axis, int(t.shape[axis])))
        missing = explicit and set(self._tags.values()) - set(calls)
        if missing:
            raise ValueError(
                f"modules: {sorted(missing)} not called by forward on probe_data "
                "(or their output is not a tensor of rank >= 2)"
            )
        return layout

    def rows(self, masked: bool = False) -> torch.Tensor:
        """float32 ``[num_stats, total units]`` on the model's device.

        ``masked`` as in ``stats.unit_stats``: without it, a unit with a
        NaN/Inf value has ``nonfinite`` > 0 and the caller asks again.
        """
        found, grads_of, handles = {}, {}, []
        axes = {tag: axis for tag, _, axis, _ in self.layout}
        calls: dict = {}

        def on_output(module, args, out):
            name = self._tags[id(module)]
            calls[name] = calls.get(name, 0) + 1
            tag = name if calls[name] == 1 else f"{name}@{calls[name]}"
            t = _first_tensor(out)
            if tag in axes and t is not None:
                found[tag] = stats.unit_stats(t, self._epsilon, axes[tag], masked)
                grads_of[tag] = t

        for m in {id(m): m for _, m, _, _ in self.layout}.values():
            handles.append(m.register_forward_hook(on_output))
        try:
            with torch.set_grad_enabled(self._gradients), self._view():
                out = call(self.model, self._x)
                if self._gradients:
                    self._add_gradients(out, found, grads_of, axes)
        finally:
            for h in handles:
                h.remove()
        return torch.cat(
            [self._or_empty(found, tag, u) for tag, _, _, u in self.layout], dim=1
        )

    def _add_gradients(self, out, found, grads_of, axes) -> None:
        loss = self._loss_fn(out, self._y)
        tags = [t for t in found if grads_of[t].requires_grad]
        grads = (
            torch.autograd.grad(loss, [grads_of[t] for t in tags], allow_unused=True)
            if tags
            else []
        )
        given = dict(zip(tags, grads, strict=True))
        for tag in found:
            g = given.get(tag)
            row = (
                torch.zeros_like(found[tag][:1])
                if g is None
                else stats.grad_mean_abs(g, axes[tag])
            )
            found[tag] = torch.cat([found[tag], row])

    def _or_empty(self, found: dict, tag: str, units: int) -> torch.Tensor:
        if tag in found:
            return found[tag]
        # Not called this time: count 0 reads as "no data", not as dead.
        rows = len(metadata.stat_names(self._gradients))
        return torch.zeros(rows, units, device=self._device)


@contextlib.contextmanager
def _fits(model):
    try:
        yield
    except Exception as e:
        raise ValueError(
            f"probe_data does not fit the model ({type(model).__name__}): "
            f"{type(e).__name__}: {e}"
        ) from e
