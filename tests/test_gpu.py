"""CUDA paths, run by scripts/gpu_check.sh on a machine with a GPU (marker ``gpu``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

import slimkit
from slimkit.measure import evaluate_accuracy
from slimkit.prune import prunable_layers

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def cuda() -> torch.device:
    if not torch.cuda.is_available():
        pytest.fail("the gpu tier needs CUDA; run it on a GPU machine (scripts/gpu_check.sh)")
    return torch.device("cuda")


def test_auto_device_picks_cuda(cuda: torch.device) -> None:
    assert slimkit._device.resolve_device("auto").type == "cuda"


def test_train_and_prune_on_cuda_match_cpu_semantics(
    cuda: torch.device, fmnist: slimkit.Splits, tmp_path: Path
) -> None:
    model = slimkit.create_model("seed-cnn")
    slimkit.train(model, fmnist, slimkit.TrainConfig(epochs=1), device=cuda, progress=False)
    assert next(model.parameters()).device.type == "cuda"
    cfg = slimkit.UnstructuredConfig(sparsity=0.8, importance="taylor")
    pruned = slimkit.prune(
        model, cfg, data=fmnist, train=slimkit.TrainConfig(epochs=1), device=cuda
    )
    weights = [m.weight for m in prunable_layers(pruned).values()]
    zeros = sum(int((w == 0).sum()) for w in weights)
    assert zeros == round(0.8 * sum(w.numel() for w in weights))
    cpu_copy = slimkit.load_weights(slimkit.create_model("seed-cnn"), _saved(pruned, tmp_path))
    assert (
        abs(
            evaluate_accuracy(cpu_copy, fmnist.test)
            - evaluate_accuracy(pruned, fmnist.test, device=cuda)
        )
        < 1.0
    )


def _saved(model: torch.nn.Module, tmp_path: Path) -> Path:
    path = tmp_path / "pruned.safetensors"
    slimkit.save(model.cpu(), path)
    model.cuda()
    return path


def test_profile_on_cuda_reports_cuda_latency(cuda: torch.device, fmnist: slimkit.Splits) -> None:
    model = slimkit.create_model("resnet20")
    result = slimkit.profile(model, fmnist, device=cuda)
    assert result.device.startswith("cuda")
    assert result.latency_ms_b64 > 0 and result.macs > 0


def test_structured_prune_on_cuda_removes_the_same_channels_as_on_cpu(cuda: torch.device) -> None:
    model = slimkit.create_model("resnet20").eval()
    x = torch.randn(4, 1, 28, 28)
    cfg = slimkit.StructuredConfig(ratio=0.5)
    on_cpu = slimkit.prune(model, cfg, example_inputs=x)
    on_cuda = slimkit.prune(model.to(cuda), cfg, example_inputs=x.to(cuda))
    cpu_shapes = {k: v.shape for k, v in on_cpu.state_dict().items()}
    cuda_shapes = {k: v.shape for k, v in on_cuda.state_dict().items()}
    assert cuda_shapes == cpu_shapes
    on_cuda, model = on_cuda.cpu(), model.cpu()
    assert slimkit.count_macs(on_cuda, x[:1]) < 0.6 * slimkit.count_macs(model, x[:1])
    torch.testing.assert_close(on_cuda.eval()(x), on_cpu.eval()(x), atol=1e-4, rtol=1e-4)


def test_logit_distillation_on_cuda_trains_the_student(
    cuda: torch.device, fmnist: slimkit.Splits
) -> None:
    teacher = slimkit.create_model("seed-cnn")
    slimkit.train(teacher, fmnist, slimkit.TrainConfig(epochs=2), device=cuda, progress=False)
    student = slimkit.create_model("seed-cnn-slim")
    before = evaluate_accuracy(student, fmnist.val, device=cuda)
    cfg = slimkit.DistillConfig(train=slimkit.TrainConfig(epochs=2, lr=3e-3))
    slimkit.distill(student, teacher, fmnist, cfg, device=cuda, progress=False)
    assert next(student.parameters()).device.type == "cuda"
    assert evaluate_accuracy(student, fmnist.val, device=cuda) > before + 20.0


def test_qat_on_cuda_freezes_to_int8(cuda: torch.device, fmnist: slimkit.Splits) -> None:
    from slimkit.quantize import QATConfig, quantization_report, quantize

    model = slimkit.create_model("seed-cnn")
    slimkit.train(model, fmnist, slimkit.TrainConfig(epochs=2), device=cuda, progress=False)
    model.cpu()
    float_acc = evaluate_accuracy(model, fmnist.test)
    cfg = QATConfig(calib_batches=2, train=slimkit.TrainConfig(epochs=1, lr=1e-4))
    q = quantize(model, cfg, data=fmnist, device=cuda, progress=False)
    # QAT trains fake-quantized layers on the GPU, then freezes them into the int8 model that
    # deploys on the CPU (weights stored as int8).
    assert quantization_report(q)["quantized"] == ["conv1", "conv2", "fc1", "fc2"]
    assert q.state_dict()["conv1.weight"].dtype == torch.int8
    assert evaluate_accuracy(q.cpu(), fmnist.test) >= float_acc - 3.0


def test_encoder_prune_and_distill_on_cuda(cuda: torch.device, tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    from slimkit.models import load_hf
    from slimkit.testing import TINY_SENTENCES, tiny_bert_dir
    from slimkit.text import (
        EMBEDDING_TRAIN,
        EmbeddingDistillConfig,
        EncoderPruneConfig,
        distill_encoder,
        prune_encoder,
    )

    teacher = load_hf(tiny_bert_dir(tmp_path / "tiny")).to(cuda).eval()
    texts = list(TINY_SENTENCES) * 8
    student = prune_encoder(teacher, EncoderPruneConfig(heads=0.5, ffn=0.5), texts)
    assert student.device.type == "cuda"
    schedule = dataclasses.replace(EMBEDDING_TRAIN, epochs=4, lr=1e-3)
    cfg = EmbeddingDistillConfig(train=schedule, hidden_weight=1.0)
    distill_encoder(student, teacher, texts, cfg, progress=False)
    losses = student.slimkit_distill_report["epoch_loss"]
    assert student.device.type == "cuda"
    assert losses[-1] < 0.5 * losses[0]


def test_sentence_encoder_compress_distils_on_cuda_and_deploys_on_cpu(
    cuda: torch.device, tmp_path: Path
) -> None:
    pytest.importorskip("onnxruntime")
    from slimkit.data import load_text
    from slimkit.testing import tiny_bert_dir, tiny_text_corpus
    from slimkit.text import EncoderCompressConfig, EncoderPruneConfig, compress_sentence_encoder

    encoder = tiny_bert_dir(tmp_path / "encoder", layers=4)
    splits = load_text(f"text:{tiny_text_corpus(tmp_path)}")
    distill = dataclasses.replace(EncoderCompressConfig().distill, precision="bf16")
    cfg = EncoderCompressConfig(
        min_cosine=0.5,
        candidates=(EncoderPruneConfig(layers=0.5, heads=0.5, ffn=0.5),),
        distill=distill,
        distill_steps=4,
        quantize=False,
        backend="onnxruntime",
    )
    lines: list[str] = []
    summary = compress_sentence_encoder(
        encoder, splits, cfg, tmp_path / "run", log=lines.append, device="auto"
    )
    assert "distilling on cuda" in lines
    record = next(c for c in summary["candidates"] if c["label"] != "unpruned")
    assert record["distill"]["steps"] == 4
    assert summary["reload"]["max_abs_diff"] <= 1e-5  # saved from the CPU copy it measured


def test_depth_pruning_on_cuda_matches_cpu(cuda: torch.device) -> None:
    from slimkit.graph import removable_blocks

    model = slimkit.create_model("resnet20").eval()
    x = torch.randn(4, 1, 28, 28)
    blocks = removable_blocks(model, x)
    assert removable_blocks(model.to(cuda), x.to(cuda)) == blocks
    cfg = slimkit.StructuredConfig(ratio=0.3, remove_blocks=(blocks[0], blocks[-1]))
    on_cuda = slimkit.prune(model, cfg, example_inputs=x.to(cuda))
    on_cpu = slimkit.prune(model.cpu(), cfg, example_inputs=x)
    assert isinstance(on_cuda.get_submodule(blocks[0]), torch.nn.Identity)
    torch.testing.assert_close(on_cuda.cpu().eval()(x), on_cpu.eval()(x), atol=1e-4, rtol=1e-4)
