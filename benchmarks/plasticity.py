"""Does reviving help? Loss of plasticity at small scale, logged with our writer.

Two continual-learning problems after Dohare et al. (Nature 2024), scaled to
a few CPU minutes, each trained once per method and seed from the same
initial weights and the same data order:

- Online Permuted Digits: scikit-learn's digits / 16, 500 samples held out
  as the probe (dead units are counted on them, permuted as the new task,
  at each task start), 1,297 for training; each task is a new fixed pixel
  permutation, one pass, minibatch 1; 64 -> 3 x 256 ReLU -> 10, SGD.
  Measured per task: online accuracy (each example predicted before the
  step on it).
- Slowly-changing regression: 20 binary inputs, the first 15 flip one at a
  time (one random bit every ``--flip-every`` examples: a task), the last
  5 random per example; the target is a fixed 20 -> 100 -> 1 network of
  linear threshold units with +-1 weights; learner 20 -> 3 x 64 ReLU -> 1,
  SGD on the squared error. Measured per task: online mean squared error.
  The probe is the task's 32 distinct inputs.

Every run is logged by ``tb_deadneurons.torch.DeadNeuronMonitor`` (a
snapshot at every task start, revival as configured) and read back with
``tb_deadneurons.api.load``: the dead share, the tau-dormant share
(tau = 0.1) and the units revived per task all come from our own logs.

Methods: plain backprop; ``revive_every`` = one task with dead units, with
tau-dormant units (tau = 0.025, 0.1); ``revive_select="utility"``
(continual-backprop-style: rate 1e-4, maturity 100 steps, checked every 100
steps). SGD's step is computed by hand (autograd costs ~4x more per
minibatch-1 step on CPU); ``check_manual_step`` pins it to autograd's.

Settings: the issue's pilot (step 0.03: plain backprop loses accuracy
within 200 tasks; 0.1 is unstable, 0.01 shows no loss within 100 tasks),
cut to 100 tasks and one seed so that all ten runs fit about 10 minutes on
two idle cores (an estimate from ~1 ms per minibatch-1 step measured on a
lightly loaded core: 650k digits steps and 250k regression steps over two
processes); the regression at 1,000 examples per flip and 50 tasks to fit
the same budget. ``--tasks 200 --seeds 2`` is about four times as long.

Usage: python benchmarks/plasticity.py [--tasks 100] [--reg-tasks 50]
  [--seeds 1] [--jobs 2] [--png docs/plasticity.png] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import tempfile
import time

import numpy as np
import torch

from tb_deadneurons import api
from tb_deadneurons.torch import DeadNeuronMonitor

TAU = 0.1  # the dormant share reported
UTILITY_EVERY = 100
METHODS = {
    "backprop": {},
    "revive dead": {"revive": True},
    "revive tau=0.025": {"revive": True, "revive_tau": 0.025},
    "revive tau=0.1": {"revive": True, "revive_tau": 0.1},
    "utility (CBP)": {
        "revive_select": "utility",
        "revive_rate": 1e-4,
        "revive_maturity": 100,
    },
}


def mlp(sizes, seed) -> torch.nn.Sequential:
    torch.manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def manual_step(linears, x, target, lr, classify) -> float:
    """One SGD step on one example; returns 1.0/0.0 (correct) or the squared
    error, of the prediction made before the step."""
    acts = [x]
    for lin in linears[:-1]:
        acts.append(torch.relu(torch.addmv(lin.bias, lin.weight, acts[-1])))
    out = torch.addmv(linears[-1].bias, linears[-1].weight, acts[-1])
    if classify:
        grad = torch.softmax(out, 0)
        score = float(int(grad.argmax()) == int(target))
        grad[target] -= 1.0
    else:
        grad = out - target
        score = float(grad[0] ** 2)
    for i in range(len(linears) - 1, -1, -1):
        lin, a = linears[i], acts[i]
        back = (lin.weight.t() @ grad) * (a > 0) if i else None
        lin.weight.addr_(grad, a, alpha=-lr)
        lin.bias.add_(grad, alpha=-lr)
        grad = back
    return score


def check_manual_step() -> None:
    """The hand-written step equals autograd + torch.optim.SGD's."""
    for classify, out in ((True, 10), (False, 1)):
        a, b = mlp([8, 16, 16, out], 0), mlp([8, 16, 16, out], 0)
        x = torch.randn(8)
        target = torch.tensor(3) if classify else torch.tensor([0.7])
        with torch.no_grad():
            manual_step(
                [m for m in a if isinstance(m, torch.nn.Linear)],
                x,
                target,
                0.1,
                classify,
            )
        opt = torch.optim.SGD(b.parameters(), lr=0.1)
        pred = b(x[None])
        if classify:
            loss = torch.nn.functional.cross_entropy(pred, target[None])
        else:
            loss = 0.5 * ((pred[0] - target) ** 2).sum()
        loss.backward()
        opt.step()
        for p, q in zip(a.parameters(), b.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def digits_data(seed):
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(seed).permutation(len(x))
    x = torch.tensor(x[order] / 16.0, dtype=torch.float32)
    y = torch.tensor(y[order], dtype=torch.int64)
    return (x[500:], y[500:]), x[:500]


class Regression:
    """The slowly-changing regression: inputs, target network, bit flips."""

    def __init__(self, seed, inputs=20, flipping=15, hidden=100, beta=0.7):
        rng = np.random.default_rng(seed + 1000)
        self.rng, self.flipping, self.inputs = rng, flipping, inputs
        self.w = torch.tensor(
            rng.choice([-1.0, 1.0], (hidden, inputs)), dtype=torch.float32
        )
        negative = (self.w < 0).sum(1)
        self.theta = inputs * beta - negative  # LTU thresholds (Sutton's bit-flipping)
        self.v = torch.tensor(rng.choice([-1.0, 1.0], hidden), dtype=torch.float32)
        self.bits = torch.tensor(rng.integers(0, 2, flipping), dtype=torch.float32)
        free = inputs - flipping
        grid = (np.arange(2**free)[:, None] >> np.arange(free)) & 1
        self.grid = torch.tensor(grid, dtype=torch.float32)

    def target(self, x):
        return ((x @ self.w.t() > self.theta).float() @ self.v)[..., None]

    def flip(self):
        i = int(self.rng.integers(self.flipping))
        self.bits[i] = 1.0 - self.bits[i]

    def probe(self):
        """The task's distinct inputs: ``[2**free, inputs]``."""
        fixed = self.bits.expand(len(self.grid), -1)
        return torch.cat([fixed, self.grid], 1)

    def examples(self, n):
        free = torch.tensor(
            self.rng.integers(0, 2, (n, self.inputs - self.flipping)),
            dtype=torch.float32,
        )
        x = torch.cat([self.bits.expand(n, -1), free], 1)
        return x, self.target(x)


def run_digits(method, seed, tasks, lr, log_dir) -> dict:
    (x, y), hold = digits_data(seed)
    model = mlp([64, 256, 256, 256, 10], seed)
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    rng = np.random.default_rng(seed)
    perms = [torch.tensor(rng.permutation(64)) for _ in range(tasks)]
    n = len(x)
    probe = hold[:, perms[0]].clone()
    scores = []
    with _monitor(model, log_dir, probe, n, METHODS[method]) as monitor:
        for t in range(tasks):
            xt, order = x[:, perms[t]], torch.tensor(rng.permutation(n))
            correct = 0.0
            with torch.no_grad():
                for k, i in enumerate(order.tolist()):
                    correct += manual_step(linears, xt[i], y[i], lr, True)
                    if k == n - 1 and t + 1 < tasks:
                        probe.copy_(hold[:, perms[t + 1]])  # next task's start
                    monitor.step()
            scores.append(correct / n)
    return _result(log_dir, scores, n, tasks)


def run_regression(method, seed, tasks, lr, flip_every, log_dir) -> dict:
    problem = Regression(seed)
    model = mlp([20, 64, 64, 64, 1], seed)
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    probe = problem.probe()
    scores = []
    with _monitor(model, log_dir, probe, flip_every, METHODS[method]) as monitor:
        for t in range(tasks):
            xs, ys = problem.examples(flip_every)
            error = 0.0
            with torch.no_grad():
                for k in range(flip_every):
                    error += manual_step(linears, xs[k], ys[k], lr, False)
                    if k == flip_every - 1 and t + 1 < tasks:
                        problem.flip()
                        probe.copy_(problem.probe())
                    monitor.step()
            scores.append(error / flip_every)
    return _result(log_dir, scores, flip_every, tasks)


def _monitor(model, log_dir, probe, task_steps, settings) -> DeadNeuronMonitor:
    settings = dict(settings)
    revive = settings.pop("revive", False)
    if settings.get("revive_select") == "utility":
        settings["revive_every"] = UTILITY_EVERY
    elif revive:
        settings["revive_every"] = task_steps
    return DeadNeuronMonitor(
        model, log_dir, probe, every_n_steps=task_steps, **settings
    )


def _result(log_dir, scores, task_steps, tasks) -> dict:
    """Per task, from our logs: dead / dormant share per layer, units revived."""
    (layers,) = api.load(log_dir, tau=TAU).layers.values()
    starts = np.arange(tasks) * task_steps
    dead, dormant, revived = {}, {}, np.zeros(tasks, dtype=np.int64)
    hints = set()
    for tag, layer in sorted(layers.items()):
        hints.update(h["pattern"] for h in layer.hints if "plasticity" in h["pattern"])
        at = np.searchsorted(layer.steps, starts)
        dead[tag] = layer.result.dead[at].mean(1).tolist()
        dormant[tag] = layer.result.dormant[at].mean(1).tolist()
        for record in layer.revivals:
            revived[min(record["step"] // task_steps, tasks - 1)] += len(
                record["units"]
            )
    return {
        "score": scores,
        "dead": dead,
        "dormant": dormant,
        "revived": revived.tolist(),
        "hints": sorted(hints),
        "log_dir": log_dir,
    }


def _job(args):
    problem, method, seed, opts = args
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    log_dir = tempfile.mkdtemp(prefix=f"plasticity_{problem}_")
    start = time.perf_counter()
    if problem == "digits":
        result = run_digits(method, seed, opts["tasks"], opts["lr"], log_dir)
    else:
        result = run_regression(
            method, seed, opts["reg_tasks"], opts["reg_lr"], opts["flip_every"], log_dir
        )
    result["seconds"] = time.perf_counter() - start
    print(
        f"  {problem:<10} {method:<17} seed {seed}: {result['seconds']:.0f}s",
        flush=True,
    )
    return problem, method, seed, result


def _window(values, share=0.1):
    """Means over the first and the last ``share`` of the tasks."""
    values = np.asarray(values, dtype=np.float64)
    k = max(1, int(round(share * len(values))))
    return values[..., :k].mean(-1), values[..., -k:].mean(-1)


def summarise(results, problem) -> dict:
    """Per method: seed-averaged curves and the table's numbers."""
    table = {}
    for method in METHODS:
        runs = [r for (p, m, _), r in results.items() if p == problem and m == method]
        if not runs:
            continue
        score = np.mean([r["score"] for r in runs], axis=0)
        tags = sorted(runs[0]["dead"])
        per_layer = np.mean([[r["dead"][t] for t in tags] for r in runs], axis=0)
        dormant = np.mean([[r["dormant"][t] for t in tags] for r in runs], axis=0)
        table[method] = {
            "score": score,
            "dead": per_layer.mean(0),
            "score_first_last": _window(score),
            "dead_first_last": _window(per_layer.mean(0)),
            "dead_last_per_layer": _window(per_layer)[1],
            "dormant_last": _window(dormant.mean(0))[1],
            "revived": float(np.mean([sum(r["revived"]) for r in runs])),
            "hints": sorted({h for r in runs for h in r.get("hints", [])}),
            "seeds": len(runs),
        }
    return table


def print_table(table, problem, what) -> None:
    print(f"\n{problem}: {what} (first / last 10 % of tasks, mean of seeds)")
    print(
        f"{'method':<17} {what:>15} {'dead share':>15} {'dead, last, per layer':>23} "
        f"{'dormant':>8} {'revived':>9}  plasticity hints"
    )
    for method, row in table.items():
        a, b = row["score_first_last"]
        d0, d1 = row["dead_first_last"]
        layers = " ".join(f"{v:.2f}" for v in row["dead_last_per_layer"])
        print(
            f"{method:<17} {a:>7.3f}->{b:<7.3f} {d0:>7.3f}->{d1:<7.3f} {layers:>23} "
            f"{row['dormant_last']:>8.3f} {row['revived']:>9.0f}  "
            f"{', '.join(row['hints']) or '-'}"
        )


def plot(tables, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 7), sharex="col")
    columns = (
        ("digits", "online accuracy", "Online Permuted Digits"),
        ("regression", "online squared error", "Slowly-changing regression"),
    )
    for col, (problem, label, title) in enumerate(columns):
        for method, row in tables.get(problem, {}).items():
            score = row["score"]
            k = max(1, len(score) // 20)
            smooth = np.convolve(score, np.ones(k) / k, mode="valid")
            x = np.arange(len(smooth)) + k
            axes[0, col].plot(x, smooth, label=method, lw=1.2)
            axes[1, col].plot(np.arange(1, len(row["dead"]) + 1), row["dead"], lw=1.2)
        axes[0, col].set_title(title)
        axes[0, col].set_ylabel(f"{label} (running mean)")
        axes[1, col].set_ylabel("dead share at task start")
        axes[1, col].set_xlabel("task")
        if problem == "regression":
            axes[0, col].set_yscale("log")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--lr", type=float, default=0.03)
    parser.add_argument("--reg-tasks", type=int, default=50)
    parser.add_argument("--reg-lr", type=float, default=0.01)
    parser.add_argument("--flip-every", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--problems", default="digits,regression")
    parser.add_argument("--png", default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    check_manual_step()
    opts = vars(args)
    methods = args.methods.split(",")
    problems = args.problems.split(",")
    # Seeds outermost, methods interleaved: a slow stretch of the machine
    # does not fall on one method only.
    jobs = [
        (p, m, s, opts) for s in range(args.seeds) for p in problems for m in methods
    ]
    start = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        done = pool.map(_job, jobs, chunksize=1)
    results = {(p, m, s): r for p, m, s, r in done}
    print(f"wall time {time.perf_counter() - start:.0f}s for {len(jobs)} runs")
    tables = {p: summarise(results, p) for p in problems}
    if "digits" in tables:
        print_table(tables["digits"], "Online Permuted Digits", "accuracy")
    if "regression" in tables:
        print_table(tables["regression"], "Slowly-changing regression", "error")
    if args.png:
        plot(tables, args.png)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"|".join(map(str, k)): v for k, v in results.items()}, f)


if __name__ == "__main__":
    main()
