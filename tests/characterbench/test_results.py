"""The result record: schema, round trip, and the tiny JSON Schema checker."""

from __future__ import annotations

import json

import pytest

from characterbench.protocol import PROTOCOL_V1
from characterbench.results import (
    RESULTS_SCHEMA,
    SCHEMA_VERSION,
    Grid,
    Interval,
    InvalidResultsError,
    Results,
    SampleScores,
    load_results,
    schema_errors,
)


def make_record(**changes) -> Results:
    fields = dict(
        task="multiview",
        metrics={"ssim": 0.9, "fvd_f": 12.5},
        sample_count=2,
        clip_counts={"fvd_f": 18},
        intervals={"fvd_f": Interval(10.0, 15.0, 0.95, 100, "sample", 0)},
        grid=Grid("view", list(PROTOCOL_V1.views), "frame", list(PROTOCOL_V1.frames), {"ssim": [[0.9] * 9] * 9}),
        per_sample=[SampleScores("a__b", {"ssim": 0.9}, {"ssim": [[0.9] * 9] * 9})],
        protocol_version=PROTOCOL_V1.version,
        protocol_fingerprint=PROTOCOL_V1.fingerprint(),
        protocol=PROTOCOL_V1.to_dict(),
        gt_manifest_hash="sha256:" + "0" * 64,
        weights={"i3d_kinetics400": "ab" * 32},
        package_version="0.1.0",
        git_commit=None,
        date="2026-01-01T00:00:00+00:00",
        device="cpu",
        config={"pred": "p", "gt": "g"},
        timing={"total_s": 1.0},
        label="m",
    )
    fields.update(changes)
    return Results(**fields)


def test_round_trip(tmp_path):
    record = make_record()
    path = record.save(tmp_path / "r.json")
    assert load_results(path) == record
    assert json.loads(path.read_text())["schema_version"] == SCHEMA_VERSION


def test_schema_lists_every_violation(tmp_path):
    data = make_record().to_dict()
    data["sample_count"] = "two"
    data["task"] = "video"
    del data["device"]
    data["surprise"] = 1
    data["metrics"]["ssim"] = None
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(InvalidResultsError) as err:
        load_results(path)
    text = "\n".join(err.value.errors)
    for fragment in ("$.sample_count: expected integer, got str", "$.task: expected one of", "missing required field 'device'",
                     "unexpected field 'surprise'", "$.metrics.ssim: expected number, got NoneType"):
        assert fragment in text
    assert len(err.value.errors) == 5


def test_non_finite_values_are_refused(tmp_path):
    with pytest.raises(InvalidResultsError, match="finite"):
        make_record(metrics={"psnr": float("inf")}).save(tmp_path / "r.json")
    (tmp_path / "nan.json").write_text("{not json")
    with pytest.raises(InvalidResultsError, match="not valid JSON"):
        load_results(tmp_path / "nan.json")


def test_checker_basics():
    schema = {"type": "object", "properties": {"a": {"type": ["integer", "null"]}, "b": {"const": 1}}}
    assert schema_errors({"a": None, "b": 1}, schema) == []
    assert schema_errors({"a": True}, schema) == ["$.a: expected integer or null, got bool"]  # bools are not ints
    assert schema_errors({"b": 2}, schema) == ["$.b: expected 1, got 2"]
    assert SCHEMA_VERSION in RESULTS_SCHEMA["properties"]["schema_version"]["enum"]


def test_interval_std_and_method_round_trip_and_old_records_load(tmp_path):
    record = make_record(intervals={"fvd_f": Interval(10.0, 15.0, 0.95, 100, "sample", 0, std=1.25, method="basic")})
    assert load_results(record.save(tmp_path / "r.json")) == record
    # A schema /1 record: percentile interval without std.
    data = make_record().to_dict()
    data["schema_version"] = "characterbench-results/1"
    for iv in data["intervals"].values():
        del iv["std"], iv["method"]
    (tmp_path / "old.json").write_text(json.dumps(data))
    old = load_results(tmp_path / "old.json")
    assert old.intervals["fvd_f"].method == "percentile" and old.intervals["fvd_f"].std is None
    data["schema_version"] = "characterbench-results/0"
    assert schema_errors(data) and "schema_version" in schema_errors(data)[0]
