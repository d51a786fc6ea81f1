"""Unlabeled sentences: fortunes and text files, split deterministically."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from slimkit import DataError
from slimkit.data import (
    FORTUNES_DIR,
    fortune_sentences,
    load_text,
    read_lines,
    read_strfile,
    split_sentences,
    split_texts,
)

SENTENCES = [f"Sentence number {i} is here." for i in range(50)]


def test_split_is_deterministic_disjoint_and_independent_of_order() -> None:
    splits = split_texts(SENTENCES, eval_size=10, seed=3)
    again = split_texts(list(reversed(SENTENCES)), eval_size=10, seed=3)
    assert splits == again
    assert (len(splits.train), len(splits.eval)) == (40, 10)
    assert not set(splits.train) & set(splits.eval)
    assert set(splits.train) | set(splits.eval) == set(SENTENCES)
    assert split_texts(SENTENCES, eval_size=10, seed=4).eval != splits.eval


def test_duplicates_and_blank_lines_are_dropped_before_splitting() -> None:
    splits = split_texts([*SENTENCES, *SENTENCES[:5], "", "   "], eval_size=10)
    assert splits.meta["distinct"] == 50
    assert len(splits.train) + len(splits.eval) == 50


def test_too_few_sentences_and_bad_sizes_are_errors() -> None:
    with pytest.raises(DataError, match="5 distinct sentences, but 10 are held out"):
        split_texts(SENTENCES[:5], eval_size=10)
    with pytest.raises(ValueError, match="eval_size must be >= 1"):
        split_texts(SENTENCES, eval_size=0)


def test_text_files_one_sentence_per_line(tmp_path: Path) -> None:
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text("\n".join(SENTENCES[:30]) + "\n\n")
    second.write_text("  " + "\n".join(SENTENCES[30:]))
    assert read_lines(first) == SENTENCES[:30]
    splits = load_text([first, second], eval_size=20)
    assert (len(splits.train), len(splits.eval)) == (30, 20)
    assert splits.describe()["sources"] == [str(first), str(second)]


def test_bad_text_files_name_the_problem(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    with pytest.raises(DataError, match="holds no text"):
        read_lines(empty)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("first line\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"not UTF-8 text \(line 2\)"):
        read_lines(latin)
    with pytest.raises(DataError, match="does not exist"):
        load_text(tmp_path / "missing.txt")


def test_strfile_entries_and_sentence_splitting(tmp_path: Path) -> None:
    source = tmp_path / "wisdom"
    source.write_text("First entry.\nStill first.\n%\nSecond one!  Yes it is.\n%\n")
    assert read_strfile(source) == ["First entry.\nStill first.", "Second one!  Yes it is."]
    assert split_sentences('Second one!  Yes it is. "Quoted." And done') == [
        "Second one!",
        "Yes it is.",
        '"Quoted."',
        "And done",
    ]


def test_fortune_sentences_drop_art_attributions_and_short_ones(tmp_path: Path) -> None:
    (tmp_path / "cookie").write_text(
        "Fortune favours the bold and the brave.\n\t\t-- Somebody Famous\n%\n"
        "Tiny.\n%\n"
        "  /\\_/\\\n ( o.o )\n  > ^ <\n%\n"
        "A long sentence goes here today. Another long sentence follows it.\n"
    )
    (tmp_path / "cookie.dat").write_bytes(b"\x00\x01binary index")
    assert fortune_sentences(tmp_path) == [
        "Fortune favours the bold and the brave.",
        "A long sentence goes here today.",
        "Another long sentence follows it.",
    ]
    with pytest.raises(DataError, match="no fortunes at"):
        fortune_sentences(tmp_path / "none")


@pytest.mark.skipif(not Path(FORTUNES_DIR, "fortunes").is_file(), reason="fortunes not installed")
def test_a_real_fortune_file_gives_hundreds_of_sentences(tmp_path: Path) -> None:
    shutil.copy(Path(FORTUNES_DIR, "fortunes"), tmp_path / "fortunes")
    sentences = fortune_sentences(tmp_path)
    assert len(sentences) > 300
    assert all(len(s.split()) >= 4 for s in sentences)


@pytest.mark.slow
def test_all_fortunes_hold_out_2000_sentences() -> None:
    splits = load_text("fortunes", eval_size=2000)
    assert len(splits.eval) == 2000 and len(splits.train) > 20_000
