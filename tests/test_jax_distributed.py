"""Two processes under ``jax.distributed`` on 127.0.0.1 write one run.

Each worker (``python -m tests.test_jax_distributed LOG_DIR INDEX PORT``)
holds one CPU device of a two-device mesh, feeds its half of every global
batch and calls the monitor like the other; only process 0 may write.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

from tests import events
from tests.test_distributed import ROOT, _free_ports, _runs_with_events

STEPS, EVERY, GLOBAL_BATCH = 6, 2, 32


def test_two_jax_processes_write_one_run_from_process_zero(tmp_path):
    from tests import jax_models as models

    (port,) = _free_ports(1)
    _run_workers([[str(tmp_path), str(i), port] for i in (0, 1)])
    files = os.listdir(tmp_path / "run")
    assert len(files) == 1, f"one event file, from process 0; got {files}"
    assert f".{(tmp_path / 'pid0').read_text()}." in files[0]
    assert _runs_with_events(tmp_path) == ["run"]
    series = events.snapshots(str(tmp_path / "run"))
    assert sorted(series) == ["hidden", "mid"]
    steps = [step for step, _ in series["hidden"]]
    assert steps == list(range(0, STEPS + 1, EVERY))
    for _, stats in series["hidden"]:
        dead = np.flatnonzero(stats["active_fraction"] == 0).tolist()
        assert dead == models.DEAD_UNITS


def _run_workers(argvs: list[list[str]], timeout: float = 300) -> None:
    """Runs one worker per argv at once; fails with their output if any fails."""
    env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.test_jax_distributed", *argv],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for argv in argvs
    ]
    try:
        outputs = [proc.communicate(timeout=timeout)[0] for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
    for proc, argv, out in zip(procs, argvs, outputs, strict=True):
        assert proc.returncode == 0, f"worker {argv} failed:\n{out[-4000:]}"


def _worker(log_dir: str, index: str, port: str) -> None:
    import jax

    jax.distributed.initialize(f"127.0.0.1:{port}", 2, int(index))
    import optax
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    from tb_deadneurons.jax import DeadNeuronMonitor
    from tests import jax_models as models

    devices = jax.devices()
    assert len(devices) == 2 and jax.process_index() == int(index)
    mesh = Mesh(np.array(devices), ("batch",))
    replicated = NamedSharding(mesh, PartitionSpec())
    batch = NamedSharding(mesh, PartitionSpec("batch"))

    def global_array(sharding, local):
        return jax.make_array_from_process_local_data(sharding, np.asarray(local))

    x, y = models.data()
    model = models.MLP()
    variables = models.linen_init(model, x, "hidden", models.DEAD_UNITS)
    variables = jax.tree_util.tree_map(lambda a: global_array(replicated, a), variables)
    tx = optax.adam(1e-2)
    opt_state = jax.jit(tx.init)(variables["params"])
    step = models.linen_train_step(model, tx, mutable=False)
    monitor = DeadNeuronMonitor(
        model.apply,
        os.path.join(log_dir, "run"),
        x[:64],
        every_n_steps=EVERY,
        variables=variables,
    )
    for i in range(STEPS):
        rows = slice(i * GLOBAL_BATCH + int(index), (i + 1) * GLOBAL_BATCH, 2)
        xb, yb = global_array(batch, x[rows]), global_array(batch, y[rows])
        variables, opt_state, loss = step(variables, opt_state, xb, yb)
        monitor.step(variables, loss)
    monitor.close()
    with open(os.path.join(log_dir, f"pid{index}"), "w") as f:
        f.write(str(os.getpid()))


if __name__ == "__main__":
    _worker(*sys.argv[1:])
