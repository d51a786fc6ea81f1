"""Two processes share one Optuna study in PostgreSQL: every trial completes, none is lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import slimkit
from slimkit.testing import fashion_mnist_slice, seeded_model

pytestmark = pytest.mark.distributed
LIMITS = ["--limit-train", "1024", "--limit-eval", "512"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def test_compress_and_a_worker_share_a_postgres_study(postgres_url: str, tmp_path: Path) -> None:
    import optuna

    splits = fashion_mnist_slice(limit_train=1024, limit_eval=512)
    model = seeded_model("seed-cnn-slim")
    slimkit.train(model, splits, slimkit.TrainConfig(epochs=2, lr=3e-3), progress=False)
    artifact = slimkit.save(model, tmp_path / "model.safetensors")
    run_dir = tmp_path / "run"
    main = subprocess.Popen(
        [
            sys.executable, "-m", "slimkit", "compress", str(artifact), "--out", str(run_dir),
            "--goal", "macs", "--max-drop", "5", "--trials", "6", "--recover", "ce",
            "--recover-epochs", "1", "--no-quantize", "--threads", "1", "--device", "cpu",
            "--storage", postgres_url, "--json", *LIMITS,
        ],
        env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    worker = subprocess.Popen(
        [sys.executable, "-m", "slimkit", "worker", str(run_dir), "--storage", postgres_url,
         "--device", "cpu", "--json"],
        env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    main_out, main_err = main.communicate(timeout=900)
    worker_out, worker_err = worker.communicate(timeout=900)
    assert main.returncode == 0, main_err
    assert worker.returncode == 0, worker_err

    study = optuna.load_study(study_name="compress", storage=postgres_url)
    states = [t.state for t in study.trials]
    assert all(s == optuna.trial.TrialState.COMPLETE for s in states), states
    assert len(states) >= 6
    owners = {t.user_attrs["owner"].split(":")[1] for t in study.trials}
    assert len(owners) == 2, "both processes ran trials"
    assert json.loads(worker_out)["trials_completed"] >= 1
    recorded = json.loads((run_dir / "trials.json").read_text())
    assert sorted(t["number"] for t in recorded) == sorted(t.number for t in study.trials)
    summary = json.loads(main_out)
    assert summary["result"]["macs"] < summary["baseline"]["macs"]
