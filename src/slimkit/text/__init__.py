"""Transformer sentence encoders: drop whole layers and prune attention heads and FFN neurons,
distil the embeddings back from the original on unlabeled text, quantize to int8 on ONNX
Runtime or PyTorch, and measure how closely the result agrees with the original.

Example:
    >>> from slimkit.models import load_hf, save_hf
    >>> from slimkit.data import load_text
    >>> from slimkit import text
    >>> teacher, splits = load_hf("all-MiniLM-L6-v2"), load_text("fortunes")
    >>> prune = text.EncoderPruneConfig(heads=0.5, ffn=0.75, layers=1 / 3)
    >>> schedule = dataclasses.replace(text.EMBEDDING_TRAIN, lr=1e-3)
    >>> distill = text.EmbeddingDistillConfig(train=schedule)
    >>> student = text.compress_encoder(teacher, prune, distill, splits.train[:8000], steps=2)
    >>> save_hf(student, "minilm-pruned")
    >>> text.quantize_onnx(text.export_onnx(student, "fp32.onnx"), "int8.onnx")
    >>> text.agreement(teacher.encode(splits.eval), student.encode(splits.eval))
"""

from ..prune import register_prune_handler
from ._compress import compress_encoder, compress_report, step_config
from ._distill import (
    EMBEDDING_TRAIN,
    EmbeddingDistillConfig,
    EmbeddingKDLoss,
    distill_encoder,
    distill_report,
    hidden_state_loss,
)
from ._importance import (
    TEXT_IMPORTANCE,
    ActivationImportance,
    FisherImportance,
    MagnitudeImportance,
    TextImportance,
)
from ._metrics import agreement, mean_cosine, neighbours, topk_overlap
from ._plan import (
    DEFAULT_CANDIDATES,
    TEXT_GOALS,
    AgreementBudget,
    EncoderCompressConfig,
    Goal,
    TextMeasureConfig,
    grid,
)
from ._prune import (
    EncoderPruneConfig,
    prune_encoder,
    prune_handler,
    prune_report,
    select_removed,
    text_batches,
)
from ._records import CandidateRecord, FormResult
from ._runtime import (
    OrtEncoder,
    export_onnx,
    quantize_onnx,
    quantize_torch_dynamic,
    tensor_bytes,
)
from ._search import compress_sentence_encoder

register_prune_handler(EncoderPruneConfig, prune_handler)

__all__ = [
    "DEFAULT_CANDIDATES",
    "EMBEDDING_TRAIN",
    "TEXT_GOALS",
    "TEXT_IMPORTANCE",
    "ActivationImportance",
    "AgreementBudget",
    "CandidateRecord",
    "EmbeddingDistillConfig",
    "EmbeddingKDLoss",
    "EncoderCompressConfig",
    "EncoderPruneConfig",
    "FisherImportance",
    "FormResult",
    "Goal",
    "MagnitudeImportance",
    "OrtEncoder",
    "TextImportance",
    "TextMeasureConfig",
    "agreement",
    "compress_encoder",
    "compress_report",
    "compress_sentence_encoder",
    "distill_encoder",
    "distill_report",
    "export_onnx",
    "grid",
    "hidden_state_loss",
    "mean_cosine",
    "neighbours",
    "prune_encoder",
    "prune_report",
    "quantize_onnx",
    "quantize_torch_dynamic",
    "select_removed",
    "step_config",
    "tensor_bytes",
    "text_batches",
    "topk_overlap",
]
