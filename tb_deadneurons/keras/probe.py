"""The probe pass: the probe batch through the model, the watched layers'
outputs (and optionally dL/da) caught on the way, per-unit statistics of
each as an encoded snapshot. Works the same on every Keras 3 backend.

How a snapshot agrees with training (docs/format.md, "The probe"): the model
runs with ``training=False`` (dropout and noise off) except that every
``BatchNormalization`` runs on the probe batch's own statistics, as in a
training step. The whole pass runs inside ``keras.StatelessScope``, so no
variable changes: BN moving statistics, seed-generator states and metric
states are left as they were.

Layer outputs are caught by wrapping the layers' ``call`` for the length of
one pass only (``private.wrapped_calls``); the training step never sees
the wrapper. The statistics are ``stats.snapshot_np``: one implementation,
on the host, for every backend.
"""

from __future__ import annotations

import contextlib
import inspect
import sys

import keras
import numpy as np

from tb_deadneurons.format import stats
from tb_deadneurons.keras import discovery, private


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
    """Snapshots of the watched layers of ``model`` on one fixed batch.

    Raises (at construction):
      ValueError: unknown layers, no layer to watch, or a probe batch that
        does not fit the model.
    """

    def __init__(self, model, x, y=None, *, layers=None, gradients=False, epsilon=0.0):
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
        candidates = discovery.select(model, layers)
        with _fit_errors(model):
            outputs, y_pred = self._forward(candidates, None)
        final = {id(t) for t in keras.tree.flatten(y_pred)}
        # The output layer is left out of the default choice only; a layer the
        # user named is watched even when it is the output layer.
        self.watched = {
            t: candidates[t]
            for t in outputs
            if layers is not None or id(outputs[t]) not in final
        }
        self._shapes = {t: tuple(outputs[t].shape) for t in self.watched}
        if layers is not None and len(self.watched) < len(candidates):
            missing = sorted(set(candidates) - set(self.watched))
            raise ValueError(f"layers: {missing} produce no tensor on probe_data")
        if not self.watched:
            raise ValueError(
                "no layer to watch: the model has no layer after a non-linearity "
                "besides its output; pass layers=[...]"
            )
        backend = keras.backend.backend()
        self._grad_fn = gradient_function(backend) if gradients else None
        self._run = _COMPILE.get(backend, _eager)(self)

    def _forward(self, layers, deltas, state=None):
        """``({tag: output}, y_pred)``; ``deltas`` (zeros) are added to outputs.

        ``state``: ``(variable, value)`` pairs the pass reads instead of the
        variables (jax's compiled pass); nothing is written to any variable.
        """
        with (
            private.wrapped_calls(layers, self._batchnorms, deltas) as outputs,
            keras.StatelessScope(state_mapping=state),
        ):
            y_pred = self.model(self._x, training=False)
            if deltas is not None:
                outputs["__loss__"] = _compute_loss(
                    self.model, self._x, self._y, y_pred
                )
        return outputs, y_pred

    def _pass(self, state=None):
        """``({tag: output}, {tag: dL/da})`` of one pass; no dL/da without
        gradients."""
        if self._grad_fn is None:
            return self._forward(self.watched, None, state)[0], {}
        return self._grad_fn(self, state)

    def __call__(self) -> dict[str, np.ndarray]:
        """Tag → encoded uint8 ``[num_stats, units]`` snapshot, now."""
        outputs, grads = self._run()
        result = {}
        for tag, layer in self.watched.items():
            data = keras.ops.convert_to_numpy(outputs[tag])
            grad = grads.get(tag)
            if self._grad_fn is not None:
                # No path from the unit to the loss: its gradient is zero.
                grad = np.zeros_like(data) if grad is None else grad
            result[tag] = stats.snapshot_np(
                data,
                None if grad is None else keras.ops.convert_to_numpy(grad),
                unit_axis=discovery.unit_axis(layer),
                epsilon=self._epsilon,
            )
        return result

    def zeros(self) -> dict:
        """A zero tensor the shape of each watched output (to take dL/da at)."""
        return {
            t: keras.ops.zeros(s, dtype=keras.config.floatx())
            for t, s in self._shapes.items()
        }


# -- The pass, compiled once per probe where the backend compiles: eager
# Keras dispatches op by op (on jax ~5x the compiled pass of the seed MLP),
# which at every_n_batches=100 cost more than the 3 % budget. The trace runs
# at the first snapshot; the wrapped calls are in place while it traces.


def _eager(probe):
    return probe._pass


def _compile_tensorflow(probe):
    import tensorflow as tf

    return tf.function(probe._pass, autograph=False, reduce_retracing=True)


def _compile_jax(probe):
    import jax

    # Variables go in as arguments: a closure would bake today's weights
    # into the compiled pass.
    variables = list(probe.model.variables)
    compiled = jax.jit(
        lambda values: probe._pass(list(zip(variables, values, strict=False)))
    )
    return lambda: compiled([v.value for v in variables])


def _no_grad_torch(probe):
    import torch

    # Eager torch records a graph nobody reads unless dL/da is asked for.
    return probe._pass if probe._grad_fn else torch.no_grad()(probe._pass)


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
        outputs, _ = probe._forward(probe.watched, deltas, state)
    grads = tape.gradient(
        outputs.pop("__loss__"),
        deltas,
        unconnected_gradients=tf.UnconnectedGradients.ZERO,
    )
    return outputs, grads


def _grad_jax(probe, state):
    import jax

    def loss(deltas):
        outputs, _ = probe._forward(probe.watched, deltas, state)
        return outputs.pop("__loss__"), outputs

    (_, outputs), grads = jax.value_and_grad(loss, has_aux=True)(probe.zeros())
    return outputs, grads


def _grad_torch(probe, state):
    import torch

    deltas = {t: d.requires_grad_(True) for t, d in probe.zeros().items()}
    outputs, _ = probe._forward(probe.watched, deltas, state)
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
