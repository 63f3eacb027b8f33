"""The probe pass: the watched modules' statistics on a fixed probe batch.

A snapshot describes the units as training computes them (``docs/format.md``):
dropout off, BatchNorm on the probe batch's own statistics, and nothing
changed -- ``training`` flags, BatchNorm buffers, parameter ``.grad`` and
the RNG state are as they were before. Forward hooks (pre-hooks for a
module's input) reduce each watched tensor to per-unit rows the moment it
is made (an in-place op later in ``forward`` cannot change what is
measured). Which tensors are watched is found once, at construction
(``discover``); nothing is traced after that.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable

import torch

from tb_deadneurons.format import metadata
from tb_deadneurons.torch import discover, modules, stats


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


def _tensors(out) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _tensors(o)]
    return []


class Probe:
    """Runs the probe batch; gives every watched tensor's rows at once.

    ``layout`` lists one ``discover.Site`` per watched tensor: by default the
    units ``discover`` derives from one traced forward pass at construction;
    with ``requested`` (``modules.select``'s pairs) the output or input of
    each named module, one series per call (``@2``, ``@3`` ...). The probe
    passes themselves only hook the found modules. ``unit_axis`` maps tags
    to the axis to use instead of the derived one.

    Raises (at construction):
      ValueError: the probe batch does not fit the model, a named module is
        not called by ``forward``, a bad ``unit_axis``, or nothing to watch.
    """

    def __init__(
        self,
        model,
        x,
        y,
        requested,
        *,
        gradients: bool,
        loss_fn: Callable | None,
        epsilon: float,
        unit_axis: dict | None = None,
    ):
        self.model, self._x, self._y = model, x, y
        self._gradients, self._loss_fn, self._epsilon = gradients, loss_fn, epsilon
        self._view = TrainingView(model)
        param = next(model.parameters(), None)
        self._device = param.device if param is not None else torch.device("cpu")
        self.layout, unseen = self._discover(requested)
        if not self.layout:
            where = f" where it can be watched (not watchable: {unseen})"
            raise ValueError(
                "modules: no unit found: no non-linearity of forward (an "
                "activation module, F.relu/gelu/silu/tanh/sigmoid, an RNN) is "
                "read by a weight layer (Linear, Conv, Conv1D) on probe_data"
                f"{where if unseen else ''}; pass modules=[...] naming what to watch"
            )
        if unseen:
            warnings.warn(
                "DeadNeuronMonitor: units not watched: a weight reads them "
                "where no module hook sees them (inside one forward), or in a "
                "batched or grouped product with no one feature axis (a "
                f"mixture of experts' experts): {unseen}. Their units are "
                "missing from the log",
                stacklevel=3,
            )
        _set_axes(self.layout, unit_axis)
        # The own output of a ReLU-family module is never negative: its
        # statistics skip ``|x|`` (a product or a norm after it is signed).
        self._nonnegative = {
            s.tag
            for s in self.layout
            if s.where == "output"
            and stats.is_nonnegative(modules.activation_name(s.module))
        }

    def _discover(self, requested) -> tuple[list[discover.Site], list[str]]:
        """One traced forward pass that finds the watched tensors, and
        (by default) ``discover.unseen``'s units no hook can watch."""
        tracer = discover.Tracer(self.model)
        handles = tracer.hooks(self.model)
        try:
            with torch.no_grad(), self._view(), _fits(self.model), tracer:
                outputs = {id(t) for t in _tensors(call(self.model, self._x))}
        finally:
            for h in handles:
                h.remove()
        if requested is None:
            sites = discover.default_sites(tracer, outputs)
            return sites, discover.unseen(tracer, outputs)
        return discover.explicit_sites(tracer, requested), []

    def rows(self, masked: bool = False) -> torch.Tensor:
        """float32 ``[num_stats, total units]`` on the model's device.

        ``masked`` as in ``stats.unit_stats``: without it, a unit with a
        NaN/Inf value has ``nonfinite`` > 0 and the caller asks again.
        """
        found, grads_of, calls = {}, {}, {}
        sites = {(id(s.module), s.where, s.call): s for s in self.layout}

        def seen(module, where, value):
            key = (id(module), where)
            calls[key] = calls.get(key, 0) + 1
            site = sites.get((*key, calls[key]))
            t = discover.first_tensor(value)
            if site is not None and t is not None and t.dim() > site.axis:
                found[site.tag] = stats.unit_stats(
                    t,
                    self._epsilon,
                    site.axis,
                    masked,
                    nonnegative=site.tag in self._nonnegative,
                )
                grads_of[site.tag] = t

        handles = []
        for s in {(id(s.module), s.where): s for s in self.layout}.values():
            if s.where == "input":
                hook = s.module.register_forward_pre_hook(
                    lambda m, args: seen(m, "input", args)
                )
            else:
                hook = s.module.register_forward_hook(
                    lambda m, args, out: seen(m, "output", out)
                )
            handles.append(hook)
        axes = {s.tag: s.axis for s in self.layout}
        try:
            with torch.set_grad_enabled(self._gradients), self._view():
                out = call(self.model, self._x)
                if self._gradients:
                    self._add_gradients(out, found, grads_of, axes)
        finally:
            for h in handles:
                h.remove()
        return torch.cat(
            [self._or_empty(found, s.tag, s.units) for s in self.layout], dim=1
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


def _set_axes(layout: list, unit_axis) -> None:
    """Applies ``unit_axis`` (tag -> axis) and warns where an axis is a guess.

    Raises:
      ValueError: ``unit_axis`` not a dict, an unknown tag, a bad axis.
    """
    unit_axis = {} if unit_axis is None else unit_axis
    if not isinstance(unit_axis, dict):
        raise ValueError(f"unit_axis must be a dict tag -> axis; got {unit_axis!r}")
    by_tag = {s.tag: s for s in layout}
    for tag, axis in unit_axis.items():
        site = by_tag.get(tag)
        if site is None:
            raise ValueError(
                f"unit_axis: {tag!r} is not a watched series; watched: {list(by_tag)}"
            )
        rank = len(site.shape)
        valid = isinstance(axis, int) and not isinstance(axis, bool)
        if not (valid and -rank < axis < rank and axis % rank):
            raise ValueError(
                f"unit_axis[{tag!r}] must be an axis of its {rank}-d tensor "
                f"{tuple(site.shape)}, not the batch axis; got {axis!r}"
            )
        site.axis = axis % rank
        site.units, site.candidates = int(site.shape[site.axis]), ()
    for site in layout:
        if site.candidates:
            warnings.warn(
                f"DeadNeuronMonitor: the unit axis of {site.tag!r} (shape "
                f"{tuple(site.shape)}) is ambiguous: candidates "
                f"{list(site.candidates)}; using {site.axis}. Pass "
                f"unit_axis={{{site.tag!r}: axis}} to choose",
                stacklevel=4,
            )
