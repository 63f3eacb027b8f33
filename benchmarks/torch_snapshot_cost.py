"""Snapshot cost of ``DeadNeuronMonitor`` before (a git ref) and after (this tree).

For a tiny Llama (``LlamaForCausalLM`` from a config, probe 16 x 64 tokens),
timm's EfficientNet-B0 (``pretrained=False``, probe 16 x 3 x 128 x 128) and
an LSTM tagger (probe 64 x 50 steps), prints min and median of
(one snapshot: ``monitor.step()`` with a snapshot due) / (one ``no_grad``
forward of the probe batch), measured in long-lived worker processes, one
per (tree, interpreter), with the trees' rounds interleaved. It also shows
that nothing runs between snapshots: the hooks left on the model and the
torch-function modes active after construction (both 0), and the cost of a
``step()`` with no snapshot due, in microseconds.

EfficientNet needs timm, which needs torchvision: it runs under
``--timm-python`` (the interpreter ``TB_DEADNEURONS_TIMM_PYTHON`` names);
without one it is left out. The "before" tree is ``git archive REF``.

    nice -n 10 python3 benchmarks/torch_snapshot_cost.py [--before main --rounds 7]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _llama():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=256,
        hidden_size=64,
        intermediate_size=172,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
    )
    return LlamaForCausalLM(config), {"input_ids": torch.randint(0, 256, (16, 64))}


def _efficientnet():
    import timm
    import torch

    model = timm.create_model("efficientnet_b0", pretrained=False, num_classes=10)
    return model, torch.randn(16, 3, 128, 128)


def _lstm():
    import torch
    from torch import nn

    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(32, 64, batch_first=True)
            self.head = nn.Linear(64, 10)

        def forward(self, x):
            return self.head(self.lstm(x)[0])

    return Tagger(), torch.randn(64, 50, 32)


MODELS = {"llama": _llama, "efficientnet_b0": _efficientnet, "lstm": _lstm}


def _time(fn, repeats=5) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def worker(names: list[str], logdir: str) -> None:
    """Builds the models and monitors once; answers each stdin line."""
    import torch

    from tb_deadneurons.torch import DeadNeuronMonitor

    torch.manual_seed(0)
    torch.set_num_threads(1)
    setups = {}
    for name in names:
        model, x = MODELS[name]()
        try:
            monitor = DeadNeuronMonitor(
                model, f"{logdir}/{name}", probe_data=x, every_n_steps=1
            )
        except ValueError as e:  # the old monitor sees no unit in an LSTM
            setups[name] = str(e)[:60]
            continue
        idle = DeadNeuronMonitor(
            model, f"{logdir}/{name}_idle", probe_data=x, every_n_steps=10**9
        )
        hooks = sum(
            len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()
        )
        modes = torch._C._len_torch_function_stack()
        setups[name] = (model, x, monitor, idle, hooks, modes)
    for _ in sys.stdin:
        result = {}
        for name, setup in setups.items():
            if isinstance(setup, str):
                result[name] = setup
                continue
            model, x, monitor, idle, hooks, modes = setup

            def forward(model=model, x=x):
                with torch.no_grad():
                    model(**x) if isinstance(x, dict) else model(x)

            fwd = _time(forward)
            snap = _time(monitor.step)
            t = time.perf_counter()
            for _ in range(1000):
                idle.step()
            between = (time.perf_counter() - t) / 1000 * 1e6
            result[name] = [snap / fwd, between, hooks, modes]
        print(json.dumps(result), flush=True)


def _start(python: str, tree: str, names: list[str], logdir: str):
    env = {**os.environ, "PYTHONPATH": tree}
    cmd = [python, os.path.abspath(__file__), "--worker", ",".join(names), logdir]
    return subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", default="main")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--timm-python", default=os.environ.get("TB_DEADNEURONS_TIMM_PYTHON", "")
    )
    parser.add_argument("--worker", default="")
    parser.add_argument("logdir", nargs="?", default="")
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker.split(","), args.logdir)
    with tempfile.TemporaryDirectory() as tmp:
        before = os.path.join(tmp, "before")
        os.makedirs(before)
        archive = subprocess.run(
            ["git", "-C", ROOT, "archive", args.before, "tb_deadneurons"],
            capture_output=True,
            check=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", before], input=archive, check=True)
        groups = [(sys.executable, ["llama", "lstm"])]
        if args.timm_python:
            groups.append((args.timm_python, ["efficientnet_b0"]))
        workers = {
            (tree, i): _start(py, path, names, f"{tmp}/{tree}{i}")
            for tree, path in (("before", before), ("after", ROOT))
            for i, (py, names) in enumerate(groups)
        }
        results: dict = {}
        for r in range(args.rounds):
            order = list(workers) if r % 2 == 0 else list(reversed(workers))
            for key in order:
                proc = workers[key]
                proc.stdin.write("go\n")
                proc.stdin.flush()
                for name, row in json.loads(proc.stdout.readline()).items():
                    results.setdefault((name, key[0]), []).append(row)
        for proc in workers.values():
            proc.stdin.close()
            proc.wait()
    _print(results, args)


def _print(results: dict, args) -> None:
    print(
        f"snapshot / no_grad forward of the probe batch, {args.rounds} interleaved "
        f"rounds, 1 torch thread; before = {args.before}, after = this tree"
    )
    print(
        f"{'model':16s} {'tree':7s} {'ratio min':>9s} {'median':>8s} "
        f"{'step() between, us':>19s} {'hooks':>5s} {'modes':>5s}"
    )
    for (name, tree), rows in sorted(results.items(), key=lambda kv: kv[0]):
        if isinstance(rows[0], str):
            print(f"{name:16s} {tree:7s} raises: {rows[0]}")
            continue
        ratios = [row[0] for row in rows]
        between = statistics.median(row[1] for row in rows)
        print(
            f"{name:16s} {tree:7s} {min(ratios):9.3f} {statistics.median(ratios):8.3f} "
            f"{between:19.2f} {rows[0][2]:5d} {rows[0][3]:5d}"
        )


if __name__ == "__main__":
    main()
