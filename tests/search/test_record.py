"""Trial records are typed, and read and write exactly the JSON run directories hold."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from slimkit import ArtifactError
from slimkit.search import TrialRecord
from slimkit.search._record import Deployment, Structure

# Written by the code before records were typed (`compress --goal latency`, auto backend), as
# trials.json holds it: a trial that reused trial 0's plan.
SEARCH_TRIAL = """{"owner": "vm:20879", "params": {"macs_keep": 0.5}, "structured": {"ratios":
{"conv1": 0.0, "conv2": 0.0, "fc1": 0.6900000000000001}, "macs_fraction": 0.8855687932359724,
"params_fraction": 0.26809620622194946, "widths": {"conv1": 8, "conv2": 16, "fc1": 16, "fc2":
10}, "removed_blocks": []}, "sparsity": 0.0, "float_val_accuracy": 58.7890625, "params_count":
13978, "nonzero_params": 13978, "macs": 294944, "precision": "fp32 (onnxruntime)", "onnx":
"run2/trials/0000/model-fp32.onnx", "runtime": "onnxruntime", "deployments": [{"precision":
"int8-static, float: conv1", "runtime": "onnxruntime", "ms_b64": 0.6788020000385586, "drop":
11.1328125}, {"precision": "fp32", "runtime": "onnxruntime", "ms_b64": 0.6662939995294437,
"drop": 11.328125}], "artifact": "run2/trials/0000/model-fp32.safetensors", "bytes": 56968,
"val_accuracy": 58.7890625, "drop": 11.328125, "latency_ms_b1_raw": 0.017986996681429446,
"latency_ms_b1": 0.017065402574530087, "latency_ms_b64_raw": 0.5211770003370475,
"latency_ms_b64": 0.46494671419010003, "number": 1, "same_plan_as": 0}"""

# polished.json: trial 2 recovered for 2 epochs.
POLISHED = """{"params": {"macs_keep": 0.3}, "structured": {"ratios": {"conv1": 0.0, "conv2":
0.0, "fc1": 0.75}, "macs_fraction": 0.8855687932359724, "params_fraction": 0.26809620622194946,
"widths": {"conv1": 8, "conv2": 16, "fc1": 16, "fc2": 10}, "removed_blocks": []}, "sparsity":
0.0, "float_val_accuracy": 59.5703125, "params_count": 13978, "nonzero_params": 13978, "macs":
294944, "precision": "int8-static, float: conv1 (onnxruntime)", "onnx":
"run2/polish/compress/0002-2ep/model.onnx", "runtime": "onnxruntime", "artifact":
"run2/polish/compress/0002-2ep/model.safetensors", "bytes": 16888, "val_accuracy": 59.5703125,
"drop": 10.546875, "latency_ms_b1_raw": 0.019289000192657113, "latency_ms_b1":
0.017646519344632128, "latency_ms_b64_raw": 0.5097600005683489, "latency_ms_b64":
0.47415345229823586, "number": "2+", "study": "compress", "polished_from": 2,
"recover_epochs": 2}"""

# The verify stage's choice in state.json: re-timed side by side, the search's time kept.
CHOSEN = """{"owner": "vm:4554", "params": {"latency_keep": 0.6}, "structured": {"ratios":
{"conv2": 0.16}, "macs_fraction": 0.73, "params_fraction": 0.52, "latency_fraction": 0.61,
"widths": {"conv1": 16, "conv2": 24}, "removed_blocks": ["layer1.0"]}, "sparsity": 0.0,
"float_val_accuracy": 92.23, "params_count": 108106, "nonzero_params": 108106, "macs": 894640,
"precision": "int8-static (onnxruntime)", "onnx": "t/0004/model.onnx", "runtime": "onnxruntime",
"artifact": "t/0004/model.safetensors", "bytes": 111976, "val_accuracy": 92.22, "drop": 0.03,
"latency_ms_b1_raw": 0.039, "latency_ms_b1": 0.032, "latency_ms_b64_raw": 0.877,
"latency_ms_b64": 0.5287, "number": 4, "same_plan_as": 0, "latency_ms_b64_trial": 0.407}"""

# The torch backend: no graph, no runtime; the back-off plan of an unpruned model.
EAGER_BACKOFF = """{"params": {"macs_keep": 1.0}, "structured": {"ratios": {},
"macs_fraction": 1.0, "params_fraction": 1.0, "widths": {"conv1": 8, "fc": 10}}, "sparsity":
0.0, "float_val_accuracy": 70.1, "params_count": 52138, "nonzero_params": 52138, "macs": 333056,
"precision": "fp32", "artifact": "backoff/model.safetensors", "bytes": 210200, "val_accuracy":
70.1, "drop": 0.0, "latency_ms_b1_raw": 0.02, "latency_ms_b1": 0.018, "latency_ms_b64_raw":
0.57, "latency_ms_b64": 0.49, "number": "backoff"}"""


@pytest.mark.parametrize("text", [SEARCH_TRIAL, POLISHED, CHOSEN, EAGER_BACKOFF])
def test_a_record_reads_and_writes_back_the_same_json(text: str) -> None:
    data = json.loads(text)
    record = TrialRecord.from_dict(data)
    assert record.to_dict() == data
    assert json.dumps(record.to_dict()) == json.dumps(data)  # the same keys, in the same order
    assert TrialRecord.from_dict(json.loads(json.dumps(record.to_dict()))) == record


def test_the_knobs_and_the_parameter_count_are_two_fields() -> None:
    record = TrialRecord.from_dict(json.loads(SEARCH_TRIAL))
    assert record.knobs == {"macs_keep": 0.5}  # JSON key "params": the Optuna parameters
    assert record.params_count == 13978
    assert record.profile()["params"] == 13978  # `slimkit profile` calls the count params
    assert record.to_dict()["params"] == {"macs_keep": 0.5}
    assert record.number == 1 and record.same_plan_as == 0 and record.owner == "vm:20879"
    assert record.structured == Structure(
        ratios={"conv1": 0.0, "conv2": 0.0, "fc1": 0.6900000000000001},
        macs_fraction=0.8855687932359724,
        params_fraction=0.26809620622194946,
        widths={"conv1": 8, "conv2": 16, "fc1": 16, "fc2": 10},
        removed_blocks=[],
    )
    assert record.deployments is not None
    assert [d.label for d in record.deployments] == [
        "int8-static, float: conv1 (onnxruntime)",
        "fp32 (onnxruntime)",
    ]
    assert record.deployments[1] == Deployment(
        precision="fp32", runtime="onnxruntime", ms_b64=0.6662939995294437, drop=11.328125
    )


def test_optional_fields_are_absent_from_the_json_until_set() -> None:
    record = TrialRecord.from_dict(json.loads(EAGER_BACKOFF))
    assert record.onnx is record.runtime is record.deployments is record.owner is None
    assert record.structured.removed_blocks is None and not record.pruned
    assert {"onnx", "runtime", "owner", "same_plan_as"}.isdisjoint(record.to_dict())
    polished = TrialRecord.from_dict(json.loads(POLISHED))
    assert (polished.number, polished.polished_from, polished.study) == ("2+", 2, "compress")
    assert polished.pruned
    chosen = TrialRecord.from_dict(json.loads(CHOSEN))
    assert chosen.latency_ms_b64_trial == 0.407 and chosen.structured.latency_fraction == 0.61
    numbered = dataclasses.replace(record, number=7)
    assert list(numbered.to_dict())[-1] == "number" and numbered.to_dict()["number"] == 7


def test_goal_values_are_the_fields_the_search_minimises() -> None:
    record = TrialRecord.from_dict(json.loads(POLISHED))
    assert record.goal_value("latency") == 0.47415345229823586
    assert record.goal_value("size") == 16888.0
    assert record.goal_value("macs") == 294944.0


def test_unknown_or_missing_keys_are_named() -> None:
    data = json.loads(SEARCH_TRIAL)
    with pytest.raises(ValueError, match="TrialRecord has no 'precision_choice'"):
        TrialRecord.from_dict({**data, "precision_choice": "int8"})
    del data["params_count"]
    with pytest.raises(ValueError, match="TrialRecord without 'params_count'"):
        TrialRecord.from_dict(data)
    structured = {**json.loads(SEARCH_TRIAL)["structured"], "kept": 1}
    with pytest.raises(ValueError, match="Structure has no 'kept'"):
        TrialRecord.from_dict({**json.loads(SEARCH_TRIAL), "structured": structured})


def test_a_records_file_round_trips_and_an_older_one_is_refused(tmp_path: Path) -> None:
    from slimkit.search._run import write_json

    records = [TrialRecord.from_dict(json.loads(t)) for t in (SEARCH_TRIAL, POLISHED)]
    path = tmp_path / "trials.json"
    write_json(path, records)
    assert json.loads(path.read_text()) == [json.loads(SEARCH_TRIAL), json.loads(POLISHED)]
    assert TrialRecord.read_list(path) == records
    path.write_text(json.dumps([{**json.loads(SEARCH_TRIAL), "precision_choice": "int8"}]))
    with pytest.raises(ArtifactError, match=rf"{path} was written by an older slimkit"):
        TrialRecord.read_list(path)
