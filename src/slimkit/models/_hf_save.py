"""Saving a (pruned) sentence encoder as a directory that transformers loads alone.

The directory holds the weights, a ``config.json`` whose per-layer widths a small model class
(``slimkit_bert.py``, registered through ``auto_map``) rebuilds, the tokenizer, the
sentence-transformers pipeline description, and slimkit's provenance.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import ModelError
from ._hf import ST_MODULES, SentenceEncoder

REMOTE_MODULE = "slimkit_bert"  # the file name of _hf_remote.py inside a saved directory
PROVENANCE_FILE = "slimkit.json"


def layer_widths(backbone: nn.Module) -> list[dict[str, int]]:
    """Per encoder layer: attention heads, head size and feed-forward width.

    Raises:
        ModelError: if ``backbone`` is not a BERT-style encoder (``encoder.layer[i]`` with
            ``attention.self`` and ``intermediate.dense``).
    """
    layers: Any = getattr(getattr(backbone, "encoder", None), "layer", None)
    if layers is None:
        raise ModelError(
            f"{type(backbone).__name__} has no encoder.layer list: per-layer widths are known "
            "for BERT-style encoders only"
        )
    widths = []
    for index, layer in enumerate(layers):
        try:
            attention, ffn = layer.attention.self, layer.intermediate.dense
            widths.append(
                {
                    "heads": int(attention.num_attention_heads),
                    "head_size": int(attention.attention_head_size),
                    "intermediate_size": int(ffn.out_features),
                }
            )
        except AttributeError as err:
            raise ModelError(
                f"encoder layer {index} of {type(backbone).__name__} is not BERT-style ({err})"
            ) from None
    return widths


def hf_config_for(backbone: nn.Module) -> tuple[Any, bool]:
    """A config describing ``backbone``'s actual widths, and whether it needs slimkit_bert.py.

    Uniform layers with full-width attention fit a plain config (``intermediate_size``,
    ``num_attention_heads``); anything else is described by ``slimkit_layers`` and loaded by
    the :mod:`._hf_remote` model class.

    Raises:
        ModelError: for per-layer widths in a model that is not a BERT.
    """
    import copy

    config: Any = copy.deepcopy(getattr(backbone, "config", None))
    if config is None:
        raise ModelError(f"{type(backbone).__name__} has no Hugging Face config to save")
    widths = layer_widths(backbone)
    hidden = int(config.hidden_size)
    full = all(w["heads"] * w["head_size"] == hidden for w in widths)
    ffn = {w["intermediate_size"] for w in widths}
    heads = {w["heads"] for w in widths}
    for key in ("slimkit_layers", "auto_map"):
        if hasattr(config, key):
            delattr(config, key)
    config.num_hidden_layers = len(widths)  # fewer after layer dropping
    if full and len(ffn) == 1 and len(heads) == 1:
        config.intermediate_size = ffn.pop()
        config.num_attention_heads = heads.pop()
        config.architectures = [type(backbone).__name__.replace("SlimBertModel", "BertModel")]
        return config, False
    if getattr(config, "model_type", None) != "bert":
        raise ModelError(
            f"per-layer head counts and widths are saved for BERT models only, not "
            f"{getattr(config, 'model_type', type(backbone).__name__)!r}: prune attention heads "
            "uniformly with full-width attention, or only the feed-forward layers"
        )
    size = widths[0]["head_size"]
    config.num_attention_heads = hidden // size if hidden % size == 0 else 1
    config.slimkit_layers = widths
    config.auto_map = {"AutoModel": f"{REMOTE_MODULE}.SlimBertModel"}
    config.architectures = ["SlimBertModel"]
    return config, True


def save_hf(
    encoder: SentenceEncoder,
    directory: str | os.PathLike[str],
    *,
    provenance: dict[str, Any] | None = None,
) -> Path:
    """Save ``encoder`` as a Hugging Face + sentence-transformers directory (safetensors).

    The directory loads with :func:`load_hf`, with ``transformers.AutoModel.from_pretrained``
    and with ``sentence_transformers.SentenceTransformer``. Pruned attention heads or per-layer
    feed-forward widths cannot be written in a plain BERT config; such models get
    ``slimkit_bert.py`` beside the weights and load with ``trust_remote_code=True`` (transformers
    alone; see :mod:`slimkit.models._hf_remote`).

    Args:
        encoder: the (pruned, distilled) encoder.
        directory: created if missing; existing model files are overwritten.
        provenance: JSON-ready facts (recipe, data, metrics) written to ``slimkit.json``.

    Returns:
        The directory.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    backbone: Any = encoder.backbone
    config, remote = hf_config_for(backbone)
    original = backbone.config
    backbone.config = config
    try:
        backbone.save_pretrained(directory)
    finally:
        backbone.config = original
    encoder.tokenizer.save_pretrained(directory)
    remote_file = directory / f"{REMOTE_MODULE}.py"
    if remote:
        remote_file.write_text(Path(__file__).with_name("_hf_remote.py").read_text("utf-8"))
    elif remote_file.exists():
        remote_file.unlink()
    _write_pipeline(encoder, directory)
    if provenance is not None:
        (directory / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2) + "\n")
    return directory


def _write_pipeline(encoder: SentenceEncoder, directory: Path) -> None:
    """sentence-transformers' module files: transformer → pooling (→ normalize)."""
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
    ]
    if encoder.normalize:
        modules.append(
            {
                "idx": 2,
                "name": "2",
                "path": "2_Normalize",
                "type": "sentence_transformers.models.Normalize",
            }
        )
        (directory / "2_Normalize").mkdir(exist_ok=True)
    (directory / ST_MODULES).write_text(json.dumps(modules, indent=2) + "\n")
    pooling = {
        "word_embedding_dimension": encoder.dim,
        "pooling_mode_cls_token": encoder.pooling == "cls",
        "pooling_mode_mean_tokens": encoder.pooling == "mean",
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
    }
    (directory / "1_Pooling").mkdir(exist_ok=True)
    (directory / "1_Pooling" / "config.json").write_text(json.dumps(pooling, indent=2) + "\n")
    st_config = {"max_seq_length": encoder.max_length, "do_lower_case": False}
    (directory / "sentence_bert_config.json").write_text(json.dumps(st_config, indent=2) + "\n")
