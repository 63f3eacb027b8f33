"""Cost of ``DeadNeuronMonitor``, measured side by side in one run (not a test).

Two tables, each from interleaved repeats (the order of the variants
rotates every round): min time over min time, and the median of the
per-round ratios:

- floor: one snapshot (``monitor.step()`` at ``every_n_steps=1``: the probe
  pass with its statistics, one host transfer, encoding, events queued)
  against the floor, the same model's forward of the same probe batch under
  ``torch.no_grad()`` in eval mode, on a small CNN (probe 256), a ResNet-18-like CNN
  (32x32, probe 32) and GPT-2 tiny (Hugging Face ``GPT2LMHeadModel`` from a
  config: 2 layers, width 256, probe 8 x 128 tokens);
- whole training: wall time of a training loop with the monitor (every
  100 steps; defaults, i.e. 100 fitted at step 100 to the measured cost,
  the chosen period printed; every step) over the same loop without it, on
  the seed MLP (784-64-10, batch 32) and the small CNN (28x28, batch 32).
  "probe forward every step" runs only the probe batch's ``no_grad``
  forward after each step: the floor of snapshots at every step.
  Wall time, not time inside our calls: the events are written by a
  background thread, which the training thread does not wait for but which
  competes for the CPU.

    nice -n 10 python benchmarks/torch_overhead.py [--reps 5] [--steps 1000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
from torch import nn

from tb_deadneurons.torch import DeadNeuronMonitor


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10))


def small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(800, 64),
        nn.ReLU(),
        nn.Linear(64, 10),
    )


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1, self.relu1 = nn.BatchNorm2d(cout), nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2, self.relu2 = nn.BatchNorm2d(cout), nn.ReLU()
        self.skip = (
            nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x):
        h = self.relu1(self.bn1(self.conv1(x)))
        return self.relu2(self.bn2(self.conv2(h)) + self.skip(x))


def resnet18_like() -> nn.Module:
    """ResNet-18's layout (2 blocks per stage, 64..512 channels), 32x32 input."""
    layers = [nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU()]
    cin = 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [_Block(cin, cout, stride), _Block(cout, cout, 1)]
        cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 10)]
    return nn.Sequential(*layers)


def gpt2_tiny() -> nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=1000,
        n_positions=128,
        n_embd=256,
        n_layer=2,
        n_head=4,
        bos_token_id=0,
        eos_token_id=0,
    )
    return GPT2LMHeadModel(config)


FLOOR_MODELS = {
    "small CNN, probe 256": (small_cnn, lambda: torch.rand(256, 1, 28, 28)),
    "ResNet-18-like 32x32, probe 32": (
        resnet18_like,
        lambda: torch.rand(32, 3, 32, 32),
    ),
    "GPT-2 tiny (2 x 256), probe 8 x 128": (
        gpt2_tiny,
        lambda: torch.randint(0, 1000, (8, 128)),
    ),
}


def _ratios(rounds: list[dict], variant: str, base: str) -> tuple[float, float]:
    """(min time / min time, median of the per-round ratios): the first is
    the least disturbed by a loaded machine."""
    best = min(x[variant] for x in rounds) / min(x[base] for x in rounds)
    return best, statistics.median(x[variant] / x[base] for x in rounds)


def floor(reps: int, logdir: str) -> None:
    print("snapshot / no_grad forward of the probe batch (min / median)")
    for name, (build, make_probe) in FLOOR_MODELS.items():
        torch.manual_seed(0)
        # Dropout off for the forward too, as in the probe (GPT-2's dropout
        # alone made the training-mode forward dearer than a snapshot).
        model, probe = build().eval(), make_probe()
        monitor = DeadNeuronMonitor(
            model, f"{logdir}/{len(name)}", probe_data=probe, every_n_steps=1
        )

        def forward(model=model, probe=probe):
            with torch.no_grad():
                model(probe)

        variants = {"forward": forward, "snapshot": monitor.step}
        for fn in variants.values():
            fn()  # warm-up
        rounds = []
        for r in range(reps):
            order = list(variants)[r % 2 :] + list(variants)[: r % 2]
            times = {}
            for v in order:
                t = time.perf_counter()
                variants[v]()
                times[v] = time.perf_counter() - t
            rounds.append(times)
        monitor.close()
        lo, med = _ratios(rounds, "snapshot", "forward")
        fwd = min(x["forward"] for x in rounds) * 1e3
        print(
            f"  {name:38s} {lo:5.2f} / {med:5.2f}   "
            f"(forward {fwd:.1f} ms, {len(monitor.watched)} watched)"
        )


_CHOSEN: dict[str, set] = {}  # model -> the periods the defaults chose
# A variant of ``whole_training`` without a monitor: the probe batch's
# forward after every step, the least a snapshot at every step can cost.
FORWARD = "probe forward"


def _fit(build, x, y, steps: int, monitor_args, logdir: str) -> float:
    """Wall seconds of ``steps`` Adam steps (batch 32), monitor included."""
    torch.manual_seed(0)
    model = build()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    start = time.perf_counter()
    monitor = (
        None
        if monitor_args in (None, FORWARD)
        else DeadNeuronMonitor(model, logdir, probe_data=x[:256], **monitor_args)
    )
    for step in range(steps):
        i = (step * 32) % (len(x) - 32)
        loss = nn.functional.cross_entropy(model(x[i : i + 32]), y[i : i + 32])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if monitor is not None:
            monitor.step(loss)
        elif monitor_args is FORWARD:
            with torch.no_grad():
                model(x[:256])
    if monitor is not None:
        monitor.close()
        _CHOSEN.setdefault(build.__name__, set()).add(monitor.every_n_steps)
    return time.perf_counter() - start


def whole_training(reps: int, steps: int, logdir: str) -> None:
    print(f"whole training with / without the monitor, {steps} steps (min / median)")
    models = {
        "seed MLP": (mlp, (784,)),
        "small CNN": (small_cnn, (1, 28, 28)),
    }
    variants = {
        "none": None,
        "every 100": {"every_n_steps": 100},
        "defaults": {},  # 100, fitted at step 100 (analysis.period)
        "every step": {"every_n_steps": 1},
        "probe forward every step": FORWARD,
    }
    for name, (build, shape) in models.items():
        x, y = torch.rand(4096, *shape), torch.randint(0, 10, (4096,))
        _fit(build, x, y, 50, None, logdir)  # warm-up
        rounds = []
        for r in range(reps):
            names = list(variants)
            order = names[r % len(names) :] + names[: r % len(names)]
            rounds.append(
                {
                    v: _fit(build, x, y, steps, variants[v], f"{logdir}/{name}{v}{r}")
                    for v in order
                }
            )
        for v in list(variants)[1:]:
            lo, med = _ratios(rounds, v, "none")
            print(f"  {name:10s} {v:24s} {lo:5.3f} / {med:5.3f}")
        print(f"  {name:10s} periods the monitors ran at: {_CHOSEN[build.__name__]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", choices=["floor", "training"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), CPU")
    with tempfile.TemporaryDirectory() as logdir:
        if args.only != "training":
            floor(args.reps, logdir)
        if args.only != "floor":
            whole_training(args.reps, args.steps, logdir)


if __name__ == "__main__":
    main()
