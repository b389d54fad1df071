"""The task registry :data:`TASKS`: one file per task in this package, one registration each.

Each task (:class:`~characterbench.tasks.base.Task`) owns its cells, ground-truth reader, prediction
layout and validation, scoring, grid axes, main metric and version; evaluation, validation, baselines,
results and boards ask it instead of branching on its name. Metrics live in
:data:`characterbench.metric_specs.METRICS`. Unknown names raise with the known names and the closest
match. Importing this package is light (torch loads inside the scoring functions).
"""

from __future__ import annotations

from characterbench.metric_specs import METRICS, MetricSpec, get_metric
from characterbench.registry import Registry, closest
from characterbench.tasks.apose import APOSE
from characterbench.tasks.base import Cell, ScoredSample, Task
from characterbench.tasks.multiview import MULTIVIEW
from characterbench.tasks.pose import POSE

TASKS: Registry[Task] = Registry("task")


def register_task(task: Task) -> Task:
    """Add a task to :data:`TASKS` (its metrics must be registered).

    Raises:
        KeyError: The task names an unknown metric.
        ValueError: The name is taken, or the main metric is not among the task's metrics.
    """
    for m in task.metrics:
        get_metric(m)
    if task.main_metric not in task.metrics:
        raise ValueError(f"task {task.name!r}: main metric {task.main_metric!r} is not among its metrics {task.metrics}")
    return TASKS.register(task.name, task)


for _task in (MULTIVIEW, APOSE, POSE):
    register_task(_task)


def get_task(name: str) -> Task:
    """The task registered under ``name``.

    Raises:
        KeyError: Unknown task; the message lists the known tasks and the closest match.
    """
    return TASKS.get(name)


def resolve_metrics(task: str, names: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """Check a metric selection against a task.

    Args:
        task: Task name.
        names: ``None`` (all of the task's metrics), a comma-separated string, or names.

    Returns:
        The selected metric names in the task's column order.

    Raises:
        KeyError: Unknown task, or a metric the task does not report (with the known names and
            the closest match).
        ValueError: An empty selection.
    """
    spec = get_task(task)
    if names is None:
        return spec.metrics
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    if not names:
        raise ValueError(f"expected at least one metric for task {task!r}, got an empty selection")
    for n in names:
        if n not in spec.metrics:
            raise KeyError(
                f"metric {n!r} is not reported by task {task!r}{closest(n, list(spec.metrics))}; "
                f"its metrics: {list(spec.metrics)}"
            )
    return tuple(m for m in spec.metrics if m in set(names))


def fetchable_metrics(task: str, home=None) -> tuple[str, ...]:
    """The task's metrics whose weights ``characterbench weights fetch`` provides and that are present
    (every metric without weights counts), in column order. Reads the weights manifest only."""
    from metrics.weights import weights_status

    from characterbench.protocol import PROTOCOL_V1

    status = weights_status(home, verify=False)
    out = []
    for m in get_task(task).metrics:
        spec = METRICS.get(m)
        needed = spec.weights(PROTOCOL_V1)
        if spec.fetchable and all(w in status and status[w].present for w in needed):
            out.append(m)
    return tuple(out)


__all__ = [
    "METRICS", "TASKS", "Cell", "MetricSpec", "ScoredSample", "Task", "fetchable_metrics", "get_metric", "get_task",
    "register_task", "resolve_metrics",
]
