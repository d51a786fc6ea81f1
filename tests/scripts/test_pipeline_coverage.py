"""scripts/pipeline_coverage.py: one model's deploy path, classified and rendered."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType


def test_a_small_torchvision_model_is_ok_with_its_numbers(
    load_script: Callable[[str], ModuleType],
) -> None:
    coverage = load_script("scripts/pipeline_coverage.py")
    row = coverage.check("torchvision:mobilenet_v3_small")
    assert row["status"] == "ok", row
    assert row["macs_after"] < 0.6 * row["macs_before"]  # pruned to about half the MACs
    assert row["int8_mac_share"] >= 0.99  # every conv and linear runs an int8 kernel
    assert row["agreement"] >= 0.9 and row["kernels"]["QLinearConv"] > 40


def test_an_unknown_model_is_broken_and_the_table_names_the_reason(
    load_script: Callable[[str], ModuleType],
) -> None:
    coverage = load_script("scripts/pipeline_coverage.py")
    row = coverage.check("torchvision:no_such_net")
    assert row["status"] == "broken" and row["reason"].startswith("build: ")
    ok = {"model": "timm:x", "status": "ok", "input": [3, 32, 32], "int8_mac_share": 1.0}
    ok.update(agreement=1.0, sqnr_db=40.0, noise_floor_db=30.0, sqnr_vs_float_db=25.0)
    page = coverage.render([row, ok], "python scripts/pipeline_coverage.py")
    assert "torchvision: 0 / 1 ok (0.0%)" in page and "timm: 1 / 1 ok (100.0%)" in page
    assert "| torchvision:no_such_net |" in page and "broken: build: " in page
