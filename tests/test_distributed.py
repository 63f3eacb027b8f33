"""Distributed training writes one run, with exactly the planted dead units.

Each set-up runs in fresh worker processes (``python -m tests.test_distributed
SCENARIO ...``), so logical devices, ``TF_CONFIG`` and ``jax.distributed`` never
touch the pytest process; the test then reads what they wrote with
TensorBoard's own ``EventAccumulator``. The models are tiny: the cost is the
processes' start-up.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEAD = [1, 4, 9]  # units of "dense" with a bias of -1e4: never active
UNITS = 12
SAMPLES, GLOBAL_BATCH, EPOCHS = 128, 32, 2
STEPS = SAMPLES // GLOBAL_BATCH * EPOCHS


# --- the parent side: start workers, read what they wrote ---------------------


def _run_workers(argvs: list[list[str]], timeout: float = 300) -> None:
    """Runs one process per argv at once; fails with their output if any fails."""
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    for name in ("TF_CONFIG", "KERAS_BACKEND"):  # each scenario sets its own
        env.pop(name, None)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.test_distributed", *argv],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for argv in argvs
    ]
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=timeout)[0])
    finally:
        for proc in procs:
            proc.kill()
    for proc, argv, out in zip(procs, argvs, outputs, strict=True):
        assert proc.returncode == 0, f"worker {argv} failed:\n{out[-4000:]}"


def _free_ports(n: int) -> list[str]:
    """``n`` distinct free ports on 127.0.0.1 (all held open while chosen)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [str(sock.getsockname()[1]) for sock in socks]


def _runs_with_events(log_dir) -> list[str]:
    """Run directories (relative to ``log_dir``) holding any event file."""
    return sorted(
        os.path.relpath(dirpath, log_dir)
        for dirpath, _, files in os.walk(log_dir)
        if any(".tfevents." in name for name in files)
    )


def _snapshots(run_dir) -> dict[str, list[tuple[int, dict[str, np.ndarray]]]]:
    # Imported here: the workers import this module before choosing a backend.
    from tests import events

    return events.snapshots(str(run_dir))


def _dense(run_dir) -> dict[int, dict[str, np.ndarray]]:
    """Step → stats of "dense", the run's only series; no step written twice."""
    series = _snapshots(run_dir)
    assert list(series) == ["dense"], f"expected one series; got {list(series)}"
    steps = [step for step, _ in series["dense"]]
    assert len(steps) == len(set(steps)), f"a step written twice: {steps}"
    return dict(series["dense"])


def _dead_units_by_step(run_dir) -> dict[int, list[int]]:
    """Step → never-active units of "dense"."""
    return {
        step: np.flatnonzero(stats["active_fraction"] == 0).tolist()
        for step, stats in _dense(run_dir).items()
    }


# --- the tests ------------------------------------------------------------------


def test_mirrored_strategy_fit_writes_one_run_with_the_planted_units(tmp_path):
    _run_workers([["mirrored", str(tmp_path)]])

    assert _runs_with_events(tmp_path) == ["train"]
    dead = _dead_units_by_step(tmp_path / "train")
    assert sorted(dead) == list(range(0, STEPS + 1, 2))
    assert all(units == DEAD for units in dead.values()), dead


def test_multi_worker_custom_loop_writes_only_from_replica_zero(tmp_path):
    ports = ",".join(_free_ports(2))
    _run_workers([["multi_worker", str(tmp_path), str(i), ports] for i in (0, 1)])

    # Both workers had a writer; TensorFlow records a summary made inside
    # strategy.run only in the replica with global id 0, on the chief.
    assert _runs_with_events(tmp_path) == ["chief", "worker1"]
    dead = _dead_units_by_step(tmp_path / "chief")
    assert sorted(dead) == list(range(STEPS))
    assert all(units == DEAD for units in dead.values()), dead
    assert _snapshots(tmp_path / "worker1") == {}
    # The snapshot describes replica 0's shard of the global batch.
    counts = {round(float(s["count"][0])) for s in _dense(tmp_path / "chief").values()}
    assert counts == {GLOBAL_BATCH // 2}, counts


def test_keras_jax_data_parallel_fit_writes_only_from_process_zero(tmp_path):
    (port,) = _free_ports(1)
    _run_workers([["jax_data_parallel", str(tmp_path), str(i), port] for i in (0, 1)])

    files = os.listdir(tmp_path / "train")
    assert len(files) == 1, f"one event file, from process 0; got {files}"
    pid = (tmp_path / "pid0").read_text()
    assert f".{pid}." in files[0], f"{files[0]} is not process 0's (pid {pid})"
    assert _runs_with_events(tmp_path) == ["train"]
    dead = _dead_units_by_step(tmp_path / "train")
    assert sorted(dead) == list(range(0, STEPS + 1, 2))
    assert all(units == DEAD for units in dead.values()), dead
    # The snapshots see the weights training has at their step: the first
    # matches the model before fit, the last the model after it (to the
    # codec's resolution, 2**0.1 - 1 = 7 %), and the two differ by more.
    stats = _dense(tmp_path / "train")
    first, last = stats[0]["mean_abs"], stats[STEPS]["mean_abs"]
    before, after = (np.load(tmp_path / f"{w}.npy") for w in ("before", "after"))
    live = np.setdiff1d(np.arange(UNITS), DEAD)
    np.testing.assert_allclose(first[live], before[live], rtol=0.08)
    np.testing.assert_allclose(last[live], after[live], rtol=0.08)
    assert np.max(np.abs(after[live] / before[live] - 1)) > 0.2


# --- the workers ----------------------------------------------------------------


def _planted_model(keras):
    """Dense(12, relu) with DEAD units biased to -1e4, then Dense(3)."""
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(UNITS, activation="relu", name="dense"),
            keras.layers.Dense(3, name="out"),
        ]
    )
    kernel, bias = model.get_layer("dense").get_weights()
    bias[:] = 1.0  # healthy units stay active on any input
    bias[DEAD] = -1e4
    model.get_layer("dense").set_weights([kernel * 0.05, bias])
    return model


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(SAMPLES, 8)).astype("float32")
    return x, rng.integers(0, 3, size=SAMPLES)


def _mirrored(log_dir: str) -> None:
    """``MirroredStrategy`` over two logical CPUs + ``fit`` + the callback."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )
    import keras

    import tb_deadneurons

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    with strategy.scope():
        model = _planted_model(keras)
        model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(True))
    x, y = _data()
    callback = tb_deadneurons.DeadNeuronCallback(
        log_dir, probe_data=x[:64], every_n_batches=2
    )
    model.fit(
        x, y, batch_size=GLOBAL_BATCH, epochs=EPOCHS, callbacks=[callback], verbose=0
    )


def _multi_worker(log_dir: str, index: str, ports: str) -> None:
    """A custom loop under ``MultiWorkerMirroredStrategy``, one CPU per worker,
    calling ``summary.activations`` inside ``strategy.run``."""
    os.environ["TF_CONFIG"] = json.dumps(
        {
            "cluster": {"worker": [f"127.0.0.1:{p}" for p in ports.split(",")]},
            "task": {"type": "worker", "index": int(index)},
        }
    )
    import keras
    import tensorflow as tf

    from tb_deadneurons import summary

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    assert strategy.num_replicas_in_sync == 2
    with strategy.scope():
        model = _planted_model(keras)
        optimizer = keras.optimizers.SGD(0.1)
    run = "chief" if strategy.cluster_resolver.task_id == 0 else f"worker{index}"
    writer = tf.summary.create_file_writer(os.path.join(log_dir, run))
    loss_fn = keras.losses.SparseCategoricalCrossentropy(True, reduction="none")

    def replica_step(x, y):
        with tf.GradientTape() as tape:
            hidden = model.get_layer("dense")(x)
            per_sample = loss_fn(y, model.get_layer("out")(hidden))
            loss = tf.nn.compute_average_loss(
                per_sample, global_batch_size=GLOBAL_BATCH
            )
        with writer.as_default():
            summary.activations("dense", hidden, step=optimizer.iterations)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))

    @tf.function
    def train_step(x, y):
        strategy.run(replica_step, args=(x, y))

    dataset = tf.data.Dataset.from_tensor_slices(_data()).batch(GLOBAL_BATCH)
    for _ in range(EPOCHS):
        for x, y in strategy.experimental_distribute_dataset(dataset):
            train_step(x, y)
    writer.close()


def _jax_data_parallel(log_dir: str, index: str, port: str) -> None:
    """Keras 3 on JAX: ``keras.distribution.DataParallel`` over two processes
    (one CPU device each, ``jax.distributed`` coordinator on 127.0.0.1), each
    feeding its own half of the data, ``fit`` + the callback in both."""
    os.environ["KERAS_BACKEND"] = "jax"
    import jax

    jax.distributed.initialize(f"127.0.0.1:{port}", 2, int(index))
    import keras

    import tb_deadneurons

    devices = keras.distribution.list_devices()
    assert len(devices) == 2 and jax.process_index() == int(index)
    keras.distribution.set_distribution(
        keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False)
    )
    keras.utils.set_random_seed(0)  # every process must build the same weights
    model = _planted_model(keras)
    model.compile(
        keras.optimizers.SGD(1.0), keras.losses.SparseCategoricalCrossentropy(True)
    )
    x, y = _data()
    probe = x[:64]
    dense = model.get_layer("dense")
    mean_abs = lambda: np.abs(keras.ops.convert_to_numpy(dense(probe))).mean(0)  # noqa: E731
    before = mean_abs()
    callback = tb_deadneurons.DeadNeuronCallback(
        log_dir, probe_data=probe, every_n_batches=2
    )
    shard = slice(int(index), None, 2)
    model.fit(
        x[shard],
        y[shard],
        batch_size=GLOBAL_BATCH // 2,
        epochs=EPOCHS,
        callbacks=[callback],
        verbose=0,
    )
    after = mean_abs()
    if index == "0":
        np.save(os.path.join(log_dir, "before.npy"), before)
        np.save(os.path.join(log_dir, "after.npy"), after)
    with open(os.path.join(log_dir, f"pid{index}"), "w") as f:
        f.write(str(os.getpid()))


SCENARIOS = {
    "mirrored": _mirrored,
    "multi_worker": _multi_worker,
    "jax_data_parallel": _jax_data_parallel,
}

if __name__ == "__main__":
    SCENARIOS[sys.argv[1]](*sys.argv[2:])
