"""The TensorFlow op: same statistics as the numpy twin, tf.summary manners."""

import numpy as np
import pytest
import tensorflow as tf

from tb_deadneurons import summary
from tests import events


def _data(seed=0, shape=(64, 6, 6, 12)):
    rng = np.random.default_rng(seed)
    scale = rng.lognormal(0.0, 3.0, size=shape[-1]).astype(np.float32)
    a = np.maximum(rng.normal(size=shape).astype(np.float32) * scale, 0)
    a[..., 3] = 0.0
    a[0, 0, 0, 5] = np.nan
    a[1, 0, 0, 6] = -np.inf
    return a


def test_op_and_numpy_twin_encode_the_same_statistics():
    a = _data()
    g = (np.random.default_rng(1).normal(size=a.shape) * 1e-5).astype(np.float32)
    for grads in (None, g):
        twin = summary.snapshot_np(a, grads)
        op = summary.snapshot_tf(
            tf.constant(a), None if grads is None else tf.constant(grads)
        ).numpy()
        assert op.shape == twin.shape
        diff = np.abs(op.astype(int) - twin.astype(int))
        # log2 may differ in the last ulp between TF and numpy: at most one
        # code, and only at rounding boundaries.
        assert diff.max() <= 1 and (diff > 0).mean() < 0.01


def test_op_channels_first_matches_channels_last():
    a = _data(2)
    last = summary.snapshot_tf(tf.constant(a)).numpy()
    first = summary.snapshot_tf(tf.constant(np.moveaxis(a, -1, 1)), unit_axis=1).numpy()
    np.testing.assert_array_equal(first, last)


def test_op_writes_eagerly_and_in_tf_function_honouring_record_if(tmp_path):
    writer = tf.summary.create_file_writer(str(tmp_path))
    x = tf.constant(
        np.maximum(np.random.default_rng(0).normal(size=(32, 4)), 0), tf.float32
    )

    @tf.function
    def step_fn(step):
        with tf.summary.record_if(step % 2 == 0):
            return summary.activations("fn_layer", x, step=step)

    with writer.as_default():
        assert bool(summary.activations("eager_layer", x, step=0))
        written = [bool(step_fn(tf.constant(s, tf.int64))) for s in range(6)]
        with tf.summary.record_if(False):
            assert not bool(summary.activations("eager_layer", x, step=1))
        tf.summary.experimental.set_step(9)
        assert bool(summary.activations("eager_layer", x))
    writer.flush()
    assert written == [True, False, True, False, True, False]
    snaps = events.snapshots(str(tmp_path))
    assert [s for s, _ in snaps["fn_layer"]] == [0, 2, 4]
    assert [s for s, _ in snaps["eager_layer"]] == [0, 9]


def test_op_without_default_writer_returns_false():
    assert not bool(summary.activations("x", tf.ones([2, 3]), step=0))


def test_op_gradients_add_the_mean_abs_gradient_row(tmp_path):
    layer = tf.keras.layers.Dense(5, activation="relu")
    x = tf.random.normal([16, 3], seed=1)
    with tf.GradientTape() as tape:
        a = layer(x)
        tape.watch(a)
        loss = tf.reduce_sum(a * tf.range(1.0, 6.0))
    g = tape.gradient(loss, a)
    writer = tf.summary.create_file_writer(str(tmp_path))
    with writer.as_default():
        summary.activations("d", a, step=3, gradients=g)
    writer.flush()
    ((step, stats),) = events.snapshots(str(tmp_path))["d"]
    assert step == 3
    np.testing.assert_allclose(stats["grad_mean_abs"], np.arange(1.0, 6.0), rtol=0.08)


@pytest.mark.parametrize(
    "data, match",
    [
        (tf.ones([5]), "rank >= 2"),
        (tf.ones([4, 0]), "zero units"),
        (tf.constant([["a", "b"]]), "numeric"),
        (tf.constant([[True]]), "numeric"),
    ],
)
def test_op_rejects_bad_data_naming_the_argument(data, match):
    with pytest.raises(ValueError, match=match) as err:
        summary.activations("x", data, step=0)
    assert "data" in str(err.value)


def test_op_with_empty_batch_and_all_nan_unit_writes_zero_counts(tmp_path):
    writer = tf.summary.create_file_writer(str(tmp_path))
    nan_unit = np.ones((4, 3), np.float32)
    nan_unit[:, 1] = np.nan
    with writer.as_default():
        summary.activations("empty", tf.zeros([0, 3]), step=0)
        summary.activations("nan", tf.constant(nan_unit), step=0)
    writer.flush()
    snaps = events.snapshots(str(tmp_path))
    (_, empty), (_, nan) = snaps["empty"][0], snaps["nan"][0]
    assert empty["count"].tolist() == [0, 0, 0]
    assert nan["count"][1] == 0 and nan["nonfinite"][1] == 4
    assert np.all(np.isfinite(nan["mean_abs"]))


def _metadata_per_event(run_dir, tag):
    import os

    from tensorboard.backend.event_processing import event_file_loader
    from tensorboard.compat.proto import event_pb2

    out = []
    for name in sorted(os.listdir(run_dir)):
        loader = event_file_loader.RawEventFileLoader(os.path.join(run_dir, name))
        for raw in loader.Load():
            for value in event_pb2.Event.FromString(raw).summary.value:
                if value.tag == tag:
                    out.append(value.metadata.plugin_data.plugin_name)
    return out


def test_metadata_is_written_once_per_writer_and_tag_after_a_real_write(tmp_path):
    x = tf.ones([4, 3])
    for run in ("a", "b"):
        # A tf.function binds the writer it was traced with: one per writer.
        @tf.function
        def log(step, record):
            with tf.summary.record_if(record):
                summary.activations("layer", x, step=step)

        writer = tf.summary.create_file_writer(str(tmp_path / run))
        with writer.as_default():
            log(tf.constant(0, tf.int64), tf.constant(False))
            for step in range(1, 4):
                log(tf.constant(step, tf.int64), tf.constant(True))
            summary.activations("layer", x, step=4)  # eager, same writer
        writer.flush()
        names = _metadata_per_event(str(tmp_path / run), "layer")
        assert names == ["deadneurons", "", "", ""]
        assert [s for s, _ in events.snapshots(str(tmp_path / run))["layer"]] == [
            1,
            2,
            3,
            4,
        ]


def _op(**kwargs):
    data = kwargs.pop("data", tf.ones([4, 3]))
    return summary.activations("x", data, step=0, **kwargs)


def _twin(**kwargs):
    data = kwargs.pop("data", np.ones((4, 3), np.float32))
    return summary.activations_pb("x", data, **kwargs)


_WRITERS = {"op": _op, "twin": _twin}
_REVIVALS = {
    "op": lambda units: summary.revivals("t", units, step=0),
    "twin": lambda units: summary.revivals_pb("t", units),
}


@pytest.mark.parametrize("writer", sorted(_WRITERS))
@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"epsilon": float("nan")}, "epsilon must be a finite number >= 0"),
        ({"epsilon": float("inf")}, "epsilon must be a finite number >= 0"),
        ({"epsilon": -0.5}, "epsilon must be a finite number >= 0"),
        ({"epsilon": None}, "epsilon must be a finite number >= 0; got None"),
        ({"epsilon": "x"}, "epsilon must be a finite number >= 0; got 'x'"),
        ({"unit_axis": "1"}, "unit_axis must be an integer; got '1'"),
        ({"unit_axis": 1.0}, "unit_axis must be an integer"),
        ({"unit_axis": 5}, "unit_axis=5 is out of range for data"),
        ({"activation": None}, "activation must be a str"),
        ({"data": [[1.0, 2.0], [3.0]]}, "data must be a rectangular array"),
        ({"data": None}, "data must be an array; got None"),
        ({"gradients": [[1.0, 2.0], [3.0]]}, "gradients must be a rectangular"),
    ],
)
def test_writers_refuse_bad_arguments_with_the_checks_message(writer, kwargs, match):
    with pytest.raises(ValueError, match=match):
        _WRITERS[writer](**kwargs)


@pytest.mark.parametrize("writer", sorted(_REVIVALS))
@pytest.mark.parametrize(
    "units, match",
    [
        ([2**40], "units has index 1099511627776, beyond the last unit 2147483647"),
        ([2**31], "beyond the last unit"),
        ([3, -1], "units must be non-negative"),
        ([[1, 2], [3]], "units must be a 1-D list of ints"),
        ([[1, 2]], "units must be a 1-D list of ints"),
        ([1.5], "units must be a 1-D list of ints"),
        (["a"], "units must be a 1-D list of ints"),
    ],
)
def test_revival_writers_refuse_bad_unit_indices(writer, units, match):
    with pytest.raises(ValueError, match=match):
        _REVIVALS[writer](units)


def test_revival_writers_keep_valid_indices_exactly(tmp_path):
    units = [0, 7, 2**31 - 1]
    proto = summary.revivals_pb("t", units)
    np.testing.assert_array_equal(
        tf.make_ndarray(proto.value[0].tensor), np.array(units, np.int32)
    )
    writer = tf.summary.create_file_writer(str(tmp_path))
    with writer.as_default():
        assert bool(summary.revivals("t", units, step=1))
    writer.flush()
    acc = events.load(str(tmp_path))
    (event,) = acc.Tensors("_revivals/t")
    assert tf.make_ndarray(event.tensor_proto).tolist() == units


def test_writers_record_a_valid_epsilon_and_unit_axis_as_given(tmp_path):
    a = np.abs(np.random.default_rng(0).normal(size=(8, 3, 5))).astype(np.float32)
    twin = summary.activations_pb("x", a, epsilon=np.float32(0.5), unit_axis=1)
    writer = tf.summary.create_file_writer(str(tmp_path))
    with writer.as_default():
        assert bool(summary.activations("x", a, step=0, epsilon=0.5, unit_axis=1))
    writer.flush()
    meta, data = events.plugin_data(str(tmp_path), "x")
    assert data.epsilon == pytest.approx(0.5) and data.unit_axis == 1
    np.testing.assert_array_equal(
        tf.make_ndarray(twin.value[0].tensor),
        summary.snapshot_np(a, unit_axis=1, epsilon=0.5),
    )
