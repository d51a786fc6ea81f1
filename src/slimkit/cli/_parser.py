"""The CLI's argument parser (help that keeps its examples' layout, usage errors as JSON when
the command line asks for ``--json``) and what its help texts read."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from ..models import model_names
from ..models._registry import TORCHVISION_PREFIX
from ..models._sources import TIMM_PREFIX
from ._output import EXIT_USAGE, print_error_json

#: Model sources beyond the registry, as ``--model`` takes them, and what each is.
MODEL_SOURCES = {
    f"{TORCHVISION_PREFIX}<name>": "a torchvision classification model, e.g. "
    f"{TORCHVISION_PREFIX}mobilenet_v3_small",
    f"{TIMM_PREFIX}<name>": "a timm model (pip install 'slimkit[timm]')",
    "package.module:function": "a factory of yours; loading its artifacts needs --trust-model-code",
}


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Option help wrapped as usual; descriptions and epilogs (the examples) kept as written."""


def wants_json(argv: Sequence[str]) -> bool:
    """Whether a command line asks for ``--json`` (or an abbreviation argparse accepts)."""
    for arg in argv:
        if arg == "--":  # what follows is positional
            return False
        if len(arg) > 2 and "--json".startswith(arg):
            return True
    return False


class SlimkitParser(argparse.ArgumentParser):
    """An :class:`argparse.ArgumentParser` whose usage errors, under ``--json``, also print
    ``{"error": {...}}`` on stdout. Subcommand parsers are of this class too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)
        self._json = False

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        # A subcommand's parser is called with the arguments after the command's name, where
        # its own --json is; the top-level parser sees the whole command line.
        argv = list(sys.argv[1:] if args is None else args)
        self._json = wants_json(argv)
        return super().parse_known_args(argv, namespace)

    def error(self, message: str) -> NoReturn:
        """Exit 2 with argparse's usage message on stderr, and the JSON error under --json."""
        if self._json:
            print_error_json("UsageError", message, EXIT_USAGE)
        super().error(message)


def field_default(config: type, name: str) -> Any:
    """The default of field ``name`` of dataclass ``config``, so that help and defaults are
    read from the config the command builds rather than restated."""
    for field in dataclasses.fields(config):
        if field.name != name:
            continue
        if field.default is not dataclasses.MISSING:
            return field.default
        if field.default_factory is not dataclasses.MISSING:
            return field.default_factory()
        break
    raise AttributeError(f"{config.__name__} has no field {name!r} with a default")


def model_sources() -> str:
    """Every way to name a model to build, for help texts."""
    names = [*model_names(), *MODEL_SOURCES]
    return f"{', '.join(names[:-1])} or {names[-1]}"


def model_arg(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` as ``--model-arg`` takes it: VALUE read as JSON when it parses (``4``,
    ``true``, ``[2, 2]``), else kept as the string (``gelu``)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def add_model_args(parser: argparse.ArgumentParser, default: str = "none") -> None:
    """``--model-arg KEY=VALUE`` (repeatable): ``create_model``'s ``model_args``."""
    parser.add_argument(
        "--model-arg",
        dest="model_args",
        action="append",
        type=model_arg,
        default=None,
        metavar="KEY=VALUE",
        help="an architecture argument for the constructor of a model built by name "
        "(timm.create_model, torchvision's get_model, your factory); VALUE is read as JSON "
        "when it parses, else as a string; repeat for more, e.g. --model-arg patch_size=4 "
        f"--model-arg depth=6 (default: {default})",
    )


def model_args_of(args: argparse.Namespace) -> dict[str, Any]:
    """The ``--model-arg`` pairs given, as a mapping (a key given twice: the last one)."""
    return dict(args.model_args or [])


def refuse_model_args(model_args: dict[str, Any], flag: str) -> None:
    """``--model-arg`` shapes a model built by name; an artifact already records its own.

    Raises:
        ValueError: if any were given.
    """
    if model_args:
        raise ValueError(
            f"--model-arg applies to a model built by name, but {flag} names an artifact, "
            "which records its own model arguments; drop --model-arg"
        )
