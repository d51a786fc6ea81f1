"""Unlabeled text: Debian's fortunes or the user's own files, split into train and held-out sets.

Text models are calibrated, pruned and distilled on the training sentences and measured on the
held-out ones. The split depends only on the set of sentences and a seed (each sentence's place
is a hash of both), not on file order, so adding a file moves few sentences between splits.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DataError

FORTUNES_DIR = "/usr/share/games/fortunes"
FORTUNES_INSTALL = "apt-get install -y fortunes (or fortunes-min)"
#: A sentence ends at . ! or ? (optionally closed by a quote or bracket) before a capital.
_SENTENCE_END = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"')\]]))\s+(?=[\"'(\[]?[A-Z])")
_ATTRIBUTION = re.compile(r"^\s*(--|—)")


@dataclass(frozen=True)
class TextSplits:
    """Sentences split into a training (calibration, distillation) and a held-out set.

    Attributes:
        name: where the sentences came from, recorded in artifacts.
        train: sentences for importance estimation and distillation.
        eval: held-out sentences, never trained on (from a corpus: its test documents).
        meta: how they were read (files, filters, seed; a corpus's manifest summary).
        val: held-out sentences for decisions (choosing a plan), kept apart from ``eval``;
            empty unless the source has a validation split (a built corpus does).
    """

    name: str
    train: tuple[str, ...]
    eval: tuple[str, ...]
    meta: dict[str, Any] = field(default_factory=dict)
    val: tuple[str, ...] = ()

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description, stored in artifacts' provenance."""
        sizes = {"train": len(self.train), "eval": len(self.eval)}
        if self.val:
            sizes["val"] = len(self.val)
        return {"name": self.name, "sizes": sizes, **self.meta}


def _decode(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except OSError as err:
        raise DataError(f"cannot read {path}: {err.strerror or err}") from None
    except UnicodeDecodeError as err:
        line = path.read_bytes()[: err.start].count(b"\n") + 1
        raise DataError(
            f"{path} is not UTF-8 text (line {line}); re-encode it, e.g. "
            f"iconv -f latin1 -t utf-8 {path.name}"
        ) from None


def _clean(text: str) -> str:
    return " ".join(text.split())


def read_lines(path: str | os.PathLike[str]) -> list[str]:
    """Sentences of a text file with one sentence per line (blank lines are skipped).

    Raises:
        DataError: if the file is missing, not UTF-8, or holds no text.
    """
    file = Path(path)
    if not file.is_file():
        raise DataError(f"{file} does not exist or is not a file; pass a UTF-8 text file")
    lines = [_clean(line) for line in _decode(file).splitlines()]
    found = [line for line in lines if line]
    if not found:
        raise DataError(f"{file} holds no text: expected one sentence per line")
    return found


def read_strfile(path: str | os.PathLike[str]) -> list[str]:
    """Entries of a fortune (strfile source) file: blocks separated by lines holding ``%``."""
    return read_strfile_text(_decode(Path(path)))


def read_strfile_text(text: str) -> list[str]:
    """Entries of a fortune file's text: blocks separated by lines holding ``%``."""
    entries: list[str] = []
    block: list[str] = []
    for line in text.splitlines():
        if line.strip() == "%":
            entries.append("\n".join(block))
            block = []
        else:
            block.append(line)
    entries.append("\n".join(block))
    return [e for e in entries if e.strip()]


def _is_prose(text: str) -> bool:
    """Drop ASCII art and tables: prose is mostly letters."""
    visible = [c for c in text if not c.isspace()]
    return bool(visible) and sum(c.isalpha() for c in visible) >= 0.6 * len(visible)


def split_sentences(text: str) -> list[str]:
    """Sentences of a paragraph, on ``.``, ``!`` or ``?`` followed by a capital."""
    return [s for s in (_clean(p) for p in _SENTENCE_END.split(_clean(text))) if s]


def fortune_sentences(
    directory: str | os.PathLike[str] = FORTUNES_DIR,
    *,
    min_words: int = 4,
    max_words: int = 96,
) -> list[str]:
    """Prose sentences of every fortune file in ``directory``, deduplicated, in file order.

    Attribution lines (``-- Mark Twain``) and ASCII art are dropped; each entry is split into
    sentences; sentences with fewer than ``min_words`` or more than ``max_words`` words are
    dropped.

    Raises:
        DataError: if the directory is missing or yields no sentences.
        ValueError: for bad word limits.
    """
    if not 1 <= min_words <= max_words:
        raise ValueError(
            f"need 1 <= min_words <= max_words, got min_words={min_words}, max_words={max_words}"
        )
    root = Path(directory)
    if not root.is_dir():
        raise DataError(f"no fortunes at {root}: {FORTUNES_INSTALL}, or pass directory=")
    files = sorted(p for p in root.iterdir() if p.is_file() and not p.is_symlink() and not p.suffix)
    sentences: list[str] = []
    for file in files:
        for entry in read_strfile(file):
            lines = [line for line in entry.splitlines() if not _ATTRIBUTION.match(line)]
            prose = "\n".join(lines)
            if _is_prose(prose):
                sentences.extend(
                    s for s in split_sentences(prose) if min_words <= len(s.split()) <= max_words
                )
    found = list(dict.fromkeys(sentences))
    if not found:
        raise DataError(f"{root} holds no fortune files with prose ({FORTUNES_INSTALL})")
    return found


def split_texts(
    texts: Iterable[str], *, eval_size: int = 2000, seed: int = 0, name: str = "texts"
) -> TextSplits:
    """Split sentences deterministically: ``eval_size`` held out, the rest for training.

    Duplicates are dropped first (a sentence is never in both sets). Each sentence's place is
    the SHA-256 of the seed and the sentence, so the split does not depend on input order.

    Raises:
        ValueError: if ``eval_size`` < 1.
        DataError: if there are not more than ``eval_size`` distinct sentences.
    """
    if eval_size < 1:
        raise ValueError(f"eval_size must be >= 1, got {eval_size}")
    unique = list(dict.fromkeys(_clean(t) for t in texts if t and t.strip()))
    if len(unique) <= eval_size:
        raise DataError(
            f"{name}: {len(unique)} distinct sentences, but {eval_size} are held out for "
            "evaluation and some are needed for training: add text or lower eval_size"
        )

    def key(text: str) -> bytes:
        return hashlib.sha256(f"{seed}\x00{text}".encode()).digest()

    ordered = sorted(unique, key=key)
    return TextSplits(
        name,
        tuple(ordered[eval_size:]),
        tuple(ordered[:eval_size]),
        {"seed": seed, "eval_size": eval_size, "distinct": len(unique)},
    )


def carve_validation(splits: TextSplits, size: int | None = None, *, seed: int = 0) -> TextSplits:
    """``splits`` with a validation split taken from its training sentences, for sources
    that have none (fortunes, text files); a split that has one is returned as it is.

    The sentences moved are the ``size`` first by the SHA-256 of the seed and the sentence
    (so the choice does not depend on order); the training sentences keep their order. The
    description (``meta["validation"]``) says how the split was made.

    Args:
        splits: sentences without a validation split.
        size: validation sentences (default: as many as ``eval`` holds, at most a quarter of
            the training sentences).
        seed: the choice's seed.

    Example:
        >>> splits = carve_validation(load_text("fortunes"))
        >>> splits.describe()["validation"]

    Raises:
        ValueError: if ``size`` < 1 or would leave no training sentences.
    """
    if splits.val:
        return splits
    if size is None:
        size = min(len(splits.eval), len(splits.train) // 4)
    if size < 1 or size >= len(splits.train):
        raise ValueError(
            f"{splits.name}: cannot carve {size} validation sentences out of "
            f"{len(splits.train)} training sentences; add text"
        )

    def key(text: str) -> bytes:
        return hashlib.sha256(f"{seed}\x00validation\x00{text}".encode()).digest()

    chosen = set(sorted(splits.train, key=key)[:size])
    meta = {
        **splits.meta,
        "validation": {
            "carved_from": "train",
            "sentences": size,
            "seed": seed,
            "how": "the first by SHA-256 of seed and sentence",
        },
    }
    train = tuple(t for t in splits.train if t not in chosen)
    val = tuple(t for t in splits.train if t in chosen)
    return dataclasses.replace(splits, train=train, val=val, meta=meta)


def load_text(
    source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] = "fortunes",
    *,
    eval_size: int = 2000,
    seed: int = 0,
    limit_train: int | None = None,
) -> TextSplits:
    """Sentences from ``"fortunes"`` (Debian's fortune files), a built corpus or text files,
    split for use.

    Args:
        source: ``"fortunes"``, ``"fortunes:<directory>"``, ``"text:<directory>"`` (a corpus
            that :func:`slimkit.data.build_corpus` or ``make corpus`` built: its own
            document-level train / validation / test split is kept), a text file with one
            sentence per line, or a list of such files.
        eval_size: held-out sentences (the benchmark uses at least 2,000); from a corpus, at
            most this many of its validation and of its test sentences, spread evenly over
            each split.
        seed: the split's seed (a corpus was split when it was built).
        limit_train: keep at most this many training sentences (from a corpus, spread evenly
            over its train split; otherwise the first of the split).

    Example:
        >>> splits = load_text("fortunes", eval_size=2000)
        >>> len(splits.eval), splits.train[0]
        >>> corpus = load_text("text:runs/corpus")   # test sentences from unseen documents

    Raises:
        DataError: for missing, empty or non-UTF-8 files, a folder without a corpus, or too
            few sentences.
    """
    if limit_train is not None and limit_train < 1:
        raise ValueError(f"limit_train must be >= 1, got {limit_train}")
    if isinstance(source, str) and source.startswith("text:"):
        return corpus_splits(source.removeprefix("text:"), eval_size, limit_train)
    splits = _load_sentences(source, eval_size, seed)
    if limit_train is None:
        return splits
    return dataclasses.replace(splits, train=splits.train[:limit_train])


def corpus_splits(
    directory: str | os.PathLike[str], eval_size: int = 2000, limit_train: int | None = None
) -> TextSplits:
    """A built corpus as :class:`TextSplits`: its train split (at most ``limit_train``
    sentences), and at most ``eval_size`` of its validation and of its test split, each
    spread evenly over its split; the manifest's checksum and counts go in ``meta``.

    Raises:
        DataError: if ``directory`` holds no corpus, or a split is empty.
    """
    from ._corpus import CorpusManifest, read_corpus

    if eval_size < 1:
        raise ValueError(f"eval_size must be >= 1, got {eval_size}")
    if not str(directory):
        raise DataError("text: needs a corpus folder, e.g. text:runs/corpus (make corpus)")
    manifest = CorpusManifest.read(directory)
    for split, count in manifest.sentences.items():
        if count == 0:
            raise DataError(
                f"{directory}: the corpus's {split} split is empty; build it from more "
                "documents (more sources, or larger val_fraction / test_fraction)"
            )

    def spread(split: str, size: int | None) -> tuple[str, ...]:
        """At most ``size`` sentences of ``split``, evenly spaced: documents are written in
        source order, so the first ones would all come from one package."""
        stride = 1 if size is None else max(1, manifest.sentences[split] // size)
        every = itertools.islice(read_corpus(directory, split), 0, None, stride)
        return tuple(itertools.islice(every, size))

    train = spread("train", limit_train)
    meta = {
        "corpus": str(directory),
        "checksum": manifest.checksum,
        "corpus_sentences": manifest.sentences,
        "corpus_documents": manifest.documents,
        "sources": [source.spec for source in manifest.sources],
    }
    name = f"corpus {Path(directory).name}"
    return TextSplits(
        name, train, spread("test", eval_size), meta, val=spread("validation", eval_size)
    )


def _load_sentences(
    source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], eval_size: int, seed: int
) -> TextSplits:
    if isinstance(source, str) and (source == "fortunes" or source.startswith("fortunes:")):
        directory = source.partition(":")[2] or FORTUNES_DIR
        texts = fortune_sentences(directory)
        return _with_meta(
            split_texts(texts, eval_size=eval_size, seed=seed, name="fortunes"), directory
        )
    paths = [source] if isinstance(source, str | os.PathLike) else list(source)
    if not paths:
        raise ValueError("load_text() needs 'fortunes' or at least one text file")
    texts = [line for path in paths for line in read_lines(path)]
    name = Path(paths[0]).name if len(paths) == 1 else f"{len(paths)} text files"
    return _with_meta(split_texts(texts, eval_size=eval_size, seed=seed, name=name), *paths)


def _with_meta(splits: TextSplits, *sources: str | os.PathLike[str]) -> TextSplits:
    meta = {**splits.meta, "sources": [str(s) for s in sources]}
    return TextSplits(splits.name, splits.train, splits.eval, meta)
