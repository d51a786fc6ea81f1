"""The sentence-encoder report's headline says why the result is what it is."""

from __future__ import annotations

from typing import Any

from slimkit.text._report import headline


def _summary(pruned_cosine: float) -> dict[str, Any]:
    def form(name: str, cosine: float, overlap: float) -> dict[str, Any]:
        return {"form": name, "mean_cosine": cosine, "top10_overlap": overlap}

    per_batch = {"b1": 3.0, "b32": 3.0}
    return {
        "budget": {"min_cosine": 0.97, "min_overlap": 0.8, "met_by_pruned": False},
        "chosen": {
            "label": "unpruned",
            "form": "int8-openvino",
            "validation": {"mean_cosine": 0.997},
            "test": {"mean_cosine": 0.9975, "top10_overlap": 0.93},
        },
        "candidates": [
            {"label": "unpruned", "forms": [form("int8-openvino", 0.997, 0.92)]},
            {
                "label": "L0.00-H0.34-F0.34",
                "forms": [form("fp32", pruned_cosine, 0.81), form("int8", 0.96, 0.81)],
            },
        ],
        "speedup": {
            "vs_fp32_eager": per_batch,
            "vs_best_peer": per_batch,
            "best_peer": {"b1": "teacher_int8_ov", "b32": "teacher_int8_ov"},
        },
        "config": {"goal": "latency"},
    }


def test_a_pruned_form_in_budget_but_slower_is_named_not_denied() -> None:
    text = headline(_summary(pruned_cosine=0.9717))
    assert "no pruned candidate held" not in text
    assert "(L0.00-H0.34-F0.34 fp32) cost more (latency) than the unpruned encoder" in text


def test_without_a_pruned_form_in_budget_the_headline_says_so() -> None:
    text = headline(_summary(pruned_cosine=0.9695))
    assert (
        "no pruned candidate held the budget; the unpruned encoder is kept as int8-openvino" in text
    )
