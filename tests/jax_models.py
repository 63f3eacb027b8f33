"""Flax models with planted dead units and their optax training loops.

Shared by the JAX writer's tests and its distributed worker. Every model
is written as Flax code is written: activations are function calls
(``nn.relu``, ``nnx.relu``, ``jax.nn.gelu``, ``nn.silu``).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

DEAD_UNITS = [3, 17, 30]  # of "hidden" (32 units): bias -1e4, never active
DEAD_GATES = [2, 11]  # of the gated FFN's product (24 units)
DEAD_CHANNELS = [1, 6]  # of "conv1" (8 channels): BatchNorm beta -1e4


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Dense(32, name="hidden")(x))
        x = nn.tanh(nn.Dense(16, name="mid")(x))
        return nn.Dense(3, name="out")(x)


class GatedFFN(nn.Module):
    @nn.compact
    def __call__(self, x):
        h = nn.LayerNorm(name="norm")(nn.Dense(16, name="embed")(x))
        gated = nn.silu(nn.Dense(24, name="gate")(h)) * nn.Dense(24, name="up")(h)
        return nn.Dense(3, name="down")(gated)


class CNN(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.Conv(8, (3, 3), name="conv1")(x)
        x = nn.relu(nn.BatchNorm(use_running_average=False, name="bn")(x))
        x = nn.max_pool(x, (2, 2), (2, 2))
        x = jax.nn.gelu(nn.Conv(6, (3, 3), name="conv2")(x))
        return nn.Dense(4, name="out")(x.reshape((x.shape[0], -1)))


class NNXMLP(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(20, 32, rngs=rngs)
        self.drop = nnx.Dropout(0.2, rngs=rngs)
        self.out = nnx.Linear(32, 3, rngs=rngs)

    def __call__(self, x):
        return self.out(self.drop(nnx.relu(self.hidden(x))))


def plant(variables, layer: str, units, collection="params", name="bias"):
    """``variables`` with ``units`` of ``layer``'s ``name`` set to -1e4."""
    tree = jax.tree_util.tree_map(lambda a: a, variables)  # a copy of dicts
    tree[collection][layer][name] = (
        tree[collection][layer][name].at[np.asarray(units, int)].set(-1e4)
    )
    return tree


def data(shape=(20,), n=256, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, *shape)).astype(np.float32)
    return x, rng.integers(0, classes, size=n).astype(np.int32)


def linen_init(model, x, layer, units, **kw):
    variables = model.init(jax.random.key(0), x[:2])
    variables = jax.tree_util.tree_map(jnp.asarray, dict(variables))
    variables = {k: dict(v) for k, v in variables.items()}
    return plant(variables, layer, units, **kw)


def xent(logits, y):
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def linen_train_step(model, tx, mutable: bool):
    """A jitted optax step ``(variables, opt_state, x, y) -> (.., .., loss)``."""

    def step(variables, opt_state, x, y):
        def loss_fn(params):
            v = dict(variables, params=params)
            if mutable:
                out, updates = model.apply(v, x, mutable=["batch_stats"])
            else:
                out, updates = model.apply(v, x), {}
            return xent(out, y), updates

        (loss, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            variables["params"]
        )
        changes, opt_state = tx.update(grads, opt_state, variables["params"])
        params = optax.apply_updates(variables["params"], changes)
        return dict(variables, params=params, **updates), opt_state, loss

    return jax.jit(step)


def train_linen(model, variables, x, y, steps, monitor=None, mutable=False, batch=16):
    """Adam for ``steps`` steps; ``monitor.step(variables, loss)`` after each."""
    tx = optax.adam(1e-2)
    opt_state = tx.init(variables["params"])
    step = linen_train_step(model, tx, mutable)
    for i in range(steps):
        rows = slice((i * batch) % len(x), (i * batch) % len(x) + batch)
        variables, opt_state, loss = step(variables, opt_state, x[rows], y[rows])
        if monitor is not None:
            monitor.step(variables, loss)
    return variables


def nnx_model(seed=0):
    model = NNXMLP(nnx.Rngs(seed))
    model.hidden.bias.value = model.hidden.bias.value.at[np.asarray(DEAD_UNITS)].set(
        -1e4
    )
    return model


def train_nnx(model, x, y, steps, monitor=None, batch=16):
    optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer, xb, yb):
        loss, grads = nnx.value_and_grad(lambda m: xent(m(xb), yb))(model)
        optimizer.update(model, grads)
        return loss

    for i in range(steps):
        rows = slice((i * batch) % len(x), (i * batch) % len(x) + batch)
        loss = step(model, optimizer, x[rows], y[rows])
        if monitor is not None:
            monitor.step(loss)
    return model
