"""How training is cut into tasks for a cluster's workers, and what each task costs.

A fused MLP group is cut into stacks (`stacks`): the models of one shape together, except wide
models, which train alone (stacking them saves nothing and costs 10-20% more, measured). The
local trainer uses the same stacks, so a model's weights do not depend on where it trained.
For a cluster, the stacks are cut into pieces (a narrow shape's models two or three at a time),
which fill one bin per worker up to BULK of its share; the pieces left over are tasks of their
own, and so is every CNN run. The Ray backend hands tasks out costliest first to whichever
worker is free (a work queue), so the small tasks at the end even out the estimates' errors.
"""

from __future__ import annotations

from collections import defaultdict

from .configs import RunConfig, group_key

# An MLP of this many multiply-adds per image or more trains in a stack of its own. Measured on
# this machine, 1 thread, an epoch of 60,000 images: 600-240 alone 2.67 s, two stacked 6.43 s;
# 1200-480 alone 8.06 s, two stacked 17.75 s; 300-120 alone 1.16 s, two stacked 2.42 s.
WIDE_MACS = 500_000
# Multiply-adds per image of the CNNs (counted from models.py's layers).
CNN_MACS_PER_IMAGE = {"cnn": 2_800_000, "improved_cnn": 18_700_000}
# Seconds on one CPU, measured on this machine (2026-11-29, 1 thread): an MLP's training step
# costs a fixed part per model (gathering its batch, the small ops: 0.17 s an epoch for a
# 10-5 MLP, 1,875 steps) and a part per multiply-add of its batch (8.06 s an epoch for
# 1200-480); compiling a stack's epoch loop costs about a second. The CNNs' seconds per
# multiply-add come from their epoch times (37 s and 106 s on 2 cores). Each run is then scored
# on the 70,000 images (a forward pass, about a third of a training step's work per image) and
# saved, 0.3 s beyond that (2026-11-30: 0.27-0.43 s for the small width models, 2.8 s for
# 1200-480, scoring 1.9 s of it). A task of its own costs a little more (0.3 s: setting up,
# returning its runs; one-model tasks of the width sweep, 2 epochs, fit 1.15-1.25 s of fixed
# cost in one process and took 0.1-0.3 s more on Ray). Only the ratios matter here: they order
# the work queue (costliest first) and weigh the projections.
STEP_S = 9e-5
MAC_S = {"mlp": 8.7e-11, "cnn": 3.9e-10, "improved_cnn": 1.5e-10}
COMPILE_S = 1.0
SCORED_IMAGES = 70_000
RUN_S = 0.3
TASK_S = 0.3
# A cluster's first tasks of a fused group are bins filled to this share of each worker's part,
# the rest small tasks handed out as workers free up: few tasks (each pays its own set-up and
# its stacks' compiles), and the queue still evens out the estimates' errors at the end.
BULK = 0.85


def macs_per_image(config: RunConfig) -> int:
    if config.model != "mlp":
        return CNN_MACS_PER_IMAGE[config.model]
    widths = (28 * 28, *config.hidden, 10)
    return sum(a * b for a, b in zip(widths, widths[1:]))


def is_wide(config: RunConfig) -> bool:
    return config.model == "mlp" and macs_per_image(config) >= WIDE_MACS


def stacks(configs: list[RunConfig]) -> list[list[int]]:
    """Indices of `configs` (one fused group) by stack: one shape's models together, in config
    order, except wide models, each alone."""
    by_shape: dict[tuple, list[int]] = defaultdict(list)
    alone = []
    for index, config in enumerate(configs):
        if is_wide(config):
            alone.append([index])
        else:
            by_shape[config.hidden].append(index)
    return sorted([*by_shape.values(), *alone], key=lambda stack: stack[0])


def cost(configs: RunConfig | list[RunConfig]) -> float:
    """Estimated seconds on one CPU to train `configs` in one task (fused by stack if MLPs)."""
    configs = [configs] if isinstance(configs, RunConfig) else configs
    total = 0.0
    for config in configs:
        steps = -(-(config.limit or 60_000) // config.batch_size) * config.epochs
        fixed = STEP_S if config.model == "mlp" else 0.0
        mac_s = MAC_S[config.model] * macs_per_image(config)
        total += steps * (fixed + mac_s * config.batch_size) + RUN_S + SCORED_IMAGES * mac_s / 3
    mlps = [c for c in configs if c.model == "mlp"]
    return total + COMPILE_S * len(stacks(mlps)) + TASK_S


def pieces(configs: list[RunConfig]) -> list[list[RunConfig]]:
    """A fused group's smallest tasks: wide models alone, other shapes two at a time (three for
    an odd count), never a model alone while its shape has company.

    XLA computes a stack of one model with other kernels than a stack of two or more, which
    changes the last bits of its weights, while stacks of 2, 3, 4 or 5 give each model the same
    bits (tests/test_fused.py); the local trainer stacks the same way, so these pieces train
    what it trains, bit for bit.
    """
    out = []
    for stack in stacks(configs):
        same = [configs[i] for i in stack]
        pairs = [same[i:i + 2] for i in range(0, len(same), 2)]
        if len(pairs) > 1 and len(pairs[-1]) == 1:
            single = pairs.pop()
            pairs[-1] += single
        out += pairs
    return out


def plan_tasks(configs: list[RunConfig], workers: int, fused: bool = True) -> list[list[RunConfig]]:
    """`configs` as tasks, costliest first. Every run that is not a fused MLP is a task of its
    own. A fused group is one task on one worker; on more, its pieces (costliest first) fill one
    bin per worker up to BULK of the group's share per worker, and each piece left over is a
    task of its own, for whichever worker frees up first. No task exceeds a worker's share of
    its group by more than one piece."""
    tasks: list[list[RunConfig]] = []
    groups: dict[tuple, list[RunConfig]] = {}
    for config in configs:
        if fused and config.model == "mlp":
            groups.setdefault(group_key(config), []).append(config)
        else:
            tasks.append([config])
    for group in groups.values():
        if workers <= 1:
            tasks.append(group)
            continue
        each = sorted(pieces(group), key=cost, reverse=True)
        share = sum(map(cost, each)) / workers
        bins: list[list[RunConfig]] = [[] for _ in range(workers)]
        loads = [0.0] * workers
        for piece in each:
            lightest = loads.index(min(loads))
            if not bins[lightest] or loads[lightest] + cost(piece) <= BULK * share:
                bins[lightest] += piece
                loads[lightest] += cost(piece)
            else:
                tasks.append(piece)
        tasks += [b for b in bins if b]
    return sorted(tasks, key=cost, reverse=True)


def makespan(task_seconds: list[float], workers: int) -> list[float]:
    """When each worker finishes if tasks of these seconds are handed out in this order to
    whichever worker is free first (as the Ray backend's work queue does)."""
    free = [0.0] * max(workers, 1)
    for seconds in task_seconds:
        free[free.index(min(free))] += seconds
    return free
