from __future__ import annotations

from pathlib import Path

import pytest

from slimkit.models import SentenceEncoder, load_hf
from slimkit.testing import tiny_bert_dir

pytest.importorskip("transformers")


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer BERT (hidden 32, 4 heads of 8, FFN 64) with its tokenizer."""
    return tiny_bert_dir(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture
def tiny(tiny_dir: Path) -> SentenceEncoder:
    return load_hf(tiny_dir)
