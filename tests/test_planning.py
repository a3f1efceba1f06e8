"""How a sweep is cut into tasks for a cluster (no Ray needed)."""

from mnist_core.catalog import LONG_CNN, REFERENCE_LAMBDAS, REFERENCE_WIDTHS, lambda_configs, width_configs
from mnist_core.configs import RunConfig
from mnist_core.planning import cost, is_wide, makespan, pieces, plan_tasks, stacks


def whole_study(seeds: int) -> list[RunConfig]:
    every = range(seeds)
    return [*lambda_configs(REFERENCE_LAMBDAS, every), *width_configs(REFERENCE_WIDTHS, every),
            *(RunConfig.for_model("cnn", seed=s) for s in every), LONG_CNN,
            *(RunConfig.for_model("improved_cnn", seed=s) for s in every)]


def test_wide_models_stack_alone_and_narrow_shapes_together():
    configs = width_configs([(10, 5), (1200, 480), (600, 240)], [0, 1], 3)
    assert [is_wide(c) for c in configs] == [False, False, True, True, True, True]
    assert stacks(configs) == [[0, 1], [2], [3], [4], [5]]


def test_pieces_keep_narrow_models_in_company_and_wide_ones_alone():
    five = lambda_configs([0, 0.001, 0.01, 0.1, 0.3], [0], 3)
    assert [len(p) for p in pieces(five)] == [2, 3]  # never a model alone while its shape has company
    assert [len(p) for p in pieces(width_configs([(10, 5)], [0], 3))] == [1]
    wide = width_configs([(1200, 480)], [0, 1, 2], 3)
    assert pieces(wide) == [[c] for c in wide]


def test_one_worker_gets_one_task_per_fused_group_and_many_get_bins_then_pieces_costliest_first():
    configs = [*width_configs([(10, 5), (1200, 480), (25, 10)], [0, 1], 3), *lambda_configs([0, 0.1], [0], 3)]
    cnn = RunConfig.for_model("cnn")
    one = plan_tasks([*configs, cnn], workers=1)
    assert len(one) == 2 and [cnn] in one
    many = plan_tasks([*configs, cnn], workers=4)
    assert sorted(c.key("f") for t in many for c in t) == sorted(c.key("f") for c in [*configs, cnn])
    assert [cost(t) for t in many] == sorted((cost(t) for t in many), reverse=True)
    assert many[0] == [cnn] and [len(t) for t in many[1:3]] == [1, 1]  # then each 1200-480 alone
    assert len(plan_tasks(configs, workers=2, fused=False)) == len(configs)


def test_no_task_of_the_ten_seed_study_exceeds_its_share_by_more_than_its_largest_model():
    study = whole_study(10)
    for workers in (2, 8, 32, 128):
        tasks = plan_tasks(study, workers)
        ideal = sum(map(cost, tasks)) / workers
        for task in tasks:
            assert cost(task) <= ideal + max(map(cost, task)), (workers, task)


def test_the_work_queue_finishes_workers_close_together_when_tasks_are_many_and_small():
    finish = makespan([10, 7, 5, 4, 3, 2, 1, 1, 1], 2)
    assert sorted(finish) == [17, 17]
    assert makespan([5, 1], 4) == [5, 1, 0, 0]
    widths = plan_tasks(width_configs(REFERENCE_WIDTHS, [0], 6), workers=2)
    first, last = sorted(makespan([cost(t) for t in widths], 2))
    assert last <= first * 1.05


def test_bins_stay_under_their_share_and_leave_small_pieces_to_the_queue():
    widths = width_configs(REFERENCE_WIDTHS, [0, 1, 2], 60)
    tasks = plan_tasks(widths, workers=4)
    share = sum(map(cost, tasks)) / 4
    assert len(tasks) < len(pieces(widths))  # fewer tasks than pieces: each costs setting up
    assert all(cost(t) <= 0.85 * share or len(t) <= 3 for t in tasks)
    assert sorted(c.key("f") for t in tasks for c in t) == sorted(c.key("f") for c in widths)
