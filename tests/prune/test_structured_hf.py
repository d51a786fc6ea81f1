"""A Hugging Face BERT encoder: whole heads and FFN neurons pruned, config updated."""

from __future__ import annotations

import pytest
import torch

import slimkit
from slimkit.graph import DependencyGraph

transformers = pytest.importorskip("transformers")


@pytest.fixture
def bert() -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    config = transformers.BertConfig(
        vocab_size=100,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=32,
    )
    torch.manual_seed(0)
    model = transformers.BertModel(config).eval()
    return model, {"input_ids": torch.randint(0, 100, (2, 8))}


def test_heads_are_units_of_head_size(bert) -> None:
    model, inputs = bert
    graph = DependencyGraph.build(model, inputs)
    heads = next(g for g in graph.groups if "encoder.layer.0.attention.self.query" in g.sources)
    assert (len(heads.units), heads.unit_size) == (4, 16)
    hidden = next(g for g in graph.groups if "embeddings.word_embeddings" in g.sources)
    assert not hidden.prunable  # the hidden size is the model's output width


def test_bert_prunes_heads_and_ffn_and_updates_its_config(bert) -> None:
    model, inputs = bert
    pruned = slimkit.prune(model, slimkit.StructuredConfig(ratio=0.5), example_inputs=inputs)
    attention = pruned.encoder.layer[0].attention.self
    assert (attention.num_attention_heads, attention.attention_head_size) == (2, 16)
    assert attention.all_head_size == 32 and attention.query.out_features == 32
    assert pruned.encoder.layer[1].intermediate.dense.out_features == 64
    assert (pruned.config.num_attention_heads, pruned.config.intermediate_size) == (2, 64)
    assert model.config.num_attention_heads == 4  # the original is untouched
    out = pruned(**inputs)
    assert out.last_hidden_state.shape == (2, 8, 64) and out.pooler_output.shape == (2, 64)
