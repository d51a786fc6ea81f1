from __future__ import annotations

import pytest
import torch

from slimkit.quantize import MinMaxObserver, MSEObserver, PercentileObserver, make_observer


def test_minmax_tracks_exact_extremes_over_batches() -> None:
    obs = MinMaxObserver()
    obs.update(torch.tensor([0.5, -2.0, 1.0]))
    obs.update(torch.tensor([3.0, 0.0]))
    assert obs.range() == (-2.0, 3.0)
    scale, zero_point = obs.qparams()
    assert scale == pytest.approx(5.0 / 255) and zero_point == round(2.0 / (5.0 / 255))


def test_percentile_matches_hand_computed_quantiles() -> None:
    values = torch.arange(1001, dtype=torch.float32)  # 0..1000
    obs = PercentileObserver(percentile=99.0)
    for chunk in values.split(100):
        obs.update(chunk)
    lo, hi = obs.range()
    assert lo == pytest.approx(10.0) and hi == pytest.approx(990.0)


def test_mse_clips_a_rare_outlier() -> None:
    # One value in 200,000: rounding noise over the full range costs more than clipping it.
    x = torch.cat([torch.randn(200_000).clamp(-3, 3), torch.tensor([100.0])])
    mse, minmax = MSEObserver(), MinMaxObserver()
    mse.update(x)
    minmax.update(x)
    lo, hi = mse.range()
    assert 30.0 <= hi < 90.0 and -3.0 <= lo < -2.0
    assert mse.qparams()[0] < minmax.qparams()[0]


def test_unobserved_observer_says_so() -> None:
    with pytest.raises(RuntimeError, match="saw no data"):
        make_observer("minmax").qparams()


def test_unknown_observer_name_lists_known_ones() -> None:
    with pytest.raises(KeyError, match="minmax"):
        make_observer("histo")
