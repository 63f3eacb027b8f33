"""Whole epochs with / without the Keras callback, alternated (not a test).

A warm callback (set up by a short fit first, so its one-off start-up is
not counted) on the seed MLP (784-64-10, 60,000 samples) or the small CNN
(12,000 samples) from ``overhead.py``, batch 32, at the default period
(100, fitted at batch 100 to the measured cost; the period it ran at is
printed) or ``--every`` batches;
the order alternates per round. Prints each round's epoch seconds with and
without, the seconds spent inside the callback's hooks, and min / median
ratios. ``--writers`` instead rotates three variants in one process: no
callback, the callback as shipped (events written by
``events.BackgroundWriter``'s thread) and one writing on the training thread
(``events.EventWriter``), and prints each callback's min / median ratio.

    KERAS_BACKEND=jax python benchmarks/keras_epochs.py [--model mlp|cnn]
        [--rounds 6] [--every 1] [--writers]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import overhead  # noqa: E402

import tb_deadneurons  # noqa: E402
from tb_deadneurons.format import events  # noqa: E402


class HookTimed(tb_deadneurons.DeadNeuronCallback):
    """Adds up the seconds inside the per-batch and epoch hooks. Unlike
    ``overhead.TimedDeadNeuronCallback`` it never drains jax's queue: the
    epoch times are what a user sees (on jax, time a hook waits for queued
    steps shows in "hooks" but is training's own)."""

    seconds = 0.0

    def on_train_batch_begin(self, *args, **kwargs):
        start = time.perf_counter()
        super().on_train_batch_begin(*args, **kwargs)
        self.seconds += time.perf_counter() - start

    def on_epoch_end(self, *args, **kwargs):
        start = time.perf_counter()
        super().on_epoch_end(*args, **kwargs)
        self.seconds += time.perf_counter() - start


class OnTrainingThread(HookTimed):
    """Writes its events on the training thread (the writer before issue 18)."""

    def _events(self):
        if self._writer is None:
            self._writer = events.EventWriter(os.path.join(self.log_dir, "train"))
        return self._writer


def _writers(model, x, y, every, rounds):
    """No callback / background writer / training-thread writer, rotated."""
    callbacks = {
        name: cls(tempfile.mkdtemp(), x[:256], every_n_batches=every)
        for name, cls in (("background", HookTimed), ("training", OnTrainingThread))
    }
    for cb in callbacks.values():
        model.fit(x[:320], y[:320], batch_size=32, verbose=0, callbacks=[cb])
    times = {"none": [], "background": [], "training": []}
    names = list(times)
    for r in range(rounds):
        for name in names[r % 3 :] + names[: r % 3]:
            cbs = [callbacks[name]] if name in callbacks else []
            start = time.perf_counter()
            model.fit(x, y, batch_size=32, verbose=0, callbacks=cbs)
            times[name].append(time.perf_counter() - start)
    base = times["none"]
    for name in callbacks:
        ratios = [t / b for t, b in zip(times[name], base, strict=True)]
        print(
            f"{keras.backend.backend()}, every {every}, writer on the {name} "
            f"thread: epoch with / without min {min(times[name]) / min(base):.3f}x, "
            f"median {statistics.median(ratios):.3f}x"
        )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", choices=["mlp", "cnn"], default="mlp")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--every", type=int, default=None)
    parser.add_argument("--writers", action="store_true")
    args = parser.parse_args()
    if args.model == "mlp":
        x, y = overhead.data(60000, (784,))
        model = overhead.compiled(overhead.mlp)
    else:
        x, y = overhead.data(12000, (28, 28, 1))
        model = overhead.compiled(overhead.cnn)
    model.fit(x[:1920], y[:1920], batch_size=32, verbose=0)
    if args.writers:
        return _writers(model, x, y, args.every, args.rounds)
    cb = HookTimed(tempfile.mkdtemp(), x[:256], every_n_batches=args.every)
    model.fit(x[:320], y[:320], batch_size=32, verbose=0, callbacks=[cb])
    with_times, without_times, ratios = [], [], []
    for r in range(args.rounds):
        times = {}
        for with_cb in (r % 2 == 0, r % 2 == 1):
            cb.seconds = 0.0
            start = time.perf_counter()
            model.fit(x, y, batch_size=32, verbose=0, callbacks=[cb] if with_cb else [])
            times[with_cb] = time.perf_counter() - start
            if with_cb:
                hooks = cb.seconds
        with_times.append(times[True])
        without_times.append(times[False])
        ratios.append(times[True] / times[False])
        print(
            f"round {r}: with {times[True]:.2f} s (hooks {hooks:.3f} s), "
            f"without {times[False]:.2f} s",
            flush=True,
        )
    print(
        f"{keras.backend.backend()} {args.model}, every {cb.every_n_batches} "
        f"({'given' if args.every else 'default'}): epoch with / "
        "without "
        f"min {min(with_times) / min(without_times):.3f}x, "
        f"median {statistics.median(ratios):.3f}x"
    )


if __name__ == "__main__":
    main()
