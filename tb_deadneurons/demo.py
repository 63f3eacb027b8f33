"""``tb-deadneurons demo``: two small ReLU MLPs on scikit-learn's digits.

One run is healthy (He initialisation, Adam at 1e-3); in the other the
learning rate is 30x too high (Adam at 3e-2) and most units of the first
hidden layer die within the first epochs, while the loss still looks fine.
Both are logged with ``DeadNeuronCallback`` and ``keras.callbacks.TensorBoard``
under ``--logdir`` (runs ``healthy`` and ``dying``); then TensorBoard is
started with the plugin. The data ships with scikit-learn: nothing is
downloaded.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

DEFAULT_LOGDIR = os.path.join("runs", "demo")
DEFAULT_EPOCHS = 20
# name -> Adam learning rate
RUNS = {"healthy": 1e-3, "dying": 3e-2}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the demo's flags to ``parser`` and sets its ``run`` function."""
    parser.add_argument(
        "--logdir",
        default=DEFAULT_LOGDIR,
        help=f"where to log (default {DEFAULT_LOGDIR})",
    )
    parser.add_argument(
        "--port", type=int, default=6006, help="TensorBoard port (default 6006)"
    )
    parser.add_argument(
        "--no-serve",
        action="store_true",
        help="only train and log; do not start TensorBoard",
    )
    # Shorter training for tests and screenshots.
    parser.add_argument(
        "--epochs", type=int, default=DEFAULT_EPOCHS, help=argparse.SUPPRESS
    )
    parser.set_defaults(run=run)


def digits():
    """scikit-learn's digits, shuffled: ((x, y), (x_val, y_val))."""
    import numpy as np
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(x))
    x = (x[order] / 16.0).astype("float32")
    y = y[order].astype("int32")
    return (x[:1500], y[:1500]), (x[1500:], y[1500:])


def build_model(keras, learning_rate: float, seed: int = 1):
    """The demo's MLP (64 -> 256 -> 128 -> 10), compiled with Adam."""
    keras.utils.set_random_seed(seed)
    net = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(
                256, activation="relu", kernel_initializer="he_normal", name="hidden1"
            ),
            keras.layers.Dense(
                128, activation="relu", kernel_initializer="he_normal", name="hidden2"
            ),
            keras.layers.Dense(10, activation="softmax", name="output"),
        ]
    )
    net.compile(
        keras.optimizers.Adam(learning_rate),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return net


def train(logdir: str, epochs: int = DEFAULT_EPOCHS, every_n_batches: int = 10) -> dict:
    """Trains and logs both runs under ``logdir``; returns final metrics per run."""
    import keras

    import tb_deadneurons

    (x, y), (x_val, y_val) = digits()
    results = {}
    for name, learning_rate in RUNS.items():
        run_dir = os.path.join(logdir, name)
        net = build_model(keras, learning_rate)
        callbacks = [
            tb_deadneurons.DeadNeuronCallback(
                run_dir, probe_data=x_val[:256], every_n_batches=every_n_batches
            ),
            keras.callbacks.TensorBoard(run_dir),
        ]
        start = time.monotonic()
        history = net.fit(
            x,
            y,
            epochs=epochs,
            batch_size=32,
            validation_data=(x_val, y_val),
            callbacks=callbacks,
            verbose=0,
        )
        results[name] = {
            "loss": float(history.history["loss"][-1]),
            "val_accuracy": float(history.history["val_accuracy"][-1]),
            "seconds": time.monotonic() - start,
        }
        print(
            f"{name}: Adam lr={learning_rate:g}, {epochs} epochs in "
            f"{results[name]['seconds']:.0f} s, loss {results[name]['loss']:.3f}, "
            f"val accuracy {results[name]['val_accuracy']:.3f}",
            flush=True,
        )
    return results


def serve(logdir: str, port: int) -> int:
    """Runs TensorBoard on ``logdir`` until interrupted; prints the URL."""
    cmd = [
        sys.executable,
        "-m",
        "tensorboard.main",
        "--logdir",
        logdir,
        "--port",
        str(port),
    ]
    proc = subprocess.Popen(cmd)
    # `kill` (SIGTERM) stops TensorBoard too, like Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    base = f"http://localhost:{port}/"
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(base + "data/plugins_listing", timeout=5):
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
        if proc.poll() is not None:
            return proc.returncode or 1
        print(
            f"\nDead neurons dashboard: {base}#deadneurons  (Ctrl-C to stop)",
            flush=True,
        )
        return proc.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


def run(args: argparse.Namespace) -> int:
    if args.epochs < 1:
        raise SystemExit(f"--epochs must be >= 1; got {args.epochs}")
    print(
        f"Training two MLPs on scikit-learn's digits; logging to {args.logdir}",
        flush=True,
    )
    train(args.logdir, epochs=args.epochs)
    if args.no_serve:
        print(
            "Logged runs 'healthy' and 'dying'. View them with: "
            f"tensorboard --logdir {args.logdir}"
        )
        return 0
    return serve(args.logdir, args.port)
