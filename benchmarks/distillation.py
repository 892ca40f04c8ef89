"""Student with and without distillation from a larger edgeseg teacher, at equal student budget.

python -m benchmarks.distillation --out runs/distillation [--teacher-checkpoint PATH]
    [--teacher-flags "..."] [edgeseg.train flags for the student ...]

Without --teacher-checkpoint the teacher is trained first (default: EfficientNet-Lite0 with its ImageNet
weights + fusion head, 500 iterations). Both students get the same flags, data, seed and budget; the
distilled one adds feature-cosine and score-KL losses (distill.train defaults). Writes OUT/distillation.md/json.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Sequence

from benchmarks.ablation import markdown, run_variant
from benchmarks.machine import cpu_info
from distill.train import DistillRun, distill_parser
from edgeseg.errors import UserError, cli_main
from edgeseg.io import write_json, write_text

DEFAULT_TEACHER = "--backbone efficientnet-lite --iters 500 --val-interval 100"


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.distillation", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/distillation")
    parser.add_argument("--teacher-checkpoint", default=None, help="a trained edgeseg checkpoint (else one is trained)")
    parser.add_argument("--teacher-flags", default=DEFAULT_TEACHER, help="edgeseg.train flags of the teacher")
    parser.add_argument("--distill-flags", default="", help="extra distill.train flags (e.g. '--kl-weight 0')")
    args, student_args = parser.parse_known_args(argv)
    if any(flag in student_args for flag in ("--out", "--teacher", "--init")):
        raise UserError("--out/--teacher/--init are set by the benchmark; pass only the student's training flags")
    out = Path(args.out)
    rows = []
    teacher = args.teacher_checkpoint
    if teacher is None:
        rows.append(run_variant("teacher", shlex.split(args.teacher_flags), [], out / "teacher"))
        teacher = str(out / "teacher" / "best.pt")
    elif not Path(teacher).is_file():
        raise UserError(f"--teacher-checkpoint {teacher} not found")
    rows.append(run_variant("student", [], student_args, out / "student"))
    rows.append(run_variant("student + distillation", ["--teacher", f"ckpt:{teacher}", *shlex.split(args.distill_flags)],
                            student_args, out / "student-distilled", distill_parser, DistillRun))
    machine = cpu_info()
    student = rows[-1]
    note = (f"Students: {student['backbone']} ({student['pretrained']}), {student['iters']} iterations × batch "
            f"{student['batch']} at {student['img_size']}², seed {student['seed']}, identical flags; the distilled one "
            f"adds `distill.train` losses against the teacher `{teacher}`. Data: embedded synthetic-scenes. "
            f"Machine: {machine['cpu']}, {machine['cores']} logical cores.")
    text = markdown(rows, note)
    write_text(out / "distillation.md", text)
    write_json(out / "distillation.json", rows)
    print(text)
    print(f"wrote {out / 'distillation.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
