"""A text corpus from installed documentation: prose sentences, deduplicated, split by document.

Sources are Debian's documentation (``/usr/share/doc``: reStructuredText, Markdown, plain text,
HTML, POD), its man pages (``/usr/share/man``, English), the fortune files, or any folder of
text files. Each file is a document; each document falls wholly into train, validation or test
by a hash of its path relative to its source (and the seed), so test sentences come from
documents never trained on, and adding a package moves no other document. A sentence is kept
once, by the hash of its normalised text (case, punctuation and spacing ignored), where it is
first met in a fixed order (sources as given, files sorted), so no sentence is in two splits.

The builder streams: documents are read one at a time and sentences go straight to JSONL
shards (``{"text": ..., "doc": ...}`` per line); only the 8-byte hashes of the sentences seen
stay in memory. The corpus is written into a temporary folder beside the output and renamed
into place, with ``manifest.json`` last; building again with the same settings returns the
existing manifest (idempotent).
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .._config import ConfigBase
from ..errors import DataError
from ._prose import extract_sentences
from ._text import FORTUNES_DIR, FORTUNES_INSTALL

MANIFEST = "manifest.json"
SPLITS = ("train", "validation", "test")
#: The default root of each source kind; ``folder`` needs a path (``folder:<dir>`` or a path).
SOURCE_ROOTS = {
    "docs": "/usr/share/doc",
    "man": "/usr/share/man",
    "fortunes": FORTUNES_DIR,
    "folder": "",
}
TEXT_INSTALL = "make text (scripts/ensure_text.sh), or pass a folder of text files"
_TEXT_SUFFIXES = frozenset({"", ".txt", ".rst", ".md", ".markdown", ".text"})
_HTML_SUFFIXES = frozenset({".html", ".htm", ".xhtml"})
_MAN_SUFFIX = re.compile(r"^\.[1-9][a-z]*$")
#: Files of /usr/share/doc that are licences or change logs, not prose documentation.
_NOT_DOCS = re.compile(r"^(copyright|changelog|changes|license|copying)", re.IGNORECASE)
_NORMALISE = re.compile(r"[\W_]+")


@dataclass(frozen=True, kw_only=True)
class CorpusConfig(ConfigBase):
    """What a corpus is built from and how.

    Attributes:
        sources: ``"docs"``, ``"man"``, ``"fortunes"`` (each at its Debian location, or at
            ``"<kind>:<dir>"``), or a folder of text files (``"folder:<dir>"`` or the path).
        min_words: shorter sentences are dropped.
        max_words: longer sentences are dropped.
        val_fraction: the share of documents held out for validation.
        test_fraction: the share of documents held out for testing.
        seed: the document split's seed.
        shard_sentences: sentences per JSONL shard.
        max_file_bytes: larger files (uncompressed) are skipped: generated references, not prose.

    Example:
        >>> cfg = CorpusConfig(sources=("docs", "man"), min_words=6, max_words=64)
        >>> manifest = build_corpus(cfg, "runs/corpus")
    """

    sources: tuple[str, ...] = ("docs", "man", "fortunes")
    min_words: int = 6
    max_words: int = 64
    val_fraction: float = 0.05
    test_fraction: float = 0.05
    seed: int = 0
    shard_sentences: int = 100_000
    max_file_bytes: int = 4_000_000

    def __post_init__(self) -> None:
        if isinstance(self.sources, str) or not self.sources:
            raise ValueError(
                f"sources must be a non-empty tuple of {sorted(SOURCE_ROOTS)} or folders, "
                f"got {self.sources!r}"
            )
        for spec in self.sources:
            parse_source(spec)
        if not 1 <= self.min_words <= self.max_words:
            raise ValueError(
                "need 1 <= min_words <= max_words, "
                f"got min_words={self.min_words}, max_words={self.max_words}"
            )
        for name in ("val_fraction", "test_fraction"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ValueError(
                "val_fraction + test_fraction must be < 1 (training needs documents), got "
                f"{self.val_fraction} + {self.test_fraction}"
            )
        for name in ("shard_sentences", "max_file_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    def split_of(self, doc_id: str) -> str:
        """The split a document belongs to: a hash of the seed and its id, compared with the
        fractions (test first, then validation)."""
        digest = hashlib.sha256(f"{self.seed}\x00{doc_id}".encode()).digest()
        where = int.from_bytes(digest[:8], "big") / 2**64
        if where < self.test_fraction:
            return "test"
        return "validation" if where < self.test_fraction + self.val_fraction else "train"


def parse_source(spec: str) -> tuple[str, Path]:
    """``(kind, root)`` of a source spec: ``docs``, ``man:/some/dir``, ``/a/folder``, ...

    Raises:
        ValueError: for an empty spec or a ``folder`` without a path.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"a source must be a non-empty string, got {spec!r}")
    kind, sep, root = spec.partition(":")
    if kind not in SOURCE_ROOTS:
        kind, root = "folder", spec
    elif not sep:
        root = SOURCE_ROOTS[kind]
    if not root:
        raise ValueError(f"source {spec!r} needs a folder: 'folder:<dir>' or the path itself")
    return kind, Path(root)


@dataclass(frozen=True)
class Document:
    """One file of a source: its id (``kind:relative/path``, what the split hashes), its
    path and its format (a reader of :data:`slimkit.data.READERS`)."""

    doc_id: str
    path: Path
    fmt: str


def format_of(path: Path) -> str | None:
    """The reader for a documentation file by its name (``.gz`` looked through), or None."""
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    suffix = Path(name).suffix.lower() if "." in name.lstrip(".") else ""
    if _NOT_DOCS.match(name):
        return None
    if suffix in _HTML_SUFFIXES:
        return "html"
    if suffix == ".pod":
        return "pod"
    if _MAN_SUFFIX.match(suffix):
        return "man"
    return "text" if suffix in _TEXT_SUFFIXES else None


def _walk(root: Path) -> Iterator[Path]:
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            path = Path(folder, name)
            if not path.is_symlink():
                yield path


def list_documents(spec: str) -> Iterator[Document]:
    """The documents of a source, in a fixed (sorted) order.

    Raises:
        DataError: if the source's folder does not exist.
    """
    kind, root = parse_source(spec)
    if not root.is_dir():
        fix = FORTUNES_INSTALL if kind == "fortunes" else TEXT_INSTALL
        raise DataError(f"source {spec!r}: {root} is not a folder ({fix})")
    if kind == "fortunes":
        paths: Iterator[Path] = (
            p for p in sorted(root.iterdir()) if p.is_file() and not p.is_symlink() and not p.suffix
        )
        for path in paths:
            yield Document(f"fortunes:{path.name}", path, "fortune")
        return
    if kind == "man":  # English pages only: man1 ... man9, not the translations' folders
        paths = (p for d in sorted(root.glob("man[1-9]*")) for p in _walk(d))
    else:
        paths = _walk(root)
    for path in paths:
        fmt = "man" if kind == "man" else format_of(path)
        if fmt is not None:
            yield Document(f"{kind}:{path.relative_to(root).as_posix()}", path, fmt)


def read_document(path: Path, max_bytes: int) -> str | None:
    """A document's text (gunzipped), or None when it is too large, binary or not UTF-8."""
    try:
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rb") as handle:
            data = handle.read(max_bytes + 1)
    except (OSError, EOFError):
        return None
    if len(data) > max_bytes or b"\x00" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def sentence_key(text: str) -> bytes:
    """The dedup key of a sentence: 8 bytes of BLAKE2b over its casefolded words."""
    words = _NORMALISE.sub(" ", text.casefold()).strip()
    return hashlib.blake2b(words.encode(), digest_size=8).digest()


@dataclass(frozen=True)
class SourceStats:
    """What one source gave: documents read (and skipped unreadable), documents that gave
    sentences, and the sentences kept."""

    spec: str
    root: str
    documents: int
    skipped: int
    with_sentences: int
    sentences: int


@dataclass(frozen=True)
class ShardFile:
    """One shard: its file name, split, sentence count and SHA-256."""

    name: str
    split: str
    sentences: int
    sha256: str


@dataclass(frozen=True)
class CorpusManifest:
    """The record of a built corpus, ``manifest.json``: enough to cite it in an artifact.

    Attributes:
        config: the :class:`CorpusConfig` as a dict (the extraction settings).
        sources: per-source counts.
        documents: documents with at least one kept sentence, per split.
        sentences: sentences per split.
        duplicates: sentences dropped as already seen.
        files: the shards, in reading order.
        checksum: SHA-256 over the shards' names and hashes: the corpus's content.
        seconds: how long the build took.
    """

    FORMAT = 1

    config: dict[str, Any]
    sources: tuple[SourceStats, ...]
    documents: dict[str, int]
    sentences: dict[str, int]
    duplicates: int
    files: tuple[ShardFile, ...]
    checksum: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, versioned by ``format``."""
        return {"format": self.FORMAT, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CorpusManifest:
        """The manifest a :meth:`to_dict` wrote.

        Raises:
            DataError: for a manifest of another format.
        """
        values = dict(data)
        if values.pop("format", None) != cls.FORMAT:
            raise DataError(f"corpus manifest format {data.get('format')!r} is not {cls.FORMAT}")
        values["sources"] = tuple(SourceStats(**s) for s in values["sources"])
        values["files"] = tuple(ShardFile(**f) for f in values["files"])
        return cls(**values)

    @classmethod
    def read(cls, directory: str | os.PathLike[str]) -> CorpusManifest:
        """The manifest of a corpus folder.

        Raises:
            DataError: if the folder holds no readable manifest.
        """
        path = Path(directory) / MANIFEST
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise DataError(
                f"{path}: no corpus manifest ({err}); build it with build_corpus"
            ) from None


class _ShardWriter:
    """Sentences of one split into ``<split>-00000.jsonl``, ... of ``per_shard`` lines."""

    def __init__(self, directory: Path, split: str, per_shard: int) -> None:
        self.directory, self.split, self.per_shard = directory, split, per_shard
        self.files: list[ShardFile] = []
        self.handle: IO[bytes] | None = None
        self.count = 0
        self.digest = hashlib.sha256()

    def write(self, text: str, doc_id: str) -> None:
        if self.handle is None:
            name = f"{self.split}-{len(self.files):05d}.jsonl"
            self.handle = open(self.directory / name, "wb")  # noqa: SIM115 - closed in close()
        line = json.dumps({"text": text, "doc": doc_id}, ensure_ascii=False).encode() + b"\n"
        self.handle.write(line)
        self.digest.update(line)
        self.count += 1
        if self.count == self.per_shard:
            self.close()

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            name = Path(self.handle.name).name
            self.files.append(ShardFile(name, self.split, self.count, self.digest.hexdigest()))
            self.handle, self.count, self.digest = None, 0, hashlib.sha256()


def build_corpus(
    cfg: CorpusConfig, out: str | os.PathLike[str], *, overwrite: bool = False
) -> CorpusManifest:
    """Build the corpus ``cfg`` describes into the folder ``out`` and return its manifest.

    ``out`` gets ``train-*.jsonl``, ``validation-*.jsonl``, ``test-*.jsonl`` and
    ``manifest.json``. A folder already holding a corpus of the same settings is returned as
    it is.

    Example:
        >>> manifest = build_corpus(CorpusConfig(sources=("docs", "man")), "runs/corpus")
        >>> manifest.sentences
        {'train': ..., 'validation': ..., 'test': ...}

    Raises:
        DataError: if a source is missing, no sentence is found, or ``out`` holds something
            else (pass ``overwrite=True`` to replace it).
    """
    target = Path(out)
    if (target / MANIFEST).is_file() and not overwrite:
        manifest = CorpusManifest.read(target)
        if manifest.config == cfg.to_dict():
            return manifest
        raise DataError(f"{target} holds a corpus of other settings: pass overwrite=True")
    if target.exists() and not overwrite and (not target.is_dir() or any(target.iterdir())):
        raise DataError(f"{target} exists and is not a corpus: choose another out, or overwrite")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        manifest = _write(cfg, tmp)
        _replace_dir(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def _replace_dir(new: Path, target: Path) -> None:
    os.chmod(new, 0o777 & ~_umask())
    old = target.with_name(f".{target.name}.{os.getpid()}.old")
    if target.exists():
        os.replace(target, old)
    os.replace(new, target)
    shutil.rmtree(old, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write(cfg: CorpusConfig, directory: Path) -> CorpusManifest:
    start = time.perf_counter()
    writers = {split: _ShardWriter(directory, split, cfg.shard_sentences) for split in SPLITS}
    seen: set[bytes] = set()
    documents = dict.fromkeys(SPLITS, 0)
    stats, duplicates = [], 0
    for spec in cfg.sources:
        counts = dict.fromkeys(("documents", "skipped", "with_sentences", "sentences"), 0)
        for doc in list_documents(spec):
            counts["documents"] += 1
            text = read_document(doc.path, cfg.max_file_bytes)
            if text is None:
                counts["skipped"] += 1
                continue
            split, kept = cfg.split_of(doc.doc_id), 0
            for sentence in extract_sentences(
                text, doc.fmt, min_words=cfg.min_words, max_words=cfg.max_words
            ):
                key = sentence_key(sentence)
                if key in seen:
                    duplicates += 1
                    continue
                seen.add(key)
                writers[split].write(sentence, doc.doc_id)
                kept += 1
            counts["sentences"] += kept
            counts["with_sentences"] += kept > 0
            documents[split] += kept > 0
        stats.append(SourceStats(spec, str(parse_source(spec)[1]), **counts))
    for writer in writers.values():
        writer.close()
    files = tuple(f for split in SPLITS for f in writers[split].files)
    sentences = {split: sum(f.sentences for f in files if f.split == split) for split in SPLITS}
    if not files:
        raise DataError(f"no sentences in {list(cfg.sources)} ({TEXT_INSTALL})")
    checksum = hashlib.sha256("".join(f"{f.name} {f.sha256}\n" for f in files).encode())
    manifest = CorpusManifest(
        cfg.to_dict(),
        tuple(stats),
        documents,
        sentences,
        duplicates,
        files,
        checksum.hexdigest(),
        round(time.perf_counter() - start, 3),
    )
    (directory / MANIFEST).write_text(json.dumps(manifest.to_dict(), indent=2) + "\n")
    return manifest


def read_corpus(directory: str | os.PathLike[str], split: str = "train") -> Iterator[str]:
    """The sentences of one split of a built corpus, streamed shard by shard.

    Raises:
        ValueError: for an unknown split.
        DataError: if the folder holds no corpus.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    manifest = CorpusManifest.read(directory)
    for shard in manifest.files:
        if shard.split == split:
            with open(Path(directory) / shard.name, encoding="utf-8") as handle:
                for line in handle:
                    yield json.loads(line)["text"]
