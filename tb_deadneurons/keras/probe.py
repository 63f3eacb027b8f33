"""The probe pass: the probe batch through the model, the watched layers'
outputs (and optionally dL/da) caught on the way, per-unit statistics of
each as an encoded snapshot. Works the same on every Keras 3 backend.

How a snapshot agrees with training (docs/format.md, "The probe"): the model
runs with ``training=False`` (dropout and noise off) except that every
``BatchNormalization`` runs on the probe batch's own statistics, as in a
training step. The whole pass runs inside ``keras.StatelessScope``, so no
variable changes: BN moving statistics, seed-generator states and metric
states are left as they were.

Which tensors are units is found once, by one traced eager pass
(``trace.find_sites``); the snapshots catch those tensors by shadowing their
layers' ``call`` for the length of one pass only
(``private.shadowed_calls``); the training step never sees the wrapper.
The statistics are reduced where the activations are, inside the compiled
pass, by the backend's own twin of ``format.stats.snapshot_np`` (``tf.stats``
on TensorFlow, ``jax.stats`` on jax, ``torch.stats`` on torch: each pinned to
the numpy reference by its tests): the host gets one small array per snapshot,
never the activations. Another backend reduces on the host in numpy.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import sys
import warnings
from collections.abc import Callable

import keras
import numpy as np

from tb_deadneurons.format import metadata, stats
from tb_deadneurons.keras import discovery, private, trace


def _dataset_batch(probe_data):
    """The first batch of a tf.data.Dataset or torch DataLoader, else as is."""
    tf = sys.modules.get("tensorflow")
    torch_data = sys.modules.get("torch.utils.data")
    if (tf is not None and isinstance(probe_data, tf.data.Dataset)) or (
        torch_data is not None and isinstance(probe_data, torch_data.DataLoader)
    ):
        try:
            return next(iter(probe_data))
        except StopIteration:
            kind = type(probe_data).__name__
            raise ValueError(f"probe_data is an empty {kind}") from None
    return probe_data


def split_probe_data(probe_data):
    """Returns ``(x, y)`` of the probe batch as numpy; ``y`` is None without labels.

    Raises:
      ValueError: ``probe_data`` is None, empty, not numeric (e.g. strings),
        or an empty Dataset/DataLoader.
    """
    if probe_data is None:
        raise ValueError("probe_data must be given: a batch of inputs or (x, y)")
    probe_data = _dataset_batch(probe_data)
    if isinstance(probe_data, (tuple, list)) and len(probe_data) in (2, 3):
        x, y = probe_data[0], probe_data[1]
    else:
        x, y = probe_data, None
    x = keras.tree.map_structure(_as_array, x)
    y = None if y is None else keras.tree.map_structure(_as_array, y)
    flat = keras.tree.flatten(x)
    if not flat or any(a.ndim == 0 or a.shape[0] == 0 for a in flat):
        raise ValueError(
            "probe_data has no samples: expected arrays with a batch axis; "
            f"got shapes {[a.shape for a in flat]}"
        )
    bad = [a.dtype for a in flat if a.dtype.kind not in "biuf"]
    if bad:
        raise ValueError(f"probe_data must be numeric arrays; got dtypes {bad}")
    return x, y


def _as_array(value) -> np.ndarray:
    try:
        return keras.ops.convert_to_numpy(value)
    except Exception:  # strings and other things no backend takes
        return np.asarray(value)


@contextlib.contextmanager
def _fit_errors(model):
    """Reports any failure to run the probe batch as a clear ValueError."""
    try:
        yield
    except Exception as e:
        raise ValueError(
            f"probe_data does not fit the model {model.name!r}: {type(e).__name__}: {e}"
        ) from e


def _compute_loss(model, x, y, y_pred):
    # ``training`` was added to compute_loss in Keras 3.3; an override may
    # not take it.
    if "training" in inspect.signature(model.compute_loss).parameters:
        return model.compute_loss(x=x, y=y, y_pred=y_pred, training=False)
    return model.compute_loss(x=x, y=y, y_pred=y_pred)


class Probe:
    """Snapshots of the watched tensors of ``model`` on one fixed batch.

    The sites (which tensors, under which tag, along which axis) are found
    once, here, by ``trace.find_sites``; ``unit_axis`` (tag -> axis)
    overrides the axis of named series.

    Raises (at construction):
      ValueError: unknown layers or ``unit_axis`` tags, no unit to watch, or
        a probe batch that does not fit the model.
    """

    def __init__(
        self,
        model,
        x,
        y=None,
        *,
        layers=None,
        gradients=False,
        epsilon=0.0,
        unit_axis=None,
    ):
        self.model = model
        self._x = keras.tree.map_structure(keras.ops.convert_to_tensor, x)
        self._y = (
            None
            if y is None
            else keras.tree.map_structure(keras.ops.convert_to_tensor, y)
        )
        self._gradients = gradients
        self._epsilon = epsilon
        self._batchnorms = [
            la
            for _, la in discovery.walk(model)
            if isinstance(la, keras.layers.BatchNormalization)
        ]
        if not model.built:
            # A subclassed model is built on its first call, outside the
            # stateless pass (building creates variables).
            with _fit_errors(model):
                model(self._x, training=False)
        requested = None if layers is None else discovery.requested_sites(model, layers)
        with _fit_errors(model):
            sites, tensors, final, unseen = trace.find_sites(
                model, self._x, requested, self._batchnorms
            )
        # The model's outputs are left out of the default choice only; a
        # layer the user named is watched even when it makes an output.
        self.sites = {
            s.tag: s
            for s in sites
            if layers is not None or id(tensors[s.tag]) not in final
        }
        self._check(requested, unit_axis, unseen)
        self.watched = {t: s.layer for t, s in self.sites.items()}
        self._shapes = {
            t: (
                tuple(tensors[t].shape),
                keras.backend.standardize_dtype(tensors[t].dtype),
            )
            for t in self.sites
        }
        units = [self._shapes[t][0][s.unit_axis] for t, s in self.sites.items()]
        self._splits = np.cumsum(units)[:-1]
        backend = keras.backend.backend()
        self._grad_fn = gradient_function(backend) if gradients else None
        self._reducer = _REDUCERS.get(backend, _numpy_reducer)()
        self._compile = _COMPILE.get(backend, _eager)
        self._run = self._compile(self, masked=False)
        self._run_masked = None  # compiled when a NaN/Inf first shows

    def _check(self, requested, unit_axis, unseen) -> None:
        """Every named layer seen, ``unit_axis`` tags known; axes applied;
        ``unseen`` units (``trace.find_sites``) named in a warning."""
        if requested is not None:
            seen = {(id(s.layer), s.where) for s in self.sites.values()}
            paths = {id(la): p for p, la in discovery.walk(self.model)}
            missing = sorted(
                paths[i] + (discovery.INPUT_SUFFIX if w == "input" else "")
                for i, ws in requested.items()
                for w in ws
                if (i, w) not in seen
            )
            if missing:
                raise ValueError(f"layers: {missing} produce no tensor on probe_data")
        unseen = unseen if requested is None else []
        if not self.sites:
            where = f" (not watchable: {unseen})" if unseen else ""
            raise ValueError(
                "no layer to watch: the model has no tensor after a non-linearity "
                f"besides its output{where}; pass layers=[...]"
            )
        if unseen:
            warnings.warn(
                "DeadNeuronCallback: units not watched: a layer's own call "
                "reads them against its variables (a mixture of experts' "
                f"einsum over stacked kernels), so no one axis holds them: "
                f"{unseen}. Their units are missing from the log",
                stacklevel=2,
            )
        for tag, axis in (unit_axis or {}).items():
            if tag not in self.sites:
                raise ValueError(
                    f"unit_axis: {tag!r} is not a watched series: {sorted(self.sites)}"
                )
            self.sites[tag].unit_axis = axis

    def _catcher(self, captured: dict, deltas):
        """``make_call`` for ``private.shadowed_calls``: each site's tensor
        lands in ``captured`` (plus ``deltas[tag]`` when given)."""
        by_layer: dict = {}
        for site in self.sites.values():
            by_layer.setdefault(id(site.layer), {})[(site.call, site.where)] = site
        forced = {id(la) for la in self._batchnorms}
        counts: dict = {}

        def keep(site, tensor):
            if deltas is not None:
                tensor = tensor + deltas[site.tag]
            captured[site.tag] = tensor
            return tensor

        def make(layer, original):
            mine = by_layer.get(id(layer), {})

            def call(*args, **kwargs):
                if id(layer) in forced:
                    kwargs["training"] = True
                k = counts[id(layer)] = counts.get(id(layer), 0) + 1
                site_in, site_out = mine.get((k, "input")), mine.get((k, "output"))
                if site_in is not None:
                    args, kwargs = _with_input(args, kwargs, lambda t: keep(site_in, t))
                if site_out is not None and trace.is_rnn(layer):
                    return private.call_for_sequences(
                        layer, original, args, kwargs, lambda t: keep(site_out, t)
                    )
                out = original(*args, **kwargs)
                if site_out is not None and keras.ops.is_tensor(out):
                    out = keep(site_out, out)
                return out

            return call

        return make

    def _forward(self, deltas, state=None):
        """``({tag: tensor}, y_pred)``; ``deltas`` (zeros) are added to them.

        ``state``: ``(variable, value)`` pairs the pass reads instead of the
        variables (jax's compiled pass); nothing is written to any variable.
        """
        captured: dict = {}
        layers = [s.layer for s in self.sites.values()] + self._batchnorms
        with (
            private.shadowed_calls(layers, self._catcher(captured, deltas)),
            keras.StatelessScope(state_mapping=state),
        ):
            y_pred = self.model(self._x, training=False)
            if deltas is not None:
                captured["__loss__"] = _compute_loss(
                    self.model, self._x, self._y, y_pred
                )
        return captured, y_pred

    def _pass(self, state=None):
        """``({tag: output}, {tag: dL/da})`` of one pass; no dL/da without
        gradients."""
        if self._grad_fn is None:
            return self._forward(None, state)[0], {}
        return self._grad_fn(self, state)

    def _reduced(self, state=None, masked=False):
        """The backend's float32 ``[num_stats, total units]`` rows of one
        pass, series after series in ``sites`` order (the function the
        backend compiles: activations never leave it, and the host gets one
        array); ``masked`` as in the backend's ``unit_stats``."""
        outputs, grads = self._pass(state)
        rows = []
        for tag, site in self.sites.items():
            grad = None
            if self._grad_fn is not None:
                # No path from the unit to the loss: its gradient is zero.
                grad = grads.get(tag)
                grad = keras.ops.zeros_like(outputs[tag]) if grad is None else grad
            series = self._reducer.rows(
                outputs[tag], self._epsilon, site.unit_axis, masked
            )
            if grad is not None:
                series = keras.ops.concatenate(
                    [series, self._reducer.grad_rows(grad, site.unit_axis)]
                )
            rows.append(series)
        return keras.ops.concatenate(rows, axis=1)

    def __call__(self) -> dict[str, np.ndarray]:
        """Tag → encoded uint8 ``[num_stats, units]`` snapshot, now."""
        return self.finish(self.start())

    def start(self):
        """Starts a snapshot: the backend's (maybe not yet computed) rows.
        jax dispatches them and returns at once."""
        return self._run()

    @staticmethod
    def ready(values) -> bool:
        """Whether ``finish(values)`` can read them without waiting."""
        return getattr(values, "is_ready", lambda: True)()

    def finish(self, values) -> dict[str, np.ndarray]:
        """Tag -> encoded uint8 snapshot of ``start``'s ``values``: one
        transfer to the host, one encoding pass for every series."""
        host = keras.ops.convert_to_numpy(values)
        if self._reducer.flags_nonfinite and host[metadata.NONFINITE_ROW].any():
            # NaN/Inf somewhere (rare): a second pass with the masks.
            if self._run_masked is None:
                self._run_masked = self._compile(self, masked=True)
            host = keras.ops.convert_to_numpy(self._run_masked())
        codes = stats.encode_rows(host, self._grad_fn is not None)
        return dict(zip(self.sites, np.split(codes, self._splits, axis=1), strict=True))

    def zeros(self) -> dict:
        """A zero tensor the shape and dtype of each watched tensor (dL/da is
        taken there; a mixed-precision model's float16 outputs get float16)."""
        return {t: keras.ops.zeros(s, dtype=d) for t, (s, d) in self._shapes.items()}


# -- The statistics per backend. ``rows(x, epsilon, unit_axis, masked)`` and
# ``grad_rows(grad, unit_axis)`` run inside the compiled pass and give each
# series' float32 rows; ``Probe.finish`` encodes every series' rows on the
# host in one pass. Where ``flags_nonfinite`` (tf, torch), the unmasked rows
# flag a unit with a NaN/Inf in their ``nonfinite`` row and
# ``Probe.finish`` asks again with ``masked=True``: the masks are half the
# work, and a ``tf.cond`` per series cost ~3 ms on EfficientNetB0. On jax
# one variadic reduction takes every row, masks included, in one read, so
# that the callback can read the result steps later (a second pass then
# would see later weights): for the small CNN's [256, 26, 26, 16] ReLU
# output ~3 ms, against ~10 ms for the ``lax.cond`` used before.


@dataclasses.dataclass(frozen=True)
class _Reducer:
    rows: Callable
    grad_rows: Callable
    flags_nonfinite: bool


def _tensorflow_reducer():
    from tb_deadneurons.tf import stats as tf_stats

    return _Reducer(tf_stats.unit_rows, tf_stats.grad_mean_abs, flags_nonfinite=True)


def _jax_reducer():
    from tb_deadneurons.jax import stats as jax_stats

    def rows(x, epsilon, unit_axis, masked):
        return jax_stats.unit_stats(x, epsilon, unit_axis)

    return _Reducer(rows, jax_stats.grad_mean_abs, flags_nonfinite=False)


def _torch_reducer():
    from tb_deadneurons.torch import stats as torch_stats

    return _Reducer(
        torch_stats.unit_stats, torch_stats.grad_mean_abs, flags_nonfinite=True
    )


def _numpy_reducer():
    def rows(x, epsilon, unit_axis, masked):
        return stats.unit_rows_np(_host_float32(x), epsilon, unit_axis)

    def grad_rows(grad, unit_axis):
        return stats.grad_mean_abs_np(_host_float32(grad), unit_axis)

    return _Reducer(rows, grad_rows, flags_nonfinite=False)


_REDUCERS = {
    "tensorflow": _tensorflow_reducer,
    "jax": _jax_reducer,
    "torch": _torch_reducer,
}


def _host_float32(tensor) -> np.ndarray:
    """A tensor on the host as numpy; float16/bfloat16 widened to float32
    on the device first (numpy has no bfloat16 of its own)."""
    dtype = keras.backend.standardize_dtype(tensor.dtype)
    if dtype in ("float16", "bfloat16"):
        tensor = keras.ops.cast(tensor, "float32")
    return keras.ops.convert_to_numpy(tensor)


def _with_input(args, kwargs, change):
    """``(args, kwargs)`` with the call's first input replaced by
    ``change(input)``."""
    if args:
        return (change(args[0]), *args[1:]), kwargs
    return args, {**kwargs, "inputs": change(kwargs["inputs"])}


# -- The pass, compiled once per probe where the backend compiles: eager
# Keras dispatches op by op (on jax ~5x the compiled pass of the seed MLP),
# which at every_n_batches=100 cost more than the 3 % budget. tf traces when
# the probe is made, jax at the first snapshot; the wrapped calls are in
# place while it traces.


def _eager(probe, masked):
    return functools.partial(probe._reduced, masked=masked)


def _compile_tensorflow(probe, masked):
    import tensorflow as tf

    # The concrete function, traced here: calling it skips the polymorphic
    # function's argument canonicalisation and cache lookup (~0.15 ms per
    # call, a third of the seed MLP's probe pass).
    return tf.function(
        functools.partial(probe._reduced, masked=masked), autograph=False
    ).get_concrete_function()


def _compile_jax(probe, masked):
    import jax

    # Variables go in as arguments: a closure would bake today's weights
    # into the compiled pass.
    variables = list(probe.model.variables)
    compiled = jax.jit(
        lambda values: probe._reduced(
            list(zip(variables, values, strict=False)), masked
        )
    )
    return lambda: compiled([v.value for v in variables])


def _no_grad_torch(probe, masked):
    import torch

    run = functools.partial(probe._reduced, masked=masked)
    # Eager torch records a graph nobody reads unless dL/da is asked for.
    return run if probe._grad_fn else torch.no_grad()(run)


_COMPILE = {
    "tensorflow": _compile_tensorflow,
    "jax": _compile_jax,
    "torch": _no_grad_torch,
}


# -- dL/da per backend: the loss's gradient at zero offsets added to the
# watched outputs. One forward for all three; only the autodiff call differs.


def _grad_tensorflow(probe, state):
    import tensorflow as tf

    deltas = probe.zeros()
    with tf.GradientTape() as tape:
        tape.watch(deltas)
        outputs, _ = probe._forward(deltas, state)
    grads = tape.gradient(
        outputs.pop("__loss__"),
        deltas,
        unconnected_gradients=tf.UnconnectedGradients.ZERO,
    )
    return outputs, grads


def _grad_jax(probe, state):
    import jax

    def loss(deltas):
        outputs, _ = probe._forward(deltas, state)
        return outputs.pop("__loss__"), outputs

    (_, outputs), grads = jax.value_and_grad(loss, has_aux=True)(probe.zeros())
    return outputs, grads


def _grad_torch(probe, state):
    import torch

    deltas = {t: d.requires_grad_(True) for t, d in probe.zeros().items()}
    outputs, _ = probe._forward(deltas, state)
    loss = outputs.pop("__loss__")
    tags = list(deltas)
    grads = torch.autograd.grad(loss, [deltas[t] for t in tags], allow_unused=True)
    return outputs, dict(zip(tags, grads, strict=True))


_GRADIENTS = {"tensorflow": _grad_tensorflow, "jax": _grad_jax, "torch": _grad_torch}


def gradient_function(backend: str):
    """The dL/da function of a Keras backend; ValueError naming an unknown one."""
    if backend not in _GRADIENTS:
        raise ValueError(
            f"gradients=True is not supported on the Keras backend {backend!r}; "
            f"supported: {sorted(_GRADIENTS)}"
        )
    return _GRADIENTS[backend]
