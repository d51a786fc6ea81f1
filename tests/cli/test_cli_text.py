"""``slimkit compress ENCODER --task sentence-embedding``: a whole run on a tiny 4-layer BERT and
a tiny corpus, the honest result when no pruned candidate holds the budget, resuming a killed
run, and bad input refused before any work."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

import slimkit.models
import slimkit.text
from slimkit.cli._main import main
from slimkit.data import load_text
from slimkit.testing import tiny_bert_dir, tiny_text_corpus
from slimkit.text import AgreementBudget, FormResult, _search
from slimkit.text import _distill as distill_module
from slimkit.text._plan import candidate_label

pytest.importorskip("transformers")
pytest.importorskip("onnxruntime")

TWO = "0.5:0.5:0.5,0.25:0.25:0.25"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A random 4-layer BERT (hidden 32, 4 heads, FFN 64) and a corpus of 32 documents."""
    root = tmp_path_factory.mktemp("text-cli")
    return tiny_bert_dir(root / "encoder", layers=4), tiny_text_corpus(root)


def _argv(inputs: tuple[Path, Path], out: Path, *options: object) -> list[str]:
    encoder, corpus = inputs
    head = ["compress", encoder, "--task", "sentence-embedding", "--data", f"text:{corpus}"]
    return [str(a) for a in [*head, "--out", out, "--threads", 1, "--quiet", *options]]


def _run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict[str, Any]:
    code = main([*argv, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary: dict[str, Any] = json.loads(captured.out)
    return summary


def _holds(budget: AgreementBudget, form: dict[str, Any]) -> bool:
    return budget.holds(FormResult.from_dict(form))


#: Embeddings of sentences by transformers alone: no slimkit import in the process.
_RELOAD = """
import json, sys, os, torch
from transformers import AutoModel, AutoTokenizer
directory, texts = sys.argv[1], json.loads(sys.stdin.read())
remote = os.path.exists(os.path.join(directory, "slimkit_bert.py"))
model = AutoModel.from_pretrained(directory, trust_remote_code=remote).eval()
tokenizer = AutoTokenizer.from_pretrained(directory)
batch = tokenizer(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
with torch.no_grad():
    hidden = model(**batch).last_hidden_state
mask = batch["attention_mask"].unsqueeze(-1).float()
pooled = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
assert not any(name.startswith("slimkit") for name in sys.modules), "slimkit was imported"
print(json.dumps({"remote": remote, "embeddings": pooled.tolist()}))
"""


def _reload_with_transformers(directory: Path, texts: list[str], home: Path) -> dict[str, Any]:
    env = {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_HOME": str(home)}
    done = subprocess.run(
        [sys.executable, "-I", "-c", _RELOAD, str(directory)],
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_a_run_holds_the_budget_and_its_model_reloads_with_transformers_alone(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, inputs: tuple[Path, Path]
) -> None:
    import onnx
    import torch
    from safetensors.torch import load_file

    run = tmp_path / "run"
    argv = _argv(inputs, run, "--min-cosine", 0.5, "--candidates", TWO, "--distill-steps", 2)
    summary = _run(capsys, argv)
    budget = AgreementBudget(0.5)
    deployed_file = Path(summary["files"]["deployed"])
    for name in (
        "summary.json",
        "report.md",
        deployed_file.name,
        "model/config.json",
        "state.json",
    ):
        assert (run / name).is_file(), name
    assert json.loads((run / "summary.json").read_text()) == summary
    chosen, candidates = summary["chosen"], summary["candidates"]
    # the most aggressive candidate (a quarter of the MACs predicted) holds 0.5: the search
    # stops there, and the result is the cheapest measured form within the budget
    assert [c["label"] for c in candidates] == ["unpruned", "L0.50-H0.50-F0.50"]
    assert summary["order"][0] == {"label": "L0.50-H0.50-F0.50", "predicted": 0.25}
    assert chosen["validation"]["mean_cosine"] >= 0.5 and summary["budget"]["within_budget"]
    within = [f for c in candidates for f in c["forms"] if _holds(budget, f)]
    assert chosen["validation"] == min(within, key=lambda f: f["relative_b32"])
    # on the tiny model the pruned graphs take a quarter to a third of the original's time
    assert summary["budget"]["met_by_pruned"] and chosen["label"] == "L0.50-H0.50-F0.50"
    assert chosen["params"] < summary["baseline"]["params"]
    assert chosen["layers"] == [{"heads": 2, "head_size": 8, "intermediate_size": 32}] * 2
    # the headline is arithmetic on the measured table
    latency, deployed = summary["latency_ms"], summary["deployed"]
    precision, _, runtime = chosen["form"].partition("-")
    assert deployed == f"student_{precision}_{'ov' if runtime == 'openvino' else 'ort'}"
    assert summary["runtime"] == (runtime or "onnxruntime")
    # the peers: the original on every installed runtime, and their int8 quantizers
    peers = {"teacher_fp32_eager", "teacher_fp32_ort", "teacher_int8_ort"}
    if importlib.util.find_spec("openvino"):
        peers.add("teacher_fp32_ov")
        assert {f["form"] for f in candidates[1]["forms"]} >= {"fp32", "int8", "fp32-openvino"}
    if importlib.util.find_spec("nncf"):
        peers.add("teacher_int8_ov")
    assert peers <= set(latency)
    for batch in ("b1", "b32"):
        peer = summary["speedup"]["best_peer"][batch]
        assert peer in peers
        assert latency[peer][batch] == min(latency[p][batch] for p in peers)
        assert summary["speedup"]["vs_best_peer"][batch] == pytest.approx(
            latency[peer][batch] / latency[deployed][batch]
        )
        assert summary["speedup"]["vs_fp32_eager"][batch] == pytest.approx(
            latency["teacher_fp32_eager"][batch] / latency[deployed][batch]
        )
    assert 0 < summary["test"]["chosen"]["mean_cosine"] <= 1.0
    assert summary["data"]["checksum"] and summary["machine"]["cpu"]["name"]
    assert "vnni" in summary["machine"]["cpu"] and summary["machine"]["threads"] == 1
    assert summary["machine"]["seq_length"] == 64  # the tiny model's limit, under 128
    assert summary["reload"]["max_abs_diff"] <= 1e-5
    assert "| **result," in (run / "report.md").read_text()
    if deployed_file.suffix == ".onnx":
        ops = {node.op_type for node in onnx.load(str(deployed_file)).graph.node}
        assert ("MatMulInteger" in ops) == (chosen["form"] == "int8")
    # transformers alone rebuilds the student: the embeddings it measured
    val = list(load_text(f"text:{inputs[1]}").val)
    student = run / "candidates/L0.50-H0.50-F0.50/val_embeddings.safetensors"
    expected = load_file(str(student))["val"]
    reloaded = _reload_with_transformers(run / "model", val, tmp_path / "hf")
    # half the heads: attention narrower than the hidden width needs slimkit_bert.py
    assert reloaded["remote"] is True and summary["reload"]["trust_remote_code"] is True
    torch.testing.assert_close(torch.tensor(reloaded["embeddings"]), expected, atol=1e-5, rtol=0)


def test_without_a_pruned_candidate_in_budget_the_unpruned_encoder_is_kept(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    inputs: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run = tmp_path / "run"
    argv = _argv(inputs, run, "--min-cosine", 0.99999, "--candidates", TWO, "--distill-steps", 1)
    summary = _run(capsys, argv)
    budget = AgreementBudget(0.99999)
    assert summary["budget"]["met_by_pruned"] is False and summary["budget"]["within_budget"]
    assert summary["chosen"]["label"] == "unpruned" and summary["chosen"]["prune"] is None
    assert summary["chosen"]["validation"]["mean_cosine"] >= 0.99999
    pruned = summary["candidates"][1:]
    assert [c["label"] for c in pruned] == ["L0.50-H0.50-F0.50", "L0.25-H0.25-F0.25"]
    assert not any(_holds(budget, f) for c in pruned for f in c["forms"])
    assert all(c["directory"] is None for c in pruned)  # missed: not a choice
    missed = run / "candidates" / "L0.50-H0.50-F0.50"  # graphs removed, trained weights kept
    assert sorted(p.name for p in missed.iterdir()) == ["checkpoint", "inputs.json"]
    assert sorted(p.name for p in (missed / "checkpoint").iterdir()) == [
        "progress.json",
        "student.safetensors",
    ]
    assert summary["chosen"]["params"] == summary["baseline"]["params"]
    report = (run / "report.md").read_text()
    assert "no pruned candidate held the budget; the unpruned encoder is kept" in report
    # the same command again is refused: the run directory is never overwritten
    assert main(argv) == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "pass --resume to continue it" in lines[0]
    # `slimkit report` rewrites the report from state.json
    (run / "report.md").unlink()
    assert main(["report", str(run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["markdown"] == str(run / "report.md")
    assert (run / "report.md").read_text() == report
    # resumed on another encoder: refused, the run holds for its own input only
    other = tiny_bert_dir(tmp_path / "other", layers=2)
    other_argv = _argv((other, inputs[1]), run, "--min-cosine", 0.99999, "--resume")
    assert main([*other_argv, "--candidates", TWO, "--distill-steps", "1"]) == 1
    assert "was started on another encoder" in capsys.readouterr().err
    # resumed with a looser budget: the search and export are redone; the first candidate,
    # whose graphs were removed when it missed, is pruned and exported again, and now holds;
    # its distillation is not redone (its trained weights were kept)
    pruned: list[str] = []
    prune = _search.prune_encoder

    def counting(encoder: Any, cfg: Any, texts: Any, **kwargs: Any) -> Any:
        pruned.append(candidate_label(cfg))
        return prune(encoder, cfg, texts, **kwargs)

    def no_training(self: Any, texts: list[str]) -> float:
        raise AssertionError("the kept distillation was redone")

    monkeypatch.setattr(_search, "prune_encoder", counting)
    monkeypatch.setattr(distill_module._Trainer, "step", no_training)
    argv[argv.index("--min-cosine") + 1] = "0.5"
    looser = _run(capsys, [*argv, "--resume"])
    assert pruned == ["L0.50-H0.50-F0.50"]
    again, before = (
        next(c for c in s["candidates"] if c["label"] == "L0.50-H0.50-F0.50")["forms"][0]
        for s in (looser, summary)
    )
    assert again["mean_cosine"] == pytest.approx(before["mean_cosine"], abs=1e-6)  # same weights
    assert looser["budget"]["met_by_pruned"] and looser["chosen"]["label"] == "L0.50-H0.50-F0.50"
    assert looser["baseline"] == summary["baseline"]  # kept


def test_a_killed_run_resumes_without_redoing_finished_candidates(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    inputs: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run = tmp_path / "run"
    argv = _argv(inputs, run, "--min-cosine", 0.99999, "--candidates", TWO, "--distill-steps", 1)
    pruned: list[str] = []
    prune = _search.prune_encoder

    def counting(encoder: Any, cfg: Any, texts: Any, **kwargs: Any) -> Any:
        pruned.append(candidate_label(cfg))
        if len(pruned) == 2 and kill:
            raise KeyboardInterrupt  # Ctrl-C in the second candidate
        return prune(encoder, cfg, texts, **kwargs)

    monkeypatch.setattr(_search, "prune_encoder", counting)
    kill = True
    assert main(argv) == 130
    assert "run the same command with --resume" in capsys.readouterr().err
    state = json.loads((run / "state.json").read_text())
    assert [e["record"]["label"] for e in state["candidates"]] == ["L0.50-H0.50-F0.50"]
    assert set(state["stages"]) == {"baseline"}
    kill, pruned[:] = False, []
    argv = [a for a in argv if a != "--quiet"]
    summary = _run(capsys, [*argv, "--resume"])
    assert pruned == ["L0.25-H0.25-F0.25"]  # the first candidate was not pruned again
    assert [c["label"] for c in summary["candidates"]] == [
        "unpruned",
        "L0.50-H0.50-F0.50",
        "L0.25-H0.25-F0.25",
    ]
    # resumed again: nothing is redone, the summary is the same
    pruned[:] = []
    assert _run(capsys, [*argv, "--resume"])["candidates"] == summary["candidates"]
    assert pruned == []


def test_a_run_killed_while_distilling_continues_from_its_checkpoint(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    inputs: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run = tmp_path / "run"
    argv = _argv(
        inputs,
        run,
        "--candidates",
        "0.5:0.5:0.5",
        "--distill-steps",
        6,
        "--distill-precision",
        "bf16",
        "--distill-batches",
        "by-length",
        "--no-quantize",
    )
    step = distill_module._Trainer.step
    taken: list[int] = []

    def killing(self: Any, texts: list[str]) -> float:
        if self.steps == 4 and kill:
            raise KeyboardInterrupt  # Ctrl-C after 4 of 6 steps
        taken.append(self.steps)
        return step(self, texts)

    monkeypatch.setattr(distill_module._Trainer, "step", killing)
    monkeypatch.setattr(_search, "CHECKPOINT_SECONDS", 1e-9)  # a checkpoint after every step
    kill = True
    assert main(argv) == 130
    progress = json.loads(
        (run / "candidates/L0.50-H0.50-F0.50/checkpoint/progress.json").read_text()
    )
    assert progress["progress"]["steps"] == 4 and not progress["progress"]["finished"]
    kill, taken[:] = False, []
    summary = _run(capsys, [*argv, "--resume"])
    assert taken == [4, 5]  # only the last two steps ran again
    record = next(c for c in summary["candidates"] if c["label"] == "L0.50-H0.50-F0.50")
    assert record["distill"]["steps"] == 6 and record["distill"]["resumed_at"] == [4]
    assert summary["config"]["distill"]["precision"] == "bf16"
    assert summary["config"]["distill"]["group_by_length"] is True
    assert not (run / "candidates/L0.50-H0.50-F0.50/checkpoint").exists()  # finished: removed


def test_backend_openvino_deploys_every_form_on_openvino(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, inputs: tuple[Path, Path]
) -> None:
    pytest.importorskip("openvino")
    from slimkit.text._openvino import OvEncoder

    run = tmp_path / "run"
    argv = _argv(inputs, run, "--min-cosine", 0.5, "--candidates", TWO, "--distill-steps", 2)
    summary = _run(capsys, [*argv, "--backend", "openvino", "--no-quantize"])
    forms = [f["form"] for c in summary["candidates"] for f in c["forms"]]
    assert forms == ["fp32-openvino", "fp32-openvino"]  # the unpruned, then the candidate
    assert summary["runtime"] == "openvino" and summary["deployed"] == "student_fp32_ov"
    assert Path(summary["files"]["deployed"]) == run / "model.onnx"
    # the peers are measured whatever the backend: they are what a user would run instead
    assert {"teacher_fp32_ort", "teacher_int8_ort", "teacher_fp32_ov"} <= set(summary["latency_ms"])
    assert "**result, fp32 OpenVINO** (model.onnx)" in (run / "report.md").read_text()
    # what ships runs on OpenVINO with the embeddings the search measured
    encoder = slimkit.models.load_hf(run / "model")
    val = list(load_text(f"text:{inputs[1]}").val)
    shipped = OvEncoder(run / "model.onnx", encoder.tokenizer, max_length=encoder.max_length)
    torch.testing.assert_close(shipped.encode(val), encoder.encode(val), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"encoder": "missing"}, "is not a directory; pass a Hugging Face model directory"),
        (["--min-cosine", "1.5"], "min_cosine must be in (0, 1) (e.g. 0.97), got 1.5"),
        ({"data": "documents"}, "no corpus manifest"),
        ({"data": "fashion-mnist"}, "is image data; with --task sentence-embedding pass sentences"),
        (["--max-drop", "1"], "--max-drop applies to image classifiers only"),
        (["--goal", "macs"], "--goal macs is not available for sentence encoders"),
        (["--backend", "torch"], "--backend torch is not available for sentence encoders"),
        pytest.param(
            ["--device", "cuda"],
            "CUDA is not available on this machine; use --device cpu or --device auto",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is here"),
        ),
        (["--candidates", "0.5:0.5"], "--candidates takes layers:heads:ffn fractions"),
        (["--limit-eval", "5"], "the top-10 overlap needs at least 11"),
    ],
)
def test_bad_input_exits_2_with_one_line_before_any_work(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    inputs: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    change: Any,
    message: str,
) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("work started before the input was checked")

    monkeypatch.setattr(slimkit.text, "compress_sentence_encoder", forbidden)
    encoder, corpus = inputs
    options: list[str] = change if isinstance(change, list) else []
    if isinstance(change, dict) and "encoder" in change:
        encoder = tmp_path / "missing"
    argv = _argv((encoder, corpus), tmp_path / "run", *options)
    if isinstance(change, dict) and "data" in change:
        data = change["data"]
        name = f"text:{corpus.parent / data}" if data == "documents" else data
        argv[argv.index("--data") + 1] = name
    code = main(argv)
    lines = capsys.readouterr().err.splitlines()
    assert code == 2, lines
    assert len(lines) == 1 and lines[0].startswith("slimkit: error: "), lines
    assert message in lines[0]
    assert not (tmp_path / "run").exists()


def test_sentence_options_without_the_task_are_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    argv = ["compress", tmp_path / "m.safetensors", "--min-cosine", 0.9, "--out", tmp_path / "r"]
    assert main([str(a) for a in argv]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert "--min-cosine applies to sentence encoders: add --task sentence-embedding" in lines[0]
