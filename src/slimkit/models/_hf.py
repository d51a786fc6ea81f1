"""Hugging Face transformer directories as sentence encoders, the way sentence-transformers
runs them: tokenizer → transformer → attention-mask-weighted mean pooling → L2 normalisation.

A directory is read offline (never downloaded) and checked before anything is built: the files
that are missing are named, a tokenizer whose vocabulary does not fit the model's embedding table
is refused, and texts longer than the model's limit are truncated with a warning. transformers
is optional: ``pip install 'slimkit[transformers]'``.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .._registry import Registry
from ..errors import MissingDependencyError, ModelError

HF_PREFIX = "hf:"
#: Files a tokenizer can be built from; one of them must be present.
TOKENIZER_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "vocab.json",
    "tokenizer.model",
    "spiece.model",
    "sentencepiece.bpe.model",
)
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")
PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")
ST_MODULES = "modules.json"  # sentence-transformers' pipeline description

Pooling = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def require_transformers() -> Any:
    """Import transformers, or say which extra installs it."""
    try:
        import transformers
    except ImportError:
        raise MissingDependencyError(
            "Hugging Face models need transformers: pip install 'slimkit[transformers]'"
        ) from None
    return transformers


def mean_pooling(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of the token states that the attention mask keeps (padding does not count).

    ``sum_t mask[b, t] · hidden[b, t] / max(sum_t mask[b, t], 1e-9)``, as sentence-transformers'
    ``Pooling(pooling_mode_mean_tokens=True)`` computes it.

    Args:
        hidden: (batch, tokens, width) token states.
        attention_mask: (batch, tokens), 1 for real tokens and 0 for padding.

    Example:
        >>> mean_pooling(torch.ones(1, 3, 2), torch.tensor([[1, 1, 0]]))
        tensor([[1., 1.]])
    """
    weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)


def cls_pooling(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The first token's state (``[CLS]``)."""
    return hidden[:, 0]


#: Pooling functions by name, as sentence-transformers' Pooling modes.
POOLINGS: Registry[Pooling] = Registry("pooling")
POOLINGS.register("mean", mean_pooling)
POOLINGS.register("cls", cls_pooling)


class SentenceEncoder(nn.Module):
    """A transformer backbone with pooling: ``(input_ids, attention_mask) → embeddings``.

    Args:
        backbone: a Hugging Face encoder (``BertModel``, ...) returning ``last_hidden_state``.
        tokenizer: its tokenizer.
        pooling: a name in :data:`POOLINGS`.
        normalize: L2-normalise the embeddings (all-MiniLM-L6-v2's pipeline does).
        max_length: the longest token sequence the model accepts; longer texts are truncated.

    Example:
        >>> encoder = load_hf("path/to/all-MiniLM-L6-v2")
        >>> encoder.encode(["A day for firm decisions."]).shape
        torch.Size([1, 384])
    """

    def __init__(
        self,
        backbone: nn.Module,
        tokenizer: Any,
        *,
        pooling: str = "mean",
        normalize: bool = True,
        max_length: int = 512,
    ) -> None:
        super().__init__()
        self.pool: Pooling = POOLINGS.get(pooling)
        if max_length < 2:
            raise ValueError(f"SentenceEncoder.max_length must be >= 2, got {max_length}")
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.pooling = pooling
        self.normalize = normalize
        self.max_length = max_length
        self.source: str | None = None  # the directory it was loaded from

    @property
    def dim(self) -> int:
        """The embedding width."""
        return int(self.config.hidden_size)

    @property
    def config(self) -> Any:
        """The backbone's Hugging Face config."""
        return self.backbone.config

    @property
    def device(self) -> torch.device:
        """Where the weights are; :meth:`forward` moves its inputs there."""
        param = next(self.backbone.parameters(), None)
        return param.device if param is not None else torch.device("cpu")

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kwargs: Any
    ) -> torch.Tensor:
        device = self.device
        input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
        hidden = self.backbone(
            input_ids=input_ids, attention_mask=attention_mask, **kwargs
        ).last_hidden_state
        embeddings = self.pool(hidden, attention_mask)
        return F.normalize(embeddings, p=2, dim=-1) if self.normalize else embeddings

    def tokenize(
        self, texts: Sequence[str], *, max_length: int | None = None, pad_to_max: bool = False
    ) -> dict[str, torch.Tensor]:
        """Token ids and attention mask of ``texts``, truncated to ``max_length`` with a warning.

        Args:
            texts: the sentences.
            max_length: at most the model's limit (default: the limit).
            pad_to_max: pad every sequence to ``max_length`` (fixed shapes, for benchmarks)
                instead of to the longest one in ``texts``.

        Raises:
            ValueError: if ``max_length`` exceeds the model's limit or ``texts`` is empty.
        """
        length = resolve_length(max_length, self.max_length)
        return tokenize(self.tokenizer, texts, max_length=length, pad_to_max=pad_to_max)

    @torch.no_grad()
    def encode(
        self, texts: Sequence[str], *, batch_size: int = 64, max_length: int | None = None
    ) -> torch.Tensor:
        """Embeddings of ``texts`` (float32, on the CPU), in batches, in eval mode.

        Texts are sorted by length inside the call so that batches pad little; the result is in
        the order of ``texts``.
        """
        return encode_batched(self, texts, batch_size=batch_size, max_length=max_length)


def resolve_length(max_length: int | None, limit: int) -> int:
    """``max_length``, or the model's ``limit`` when None; ValueError beyond the limit."""
    if max_length is None:
        return limit
    if not 2 <= max_length <= limit:
        raise ValueError(
            f"max_length must be in [2, {limit}] (the model's limit), got {max_length}"
        )
    return max_length


def tokenize(
    tokenizer: Any, texts: Sequence[str], *, max_length: int, pad_to_max: bool = False
) -> dict[str, torch.Tensor]:
    """``input_ids`` and ``attention_mask`` tensors; texts over ``max_length`` tokens are cut
    with a warning that says how many."""
    if isinstance(texts, str) or not texts:
        raise ValueError("tokenize() takes a non-empty list of strings")
    # One token more than allowed tells which texts are too long without a second pass.
    batch = tokenizer(list(texts), truncation=True, max_length=max_length + 1, padding=True)
    longer = sum(sum(mask) > max_length for mask in batch["attention_mask"])
    if longer:
        warnings.warn(
            f"{longer} of {len(texts)} texts are longer than {max_length} tokens and were "
            "truncated",
            stacklevel=3,
        )
    if longer or pad_to_max:
        padding = "max_length" if pad_to_max else "longest"
        batch = tokenizer(list(texts), truncation=True, max_length=max_length, padding=padding)
    return {
        "input_ids": torch.tensor(batch["input_ids"], dtype=torch.long),
        "attention_mask": torch.tensor(batch["attention_mask"], dtype=torch.long),
    }


def encode_batched(
    encoder: Any, texts: Sequence[str], *, batch_size: int = 64, max_length: int | None = None
) -> torch.Tensor:
    """Embeddings from any callable ``encoder(input_ids, attention_mask)`` with ``tokenize``."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    was_training = getattr(encoder, "training", False)
    if isinstance(encoder, nn.Module):
        encoder.eval()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out: list[torch.Tensor] = []
    try:
        for start in range(0, len(order), batch_size):
            chunk = [texts[i] for i in order[start : start + batch_size]]
            batch = encoder.tokenize(chunk, max_length=max_length)
            out.append(encoder(**batch).float().cpu())
    finally:
        if isinstance(encoder, nn.Module):
            encoder.train(was_training)
    if not out:
        raise ValueError("encode() got no texts")
    result = torch.empty(len(texts), out[0].shape[-1])
    result[torch.tensor(order)] = torch.cat(out)
    return result


# -- loading ------------------------------------------------------------------------------------


def check_hf_dir(path: str | os.PathLike[str]) -> Path:
    """The model directory, after checking that it holds a config, weights and a tokenizer.

    Raises:
        ModelError: naming the missing files (or the pickle-only weights slimkit refuses).
    """
    directory = Path(str(path).removeprefix(HF_PREFIX)).expanduser()
    if not directory.is_dir():
        raise ModelError(f"{directory} is not a directory; pass a Hugging Face model directory")
    present = {p.name for p in directory.iterdir()}
    missing = []
    if "config.json" not in present:
        missing.append("config.json (the architecture)")
    if not present & set(WEIGHT_FILES):
        if present & set(PICKLE_WEIGHTS):
            raise ModelError(
                f"{directory} has only pickle weights (pytorch_model.bin); slimkit loads "
                "safetensors only: convert with model.save_pretrained(dir) (safetensors is the "
                "default) and load that directory"
            )
        missing.append("model.safetensors (the weights)")
    if not present & set(TOKENIZER_FILES):
        missing.append(f"a tokenizer ({' or '.join(TOKENIZER_FILES)})")
    if missing:
        raise ModelError(
            f"{directory} is not a complete model directory: missing {', '.join(missing)}"
        )
    return directory


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ModelError(f"cannot read {path}: {err}") from None
    return value if isinstance(value, dict) else {}


def _pipeline(directory: Path) -> tuple[str, bool, int | None]:
    """Pooling, normalisation and sequence limit from sentence-transformers' files, if any."""
    pooling, normalize, limit = "mean", True, None
    modules_file = directory / ST_MODULES
    if modules_file.is_file():
        modules = json.loads(modules_file.read_text(encoding="utf-8"))
        types = [str(m.get("type", "")) for m in modules]
        normalize = any(t.endswith(".Normalize") for t in types)
        for m in modules:
            if str(m.get("type", "")).endswith(".Pooling"):
                pool_cfg = _read_json(directory / m.get("path", "") / "config.json")
                pooling = "cls" if pool_cfg.get("pooling_mode_cls_token") else "mean"
    st_config = directory / "sentence_bert_config.json"
    if st_config.is_file():
        value = _read_json(st_config).get("max_seq_length")
        limit = int(value) if isinstance(value, int) else None
    return pooling, normalize, limit


def _model_limit(config: Any, tokenizer: Any, pipeline_limit: int | None) -> int:
    limits = [getattr(config, "max_position_embeddings", None), pipeline_limit]
    tok_limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(tok_limit, int) and tok_limit < 1_000_000:  # "no limit" is a huge number
        limits.append(tok_limit)
    found = [int(v) for v in limits if isinstance(v, int) and v > 0]
    return min(found) if found else 512


def check_vocab(tokenizer: Any, config: Any, where: str = "the model") -> None:
    """Refuse a tokenizer whose token ids do not all fit the model's embedding table.

    Raises:
        ModelError: naming both sizes.
    """
    vocab = getattr(config, "vocab_size", None)
    if isinstance(vocab, int) and len(tokenizer) > vocab:
        raise ModelError(
            f"the tokenizer of {where} has {len(tokenizer)} tokens but the model's embedding "
            f"table has {vocab} rows: they do not belong together (ids >= {vocab} would fail); "
            "use the tokenizer saved with this model"
        )


def load_hf(
    path: str | os.PathLike[str],
    *,
    pooling: str | None = None,
    normalize: bool | None = None,
    max_length: int | None = None,
) -> SentenceEncoder:
    """Load a Hugging Face model directory (offline) as a :class:`SentenceEncoder`.

    Pooling and normalisation follow the directory's sentence-transformers files
    (``modules.json``) when present, else mean pooling with L2 normalisation. Directories
    written by :func:`save_hf` with per-layer widths are rebuilt by slimkit's own
    copy of their model class, never by executing code from the directory.

    Args:
        path: the directory, optionally as ``hf:<path>``.
        pooling: override the pooling (``mean`` or ``cls``).
        normalize: override the L2 normalisation.
        max_length: lower the sequence limit (default: the smallest of the model's position
            table, sentence-transformers' ``max_seq_length`` and the tokenizer's limit).

    Example:
        >>> encoder = load_hf("hf:/models/all-MiniLM-L6-v2")
        >>> embeddings = encoder.encode(["first sentence", "second one"])

    Raises:
        ModelError: for a missing or incomplete directory, or a tokenizer that does not fit.
        MissingDependencyError: without transformers installed.
        ValueError: if ``max_length`` exceeds the model's limit.
    """
    directory = check_hf_dir(path)
    transformers = require_transformers()
    config = transformers.AutoConfig.from_pretrained(directory, local_files_only=True)
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory, local_files_only=True)
    check_vocab(tokenizer, config, str(directory))
    if getattr(config, "slimkit_layers", None):
        from ._hf_remote import SlimBertModel

        backbone = SlimBertModel.from_pretrained(directory, local_files_only=True)
    else:
        backbone = transformers.AutoModel.from_pretrained(directory, local_files_only=True)
    found_pooling, found_normalize, pipeline_limit = _pipeline(directory)
    limit = _model_limit(config, tokenizer, pipeline_limit)
    if max_length is not None and not 2 <= max_length <= limit:
        raise ValueError(f"max_length must be in [2, {limit}] for {directory}, got {max_length}")
    backbone.train(False)  # eval(), which transformers leaves untyped
    encoder = SentenceEncoder(
        backbone,
        tokenizer,
        pooling=pooling or found_pooling,
        normalize=found_normalize if normalize is None else normalize,
        max_length=max_length or limit,
    )
    encoder.source = str(directory)
    return encoder.eval()


# -- saving -------------------------------------------------------------------------------------
