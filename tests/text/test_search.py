"""The sentence-encoder search: its config, candidate order, budget, choice and data checks.

The whole run (baseline, search, export, resume) is tested through the CLI in
``tests/cli/test_cli_text.py``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from slimkit.data import TextSplits, carve_validation, load_text
from slimkit.models import SentenceEncoder, load_hf
from slimkit.testing import tiny_bert_dir
from slimkit.text import (
    DEFAULT_CANDIDATES,
    EMBEDDING_TRAIN,
    AgreementBudget,
    CandidateRecord,
    EmbeddingDistillConfig,
    EncoderCompressConfig,
    EncoderPruneConfig,
    FormResult,
)
from slimkit.text._plan import (
    candidate_label,
    choose,
    ordered,
    parse_candidates,
    predicted_fraction,
)
from slimkit.text._search import check_splits, training_texts


@pytest.fixture(scope="module")
def tiny4(tmp_path_factory: pytest.TempPathFactory) -> SentenceEncoder:
    """4 layers, hidden 32, 4 heads of 8, FFN 64, 64 positions."""
    return load_hf(tiny_bert_dir(tmp_path_factory.mktemp("tiny4"), layers=4))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_cosine": 1.5}, r"min_cosine must be in \(0, 1\) \(e.g. 0.97\), got 1.5"),
        ({"min_cosine": 0.0}, r"min_cosine must be in \(0, 1\)"),
        ({"min_cosine": float("nan")}, "min_cosine must be a finite number"),
        ({"min_overlap": 0.0}, r"min_overlap must be in \(0, 1\]"),
        ({"goal": "macs"}, r"goal must be one of \['latency', 'size'\], got 'macs'"),
        ({"candidates": ()}, "candidates must be a non-empty tuple of EncoderPruneConfig"),
        (
            {"candidates": (EncoderPruneConfig(heads=0.0, ffn=0.0),)},
            r"unpruned candidate \(0:0:0\); the unpruned encoder is always measured",
        ),
        (
            {"candidates": DEFAULT_CANDIDATES[:1] * 2},
            "candidates repeats one",
        ),
        ({"distill_steps": 0}, "distill_steps must be >= 1, got 0"),
        ({"max_seconds": -1.0}, "max_seconds must be > 0"),
    ],
)
def test_config_names_the_field_and_the_allowed_values(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        EncoderCompressConfig(**kwargs)  # type: ignore[arg-type]


def test_config_round_trips_through_a_dict() -> None:
    cfg = EncoderCompressConfig(
        min_cosine=0.95,
        min_overlap=0.8,
        goal="size",
        candidates=parse_candidates("0.5:0.5:0.5,0:0.25:0.5"),
        distill_steps=7,
        max_seconds=30.0,
    )
    data = cfg.to_dict()
    assert data["task"] == "sentence-embedding"
    assert EncoderCompressConfig.from_dict(data) == cfg
    assert len(DEFAULT_CANDIDATES) == 8  # layers {1/2, 1/3, 0} × widths {1/2, 1/4, 0}, less one


def test_parse_candidates_reads_triples_and_names_a_bad_one() -> None:
    found = parse_candidates("0.5:0.25:0.75, 0:0:0.5")
    assert [(c.layers, c.heads, c.ffn) for c in found] == [(0.5, 0.25, 0.75), (0.0, 0.0, 0.5)]
    assert [candidate_label(c) for c in found] == ["L0.50-H0.25-F0.75", "L0.00-H0.00-F0.50"]
    with pytest.raises(ValueError, match=r"layers:heads:ffn fractions .* got '0.5:0.5'"):
        parse_candidates("0.5:0.5:0.5,0.5:0.5")


def test_predicted_fractions_follow_the_formula(tiny4: SentenceEncoder) -> None:
    half = EncoderPruneConfig(layers=0.5, heads=0.5, ffn=0.5)
    # per layer and token: 4·H·A + 2·T·A + 2·H·F = 4096 + 4096 + 4096 (H 32, A 32, T 64,
    # F 64); half the heads and neurons: 6144; half the layers: 2 of 4 → 0.25 of the MACs.
    assert predicted_fraction(tiny4, half, goal="latency", length=64) == pytest.approx(0.25)
    # parameters: the embedding tables (vocab + 64 positions, × 32) stay
    fixed = 32 * (int(tiny4.config.vocab_size) + 64)
    expected = (fixed + 0.5 * 4 * 4096) / (fixed + 4 * 8192)
    assert predicted_fraction(tiny4, half, goal="size", length=64) == pytest.approx(expected)
    ffn_only = EncoderPruneConfig(heads=0.0, ffn=0.5)
    assert predicted_fraction(tiny4, ffn_only, goal="latency", length=64) == pytest.approx(
        (4096 + 4096 + 2048) / 12288
    )


def test_candidates_are_tried_from_the_largest_predicted_saving(tiny4: SentenceEncoder) -> None:
    plan = ordered(tiny4, tuple(reversed(DEFAULT_CANDIDATES)), goal="latency", length=64)
    fractions = [fraction for _, fraction in plan]
    assert fractions == sorted(fractions)
    assert candidate_label(plan[0][0]) == "L0.50-H0.50-F0.50"
    # a quarter of the heads and neurons, or one layer of 4: both keep 0.75; ties keep the
    # order given
    assert [candidate_label(c) for c, _ in plan[-2:]] == ["L0.00-H0.25-F0.25", "L0.33-H0.00-F0.00"]
    assert plan[-1][1] == pytest.approx(0.75) and plan[-2][1] == pytest.approx(0.75)


def _form(form: str, cosine: float, overlap: float, relative: float, size: int) -> FormResult:
    return FormResult(
        form=form,
        mean_cosine=cosine,
        p5_cosine=cosine - 0.01,
        top10_overlap=overlap,
        ms_b32=relative * 10,
        relative_b32=relative,
        bytes=size,
    )


def test_the_cheapest_form_within_the_budget_is_chosen() -> None:
    unpruned = CandidateRecord(
        label="unpruned",
        index=0,
        params=100,
        forms=(_form("fp32", 1.0, 1.0, 1.0, 400), _form("int8", 0.99, 0.9, 0.7, 100)),
    )
    pruned = CandidateRecord(
        label="L0.50-H0.50-F0.50",
        index=1,
        params=50,
        forms=(_form("fp32", 0.98, 0.8, 0.5, 200), _form("int8", 0.96, 0.7, 0.3, 50)),
    )
    records = [unpruned, pruned]
    record, form = choose(records, AgreementBudget(0.97), "latency") or (None, None)
    assert (record, form) == (pruned, pruned.forms[0])
    record, form = choose(records, AgreementBudget(0.95), "latency") or (None, None)
    assert (record, form) == (pruned, pruned.forms[1])
    record, form = choose(records, AgreementBudget(0.97, 0.85), "latency") or (None, None)
    assert (record, form) == (unpruned, unpruned.forms[1])  # the overlap rules the pruned out
    record, form = choose(records, AgreementBudget(0.97), "size") or (None, None)
    assert (record, form) == (unpruned, unpruned.forms[1])  # 100 bytes < 200
    assert choose([pruned], AgreementBudget(0.99), "latency") is None
    assert CandidateRecord.from_dict(pruned.to_dict()) == pruned


def test_a_faster_form_on_openvino_is_chosen_within_the_budget() -> None:
    ort, ov = _form("int8", 0.98, 0.9, 0.4, 60), _form("int8-openvino", 0.975, 0.9, 0.3, 70)
    pruned = CandidateRecord(label="L0.50-H0.50-F0.50", index=1, params=50, forms=(ort, ov))
    assert (ort.runtime, ov.runtime) == ("onnxruntime", "openvino")
    assert choose([pruned], AgreementBudget(0.97), "latency") == (pruned, ov)
    assert choose([pruned], AgreementBudget(0.97), "size") == (pruned, ort)  # 60 < 70 bytes
    assert choose([pruned], AgreementBudget(0.978), "latency") == (pruned, ort)  # ov misses


def test_distill_steps_read_exactly_that_many_batches() -> None:
    schedule = dataclasses.replace(EMBEDDING_TRAIN, batch_size=4, epochs=3)
    cfg = EncoderCompressConfig(distill=EmbeddingDistillConfig(train=schedule), distill_steps=5)
    train = [f"sentence {i}" for i in range(7)]
    texts, distill = training_texts(cfg, train)
    assert len(texts) == 20 and texts[:8] == [*train, train[0]]  # cycled
    assert distill.train.epochs == 1 and distill.train.batch_size == 4
    texts, distill = training_texts(dataclasses.replace(cfg, distill_steps=None), train)
    assert texts == train and distill.train.epochs == 3


def test_a_source_without_validation_gets_one_carved_from_training(tmp_path: Path) -> None:
    lines = [f"Sentence {i} holds a few words." for i in range(60)]
    (tmp_path / "s.txt").write_text("\n".join(lines))
    splits = load_text(tmp_path / "s.txt", eval_size=12)
    assert splits.val == ()
    checked = check_splits(splits)
    assert len(checked.val) == 12 and len(checked.train) == 36 and checked.eval == splits.eval
    assert not set(checked.val) & set(checked.train)
    assert set(checked.val) | set(checked.train) == set(splits.train)
    assert checked.describe()["validation"]["carved_from"] == "train"
    assert check_splits(splits) == checked  # deterministic
    assert carve_validation(checked) is checked  # a split with validation stays as it is


def test_too_few_held_out_sentences_name_the_fix() -> None:
    splits = TextSplits("tiny", tuple(f"t{i}" for i in range(50)), ("e",) * 3, val=("v",) * 20)
    with pytest.raises(ValueError, match="has 3 test sentences; the top-10 overlap needs at least"):
        check_splits(splits)
