"""Overhead of ``tb_deadneurons.jax.DeadNeuronMonitor`` on two Flax models.

The seed's MLP (digits 64-64-10, batch 32) and a small CNN on the digits as
8x8x1 images (Conv16-relu-pool-Conv32-relu-Dense10), Adam, jitted steps.

1. Whole training, with / without the monitor at ``every_n_steps=100``
   and at the default period (100, fitted at step 100 to the measured cost,
   ``analysis.period``; the chosen period is printed) (probe: 256
   samples): the loop's wall time up to ``block_until_ready``
   of the final parameters, ``step()`` and ``close()`` included. Building
   the monitor (trace, compile, the step-0 snapshot) is a fixed cost per
   run, printed on its own in seconds. Rounds alternate the order of the
   two variants; min and median of the ratios are shown.
2. One snapshot / one jitted forward of the probe batch: the probe's jitted
   function (device only), and the whole snapshot (device, read-back,
   encoding, event write), each timed to completion.

    nice -n 10 python3 benchmarks/jax_overhead.py [--steps 2000 --rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import flax.linen as nn
import jax
import numpy as np
import optax
from sklearn.datasets import load_digits

from tb_deadneurons.jax import DeadNeuronMonitor


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(10)(nn.relu(nn.Dense(64)(x)))


class CNN(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.max_pool(nn.relu(nn.Conv(16, (3, 3))(x)), (2, 2), (2, 2))
        x = nn.relu(nn.Conv(32, (3, 3))(x))
        return nn.Dense(10)(x.reshape((x.shape[0], -1)))


def _train_step(model, tx):
    def step(params, opt_state, x, y):
        def loss_fn(p):
            logits = model.apply(p, x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state, loss

    return jax.jit(step)


def _round(model, x, y, steps, logdir, monitored):
    """(loop seconds, seconds to build the monitor, period) for one run.

    ``monitored``: None (no monitor), 100 or "default" (the fitted period).
    """
    tx = optax.adam(1e-3)
    params = model.init(jax.random.key(0), x[:1])
    opt_state = tx.init(params)
    step = _train_step(model, tx)
    jax.block_until_ready(step(params, opt_state, x[:32], y[:32]))  # compiled
    built = time.perf_counter()
    every = None if monitored == "default" else monitored
    monitor = (
        DeadNeuronMonitor(model.apply, logdir, x[:256], every, variables=params)
        if monitored
        else None
    )
    built = time.perf_counter() - built
    start = time.perf_counter()
    for i in range(steps):
        j = (i * 32) % (len(x) - 32)
        params, opt_state, loss = step(params, opt_state, x[j : j + 32], y[j : j + 32])
        if monitor is not None:
            monitor.step(params, loss)
    if monitor is not None:
        monitor.close()
    jax.block_until_ready(params)
    return time.perf_counter() - start, built, monitor and monitor.every_n_steps


def _best_of(fn, repeats=200):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t)
    return min(times), statistics.median(times)


def _snapshot_cost(model, x, logdir):
    params = model.init(jax.random.key(0), x[:1])
    probe = x[:256]
    forward = jax.jit(model.apply)
    monitor = DeadNeuronMonitor(model.apply, logdir, probe, variables=params)
    jax.block_until_ready(forward(params, probe))
    fwd = _best_of(lambda: forward(params, probe))
    dev = _best_of(lambda: monitor._probe.rows(params))

    def whole():
        monitor._snapshot(params, None)
        monitor._write_pending(wait=True)

    full = _best_of(whole)
    monitor.close()
    return fwd, dev, full


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int32)
    setups = {"MLP 64-64-10": (MLP(), x), "CNN 8x8x1": (CNN(), x.reshape(-1, 8, 8, 1))}
    print(
        f"jax {jax.__version__} on {jax.devices()[0].platform}, {args.steps} steps "
        f"x {args.rounds} rounds, batch 32, probe 256"
    )
    with tempfile.TemporaryDirectory() as logdir:
        for name, (model, data) in setups.items():
            variants = (None, 100, "default")
            ratios, builds, chosen = {100: [], "default": []}, [], set()
            _round(model, data, y, 200, logdir, 100)  # warm-up
            for r in range(args.rounds):
                order = variants[r % 3 :] + variants[: r % 3]
                times = {
                    v: _round(model, data, y, args.steps, f"{logdir}/{name}{r}", v)
                    for v in order
                }
                for v in ratios:
                    ratios[v].append(times[v][0] / times[None][0])
                builds.append(times[100][1])
                chosen.add(times["default"][2])
            for v, rs in ratios.items():
                label = f"every {v}" if v == 100 else f"default (chose {chosen})"
                print(
                    f"{name}: training with/without, {label}:  min {min(rs):.4f}  "
                    f"median {statistics.median(rs):.4f}"
                )
            print(f"{name}: building the monitor {statistics.median(builds):.2f} s")
            fwd, dev, full = _snapshot_cost(model, data, f"{logdir}/{name}s")
            print(
                f"{name}: snapshot/forward  device min {dev[0] / fwd[0]:.2f} "
                f"median {dev[1] / fwd[1]:.2f};  whole min {full[0] / fwd[0]:.2f} "
                f"median {full[1] / fwd[1]:.2f}  (forward {fwd[0] * 1e6:.0f} us, "
                f"whole snapshot {full[0] * 1e6:.0f} us)"
            )


if __name__ == "__main__":
    main()
