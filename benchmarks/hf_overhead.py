"""The Hugging Face Trainer callback's cost on a tiny GPT-2: whole training
with / without ``tb_deadneurons.torch.transformers.DeadNeuronCallback``.

Each round trains the same model (same seed, same data) twice, once with the
callback and once without, in alternating order, both reporting to
TensorBoard; prints the min and median of the with / without wall-time
ratios. One thread, CPU.

    python benchmarks/hf_overhead.py --steps 300 --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
import transformers

from tb_deadneurons.torch.transformers import DeadNeuronCallback


def _train(steps: int, every: int, with_callback: bool) -> float:
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=256, n_positions=64, n_embd=64, n_layer=2, n_head=2
    )
    ids = torch.randint(0, 256, (512, 64), generator=torch.Generator().manual_seed(0))
    with tempfile.TemporaryDirectory() as out:
        args = transformers.TrainingArguments(
            out,
            max_steps=steps,
            per_device_train_batch_size=8,
            logging_steps=10,
            report_to=["tensorboard"],
            use_cpu=True,
            save_strategy="no",
            disable_tqdm=True,
        )
        callbacks = (
            [DeadNeuronCallback({"input_ids": ids[:32]}, every_n_steps=every)]
            if with_callback
            else []
        )
        trainer = transformers.Trainer(
            model=transformers.GPT2LMHeadModel(config),
            args=args,
            train_dataset=[{"input_ids": r, "labels": r} for r in ids],
            callbacks=callbacks,
        )
        start = time.perf_counter()
        trainer.train()
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    ratios = []
    for r in range(args.rounds):
        order = (True, False) if r % 2 == 0 else (False, True)
        times = {w: _train(args.steps, args.every, w) for w in order}
        ratios.append(times[True] / times[False])
        print(f"round {r}: with {times[True]:.2f} s, without {times[False]:.2f} s")
    print(
        f"Trainer callback, every_n_steps={args.every}, {args.steps} steps: "
        f"with / without min {min(ratios):.3f}, median {statistics.median(ratios):.3f}"
    )


if __name__ == "__main__":
    main()
