"""Train many MLPs of a sweep at once, in one compiled TensorFlow graph.

Models of the same shape are stacked (weights gain a leading model axis) and run as
batched matmuls; each shape group's training steps are compiled by XLA as a loop, a whole
epoch per call, and the groups sit side by side in the same graph, where TensorFlow runs
them at the same time. With fewer groups than CPU threads, the largest group is cut in two
(a sweep of one shape would otherwise keep one core busy). Per model the math is the
reference's: Keras's own initial weights for its seed, its own shuffle each epoch, batch
32, softmax cross-entropy from logits plus its own L2 penalty on hidden kernels, and Adam
(lr 1e-3, Keras's betas and epsilon) with its own state. Only the per-step overhead is
shared, which is what dominates these small models.
"""

from __future__ import annotations

import functools
import os
import time
from collections import OrderedDict, defaultdict

import keras
import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from .configs import RunConfig, group_key
from .data import MNIST
from .models import build
from .planning import stacks
from .store import Run, RunStore
from .training import EpochCallback, labels_for, publish_model, tensors_for

ADAM_BETA_1, ADAM_BETA_2, ADAM_EPSILON = 0.9, 0.999, 1e-7  # keras.optimizers.Adam defaults
# Compiled graphs a worker keeps for later tasks, counted by their variables (with Adam's state),
# per worker, so per CPU of a node: the study's largest layout, two 1200-480 MLPs, holds 35 MB.
KEEP_BYTES = 128 * 2**20


def compatible(configs: list[RunConfig]) -> None:
    """Raise ValueError unless `configs` can share one fused graph."""
    if not configs:
        raise ValueError("no configs to train")
    if any(c.model != "mlp" for c in configs):
        raise ValueError("only MLP configs can be fused")
    if len({group_key(c) for c in configs}) > 1:
        raise ValueError("fused configs must share epochs, batch_size, learning_rate and limit")


def threads() -> int:
    """CPU threads this process's TensorFlow may use (a Ray task sets its own count)."""
    return tf.config.threading.get_inter_op_parallelism_threads() or len(os.sched_getaffinity(0))


def spread(groups: list[list[int]], parts: int) -> list[list[int]]:
    """Cut the largest group in halves until there are `parts` groups to run side by side.

    A half keeps at least two models: a stack of one is computed by other XLA kernels and
    ends a few float32 roundings away, while stacks of two or more give a model the same
    bits (tests/test_fused.py), so cutting never changes what a model learns.
    """
    groups = [list(g) for g in groups]
    while len(groups) < parts:
        largest = max(groups, key=len)
        if len(largest) < 4:
            break
        half = -(-len(largest) // 2)
        at = groups.index(largest)
        groups[at:at + 1] = [largest[:half], largest[half:]]
    return groups


def initial_weights(config: RunConfig) -> list[np.ndarray]:
    """The exact weights Keras gives this config's model when seeded as the fit path seeds it."""
    keras.utils.set_random_seed(config.seed)
    return build(config).get_weights()


def layout(configs: list[RunConfig]) -> tuple[list[list[int]], tuple]:
    """How `configs` train side by side (their indices by group, as `spread` cuts them for this
    process's threads), and what the compiled graph of such a layout depends on: each group's
    shape, size and whether any of its models has an L2 penalty; the batch size and learning rate."""
    groups = spread(stacks(configs), threads())
    shapes = tuple((configs[g[0]].hidden, len(g), any(configs[i].l2 > 0 for i in g)) for g in groups)
    return groups, (shapes, configs[0].batch_size, configs[0].learning_rate)


def starting_point(configs: list[RunConfig], groups: list[list[int]]) -> tuple[list, list]:
    """Per group: the stacked initial weights of its models, and their L2 factors."""
    weights = [[np.stack(ws) for ws in zip(*(initial_weights(configs[i]) for i in g))] for g in groups]
    return weights, [np.array([configs[i].l2 for i in g], np.float32) for g in groups]


class FusedMLPs:
    """The stacked variables, Adam state and compiled epoch of a list of MLP configs."""

    def __init__(self, configs: list[RunConfig]):
        compatible(configs)
        self.groups, self.layout = layout(configs)
        weights, l2 = starting_point(configs, self.groups)
        # Per group: [kernel0, bias0, kernel1, bias1, ...], each (models, ...).
        self.params = [[tf.Variable(w) for w in group] for group in weights]
        self.l2 = [tf.Variable(factors) for factors in l2]
        self.variables = [v for group in self.params for v in group]
        self.adam_m = [tf.Variable(tf.zeros_like(v)) for v in self.variables]
        self.adam_v = [tf.Variable(tf.zeros_like(v)) for v in self.variables]
        self.step = tf.Variable(0.0)
        self.learning_rate = configs[0].learning_rate
        self.batch_size = configs[0].batch_size
        self._take(configs, self.groups)
        self.group_steps = [self._compiled_group_steps(g) for g in range(len(self.groups))]
        self.group_epochs = [tf.function(functools.partial(self._group_epoch, g))
                             for g in range(len(self.groups))]
        self.epoch_fn = tf.function(self._epoch)

    def _take(self, configs: list[RunConfig], groups: list[list[int]]) -> None:
        self.configs = list(configs)
        self.groups = groups  # model indices, in config order
        self.order = [i for group in groups for i in group]  # stacked position -> config

    def start_over(self, configs: list[RunConfig]) -> None:
        """Train `configs`, of this layout, from their own initial weights and a fresh Adam,
        in the graphs already compiled (the same bits as a new FusedMLPs: tests/test_fused.py)."""
        compatible(configs)
        groups, key = layout(configs)
        if key != self.layout:
            raise ValueError("start_over needs configs of the same layout")
        weights, l2 = starting_point(configs, groups)
        for variables, values in zip(self.params, weights):
            for variable, value in zip(variables, values):
                variable.assign(value)
        for variable, factors in zip(self.l2, l2):
            variable.assign(factors)
        for variable in self.adam_m + self.adam_v:
            variable.assign(tf.zeros_like(variable))
        self.step.assign(0.0)
        self._take(configs, groups)

    def size_bytes(self) -> int:
        return sum(v.shape.num_elements() * 4 for v in self.variables) * 3  # with Adam's m and v

    @staticmethod
    def forward(params, x):
        """Logits (M, B, 10) for x: (M, B, 784) per model, or (B, 784) shared by all."""
        h = x
        for layer in range(0, len(params), 2):
            kernel = params[layer]
            h = tf.einsum("bi,mij->mbj", h, kernel) if h.shape.rank == 2 else tf.matmul(h, kernel)
            h = h + params[layer + 1][:, None, :]
            if layer + 2 < len(params):
                h = tf.nn.relu(h)
        return h

    @staticmethod
    def penalty(params, l2):
        """Per-model L2 penalty on hidden kernels (the output kernel is not regularized)."""
        hidden_kernels = params[0:-2:2]
        return l2 * tf.add_n([tf.reduce_sum(tf.square(k), axis=[1, 2]) for k in hidden_kernels])

    def _epoch(self, x, y, order):
        """One epoch: per model (mean loss, accuracy). `order` (models, N) holds each model's
        shuffled sample indices, in stacked order.

        Each group runs its own loop over the epoch's steps (`_group_epoch`, a function of its
        own): TensorFlow runs the groups side by side, each at its own pace, with no group
        waiting for the others between calls.
        """
        t = self.step.read_value()
        results, first = [], 0
        for group, group_epoch in zip(self.groups, self.group_epochs):
            results.append(group_epoch(x, y, order[first:first + len(group)], t))
            first += len(group)
        n = tf.shape(order)[1]
        self.step.assign_add(tf.cast((n + self.batch_size - 1) // self.batch_size, tf.float32))
        losses, hits = (tf.concat(parts, 0) for parts in zip(*results))
        n_float = tf.cast(n, tf.float32)
        return losses / n_float, hits / n_float

    def _group_epoch(self, group: int, x, y, order, t):
        """One group's epoch from step t: summed (loss, hits) per model of the group.

        Every full batch goes through one call of the group's compiled loop (one call per
        epoch: a call has a fixed cost, and a group waits for nothing between its steps); a
        last, partial batch goes through a second call.
        """
        steps, models = self.group_steps[group], len(self.groups[group])
        n = tf.shape(order)[1]
        full = n // self.batch_size * self.batch_size
        loss_sum, correct = tf.zeros([models]), tf.zeros([models])
        if full > 0:
            batches = tf.reshape(order[:, :full], [models, -1, self.batch_size])
            loss_sum, correct = steps(x, y, batches, t)
        if full < n:
            after = t + tf.cast(full // self.batch_size, tf.float32)
            losses, hits = steps(x, y, order[:, full:][:, None, :], after)
            loss_sum += losses
            correct += hits
        return loss_sum, correct

    def _compiled_group_steps(self, group: int):
        """Training steps of one shape group, compiled by XLA as a loop over the steps.

        Each group is its own compiled function: XLA fuses a group's many small ops (which
        is what the small models' steps are made of) and the groups, being independent,
        can run at the same time. A loop, not unrolled steps: its compile time does not
        grow with the steps it takes.
        """
        params, l2 = self.params[group], self.l2[group]
        # Without L2 in the group (the width sweep) its penalty is 0: leave it out of the graph,
        # or every step reads all hidden kernels and adds 0 to their gradients (XLA keeps x * 0).
        regularized = any(self.configs[i].l2 > 0 for i in self.groups[group])
        offset = sum(len(self.params[g]) for g in range(group))
        adam_state = list(zip(self.adam_m[offset:offset + len(params)],
                              self.adam_v[offset:offset + len(params)]))

        def steps(x, y, batches, t):
            """batches (models, steps, batch): one step per batch, in order, from step t."""
            models = len(self.groups[group])
            loss_sum, hits = tf.zeros([models]), tf.zeros([models])
            for k in tf.range(tf.shape(batches)[1]):
                indices = batches[:, k]
                labels = tf.gather(y, indices)
                with tf.GradientTape() as tape:
                    logits = self.forward(params, tf.gather(x, indices))
                    ce = tf.reduce_mean(
                        tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits), axis=1)
                    per_model = ce + self.penalty(params, l2) if regularized else ce
                    total = tf.reduce_sum(per_model)  # each model's gradient is its own loss's
                self._adam(params, tape.gradient(total, params), adam_state, t + tf.cast(k + 1, tf.float32))
                loss_sum += per_model * tf.cast(tf.shape(indices)[1], tf.float32)
                hits += tf.reduce_sum(tf.cast(
                    tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels), tf.float32), axis=1)
            return loss_sum, hits

        return tf.function(steps, jit_compile=True)

    def _adam(self, params, grads, adam_state, t) -> None:
        """Keras's Adam update, in TensorFlow's fused kernel (one pass over each tensor)."""
        shared = {"lr": self.learning_rate, "beta1": ADAM_BETA_1, "beta2": ADAM_BETA_2,
                  "epsilon": ADAM_EPSILON, "beta1_power": tf.pow(ADAM_BETA_1, t),
                  "beta2_power": tf.pow(ADAM_BETA_2, t)}
        for var, grad, (m, v) in zip(params, grads, adam_state):
            tf.raw_ops.ResourceApplyAdam(var=var.handle, m=m.handle, v=v.handle, grad=grad, **shared)

    def evaluate(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """Per-model (loss incl. L2, accuracy) on x, in stacked order, as Keras's val_ metrics."""
        losses, accuracies = [], []
        for params, l2 in zip(self.params, self.l2):
            ce_sum, hits = 0.0, 0.0
            for start in range(0, len(x), 5000):
                xb, yb = x[start:start + 5000], y[start:start + 5000]
                h = self.forward(params, xb)
                labels = tf.broadcast_to(yb, tf.shape(h)[:2])
                ce_sum += tf.reduce_sum(
                    tf.nn.sparse_softmax_cross_entropy_with_logits(labels, h), axis=1).numpy()
                hits += tf.reduce_sum(tf.cast(tf.equal(
                    tf.argmax(h, -1, output_type=tf.int32), labels), tf.float32), axis=1).numpy()
            losses.append(ce_sum / len(x) + self.penalty(params, l2).numpy())
            accuracies.append(hits / len(x))
        return np.concatenate(losses), np.concatenate(accuracies)

    def weights_of(self, config_index: int) -> list[np.ndarray]:
        for params, group in zip(self.params, self.groups):
            if config_index in group:
                position = group.index(config_index)
                return [v[position].numpy() for v in params]
        raise IndexError(config_index)


class CompiledGraphs:
    """Fused graphs kept after their task for the next task of the same layout, which then trains
    without tracing and compiling them again (a Ray worker keeps one of these for its life).
    Least recently used first out, beyond `budget_bytes` of variables."""

    def __init__(self, budget_bytes: int = KEEP_BYTES):
        self.budget_bytes = budget_bytes
        self.kept: OrderedDict[tuple, FusedMLPs] = OrderedDict()

    def fused(self, configs: list[RunConfig]) -> FusedMLPs:
        compatible(configs)
        key = layout(configs)[1]
        fused = self.kept.pop(key, None)
        if fused is None:
            fused = FusedMLPs(configs)
        else:
            fused.start_over(configs)
        self.kept[key] = fused
        while self.kept and sum(f.size_bytes() for f in self.kept.values()) > self.budget_bytes:
            self.kept.popitem(last=False)
        return fused


def train_fused(configs: list[RunConfig], data: MNIST, store: RunStore, progress: bool = True,
                on_epoch: EpochCallback | None = None, graphs: CompiledGraphs | None = None) -> list[Run]:
    """Train every config in one graph and publish each as an ordinary run, in config order.
    With `graphs`, in a graph kept from an earlier call of the same layout if there is one."""
    fused = graphs.fused(configs) if graphs else FusedMLPs(configs)
    first = fused.configs[0]
    y, y_test = labels_for(first, data)
    x, x_test = tensors_for(first, data)
    x_tf = tf.reshape(x, [len(x), -1])
    y_tf = tf.constant(y.astype(np.int32))
    x_test_tf = tf.reshape(x_test, [len(x_test), -1])
    y_test_tf = tf.constant(y_test.astype(np.int32))
    rngs = [np.random.default_rng([fused.configs[i].seed, 7919]) for i in fused.order]
    history = {i: defaultdict(list) for i in fused.order}
    keys = [config.key(data.fingerprint) for config in fused.configs]
    label = f"fused: {len(configs)} MLPs, {len(fused.groups)} shapes"
    started = time.perf_counter()
    with tqdm(total=first.epochs, desc=label, unit="epoch", disable=not progress, leave=False) as bar:
        for epoch in range(first.epochs):
            order = np.stack([rng.permutation(len(x)) for rng in rngs]).astype(np.int32)
            loss, accuracy = (t.numpy() for t in fused.epoch_fn(x_tf, y_tf, tf.constant(order)))
            val_loss, val_accuracy = fused.evaluate(x_test_tf, y_test_tf)
            for position, index in enumerate(fused.order):
                for name, values in (("loss", loss), ("accuracy", accuracy),
                                     ("val_loss", val_loss), ("val_accuracy", val_accuracy)):
                    history[index][name].append(float(values[position]))
            bar.set_postfix(best_val_acc=f"{val_accuracy.max():.4f}")
            bar.update(1)
            if on_epoch:
                on_epoch(epoch + 1, {keys[i]: {name: list(v) for name, v in history[i].items()}
                                     for i in fused.order})
    seconds = time.perf_counter() - started
    runs = []
    for index, config in enumerate(fused.configs):
        model = build(config)
        model.set_weights(fused.weights_of(index))
        runs.append(publish_model(store, config, data, model, dict(history[index]),
                                  seconds / len(configs), trainer="fused",
                                  extra={"fused_models": len(configs),
                                         "fused_wall_time_s": round(seconds, 2)}))
    return runs
