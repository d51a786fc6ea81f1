"""``--help`` explains every option and ends with examples that parse (issue #20)."""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

import pytest

from slimkit.cli import build_parser
from slimkit.cli._compress import COMPRESS_COMMANDS
from slimkit.cli._main import main
from slimkit.models import model_names

ROOT = Path(__file__).resolve().parents[2]
#: Options left out of ``--help`` on purpose (test and benchmark knobs).
HIDDEN = {"--limit-train", "--limit-eval"}


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("slimkit has no subcommands")


COMMANDS = _commands()
#: compress, worker, run and report define their options in _compress.py, rewritten elsewhere.
OWN_OPTIONS = sorted(set(COMMANDS) - set(COMPRESS_COMMANDS))


def _examples(parser: argparse.ArgumentParser) -> list[str]:
    """The command lines of the ``examples:`` block an epilog ends with."""
    epilog = parser.epilog or ""
    assert "examples:\n" in epilog, f"{parser.prog} --help has no examples"
    block = epilog.split("examples:\n", 1)[1]
    return [line.strip() for line in block.splitlines() if line.strip()]


def _parse(example: str) -> argparse.Namespace:
    words = shlex.split(example)
    assert words[0] == "slimkit", example
    return build_parser().parse_args(words[1:])


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_ends_its_help_with_examples_that_parse(command: str) -> None:
    parser = COMMANDS[command]
    examples = _examples(parser)
    assert examples
    assert parser.format_help().rstrip().endswith(examples[-1])
    for example in examples:
        assert _parse(example).command == command, example


def test_the_overview_examples_parse() -> None:
    examples = _examples(build_parser())
    assert {_parse(example).command for example in examples} >= {"models", "prune", "compress"}


def test_examples_name_files_that_exist() -> None:
    """Examples run as printed from a checkout: the artifacts and recipes they read are there."""
    parsers = [build_parser(), *COMMANDS.values()]
    words = [w for p in parsers for example in _examples(p) for w in shlex.split(example)]
    inputs = {w for w in words if w.startswith(("references/", "recipes/"))}
    assert inputs, "no example reads a reference artifact"
    assert [w for w in sorted(inputs) if not (ROOT / w).is_file()] == []


def _help_text(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    return argparse.HelpFormatter(parser.prog)._expand_help(action)


@pytest.mark.parametrize("command", OWN_OPTIONS)
def test_every_option_says_what_it_does_its_default_and_its_choices(command: str) -> None:
    parser = COMMANDS[command]
    for action in parser._actions:
        name = "/".join(action.option_strings) or action.dest
        if isinstance(action, argparse._HelpAction) or name in HIDDEN:
            continue
        assert action.help and action.help is not argparse.SUPPRESS, f"{command} {name}: no help"
        text = _help_text(parser, action)
        if action.default not in (None, False):
            assert "default" in text, f"{command} {name}: help does not state its default"
        for choice in action.choices or ():
            assert str(choice) in text, f"{command} {name}: help does not list {choice!r}"


@pytest.mark.parametrize(
    ("command", "option", "expected"),
    [
        ("train", "--epochs", "passes over the training data (default 12"),
        ("train", "--lr", "(default 0.002"),
        ("prune", "--finetune-epochs", "(default 2)"),
        ("prune", "--agp-steps", "(default 4)"),
        ("prune", "--max-trials", "(default 6)"),
        ("quantize", "--calib-batches", "(default 8)"),
        ("quantize", "--qat-lr", "(default 0.0001)"),
        ("compress", "--recover-epochs", "(default 2)"),
        ("compress", "--recover-lr", "(default 0.001)"),
        ("compress", "--qat-epochs", "(default 1)"),
        ("distill", "--epochs", "(default 10)"),
        ("slim", "--distill-epochs", "(default 2)"),
        ("slim", "--width", "(default 0.5)"),
    ],
)
def test_defaults_in_help_are_the_defaults_used(command: str, option: str, expected: str) -> None:
    parser = COMMANDS[command]
    action = next(a for a in parser._actions if option in a.option_strings)
    assert expected in _help_text(parser, action)


def test_models_lists_every_model_source(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--json"]) == 0
    names = json.loads(capsys.readouterr().out)
    sources = ["torchvision:<name>", "timm:<name>", "package.module:function"]
    assert names == [*model_names(), *sources]
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == names
    assert "pip install 'slimkit[timm]'" in lines[names.index("timm:<name>")]
