"""Careless input to the CLI, refused in one line before any work (#19 item 5): an ``--out``
that cannot be written, broken recipes, an already quantized artifact."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from slimkit import export, save
from slimkit.cli import _commands, _compress, _distill, _quantize
from slimkit.cli._main import main
from slimkit.quantize import config_from_dict, quantize
from slimkit.testing import seeded_model

#: Every command that writes an --out, with the arguments it needs besides it.
WRITERS: dict[str, Callable[[Path], list[str]]] = {
    "compress": lambda a: ["compress", str(a)],
    "prune": lambda a: ["prune", str(a), "--sparsity", "0.5"],
    "quantize": lambda a: ["quantize", str(a), "--scheme", "int8-dynamic"],
    "train": lambda a: ["train", "--model", "seed-cnn-slim"],
    "distill": lambda a: ["distill", "--teacher", str(a), "--student", "seed-cnn-slim"],
    "slim": lambda a: ["slim", str(a)],
}


@pytest.fixture
def no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading the model or the data (the first expensive step of each command) fails the
    test: every refusal here must come before it."""

    def expensive(*args: object, **kwargs: object) -> None:
        raise AssertionError("the command started its work before checking its arguments")

    monkeypatch.setattr(export, "load", expensive)
    for module in (_commands, _compress, _distill, _quantize):
        monkeypatch.setattr(module, "load_data", expensive)


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    return save(seeded_model("seed-cnn-slim"), tmp_path / "m.safetensors")


def _error(capsys: pytest.CaptureFixture[str], argv: list[str], code: int = 2) -> str:
    got = main(argv)
    lines = capsys.readouterr().err.splitlines()
    assert got == code and len(lines) == 1, (got, lines)
    assert lines[0].startswith("slimkit: error: ") and "Traceback" not in lines[0]
    return lines[0].removeprefix("slimkit: error: ")


@pytest.mark.usefixtures("no_work")
@pytest.mark.parametrize("command", WRITERS)
def test_an_out_under_a_file_is_refused_first(
    tmp_path: Path, artifact: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    # --out in a place that cannot be written was reached only after all the work was done
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a directory")
    out = blocker / "out.safetensors"
    line = _error(capsys, [*WRITERS[command](artifact), "--out", str(out)])
    assert line == (
        f"--out {out} cannot be written: {blocker} is a file, not a directory; pass an --out "
        "in a writable directory"
    )
    assert blocker.read_text() == "a file, not a directory"


@pytest.mark.usefixtures("no_work")
@pytest.mark.parametrize("command", WRITERS)
def test_an_out_of_the_wrong_kind_is_refused_first(
    tmp_path: Path, artifact: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    if command == "compress":  # a run directory: an existing file is the wrong kind
        out = tmp_path / "notes.txt"
        out.write_text("mine")
        expected = f"--out {out} is an existing file; it names the run directory to write"
    else:
        out = tmp_path / "results"
        out.mkdir()
        expected = f"--out {out} is a directory; pass a file path inside it"
    line = _error(capsys, [*WRITERS[command](artifact), "--out", str(out)])
    assert line.startswith(expected)


@pytest.fixture
def read_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory this process cannot create files in. Root ignores permission bits, so for
    root the file system's refusal is simulated where slimkit probes it."""
    place = tmp_path / "read-only"
    place.mkdir()
    place.chmod(0o555)
    if os.geteuid() == 0:
        real_open = os.open

        def refusing(path: object, *args: object, **kwargs: object) -> int:
            if Path(str(path)).parent == place:
                raise PermissionError(13, "Permission denied", str(path))
            return real_open(path, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(os, "open", refusing)
    yield place
    place.chmod(0o755)


@pytest.mark.usefixtures("no_work")
@pytest.mark.parametrize("command", WRITERS)
def test_an_out_in_a_read_only_directory_is_refused_first(
    read_only: Path, artifact: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    out = read_only / "sub" / "out"
    line = _error(capsys, [*WRITERS[command](artifact), "--out", str(out)])
    assert line == (
        f"--out {out} cannot be written: {read_only} does not accept new files (Permission "
        "denied); pass an --out in a writable directory"
    )
    assert list(read_only.iterdir()) == []


RECIPE = "model: {model}\nout: {out}\n"


@pytest.mark.usefixtures("no_work")
@pytest.mark.parametrize(
    ("body", "overrides", "message"),
    [
        (None, [], "recipe {recipe} does not exist; pass the path of a recipe file"),
        ("compress: {{trials: 2\n", [],
         "{recipe} is not valid YAML at line 4, column 1: expected ',' or '}}', but got "
         "'<stream end>'; fix its syntax"),
        ("compress:\n  trials: abc\n", [], "CompressConfig.trials must be an integer, got 'abc'"),
        ('compress:\n  max_drop: "0.5"\n', [],
         "CompressConfig.max_drop must be a number, got '0.5'"),
        ("compress:\n  sensitivity_ratios: 5\n", [],
         "CompressConfig.sensitivity_ratios must be a list of ratios in (0, 1), got 5"),
        ("compress:\n  - trials: 2\n", [],
         "{recipe}: 'compress' must be a mapping of CompressConfig fields, e.g. {{trials: 4}}, "
         "got list [{{'trials': 2}}]"),
        ("data:\n  - fashion-mnist\n", [], "{recipe}: 'data' must be a mapping of load_data"),
        ("data: {{name: fashion-mnist, limit_train: abc}}\n", [],
         "limit_train must be an integer, got 'abc'"),
        ("storage: 5\n", [], "{recipe}: 'storage' must be an Optuna storage URL, got int 5"),
        ("", ["compress=3"], "{recipe}: 'compress' must be a mapping of CompressConfig fields"),
        ("", ["compress.trials=["], "override compress.trials=[ is not valid YAML"),
    ],
)  # fmt: skip
def test_a_broken_recipe_is_one_line_naming_it(
    tmp_path: Path,
    artifact: Path,
    capsys: pytest.CaptureFixture[str],
    body: str | None,
    overrides: list[str],
    message: str,
) -> None:
    recipe = tmp_path / "recipe.yaml"
    if body is not None:
        recipe.write_text(RECIPE.format(model=artifact, out=tmp_path / "run") + body.format())
    line = _error(capsys, ["run", str(recipe), *overrides])
    assert line.startswith(message.format(recipe=recipe)), line
    assert not (tmp_path / "run").exists()


def test_a_recipe_whose_out_is_a_mapping_is_refused(
    tmp_path: Path, artifact: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `out: {a: 1}` ran a whole compress into a directory named "{'a': 1}"
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"model: {artifact}\nout: {{a: 1}}\n")
    line = _error(capsys, ["run", str(recipe)])
    assert line == f"{recipe}: 'out' must be the path of the run directory, got dict {{'a': 1}}"


@pytest.fixture
def quantized(tmp_path: Path) -> Path:
    model = quantize(seeded_model("seed-cnn-slim"), config_from_dict({"scheme": "fp16"}),
                     backend="torch", progress=False)  # fmt: skip
    return save(model, tmp_path / "q.safetensors", provenance={"parent": "runs/m.safetensors"})


@pytest.mark.usefixtures("no_work")
@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["quantize", "{q}", "--scheme", "int8-static", "--out", "{dir}/q2.safetensors"],
         "quantize"),
        (["quantize", "{q}", "--sensitivity"], "quantize --sensitivity"),
        (["prune", "{q}", "--sparsity", "0.5", "--out", "{dir}/p.safetensors"], "prune"),
        (["slim", "{q}", "--out", "{dir}/s.safetensors"], "slim"),
        (["compress", "{q}", "--out", "{dir}/run"], "compress"),
        (["distill", "--teacher", "{q}", "--student", "{q}", "--out", "{dir}/d.safetensors"],
         "distill --student"),
    ],
)  # fmt: skip
def test_an_already_quantized_input_is_refused(
    tmp_path: Path,
    quantized: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    command: str,
) -> None:
    # re-quantizing an int8 artifact failed deep inside the exporter; pruning one wrote a
    # model whose graph ignored the pruning
    line = _error(capsys, [a.format(q=quantized, dir=tmp_path) for a in argv])
    assert line == (
        f"{quantized} is already quantized (fp16); {command} works on float models: pass its "
        "float parent runs/m.safetensors instead"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q.safetensors"]
