"""The corpus builder: prose out of rst, HTML, man and fortune files; dedup; split by document."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from slimkit import DataError
from slimkit.data import (
    CorpusConfig,
    CorpusManifest,
    build_corpus,
    extract_sentences,
    format_of,
    list_documents,
    load_text,
    read_corpus,
)

RST = """Installing the tool
===================

The tool reads every file in the folder. It writes one report per run,
see :func:`slimkit.report` for details.

Run it like this::

    $ tool --all files
    Done. All files read.

.. code-block:: python

    Print("This is code and must go.")

=====  =====
Name   Value
=====  =====
Alpha  The first value is one.
=====  =====

+-------+-------------------------+
| Grid  | A cell with a sentence. |
+-------+-------------------------+

* A bullet item is a sentence of its own here.
* Another item, e.g. this one, stays whole.

https://example.org/only-a-url

.. note:: Notes are prose and are kept as such.
"""
RST_SENTENCES = [
    "The tool reads every file in the folder.",
    "It writes one report per run, see slimkit.report for details.",
    "A bullet item is a sentence of its own here.",
    "Another item, e.g. this one, stays whole.",
    "Notes are prose and are kept as such.",
]
HTML = """<html><head><title>Page title here.</title></head><body>
<div class="related"><a href="x">Navigation link text is not prose.</a></div>
<h1>A heading is dropped.</h1>
<p>The first paragraph has two sentences. The second one is <em>emphasised</em> here.</p>
<pre>Code blocks are dropped as well.</pre>
<table><tr><td>Cells are not kept here.</td></tr></table>
<ul><li>List items make their own paragraphs.</li></ul>
<div class="footer">Copyright 2024, the footer is not prose.</div>
</body></html>"""
HTML_SENTENCES = [
    "The first paragraph has two sentences.",
    "The second one is emphasised here.",
    "List items make their own paragraphs.",
]
MAN = r""".TH TOOL 1 "2024" "tool 1.0" "User Commands"
.SH NAME
tool \- read files
.SH DESCRIPTION
The \fBtool\fR reads every file in the folder\(em all of them.
It writes one report per run.
.PP
.nf
Code in a no-fill block is dropped.
.fi
.TP
.B \-\-all
Read hidden files too, which is the default.
.\" A comment is dropped as well.
"""
MAN_SENTENCES = [
    "The tool reads every file in the folder\u2014 all of them.",
    "It writes one report per run.",
    "Read hidden files too, which is the default.",
]
FORTUNE = (
    "A fortune is a short saying. It has two sentences.\n\t-- Someone Famous\n%\n"
    "To be or not to be, that is the question.\n%\n"
    "It writes one report per run.\n%\n"
)
FORTUNE_SENTENCES = [
    "A fortune is a short saying.",
    "It has two sentences.",
    "To be or not to be, that is the question.",
    "It writes one report per run.",
]


@pytest.mark.parametrize(
    ("text", "fmt", "expected"),
    [
        (RST, "text", RST_SENTENCES),
        (HTML, "html", HTML_SENTENCES),
        (MAN, "man", MAN_SENTENCES),
        (FORTUNE, "fortune", FORTUNE_SENTENCES),
    ],
    ids=["rst", "html", "man", "fortune"],
)
def test_exact_sentences_of_each_format(text: str, fmt: str, expected: list[str]) -> None:
    assert list(extract_sentences(text, fmt, min_words=4)) == expected


def test_pod_drops_commands_verbatim_and_code() -> None:
    pod = (
        "=head1 NAME\n\nTool - read files\n\n=head1 DESCRIPTION\n\n"
        "B<Tool> reads every file in the L<folder|perlfunc/folder>, as C<< $x->read >> says.\n\n"
        '    my $code = "This verbatim paragraph is dropped.";\n\n'
        "=begin html\n\n<p>This raw HTML is dropped too.</p>\n\n=end html\n\n"
        "=cut\n\nsub code { 'Code after cut is dropped.' }\n"
    )
    assert list(extract_sentences(pod, "pod", min_words=4)) == [
        "Tool reads every file in the folder, as $x->read says."
    ]


def test_word_limits_and_unknown_format() -> None:
    text = "Two words. This one has exactly five words. " + "Long " * 20 + "sentence."
    assert list(extract_sentences(text, "text", min_words=5, max_words=10)) == [
        "This one has exactly five words."
    ]
    with pytest.raises(ValueError, match="fmt must be one of"):
        list(extract_sentences(text, "docx"))


def test_formats_by_file_name() -> None:
    names = ["a.rst", "README", "b.html.gz", "tool.1.gz", "perlre.pod", "x.png", "copyright"]
    assert [format_of(Path(n)) for n in names] == [
        "text",
        "text",
        "html",
        "man",
        "pod",
        None,
        None,
    ]


def _tree(root: Path) -> Path:
    """A /usr/share/doc-like tree: rst, gzipped HTML and a duplicate-laden fortune-like text."""
    (root / "pkg-a").mkdir(parents=True)
    (root / "pkg-a" / "guide.rst").write_text(RST)
    with gzip.open(root / "pkg-a" / "index.html.gz", "wt") as handle:
        handle.write(HTML)
    (root / "pkg-b").mkdir()
    (root / "pkg-b" / "tool.1").write_text(MAN)
    (root / "pkg-b" / "copyright").write_text("The licence text is not prose documentation.")
    for i in range(40):  # enough documents for every split to get some
        (root / "pkg-c").mkdir(exist_ok=True)
        (root / "pkg-c" / f"note{i:02d}.txt").write_text(
            f"Note number {i} explains one thing. It writes one report per run.\n"
        )
    return root


def _cfg(*sources: str, **kwargs: object) -> CorpusConfig:
    return CorpusConfig(sources=sources, min_words=4, **kwargs)  # type: ignore[arg-type]


def test_build_dedups_splits_by_document_and_records_a_manifest(tmp_path: Path) -> None:
    docs = _tree(tmp_path / "doc")
    fortunes = tmp_path / "fortunes"
    fortunes.mkdir()
    (fortunes / "sayings").write_text(FORTUNE)
    (fortunes / "sayings.dat").write_bytes(b"\x00\x01")
    cfg = _cfg(f"docs:{docs}", f"fortunes:{fortunes}", val_fraction=0.2, test_fraction=0.2)
    manifest = build_corpus(cfg, tmp_path / "corpus")

    rows = [
        {**json.loads(line), "split": shard.split}
        for shard in manifest.files
        for line in (tmp_path / "corpus" / shard.name).read_text().splitlines()
    ]
    texts = [r["text"] for r in rows]
    # "It writes one report per run." is in the man page, 40 notes and the fortunes.
    assert texts.count("It writes one report per run.") == 1
    assert len(texts) == len(set(texts)) == 5 + 3 + 3 + 40 + 3
    assert manifest.duplicates == 40 + 1
    splits_of_doc: dict[str, set[str]] = {}
    for row in rows:
        splits_of_doc.setdefault(row["doc"], set()).add(row["split"])
    # Every document lies wholly in one split, the one its id hashes to.
    assert all(splits == {cfg.split_of(doc)} for doc, splits in splits_of_doc.items())
    assert {row["split"] for row in rows} == {"train", "validation", "test"}
    assert sum(manifest.sentences.values()) == len(rows)
    for split in manifest.sentences:
        assert manifest.sentences[split] == sum(r["split"] == split for r in rows)
        assert manifest.documents[split] == sum(s == {split} for s in splits_of_doc.values())
    docs_stats, fortune_stats = manifest.sources
    assert (docs_stats.documents, docs_stats.with_sentences) == (43, 43)
    assert (fortune_stats.documents, fortune_stats.sentences) == (1, 3)
    assert manifest.config == cfg.to_dict()
    assert CorpusManifest.read(tmp_path / "corpus") == manifest
    assert list(read_corpus(tmp_path / "corpus", "test")) == [
        r["text"] for r in rows if r["split"] == "test"
    ]


def test_build_is_idempotent_sharded_and_refuses_other_settings(tmp_path: Path) -> None:
    docs = _tree(tmp_path / "doc")
    cfg = _cfg(str(docs), shard_sentences=7)
    first = build_corpus(cfg, tmp_path / "corpus")
    assert all(f.sentences <= 7 for f in first.files) and len(first.files) > 3
    again = build_corpus(cfg, tmp_path / "corpus")
    assert again == first  # not rebuilt: the same seconds, too
    other = _cfg(str(docs), seed=1)
    with pytest.raises(DataError, match="other settings: pass overwrite=True"):
        build_corpus(other, tmp_path / "corpus")
    rebuilt = build_corpus(other, tmp_path / "corpus", overwrite=True)
    assert rebuilt.config["seed"] == 1
    assert sum(rebuilt.sentences.values()) == sum(first.sentences.values())
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries left


def test_documents_are_sorted_and_man_reads_english_sections_only(tmp_path: Path) -> None:
    man = tmp_path / "man"
    for folder in ("man1", "fr/man1", "man8"):
        (man / folder).mkdir(parents=True)
        (man / folder / "tool.1").write_text(MAN)
    ids = [d.doc_id for d in list_documents(f"man:{man}")]
    assert ids == ["man:man1/tool.1", "man:man8/tool.1"]  # not fr/
    docs = _tree(tmp_path / "doc")
    ids = [d.doc_id for d in list_documents(str(docs))]
    assert ids[:3] == [
        "folder:pkg-a/guide.rst",
        "folder:pkg-a/index.html.gz",
        "folder:pkg-b/tool.1",
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sources": ()}, "sources must be a non-empty tuple"),
        ({"sources": "docs"}, "sources must be a non-empty tuple"),
        ({"sources": ("folder:",)}, "needs a folder"),
        ({"min_words": 0}, "need 1 <= min_words <= max_words"),
        ({"min_words": 9, "max_words": 8}, "need 1 <= min_words <= max_words"),
        ({"test_fraction": 1.0}, r"test_fraction must be in \[0, 1\)"),
        ({"val_fraction": 0.5, "test_fraction": 0.5}, "val_fraction \\+ test_fraction"),
        ({"shard_sentences": 0}, "shard_sentences must be >= 1"),
    ],
)
def test_config_validation_names_the_field(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CorpusConfig(**kwargs)  # type: ignore[arg-type]


def test_config_round_trips_and_missing_sources_name_the_fix(tmp_path: Path) -> None:
    cfg = CorpusConfig(sources=("man", str(tmp_path)), seed=3)
    assert CorpusConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(DataError, match="is not a folder"):
        build_corpus(CorpusConfig(sources=(f"docs:{tmp_path / 'nope'}",)), tmp_path / "c")
    with pytest.raises(DataError, match="no sentences"):
        build_corpus(CorpusConfig(sources=(str(tmp_path),)), tmp_path / "c")


def test_text_source_reads_a_corpus_with_its_document_split(tmp_path: Path) -> None:
    cfg = _cfg(f"docs:{_tree(tmp_path / 'doc')}", val_fraction=0.2, test_fraction=0.2)
    manifest = build_corpus(cfg, tmp_path / "corpus")
    splits = load_text(f"text:{tmp_path / 'corpus'}", eval_size=3)
    test = list(read_corpus(tmp_path / "corpus", "test"))
    val = list(read_corpus(tmp_path / "corpus", "validation"))
    assert splits.train == tuple(read_corpus(tmp_path / "corpus", "train"))
    # At most eval_size held-out sentences, evenly spaced over each split.
    assert splits.eval == tuple(test[:: max(1, len(test) // 3)][:3])
    assert splits.val == tuple(val[:: max(1, len(val) // 3)][:3])
    assert not set(splits.train) & (set(test) | set(val))
    described = splits.describe()
    assert described["checksum"] == manifest.checksum
    held_out = {"eval": min(3, len(test)), "val": min(3, len(val))}
    assert described["sizes"] == {"train": len(splits.train), **held_out}
    assert described["corpus_sentences"] == manifest.sentences
    limited = load_text(f"text:{tmp_path / 'corpus'}", eval_size=3, limit_train=4)
    stride = len(splits.train) // 4
    assert limited.train == splits.train[::stride][:4]


def test_text_source_without_a_corpus_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no corpus manifest.*build it with build_corpus"):
        load_text(f"text:{tmp_path}")
    with pytest.raises(DataError, match=r"text: needs a corpus folder.*make corpus"):
        load_text("text:")
    with pytest.raises(ValueError, match="limit_train must be >= 1"):
        load_text("text:x", limit_train=0)
