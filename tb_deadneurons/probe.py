"""The probe pass: which layers to watch, and one compiled function that runs
the probe batch through the model and writes a snapshot of each of them.

Layer outputs are captured while the function is traced, by wrapping the
watched layers' ``call`` for the duration of the trace only. That works the
same for Sequential, Functional, nested and subclassed models (a subclassed
model's layers have no symbolic outputs to wire a sub-model from), and the
training step, traced by Keras separately, never sees the wrapper.
"""

from __future__ import annotations

import contextlib

import keras
import numpy as np
import tensorflow as tf

from tb_deadneurons import metadata, summary
from tb_deadneurons.metadata import LOSS_TAG

# Layers whose output is itself a non-linearity, whatever their arguments.
_ACTIVATION_LAYERS = {
    "ReLU": "relu",
    "LeakyReLU": "leaky_relu",
    "ELU": "elu",
    "PReLU": "prelu",
    "Softmax": "softmax",
}


def split_probe_data(probe_data):
    """Returns ``(x, y)`` of the probe batch; ``y`` is None without labels.

    Raises:
      ValueError: ``probe_data`` is None, empty, or an empty Dataset.
    """
    if probe_data is None:
        raise ValueError("probe_data must be given: a batch of inputs or (x, y)")
    if isinstance(probe_data, tf.data.Dataset):
        try:
            probe_data = next(iter(probe_data))
        except StopIteration:
            raise ValueError("probe_data is an empty tf.data.Dataset") from None
    if isinstance(probe_data, tuple) and len(probe_data) in (2, 3):
        x, y = probe_data[0], probe_data[1]
    else:
        x, y = probe_data, None
    flat = tf.nest.flatten(x)
    if not flat or any(np.shape(t)[:1] == (0,) or np.ndim(t) == 0 for t in flat):
        raise ValueError(
            "probe_data has no samples: expected arrays with a batch axis; "
            f"got shapes {[np.shape(t) for t in flat]}"
        )
    return x, y


def activation_name(layer) -> str | None:
    """The name of the non-linearity a layer's output follows, or None."""
    cls = type(layer).__name__
    if cls in _ACTIVATION_LAYERS:
        return _ACTIVATION_LAYERS[cls]
    fn = getattr(layer, "activation", None)
    if fn is None or not callable(fn):
        return None
    name = getattr(fn, "__name__", type(fn).__name__)
    return None if name in ("linear", "identity") else name


def unit_axis(layer) -> int:
    """The axis of a layer's output that holds its units (channels)."""
    return 1 if getattr(layer, "data_format", None) == "channels_first" else -1


def flatten_layers(model, prefix: str = "") -> list[tuple[str, keras.layers.Layer]]:
    """``(tag, layer)`` for every non-model layer, nested models as ``a/b``."""
    out = []
    for layer in getattr(model, "layers", []):
        tag = prefix + layer.name
        if isinstance(layer, keras.Model) or (
            getattr(layer, "layers", None) and not activation_name(layer)
        ):
            out.extend(flatten_layers(layer, tag + "/"))
        else:
            out.append((tag, layer))
    return out


def select_layers(model, requested) -> dict[str, keras.layers.Layer]:
    """Tag → layer to watch; ``requested`` None means the default rule.

    Raises:
      ValueError: a requested name or layer is not in the model.
    """
    all_layers = flatten_layers(model)
    if requested is None:
        return {t: layer for t, layer in all_layers if activation_name(layer)}
    chosen = {}
    for item in requested:
        if isinstance(item, str):
            found = [(t, la) for t, la in all_layers if item in (t, la.name)]
        else:
            found = [(t, la) for t, la in all_layers if la is item]
        if not found:
            names = [t for t, _ in all_layers]
            raise ValueError(f"layers: {item!r} is not a layer of the model {names}")
        chosen.update(found[:1])
    return chosen


@contextlib.contextmanager
def _capturing(layers: dict[str, keras.layers.Layer]):
    """Within the block, each layer's first output is kept in the dict.

    Only outputs in the graph being traced (``captured["__graph__"]``, set by
    the tracer) count: Keras may run ``call`` in a scratch graph first to
    infer shapes.
    """
    captured: dict = {}
    originals = {}
    for tag, layer in layers.items():
        original = layer.call

        def wrapped(*args, __tag=tag, __call=original, **kwargs):
            out = __call(*args, **kwargs)
            if getattr(out, "graph", None) is captured.get("__graph__"):
                captured.setdefault(__tag, out)
            return out

        originals[tag] = layer
        object.__setattr__(layer, "call", wrapped)
    try:
        yield captured
    finally:
        for layer in originals.values():
            object.__delattr__(layer, "call")


@contextlib.contextmanager
def _fit_errors(model):
    """Reports any failure to run the probe batch as a clear ValueError."""
    try:
        yield
    except Exception as e:
        raise ValueError(
            f"probe_data does not fit the model {model.name!r}: {type(e).__name__}: {e}"
        ) from e


class ProbeFunction:
    """A compiled probe pass writing one snapshot per watched layer.

    Summaries go to ``writer`` (bound when the function is traced): one
    snapshot per watched layer, its metadata in the tag's first event only,
    and the loss as the scalar ``LOSS_TAG`` when it is finite. Returns
    tag → the encoded uint8 snapshot.

    Raises (at construction):
      ValueError: unknown layers, no layer to watch, or a probe batch that
        does not fit the model.
    """

    def __init__(
        self, model, writer, x, y, *, layers=None, gradients=False, epsilon=0.0
    ):
        self.model = model
        self._writer = writer
        self._x = tf.nest.map_structure(tf.convert_to_tensor, x)
        self._y = None if y is None else tf.nest.map_structure(tf.convert_to_tensor, y)
        if not model.built:
            # A subclassed model is built on its first call; that must happen
            # eagerly, not while our function is traced.
            with _fit_errors(model):
                model(self._x, training=False)
        self._candidates = select_layers(model, layers)
        self._gradients = gradients
        self._epsilon = epsilon
        self._explicit = layers is not None
        self._traced_tags: list[str] = []
        self._called = False
        # TensorBoard keeps the metadata of a series' first event only: the
        # first call writes it, later calls use a variant without it.
        self._variants = {True: self._trace(with_metadata=True)}
        self.watched = {t: self._candidates[t] for t in self._traced_tags}
        if not self.watched:
            raise ValueError(
                "no layer to watch: the model has no layer after a non-linearity "
                "besides its output; pass layers=[...]"
            )

    def _trace(self, with_metadata: bool):
        self._with_metadata = with_metadata
        fn = tf.function(self._run, autograph=False)
        with _capturing(self._candidates) as captured, self._writer.as_default():
            self._captured = captured
            with _fit_errors(self.model):
                concrete = fn.get_concrete_function(
                    tf.TensorSpec([], tf.int64), tf.TensorSpec([], tf.float32)
                )
        self._captured = None
        return concrete

    def _run(self, step, loss):
        captured = self._captured
        captured["__graph__"] = tf.compat.v1.get_default_graph()

        def forward():
            return self.model(self._x, training=False)

        if self._gradients:
            with tf.GradientTape() as tape:
                y_pred = forward()
                probe_loss = self.model._compute_loss(
                    x=self._x, y=self._y, y_pred=y_pred, training=False
                )
        else:
            y_pred = forward()
        captured.pop("__graph__")
        # The output layer is left out of the default choice only; a layer the
        # user named is watched even when it is the output layer.
        outputs = {id(t) for t in tf.nest.flatten(y_pred)}
        tags = [t for t in captured if self._explicit or id(captured[t]) not in outputs]
        grads = (
            tape.gradient(probe_loss, [captured[t] for t in tags])
            if self._gradients
            else [None] * len(tags)
        )
        result = {}
        for tag, grad in zip(tags, grads, strict=True):
            layer = self._candidates[tag]
            data = captured[tag]
            if self._gradients and grad is None:
                grad = tf.zeros_like(data)
            axis = unit_axis(layer)
            codes = summary.snapshot_tf(
                data, grad, unit_axis=axis, epsilon=self._epsilon
            )
            meta = metadata.create_summary_metadata(
                None,
                None,
                with_gradients=self._gradients,
                epsilon=self._epsilon,
                layer_class=type(layer).__name__,
                activation=activation_name(layer) or "",
                unit_axis=axis,
            )
            tf.summary.write(
                tag, codes, step=step, metadata=meta if self._with_metadata else None
            )
            result[tag] = codes
        with tf.summary.record_if(tf.math.is_finite(loss)):
            tf.summary.scalar(LOSS_TAG, loss, step=step)
        self._traced_tags = tags
        return result

    def __call__(self, step: int, loss: float | None = None) -> dict[str, tf.Tensor]:
        """Writes the snapshots (and ``loss``, unless None) at ``step``."""
        if self._called and False not in self._variants:
            self._variants[False] = self._trace(with_metadata=False)
        fn = self._variants[not self._called]
        self._called = True
        return fn(
            tf.constant(step, tf.int64),
            tf.constant(np.nan if loss is None else loss, tf.float32),
        )
