from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from slimkit import DataError
from slimkit.measure import Metric, resolve_metric
from slimkit.search import CompressConfig


def _data() -> torch.utils.data.TensorDataset:
    torch.manual_seed(0)
    return torch.utils.data.TensorDataset(torch.randn(32, 4), torch.randint(0, 3, (32,)))


def test_default_metric_is_top1_and_a_drop_is_a_fall() -> None:
    metric = Metric()
    model = nn.Linear(4, 3)
    data = _data()
    hits = sum(int(model(x).argmax() == y) for x, y in data)
    assert metric(model, data) == pytest.approx(100.0 * hits / 32)
    assert metric.drop(90.0, 89.5) == pytest.approx(0.5) and metric.is_top1


def test_a_lower_is_better_metric_drops_when_it_rises_and_the_model_mode_is_restored() -> None:
    model = nn.Sequential(nn.Linear(4, 3), nn.Dropout(0.5)).train()
    metric = Metric(lambda m, d: float(m(d.tensors[0]).abs().mean()), lower_is_better=True)
    first = metric(model, _data())
    assert metric(model, _data()) == first  # evaluated in eval mode: dropout off
    assert model.training
    assert metric.drop(1.0, 1.25) == pytest.approx(0.25)
    assert metric.name.endswith("<lambda>")


@pytest.mark.parametrize("value", [math.nan, math.inf, "0.9"])
def test_a_metric_that_returns_no_finite_number_is_a_data_error(value: object) -> None:
    with pytest.raises(DataError, match="finite float"):
        Metric(lambda m, d: value)(nn.Linear(4, 3), _data())  # type: ignore[arg-type,return-value]


def test_metric_names_resolve_and_bad_ones_are_value_errors() -> None:
    assert resolve_metric("os.path:join") is __import__("os").path.join
    with pytest.raises(ValueError, match="cannot import 'no_such_mod_q'"):
        resolve_metric("no_such_mod_q:f")
    with pytest.raises(ValueError, match="no function 'nope'"):
        resolve_metric("os:nope")
    with pytest.raises(ValueError, match="lower_is_better needs a metric"):
        Metric(lower_is_better=True)


def test_compress_config_checks_its_metric_and_stores_its_name() -> None:
    with pytest.raises(ValueError, match=r"package\.module:function"):
        CompressConfig(metric=3)
    with pytest.raises(ValueError, match="lower_is_better needs a metric"):
        CompressConfig(lower_is_better=True)
    cfg = CompressConfig(metric=resolve_metric("os.path:join"), lower_is_better=True)
    saved = cfg.to_dict()
    assert saved["metric"] == "posixpath:join" and saved["lower_is_better"] is True
    assert CompressConfig.from_dict(saved).scorer().fn is cfg.metric
