"""A run directory is tied to its input and data, refuses what does not fit before it exists,
names a damaged state file, and never makes a worker run code it did not choose itself."""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import re
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from slimkit import DataError, ModelError, SlimkitError, create_model, save
from slimkit.cli import _compress as cli_compress
from slimkit.cli._main import main
from slimkit.models import _sources as model_sources
from slimkit.search import CompressConfig, compress
from slimkit.search import _compress as search_compress
from slimkit.search._layout import LAYOUT
from slimkit.testing import random_splits, seeded_model

HOOKS = textwrap.dedent(
    """
    from pathlib import Path

    from torch import nn

    from slimkit.testing import random_splits

    Path(__file__).with_name("imported").write_text("this module's code ran")


    def ten():
        return random_splits()


    def three():
        return random_splits(num_classes=3)


    def rgb():
        return random_splits(input_shape=(3, 28, 28))


    def score(model, dataset):
        return 0.0


    def make_net(num_classes=10, in_channels=1):
        return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * 28 * 28, num_classes))
    """
)
CFG = CompressConfig(goal="macs", quantize=False, trials=1)
LIMITS = ["--limit-train", "64", "--limit-eval", "32", "--device", "cpu"]


class Reached(Exception):
    """The run got past every check to its first stage."""


@pytest.fixture
def reached(monkeypatch: pytest.MonkeyPatch) -> None:
    def baseline(*args: object, **kwargs: object) -> None:
        raise Reached

    monkeypatch.setattr(search_compress, "_baseline", baseline)


@pytest.fixture
def interrupted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C as the first stage starts: the CLI exits 130 once every check has passed."""

    def baseline(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(search_compress, "_baseline", baseline)


@pytest.fixture
def hooks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A user module (a new one per test) that leaves ``imported`` beside it when it runs."""
    name = "hooks_" + re.sub(r"\W", "_", tmp_path.name)
    code = tmp_path / "code"
    code.mkdir()
    (code / f"{name}.py").write_text(HOOKS)
    monkeypatch.syspath_prepend(str(code))
    yield name
    sys.modules.pop(name, None)


def _ran(tmp_path: Path) -> bool:
    return (tmp_path / "code" / "imported").exists()


def _cli(capsys: pytest.CaptureFixture[str], argv: list[object]) -> tuple[int, list[str]]:
    code = main([str(arg) for arg in argv])
    return code, capsys.readouterr().err.splitlines()


def _error(capsys: pytest.CaptureFixture[str], argv: list[object], code: int = 1) -> str:
    got, lines = _cli(capsys, argv)
    assert got == code and len(lines) == 1, (got, lines)
    assert lines[0].startswith("slimkit: error: ") and "Traceback" not in lines[0]
    return lines[0]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- item 2: a run directory is tied to its input -------------------------------------------------


@pytest.mark.usefixtures("interrupted")
def test_another_input_or_data_is_refused_with_or_without_resume(
    tmp_path: Path, hooks: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # `compress other.safetensors --out RUN --resume` printed the old run's summary, or
    # searched the new model against the old baseline
    a = save(seeded_model("seed-cnn-slim", seed=0), tmp_path / "a.safetensors")
    b = save(seeded_model("seed-cnn-slim", seed=1), tmp_path / "b.safetensors")
    run = tmp_path / "run"
    data = ["--data", f"{hooks}:ten", *LIMITS]
    assert _cli(capsys, ["compress", a, "--out", run, *data])[0] == 130
    state = json.loads((run / "state.json").read_text())
    assert state["input"] == {
        "sha256": _sha(a),
        "data": {"name": f"{hooks}:ten", "limit_train": 64, "limit_eval": 32},
        "artifact": str(a),
    }
    before = (run / "state.json").read_bytes()

    for resume in (["--resume"], []):
        line = _error(capsys, ["compress", b, "--out", run, *data, *resume])
        assert f"{run} was started on {a} (sha256 {_sha(a)[:12]})" in line
        assert f"not on {b} (sha256 {_sha(b)[:12]})" in line
        assert "pass another --out for a new run, or the same input to continue this one" in line
    other_data = ["--data", f"{hooks}:ten", "--limit-train", "48", "--limit-eval", "32"]
    line = _error(capsys, ["compress", a, "--out", run, *other_data, "--resume"])
    assert "limit_train=64" in line and "limit_train=48" in line
    assert (run / "state.json").read_bytes() == before  # refused before anything was written

    # The same input (a copy of it, elsewhere) continues the run.
    copied = tmp_path / "copy.safetensors"
    copied.write_bytes(a.read_bytes())
    assert _cli(capsys, ["compress", copied, "--out", run, *data, "--resume"])[0] == 130


@pytest.mark.usefixtures("reached")
def test_a_model_given_in_memory_is_tied_by_its_tensors(tmp_path: Path) -> None:
    splits, run = random_splits(), tmp_path / "run"
    model = seeded_model("seed-cnn-slim", seed=0)
    with pytest.raises(Reached):
        compress(model, splits, CFG, run, log=None)
    with pytest.raises(SlimkitError, match="was started on a model given in memory"):
        compress(seeded_model("seed-cnn-slim", seed=1), splits, CFG, run, resume=True, log=None)
    with pytest.raises(Reached):
        compress(copy.deepcopy(model), splits, CFG, run, resume=True, log=None)


# -- item 4: model and data must fit, before the run directory exists -----------------------------


@pytest.mark.usefixtures("interrupted")
@pytest.mark.parametrize(
    ("hook", "message"),
    [
        ("three", "predicts 10 classes but random has 3; use data with the same classes"),
        ("rgb", "does not run on random's inputs of shape [3, 28, 28]"),
    ],
)
def test_compress_refuses_data_the_model_does_not_fit(
    tmp_path: Path, hooks: str, capsys: pytest.CaptureFixture[str], hook: str, message: str
) -> None:
    # a 10-class model on 3-class data compressed "successfully"; a 1-channel model on RGB
    # data gave a traceback and left a run directory that blocked a plain rerun
    artifact = save(seeded_model("seed-cnn-slim"), tmp_path / "m.safetensors")
    run = tmp_path / "run"
    line = _error(capsys, ["compress", artifact, "--out", run, "--data", f"{hooks}:{hook}"])
    assert f"{artifact} {message}" in line
    assert not run.exists()
    # A plain rerun with data that fits starts.
    fits = ["--data", f"{hooks}:ten", *LIMITS]
    assert _cli(capsys, ["compress", artifact, "--out", run, *fits])[0] == 130


def test_compress_api_checks_the_fit_first(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="the model does not run on random's inputs"):
        compress(seeded_model("seed-cnn-slim"), random_splits(input_shape=(3, 28, 28)), CFG,
                 tmp_path / "run", log=None)  # fmt: skip
    assert not (tmp_path / "run").exists()


# -- item 9: a damaged state file is exit 1, naming it --------------------------------------------


@pytest.mark.usefixtures("interrupted")
@pytest.mark.parametrize(
    ("content", "problem"), [("{not json", "Expecting property name"), ("[]", "not a run state")]
)
def test_a_corrupt_state_file_is_an_error_naming_it(
    tmp_path: Path, hooks: str, capsys: pytest.CaptureFixture[str], content: str, problem: str
) -> None:
    artifact = save(seeded_model("seed-cnn-slim"), tmp_path / "m.safetensors")
    run = tmp_path / "run"
    run.mkdir()
    state = run / "state.json"
    state.write_text(content)
    data = ["--data", f"{hooks}:ten", *LIMITS]
    for argv in (
        ["compress", artifact, "--out", run, *data, "--resume"],
        ["compress", artifact, "--out", run, *data],
        ["worker", run],
        ["report", run],
    ):
        line = _error(capsys, argv)
        assert f"{state} is corrupted" in line and problem in line, line
        assert "restore it, or start a new run with another --out" in line
    assert state.read_text() == content


# -- item 10: a worker runs only code its own command line names ----------------------------------


def _shared_run(tmp_path: Path, data: str, **compress: object) -> Path:
    run = tmp_path / "shared"
    run.mkdir()
    config = {
        "compress": CompressConfig(**compress).to_dict(),
        "data": {"name": data},
        "storage": None,
    }
    state = {"layout": LAYOUT, "config": config, "stages": {}}
    (run / "state.json").write_text(json.dumps(state))
    return run


@pytest.fixture
def impatient(monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers give up at once on a run that has not reached its search stage."""
    worker = functools.partial(search_compress.run_worker, wait_s=0.0, poll_s=0.0)
    monkeypatch.setattr(cli_compress, "run_worker", worker)


@pytest.mark.usefixtures("impatient")
@pytest.mark.parametrize("setting", ["data", "metric"])
def test_a_worker_refuses_code_the_run_directory_names(
    tmp_path: Path, hooks: str, capsys: pytest.CaptureFixture[str], setting: str
) -> None:
    # anyone who could write a shared run directory made every worker import their function
    name = f"{hooks}:ten" if setting == "data" else f"{hooks}:score"
    if setting == "data":
        run = _shared_run(tmp_path, name)
    else:
        run = _shared_run(tmp_path, "fashion-mnist", metric=name, lower_is_better=True)
    line = _error(capsys, ["worker", run, "--trust-model-code"])
    assert f"{run / 'state.json'} names the {setting} {name!r}" in line
    assert f"pass --{setting} {name} if you trust it, or --trust-run-code" in line
    assert not _ran(tmp_path)

    # Named on the worker's own command line, or trusted: the worker goes on (and here gives
    # up waiting for the search stage).
    for allow in ([f"--{setting}", name], ["--trust-run-code"]):
        line = _error(capsys, ["worker", run, *allow, *LIMITS])
        assert "did not reach its search stage in time" in line
    assert _ran(tmp_path) == (setting == "data")  # the metric is imported when trials start


def test_a_worker_refuses_a_model_factory_the_run_directory_names(
    tmp_path: Path, hooks: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    factory = f"{hooks}:make_net"
    artifact = save(create_model(factory), tmp_path / "baseline.safetensors")
    monkeypatch.setattr(model_sources, "_TRUSTED", set())  # a new process: nothing imported
    monkeypatch.setattr(model_sources, "_TRUST_ALL", False)
    run = _shared_run(tmp_path, f"{hooks}:ten")
    state = json.loads((run / "state.json").read_text())
    state["stages"] = {
        "baseline": {"seconds": 0, "output": {"artifact": str(artifact)}},
        "plan": {"seconds": 0, "output": {}},
        "recovery": {"seconds": 0, "output": {"method": "ce"}},
    }
    (run / "state.json").write_text(json.dumps(state))
    line = _error(capsys, ["worker", run, "--data", f"{hooks}:ten", *LIMITS])
    assert f"the artifact's model comes from {factory!r}" in line
    assert "--trust-model-code" in line
    with pytest.raises(ModelError):  # the API refuses it too, unless trusted
        search_compress.run_worker(run, allowed_code=[f"{hooks}:ten"], log=None, wait_s=0)
