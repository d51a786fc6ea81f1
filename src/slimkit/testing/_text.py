"""A tiny seeded BERT sentence encoder with a real WordPiece tokenizer, built offline in
milliseconds, for tests of loading, pruning, distillation and export."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ..models import SentenceEncoder, load_hf, save_hf
from ..models._hf import require_transformers

#: Every word of :data:`TINY_SENTENCES`, so the tiny tokenizer rarely needs sub-words.
_WORD_LIST = """a accent advancement after afternoon again and any appear at be before begins
bring butter buy change characterizes creative dark day decisions drain favorable few firm
flower for forgotten fresh fun gift gone grace has have helpful hours in is it long lover loved
made madness mind moat more nature negatives of on one or peanut person place position price
romance side single soon still strange stranger tall than the to try very visit vivid will
work you your"""
_SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
_PIECES = [*"abcdefghijklmnopqrstuvwxyz.,!?'", *(f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz")]

#: Short sentences in the tiny tokenizer's vocabulary.
TINY_SENTENCES = (
    "A day for firm decisions or is it?",
    "A few hours grace before the madness begins again.",
    "A gift of a flower will soon be made to you.",
    "A long forgotten loved one will appear soon.",
    "Buy the negatives at any price.",
    "A tall dark stranger will have more fun than you.",
    "A visit to a fresh place will bring strange work.",
    "A vivid and creative mind characterizes you.",
    "Accent on helpful side of your nature. Drain the moat.",
    "Advancement in position.",
    "After your lover has gone you will still have peanut butter!",
    "Afternoon very favorable for romance. Try a single person for a change.",
)


def tiny_bert_dir(
    directory: str | os.PathLike[str],
    *,
    layers: int = 2,
    hidden: int = 32,
    heads: int = 4,
    ffn: int = 64,
    seed: int = 0,
) -> Path:
    """Write a random BERT sentence encoder (safetensors, tokenizer, sentence-transformers
    files) into ``directory`` and return it; same arguments, same weights."""
    transformers = require_transformers()
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    vocab = list(dict.fromkeys([*_SPECIAL, *_WORD_LIST.split(), *_PIECES]))
    (root / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    (root / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "BertTokenizer", "do_lower_case": True})
    )
    tokenizer = transformers.AutoTokenizer.from_pretrained(root, local_files_only=True)
    config = transformers.BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=ffn,
        max_position_embeddings=64,
    )
    torch.manual_seed(seed)
    backbone = transformers.BertModel(config).eval()
    save_hf(SentenceEncoder(backbone, tokenizer, max_length=64), root)
    return root


def tiny_sentence_encoder(directory: str | os.PathLike[str], **kwargs: int) -> SentenceEncoder:
    """:func:`tiny_bert_dir` loaded with :func:`slimkit.models.load_hf`."""
    return load_hf(tiny_bert_dir(directory, **kwargs))


def tiny_text_folder(
    directory: str | os.PathLike[str], *, documents: int = 32, sentences: int = 6, seed: int = 0
) -> Path:
    """Write ``documents`` text files of ``sentences`` seeded sentences each (6 to 10 words of
    the tiny tokenizer's vocabulary, capitalised, ending with a full stop) into
    ``directory``; same arguments, same files."""
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    words = _WORD_LIST.split()
    generator = torch.Generator().manual_seed(seed)
    for doc in range(documents):
        lines = []
        for _ in range(sentences):
            count = int(torch.randint(6, 11, (1,), generator=generator))
            picks = torch.randint(len(words), (count,), generator=generator).tolist()
            text = " ".join(words[i] for i in picks)
            lines.append(text[0].upper() + text[1:] + ".")
        (root / f"doc{doc:03d}.txt").write_text(" ".join(lines) + "\n", encoding="utf-8")
    return root


def tiny_text_corpus(directory: str | os.PathLike[str], **kwargs: int) -> Path:
    """A corpus (:func:`slimkit.data.build_corpus`, a quarter of the documents for validation
    and a quarter for test) of :func:`tiny_text_folder`'s files, in ``directory/corpus``;
    read it with ``load_text(f"text:{path}")``."""
    from ..data import CorpusConfig, build_corpus

    root = Path(directory)
    folder = tiny_text_folder(root / "documents", **kwargs)
    cfg = CorpusConfig(sources=(f"folder:{folder}",), val_fraction=0.25, test_fraction=0.25)
    build_corpus(cfg, root / "corpus")
    return root / "corpus"
