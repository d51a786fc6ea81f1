"""BERT with its own number of attention heads and feed-forward width in every layer.

A plain ``BertConfig`` cannot describe a BERT whose heads were pruned: transformers derives the
head size as ``hidden_size / num_attention_heads`` (and v5 dropped ``pruned_heads``), and it has
one ``intermediate_size`` for all layers. slimkit therefore saves such models with this file
beside the weights (as ``slimkit_bert.py``) and an ``auto_map`` entry in ``config.json``, so that
transformers alone rebuilds them:

    >>> from transformers import AutoModel
    >>> model = AutoModel.from_pretrained(directory, trust_remote_code=True)

The file imports nothing but torch and transformers. ``config.slimkit_layers`` lists, per
layer, ``heads``, ``head_size`` and ``intermediate_size``; everything else is BERT's.
"""

from __future__ import annotations

from typing import Any

from torch import nn
from transformers import BertConfig, BertModel

LAYERS_KEY = "slimkit_layers"


def resize_layer(layer: Any, hidden: int, heads: int, head_size: int, ffn: int) -> None:
    """Give one ``BertLayer`` ``heads`` heads of ``head_size`` and an FFN of width ``ffn``."""
    attention = layer.attention.self
    width = heads * head_size
    attention.num_attention_heads = heads
    attention.attention_head_size = head_size
    attention.all_head_size = width
    attention.scaling = head_size**-0.5
    for name in ("query", "key", "value"):
        setattr(attention, name, nn.Linear(hidden, width))
    layer.attention.output.dense = nn.Linear(width, hidden)
    layer.intermediate.dense = nn.Linear(hidden, ffn)
    layer.output.dense = nn.Linear(ffn, hidden)


class SlimBertModel(BertModel):  # type: ignore[no-untyped-call,unused-ignore]  # untyped transformers
    """``BertModel`` whose layers take their widths from ``config.slimkit_layers``."""

    config_class = BertConfig

    def __init__(self, config: BertConfig, add_pooling_layer: bool = True) -> None:
        super().__init__(config, add_pooling_layer=add_pooling_layer)
        specs = getattr(config, LAYERS_KEY, None) or []
        if len(specs) != len(self.encoder.layer):
            raise ValueError(
                f"config.{LAYERS_KEY} describes {len(specs)} layers but the model has "
                f"{len(self.encoder.layer)}; the directory's config.json was edited or truncated"
            )
        for layer, spec in zip(self.encoder.layer, specs, strict=True):
            resize_layer(
                layer,
                config.hidden_size,
                int(spec["heads"]),
                int(spec["head_size"]),
                int(spec["intermediate_size"]),
            )
