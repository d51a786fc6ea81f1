"""Prose out of documentation: paragraphs of running text from reStructuredText / Markdown /
plain text, HTML, man pages (groff) and POD, with markup, code, tables and headings dropped.

Each reader turns a document's text into paragraphs; :func:`extract_sentences` splits them into
sentences and keeps the ones that look like prose (a capital first, a full stop last, mostly
letters, a word count in range). Anything a reader lets through by mistake (a stray line of
code, a heading) rarely survives that filter.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from html.parser import HTMLParser

from ._text import _ATTRIBUTION, _clean, _is_prose, read_strfile_text, split_sentences

# --- reStructuredText, Markdown and plain text ----------------------------------------------

_ADORNMENT = re.compile(r"^\s*([=\-~^\"'`#*+_.:<>])\1{2,}\s*$")
_SIMPLE_TABLE = re.compile(r"^\s*=+(?: +=+)+\s*$")
_GRID_TABLE = re.compile(r"^\s*(?:\+[-=+:]+\+?|\|.*\|)\s*$")
_DIRECTIVE = re.compile(r"^(\s*)\.\.(?:\s+([\w:-]+)::(.*))?")
_FENCE = re.compile(r"^\s*(```|~~~)")
_BULLET = re.compile(r"^\s*(?:[-*+\u2022]|\d+[.)]|#\.)\s+")
_URL_ONLY = re.compile(r"^\s*<?(?:https?|ftp)://\S+>?\s*$")
_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}\s")
_FIELD = re.compile(r"^\s*:[\w ./-]+:(?:\s|$)")
#: Directives whose body is prose (kept); every other directive's body (code, images, tables,
#: toctrees) is dropped.
_PROSE_DIRECTIVES = frozenset(
    [
        "note",
        "warning",
        "tip",
        "important",
        "hint",
        "attention",
        "caution",
        "danger",
        "error",
        "seealso",
        "admonition",
        "versionadded",
        "versionchanged",
        "deprecated",
    ]
)
_INLINE: list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = [
    (re.compile(r":[\w:+.-]+:`([^`]*)`"), lambda m: _target_text(m.group(1))),
    (re.compile(r"`([^`<]+?)\s*<[^>`]*>`__?"), r"\1"),
    (re.compile(r"``([^`]+)``"), r"\1"),
    (re.compile(r"`([^`]+)`_{0,2}"), r"\1"),
    (re.compile(r"!?\[([^\]]*)\]\([^)]*\)"), r"\1"),
    (re.compile(r"\*\*([^*]+)\*\*"), r"\1"),
    (re.compile(r"(?<![\w*])\*([^*\s][^*]*)\*(?![\w*])"), r"\1"),
    (re.compile(r"\s*\[(?:\d+|#\w*|\*)\]_"), ""),
]


def _target_text(role: str) -> str:
    return role.split("<", 1)[0].strip().lstrip("~!")


def _inline(text: str) -> str:
    for pattern, repl in _INLINE:
        text = pattern.sub(repl, text)
    return _clean(text)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _skip_block(lines: list[str], i: int, indent: int) -> int:
    """Index of the first line after the block indented deeper than ``indent`` from ``i``."""
    while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > indent):
        i += 1
    return i


def text_paragraphs(text: str) -> Iterator[str]:
    """Paragraphs of reStructuredText, Markdown or plain text, without their markup.

    Dropped: section titles and their adornments, Markdown headings, literal blocks (after
    ``::``), fenced code, the bodies of non-prose directives, grid and simple tables, field
    lists and URL-only lines. Each list item is a paragraph of its own.
    """
    lines = text.expandtabs().splitlines()
    para: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        flush = not line.strip() or bool(_BULLET.match(line))
        if _FENCE.match(line):
            while i < len(lines) and not _FENCE.match(lines[i]):
                i += 1
            i, flush = i + 1, True
        elif _SIMPLE_TABLE.match(line):
            while i < len(lines) and not (
                _SIMPLE_TABLE.match(lines[i]) and (i + 1 == len(lines) or not lines[i + 1].strip())
            ):
                i += 1
            i, flush = i + 1, True
        elif _ADORNMENT.match(line):
            if len(para) == 1:  # a title's underline (an overline comes with an empty para)
                para = []
            yield from _emit(para)
            para = []
            continue
        elif directive := _DIRECTIVE.match(line):
            yield from _emit(para)
            para = []
            name, rest = directive.group(2), (directive.group(3) or "").strip()
            if name in _PROSE_DIRECTIVES:
                para = [rest] if rest else []
            else:
                i = _skip_block(lines, i, _indent(line))
            continue
        elif (
            _GRID_TABLE.match(line)
            or _MD_HEADING.match(line)
            or _URL_ONLY.match(line)
            or _FIELD.match(line)
        ):
            flush, line = True, ""
        if flush:
            yield from _emit(para)
            para = []
        if line.rstrip().endswith("::"):
            stripped = line.rstrip()[:-2].rstrip()
            para.append(stripped + ":" if stripped else "")
            yield from _emit(para)
            para = []
            i = _skip_block(lines, i, _indent(line))
        elif line.strip() and not _FENCE.match(line):
            para.append(_BULLET.sub("", line, count=1).strip())
    yield from _emit(para)


def _emit(para: list[str]) -> Iterator[str]:
    text = _inline(" ".join(p for p in para if p))
    if text:
        yield text


# --- HTML -----------------------------------------------------------------------------------

_HTML_SKIP = frozenset(
    [
        "script",
        "style",
        "pre",
        "table",
        "nav",
        "header",
        "footer",
        "head",
        "title",
        "form",
        "select",
        "button",
        "svg",
        "math",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "dt",
    ]
)
_HTML_SKIP_CLASSES = frozenset(
    [
        "related",
        "sphinxsidebar",
        "footer",
        "headerlink",
        "navigation",
        "nav",
        "header",
        "breadcrumbs",
        "highlight",
        "toc",
        "sig",
    ]
)
_HTML_BLOCK = frozenset(
    [
        "p",
        "div",
        "li",
        "dd",
        "br",
        "blockquote",
        "section",
        "article",
        "ul",
        "ol",
        "dl",
        "td",
        "th",
        "tr",
        "hr",
        "figure",
        "figcaption",
        "main",
        "body",
        "caption",
    ]
)
_HTML_VOID = frozenset(
    [
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "source",
        "track",
        "wbr",
    ]
)


class _ProseParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, bool]] = []
        self.buffer: list[str] = []
        self.paragraphs: list[str] = []

    def _skipping(self) -> bool:
        return any(skip for _, skip in self.stack)

    def _flush(self) -> None:
        text = _clean("".join(self.buffer))
        if text:
            self.paragraphs.append(text)
        self.buffer = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HTML_BLOCK:
            self._flush()
        if tag in _HTML_VOID:
            return
        classes = set((dict(attrs).get("class") or "").split())
        self.stack.append((tag, tag in _HTML_SKIP or bool(classes & _HTML_SKIP_CLASSES)))

    def handle_endtag(self, tag: str) -> None:
        if tag in _HTML_BLOCK:
            self._flush()
        if any(open_tag == tag for open_tag, _ in self.stack):
            while self.stack and self.stack.pop()[0] != tag:
                pass
            if tag in _HTML_SKIP:
                self.buffer = self.buffer if not self._skipping() else []

    def handle_data(self, data: str) -> None:
        if not self._skipping():
            self.buffer.append(data)


def html_paragraphs(text: str) -> Iterator[str]:
    """Paragraphs of an HTML page: block elements' text, without navigation, headers and
    footers, headings, code, preformatted blocks and tables."""
    parser = _ProseParser()
    parser.feed(text)
    parser.close()
    parser._flush()
    yield from (p for p in parser.paragraphs if not _URL_ONLY.match(p))


# --- man pages (groff) ----------------------------------------------------------------------

_GROFF_NAMED = {"em": "\u2014", "en": "\u2013", "aq": "'", "lq": '"', "rq": '"', "oq": "'"}
_GROFF_NAMED |= {"cq": "'", "dq": '"', "co": "\u00a9", "bu": "", "Do": "$", "ti": "~"}
_GROFF_FONT = re.compile(r"\\f(?:\(..|\[[^\]]*\]|.)|\\s[+-]?\d+")
_GROFF_SPECIAL = re.compile(r"\\(?:\(|\*\()(..)|\\\[(\w+)\]|\\\*\[(\w+)\]|\\\*(.)")
_GROFF_SIMPLE = [("\\-", "-"), ("\\&", ""), ("\\e", "\\"), ("\\ ", " "), ("\\~", " ")]
_GROFF_SIMPLE += [("\\|", ""), ("\\^", ""), ("\\c", ""), ("\\:", ""), ("\\%", "")]
_GROFF_ARGS = re.compile(r'"([^"]*)"|(\S+)')
#: Requests that open a block to drop, with the request that closes it.
_GROFF_BLOCKS = {"nf": "fi", "EX": "EE", "TS": "TE", "EQ": "EN", "de": "..", "ig": "..", "PS": "PE"}
_GROFF_BREAKS = frozenset(
    [
        "PP",
        "LP",
        "P",
        "sp",
        "br",
        "IP",
        "HP",
        "RS",
        "RE",
        "in",
        "ti",
        "TP",
        "SH",
        "SS",
        "TH",
        "SY",
        "YS",
        "bp",
    ]
)
_GROFF_FONTS = frozenset(["B", "I", "SM", "SB"])
_GROFF_ALTERNATING = frozenset(["BR", "BI", "IB", "RB", "RI", "IR"])


def _groff_text(line: str) -> str:
    line = line.split('\\"', 1)[0]
    line = _GROFF_FONT.sub("", line)
    line = _GROFF_SPECIAL.sub(
        lambda m: _GROFF_NAMED.get(next(g for g in m.groups() if g), ""), line
    )
    for escape, repl in _GROFF_SIMPLE:
        line = line.replace(escape, repl)
    return line


def man_paragraphs(text: str) -> Iterator[str]:
    """Paragraphs of a man page's groff source: running text between paragraph macros.

    Dropped: the title header (``.TH``), section headings, ``.TP`` tags and ``.IP`` labels,
    no-fill and example blocks, tables, equations and macro definitions, comments.
    """
    para: list[str] = []
    lines = iter(text.splitlines())
    for line in lines:
        if line.startswith((".", "'")):
            words = [a or b for a, b in _GROFF_ARGS.findall(_groff_text(line[1:]))]
            request, args = (words[0], words[1:]) if words else ("", [])
            if request in _GROFF_BLOCKS:
                end = "." + _GROFF_BLOCKS[request]
                for inner in lines:
                    if inner.split()[:1] == [end] or inner.strip() == end:
                        break
            if request in _GROFF_BREAKS or request in _GROFF_BLOCKS:
                yield from _emit(para)
                para = []
                if request in ("TP", "SH", "SS") and not args:
                    next(lines, "")  # the tag or heading on the next line
            elif request in _GROFF_FONTS:
                para.append(" ".join(args))
            elif request in _GROFF_ALTERNATING:
                para.append("".join(args))
        elif line.strip():
            para.append(_groff_text(line).strip())
        else:
            yield from _emit(para)
            para = []
    yield from _emit(para)


# --- POD ------------------------------------------------------------------------------------

_POD_DOUBLE = re.compile(r"([A-Z])<{2,}\s+(.*?)\s+>{2,}")
_POD_CODE = re.compile(r"([A-Z])<([^<>]*)>")
_POD_ENTITIES = {"lt": "<", "gt": ">", "sol": "/", "verbar": "|", "quot": '"', "amp": "&"}


def _pod_code(code: str, body: str) -> str:
    if code == "L":
        return body.split("|", 1)[0] if "|" in body else body.strip('"')
    if code == "E":
        return _POD_ENTITIES.get(body, "")
    return "" if code in "XZ" else body


def _pod_text(text: str) -> str:
    text = _POD_DOUBLE.sub(lambda m: _pod_code(m.group(1), m.group(2)), text)
    while (new := _POD_CODE.sub(lambda m: _pod_code(m.group(1), m.group(2)), text)) != text:
        text = new
    return _clean(text)


def pod_paragraphs(text: str) -> Iterator[str]:
    """Ordinary paragraphs of Perl's POD: commands (headings, items), verbatim (indented)
    paragraphs, ``=begin``/``=end`` and ``=for`` blocks and code outside POD are dropped."""
    inside, skip_to = False, ""
    for block in re.split(r"\n\s*\n", text.expandtabs()):
        if not block.strip():
            continue
        first = block.split(None, 2)
        if skip_to:
            skip_to = "" if block.startswith(skip_to) else skip_to
        elif block.startswith("="):
            inside = first[0] != "=cut"
            if first[0] == "=begin" and len(first) > 1:
                skip_to = "=end " + first[1]
        elif inside and not block[0].isspace():
            yield _pod_text(block)


# --- fortunes -------------------------------------------------------------------------------


def fortune_paragraphs(text: str) -> Iterator[str]:
    """Entries of a fortune file, attribution lines (``-- Mark Twain``) dropped."""
    for entry in read_strfile_text(text):
        lines = [line for line in entry.splitlines() if not _ATTRIBUTION.match(line)]
        yield _clean(" ".join(lines))


#: The readers by format name: a document's format picks its reader.
READERS: dict[str, Callable[[str], Iterator[str]]] = {
    "text": text_paragraphs,
    "html": html_paragraphs,
    "man": man_paragraphs,
    "pod": pod_paragraphs,
    "fortune": fortune_paragraphs,
}

_ABBREVIATION = re.compile(
    r"(?:\b(?:e\.g|i\.e|etc|vs|cf|Mr|Mrs|Ms|Dr|St|No|Fig|approx|resp|al)\.|\b[A-Z]\.)$"
)
_START = re.compile(r"^[\"'(\[]?[A-Z]")
_END = re.compile(r"[.!?][\"')\]]?$")


def sentences_of(paragraph: str) -> list[str]:
    """:func:`split_sentences`, without splitting after common abbreviations (``e.g.``)."""
    merged: list[str] = []
    for piece in split_sentences(paragraph):
        if merged and _ABBREVIATION.search(merged[-1]):
            merged[-1] += " " + piece
        else:
            merged.append(piece)
    return merged


def is_sentence(text: str, min_words: int, max_words: int) -> bool:
    """A prose sentence: a capital first, ``.``/``!``/``?`` last, mostly letters, and
    ``min_words`` to ``max_words`` words."""
    return (
        min_words <= len(text.split()) <= max_words
        and bool(_START.match(text))
        and bool(_END.search(text))
        and _is_prose(text)
    )


def extract_sentences(
    text: str, fmt: str, *, min_words: int = 6, max_words: int = 64
) -> Iterator[str]:
    """Prose sentences of a document's text, in order.

    Args:
        text: the document.
        fmt: its format, one of :data:`READERS` (``text``, ``html``, ``man``, ``pod``,
            ``fortune``).
        min_words: shorter sentences are dropped.
        max_words: longer sentences are dropped.

    Example:
        >>> list(extract_sentences("Title\\n=====\\n\\nOne short sentence here. And another.",
        ...                        "text", min_words=2))
        ['One short sentence here.', 'And another.']

    Raises:
        ValueError: for an unknown format.
    """
    if fmt not in READERS:
        raise ValueError(f"fmt must be one of {sorted(READERS)}, got {fmt!r}")
    for paragraph in READERS[fmt](text):
        for sentence in sentences_of(paragraph):
            if is_sentence(sentence, min_words, max_words):
                yield sentence
