"""Task and metric registries: helpful misses, consistency of what is registered, and registration
checks (the round trip of every task through `characterbench eval` runs in test_evaluate and test_pose)."""

from __future__ import annotations

import dataclasses

import pytest

from characterbench.metric_specs import METRICS, MetricSpec, get_metric
from characterbench.registry import Registry
from characterbench.tasks import TASKS, get_task, register_task, resolve_metrics


def test_misses_name_the_known_names_and_the_closest():
    with pytest.raises(KeyError, match=r"unknown task 'multivew' \(did you mean 'multiview'\?\); known tasks: \['multiview', 'apose', 'pose'\]"):
        get_task("multivew")
    with pytest.raises(KeyError, match=r"unknown metric 'mpjep' \(did you mean 'mpjpe'\?\)"):
        get_metric("mpjep")
    with pytest.raises(KeyError, match=r"metric 'fvd_f' is not reported by task 'pose'"):
        resolve_metrics("pose", "fvd_f")
    registry: Registry[int] = Registry("thing")
    registry.register("a", 1)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("a", 2)


def test_every_task_metric_is_registered_and_every_metric_has_a_task():
    used = {m for t in TASKS.values() for m in t.metrics}
    assert used == set(METRICS.names())
    for task in TASKS.values():
        assert task.main_metric in task.metrics and task.version
        for m in task.metrics:
            spec = get_metric(m)
            assert spec.level in ("cell", "set", "sample")
            assert (spec.build is None) == (spec.level == "sample")
    assert [get_metric(m).level for m in get_task("pose").metrics] == ["sample"] * 4
    assert get_metric("psnr").in_range(100.0) and not get_metric("ssim").in_range(1.5)


def test_registration_is_checked():
    with pytest.raises(KeyError, match="unknown metric 'iou'"):
        register_task(dataclasses.replace(get_task("pose"), name="pose2", metrics=("iou",), main_metric="iou"))
    with pytest.raises(ValueError, match="main metric"):
        register_task(dataclasses.replace(get_task("pose"), name="pose3", main_metric="ssim"))
    with pytest.raises(ValueError, match="needs a builder"):
        MetricSpec("x", "X", True, "cell", (0.0, 1.0), "no builder")
