"""Does a model fit its data? Checked before any command starts its work.

A 10-class model measured on 3-class data "works" and reports nonsense; a 1-channel model on
RGB data fails deep inside the first stage that runs it. One forward pass on one example, and
the class count the architecture declares, catch both in a line before anything is written.
"""

from __future__ import annotations

import torch
from torch import nn

from .data import Splits
from .errors import ArtifactError, DataError, ModelError
from .models import arch_of

#: A torch error can span many lines (a traceback of the tracer, a table of shapes).
_REASON_CHARS = 200


def check_fits(model: nn.Module, splits: Splits, source: str, *, logits: bool = True) -> None:
    """Raise :class:`DataError` unless ``model`` runs on ``splits``' inputs and predicts its
    classes.

    Args:
        model: the model to check (its training mode is left as it was).
        splits: the data it will be measured on.
        source: how messages name the model, e.g. its artifact's path.
        logits: the model's 2-D outputs are class scores, so their width must be the data's
            class count (False for a model scored by a user's own metric).
    """
    declared = _declared_classes(model)
    if declared is not None and declared != splits.num_classes:
        raise _mismatch(source, declared, splits)
    example = splits.example_input(1)
    outputs = _forward(model, example, source, splits)
    width = outputs.shape[1] if isinstance(outputs, torch.Tensor) and outputs.dim() == 2 else None
    if logits and width is not None and width != splits.num_classes:
        raise _mismatch(source, width, splits)


def _declared_classes(model: nn.Module) -> int | None:
    try:
        value = arch_of(model).get("kwargs", {}).get("num_classes")
    except ModelError:  # built outside slimkit: its outputs tell
        return None
    return value if isinstance(value, int) else None


def _mismatch(source: str, classes: int, splits: Splits) -> DataError:
    return DataError(
        f"{source} predicts {classes} classes but {splits.name} has {splits.num_classes}; use "
        "data with the same classes"
    )


@torch.no_grad()
def _forward(model: nn.Module, example: torch.Tensor, source: str, splits: Splits) -> object:
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    training = model.training
    model.eval()
    try:
        return model(example.to(device))
    except ArtifactError as err:  # raised where a lazily rebuilt graph meets a damaged spec
        raise ArtifactError(f"{source}: {err}") from None
    except (RuntimeError, ValueError, TypeError, IndexError) as err:
        reason = " ".join(str(err).split())[:_REASON_CHARS]
        raise DataError(
            f"{source} does not run on {splits.name}'s inputs of shape "
            f"{list(example.shape[1:])} ({type(err).__name__}: {reason}); use data with the "
            "input channels and image size the model was trained on"
        ) from None
    finally:
        model.train(training)
