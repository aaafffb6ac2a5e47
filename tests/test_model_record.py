"""The model record is read defensively: whatever its file holds, `read_record` returns what it can, never raises."""

import json
import math
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from kfp_distill._implementation import model_record
from kfp_distill._implementation.model_record import PROVENANCE_KEYS, RECORD_FILE, read_record


def _record_in(folder, content: bytes) -> dict:
    (Path(folder) / RECORD_FILE).write_bytes(content)
    return read_record(folder)


def test_a_metric_too_large_for_a_float_is_left_out(tmp_path):
    content = '{"metrics": {"loss": 0.5, "huge": ' + "9" * 400 + "}}"
    assert _record_in(tmp_path, content.encode()) == {"metrics": {"loss": 0.5}}


def test_nesting_too_deep_for_json_reads_as_no_record(tmp_path):
    assert _record_in(tmp_path, b'{"metrics": ' + b"[" * 100_000 + b"]" * 100_000 + b"}") == {}


def test_one_tuning_step_is_a_step_not_a_boolean(tmp_path):
    record = {"tuning": {"train_steps": 1}, "task_type": "math", "student_model_reference": True}
    assert _record_in(tmp_path, json.dumps(record).encode()) == {"train_steps": "1", "task_type": "math"}


def test_a_record_past_the_size_limit_is_not_read(tmp_path, monkeypatch):
    monkeypatch.setattr(model_record, "MAX_RECORD_BYTES", 64)
    assert _record_in(tmp_path, json.dumps({"task_type": "math", "note": "x" * 100}).encode()) == {}
    assert _record_in(tmp_path, json.dumps({"task_type": "math"}).encode()) == {"task_type": "math"}


_json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.text(max_size=20)
    | st.integers() | st.integers(min_value=10**300, max_value=10**1000),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=10,
)
_numbers = st.one_of(st.floats(), st.integers(), st.integers(min_value=10**308, max_value=10**1000), st.booleans())
_records = st.fixed_dictionaries(
    {},
    optional={
        **{key: _json_values for key in PROVENANCE_KEYS},
        "tuning": _json_values | st.fixed_dictionaries({}, optional={"train_steps": _json_values}),
        "metrics": st.dictionaries(st.text(max_size=8), _numbers | _json_values, min_size=1, max_size=4) | _json_values,
    },
)
_contents = st.one_of(
    st.binary(max_size=200),
    _json_values.map(lambda value: json.dumps(value).encode()),
    _records.map(lambda record: json.dumps(record).encode()),  # NaN and Infinity, as Python writes them
)


@settings(max_examples=300, deadline=None)
@given(_contents)
def test_any_record_file_reads_as_what_it_holds_of_the_record_and_never_raises(content):
    with tempfile.TemporaryDirectory() as folder:
        record = _record_in(folder, content)
    assert set(record) <= {*PROVENANCE_KEYS, "metrics"}
    assert all(isinstance(record[key], str) for key in PROVENANCE_KEYS if key in record)
    assert all(isinstance(value, float) and math.isfinite(value) for value in record.get("metrics", {}).values())
