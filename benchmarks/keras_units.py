"""Keras snapshot cost relative to one compiled forward of the probe batch.

For each source tree (default: /work/main and this checkout) and model
(keras-hub Llama tiny, EfficientNetB0 with ``weights=None``, a 2-layer
LSTM), a subprocess with ``PYTHONPATH=<tree>`` builds the model, builds the
probe (the traced discovery pass, on this tree), and times a snapshot
(``Probe()``: the compiled probe pass, host copies and statistics) and
``model.predict_on_batch`` on the same batch, alternating, median of
``--n`` each. Repeats interleave trees and models; printed: min and
median of the ratio snapshot / forward per tree and model, and "fails"
where a tree's probe cannot watch the model (main on Llama: "no layer to
watch"). Nothing runs between snapshots on either tree: the probe's cost is
paid only when a snapshot is taken.

    KERAS_BACKEND=tensorflow python benchmarks/keras_units.py --reps 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = ("llama", "efficientnet", "lstm")


def _build(name):
    import keras
    import numpy as np

    rng = np.random.default_rng(0)
    if name == "llama":
        import keras_hub

        model = keras_hub.models.LlamaBackbone(
            vocabulary_size=1000,
            num_layers=2,
            num_query_heads=4,
            num_key_value_heads=2,
            hidden_dim=64,
            intermediate_dim=256,
        )
        x = {
            "token_ids": rng.integers(1, 1000, (8, 64)),
            "padding_mask": np.ones((8, 64), bool),
        }
        return model, x
    if name == "efficientnet":
        model = keras.applications.EfficientNetB0(
            weights=None, input_shape=(64, 64, 3), classes=10
        )
        return model, rng.uniform(0, 255, (8, 64, 64, 3)).astype("float32")
    inputs = keras.Input((20, 16))
    h = keras.layers.LSTM(64, return_sequences=True)(inputs)
    h = keras.layers.LSTM(64)(h)
    h = keras.layers.Dense(64, activation="relu")(h)
    model = keras.Model(inputs, keras.layers.Dense(10)(h))
    return model, rng.normal(0, 1, (64, 20, 16)).astype("float32")


def child(name: str, n: int) -> dict:
    from tb_deadneurons.keras import probe

    model, x = _build(name)
    try:
        p = probe.Probe(model, x)
    except ValueError as e:
        return {"fails": str(e)[:120]}
    p()
    model.predict_on_batch(x)
    snap, fwd = [], []
    for _ in range(n):
        t = time.perf_counter()
        p()
        snap.append(time.perf_counter() - t)
        t = time.perf_counter()
        model.predict_on_batch(x)
        fwd.append(time.perf_counter() - t)
    return {
        "ratio": statistics.median(snap) / statistics.median(fwd),
        "series": len(p.watched),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--n", type=int, default=5)
    ap.add_argument("--trees", nargs="+", default=["/work/main", HERE])
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--child")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.n)))
        return
    results: dict = {}
    for _ in range(args.reps):
        for model in args.models:
            for tree in args.trees:
                env = {**os.environ, "PYTHONPATH": tree}
                out = subprocess.run(
                    [sys.executable, __file__, "--child", model, "--n", str(args.n)],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
                results.setdefault((tree, model), []).append(
                    json.loads(out.strip().splitlines()[-1])
                )
    for (tree, model), runs in results.items():
        ratios = [r["ratio"] for r in runs if "ratio" in r]
        if not ratios:
            print(f"{tree:28s} {model:13s} fails: {runs[0]['fails']}")
            continue
        print(
            f"{tree:28s} {model:13s} snapshot/forward min {min(ratios):.2f}x "
            f"median {statistics.median(ratios):.2f}x ({runs[0]['series']} series)"
        )


if __name__ == "__main__":
    main()
