"""Overhead of ``DeadNeuronMonitor`` on the seed's MLP (784-64-10, batch 32).

Prints ratios measured side by side in one run: (training time + time spent
inside the logging calls) / training time, for the monitor at its default
period (with and without ``gradients=True``), the monitor with a snapshot
every step (probe of 256 samples, and of 32 to show what the probe's forward
pass costs), and ``SummaryWriter.add_histogram`` of the same activations
(the ReLU output on the same 256-sample probe) every 100 steps. Rounds
rotate the order of the variants; min and median over rounds are shown.

    nice -n 10 python3 benchmarks/torch_overhead.py [--steps 2000 --rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
from torch import nn
from torch.utils.tensorboard import SummaryWriter

from tb_deadneurons.torch import DeadNeuronMonitor


def _model() -> nn.Module:
    return nn.Sequential(nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10))


def _histogram_logger(model, logdir, probe):
    writer = SummaryWriter(logdir)
    state = {"step": 0}

    def log(loss):
        state["step"] += 1
        if state["step"] % 100 == 0:
            with torch.no_grad():
                writer.add_histogram("relu", model[1](model[0](probe)), state["step"])
                writer.add_scalar("loss", loss.item(), state["step"])

    return log, writer.close


def _round(variant: str, steps: int, x, y, logdir) -> tuple[float, float]:
    """(training seconds without the logging call, seconds inside it)."""
    torch.manual_seed(0)
    model = _model()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    probe = x[:256]
    inside = 0.0
    start = time.perf_counter()
    if variant == "monitor_default":
        m = DeadNeuronMonitor(model, logdir, probe_data=probe)
        log, close = m.step, m.close
    elif variant == "monitor_default_gradients":
        m = DeadNeuronMonitor(
            model,
            logdir,
            probe_data=(probe, y[:256]),
            gradients=True,
            loss_fn=nn.functional.cross_entropy,
        )
        log, close = m.step, m.close
    elif variant.startswith("monitor_every_step"):
        size = 32 if variant.endswith("probe32") else 256
        m = DeadNeuronMonitor(model, logdir, probe_data=x[:size], every_n_steps=1)
        log, close = m.step, m.close
    elif variant == "add_histogram_100":
        log, close = _histogram_logger(model, logdir, probe)
    else:
        log, close = None, lambda: None
    inside += time.perf_counter() - start  # setup and the step-0 snapshot
    total = time.perf_counter()
    for step in range(steps):
        i = (step * 32) % (len(x) - 32)
        loss = nn.functional.cross_entropy(model(x[i : i + 32]), y[i : i + 32])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if log:
            t = time.perf_counter()
            log(loss)
            inside += time.perf_counter() - t
    t = time.perf_counter()
    close()
    inside += time.perf_counter() - t
    total = time.perf_counter() - total
    return total - inside, inside


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x, y = torch.randn(4096, 784), torch.randint(0, 10, (4096,))
    variants = [
        "monitor_default",
        "monitor_default_gradients",
        "monitor_every_step",
        "monitor_every_step_probe32",
        "add_histogram_100",
    ]
    ratios = {v: [] for v in variants}
    with tempfile.TemporaryDirectory() as logdir:
        _round("none", 200, x, y, logdir)  # warm-up
        for r in range(args.rounds):
            for v in variants[r % len(variants) :] + variants[: r % len(variants)]:
                train, inside = _round(v, args.steps, x, y, f"{logdir}/{v}{r}")
                ratios[v].append((train + inside) / train)
    print(
        f"MLP 784-64-10, batch 32, Adam, {args.steps} steps x {args.rounds} "
        f"rounds, torch threads {args.threads}, probe 256 samples"
    )
    print(f"{'variant':26s}  ratio min   ratio median")
    for v in variants:
        print(f"{v:26s}  {min(ratios[v]):9.4f}   {statistics.median(ratios[v]):9.4f}")


if __name__ == "__main__":
    main()
