"""`pipe colorize`: colour sketches with trained checkpoints, never over an input or an earlier output.

Before anything is written (after the checkpoints load, so a bad one is named first), the outputs are
planned: an output folder that is the sketch (or hint) folder, an output that would replace an input
file, two sketches that would write the same file, and (without --overwrite) outputs that already
exist are refused in one line. Hint folders are matched by name and
counted; a sketch that cannot be coloured is skipped, and the summary names each with its reason.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from pipeline.commands.app import app
from pipeline.console import console
from pipeline.errors import PipeError

WEIGHTS_HELP = (
    "Which of a checkpoint's generators: ema (the moving average of the weights), raw (the trained weights), or auto: "
    "the EMA once it has warmed up (step >= 1/(1 - EMA decay): 1000 steps at the default 0.999), raw before, "
    "when the EMA still leans on the untrained start (flat grey)."
)
HINTS_HELP = (
    "RGBA hint PNG of the sketch's size (opaque where a colour is given), a folder of <sketch name>.png hints, or histogram-guess: "
    "hints guessed from a colour histogram (Fu et al.; --reference, or the dataset's). (default: none)"
)


@app.command()
def colorize(
    sketches: Annotated[Path, typer.Argument(help="A sketch (PNG/JPEG, black lines on white) or a folder of them; any size.")],
    draft: Annotated[Path, typer.Option(help="Checkpoint of a trained draft stage (ROOT/runs/NAME/checkpoints/last.pt).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the coloured images (<sketch name>.png, the sketch's size); not the sketch folder.")],
    refine: Annotated[Optional[Path], typer.Option(help="Checkpoint of a refinement stage, fed the draft's output. (default: draft only)", show_default=False)] = None,
    hints: Annotated[Optional[str], typer.Option(help=HINTS_HELP, show_default=False)] = None,
    reference: Annotated[Optional[Path], typer.Option(help="With --hints histogram-guess: guess from this image's colours. (default: the dataset histogram shards/_histogram.npy of the draft checkpoint's ROOT)", show_default=False)] = None,
    seed: Annotated[int, typer.Option(help="With --hints histogram-guess: seed of the guesses (with each sketch's name).")] = 0,
    weights: Annotated[str, typer.Option(help=WEIGHTS_HELP)] = "auto",
    device: Annotated[str, typer.Option(help="auto (CUDA when present), cpu, cuda or cuda:N.")] = "auto",
    batch_size: Annotated[int, typer.Option(min=1, help="Sketches per batch.")] = 8,
    overwrite: Annotated[bool, typer.Option(help="Replace coloured images already in --out (input files are never replaced).")] = False,
) -> None:
    """Colour sketches with trained checkpoints: scaled and padded in, cropped and resized back out.

    A sketch that does not decode, or whose hint file is unusable (no alpha, another size than the
    sketch), is skipped and named with the reason; the exit status is non-zero only when none could be coloured.
    """
    from pipeline.eval.hints import HISTOGRAM_GUESS, guess_histogram, hintless_note
    from train.colorize import colorize as run_colorize
    from train.colorize import sketches_in
    from train.device import resolve_device
    from train.inference import load_stage

    if reference is not None and hints != HISTOGRAM_GUESS:
        raise PipeError(f"--reference goes with --hints {HISTOGRAM_GUESS}")
    try:
        files = sketches_in(sketches)
    except FileNotFoundError as exc:
        raise PipeError(str(exc)) from None
    hint_path = _hint_path(hints, HISTOGRAM_GUESS)
    try:
        chosen = resolve_device(device)
        models = [load_stage(draft, "draft", chosen, weights)] + ([load_stage(refine, "refine", chosen, weights)] if refine is not None else [])
    except (FileNotFoundError, ValueError) as exc:
        raise PipeError(str(exc)) from None
    check_outputs(sketches, files, out, hint_path, reference, overwrite)  # a bad checkpoint is named first, then the outputs
    try:
        ignored = hintless_note(models)
        if hints is not None and ignored:  # the hints are not even read: a hint-free model goes on without them
            console.print(f"[yellow]warning:[/] --hints ignored: {escape(ignored)}", soft_wrap=True)
            hints, hint_path = None, None
        guess = None
        if hints == HISTOGRAM_GUESS:
            # ROOT/runs/NAME/checkpoints/last.pt: the dataset whose histogram `pipe shard` wrote.
            root = draft.resolve().parents[3] if draft.resolve().parent.name == "checkpoints" else draft.resolve().parent
            guess = (guess_histogram(root, reference)[0], seed)
        coverage = hint_coverage(files, hint_path) if hint_path is not None else None
        result = run_colorize(files, out, models[0], models[1] if refine is not None else None, hint_path, chosen, batch_size, guess=guess)
    except (FileNotFoundError, ValueError) as exc:
        raise PipeError(str(exc)) from None
    used = ", ".join(f"{model.name} step {model.step} ({model.weights} weights)" for model in models)
    _print_summary(result, len(files), out, used, coverage)


def _hint_path(hints: str | None, guess_name: str) -> Path | None:
    """--hints as a file or folder (None for none or the histogram guess); one that is not there is refused."""
    if hints is None or hints == guess_name:
        return None
    path = Path(hints)
    if not path.exists():
        raise PipeError(f"--hints {hints}: no such file or folder (give an RGBA hint PNG, a folder of <sketch name>.png hints, or {guess_name})")
    return path


def check_outputs(given: Path, files: list[Path], out: Path, hints: Path | None, reference: Path | None, overwrite: bool) -> None:
    """Refuse, in one line and before anything is written, outputs that would replace an input or
    each other, and (without `overwrite`) outputs that already exist."""
    from train.colorize import hint_for, output_path

    folder = out.resolve()
    for role, path, what in (("sketch", given, "sketches"), ("hint", hints, "hint files")):
        if path is not None and path.is_dir() and path.resolve() == folder:
            raise PipeError(f"--out {out} is the {role} folder: the coloured images would replace or mix with your {what}; give another --out folder")
    targets: dict[Path, list[Path]] = defaultdict(list)
    for file in files:
        targets[output_path(out, file).resolve()].append(file)
    inputs = {p.resolve(): p for p in (*files, *(hint_for(f, hints) for f in files), reference) if p is not None}
    for target in targets:
        if target in inputs:
            raise PipeError(f"--out {out} would replace your input {inputs[target]} with its coloured image: give another --out folder")
    for target, sources in targets.items():
        if len(sources) > 1:
            names = " and ".join(p.name for p in sources)
            raise PipeError(f"{names} would both be written to {out / target.name}: rename one, or colour them into separate --out folders")
    existing = sorted(target for target in targets if target.exists())
    if existing and not overwrite:
        raise PipeError(f"{len(existing)} of {len(targets)} coloured images already exist in {out} (first: {existing[0].name}): "
                        "pass --overwrite to replace them, or give another --out folder")


def hint_coverage(files: list[Path], hints: Path) -> str:
    """"hints: N of M sketches had a hint file"; a hint folder that matches none of the sketches is refused."""
    from train.colorize import hint_for

    matched = sum(hint_for(file, hints) is not None for file in files)
    if matched == 0:
        raise PipeError(f"--hints {hints}: no hint file matches a sketch: a hint is named after its sketch "
                        f"(for {files[0].name}: {hints / (files[0].stem + '.png')})")
    where = f" ({hints.name}, given for every sketch)" if hints.is_file() else f" in {hints}"
    return f"hints: {matched} of {len(files)} sketch{'es' if len(files) != 1 else ''} had a hint file{where}"


def _print_summary(result, total: int, out: Path, used: str, coverage: str | None) -> None:
    """What was coloured (and how many had hints) and, one line each, what was skipped and why; an
    error when nothing was coloured."""
    if not result.written and total == 1:
        path, why = result.skipped[0]
        raise PipeError(f"could not colour {path}: {why}")
    if result.skipped:
        console.print(f"[yellow]skipped {len(result.skipped)} of {total}:[/]", soft_wrap=True)
        for path, why in result.skipped:
            console.print(f"  {escape(str(path))}: {escape(why)}", soft_wrap=True, highlight=False)
    if not result.written:
        raise PipeError(f"none of the {total} sketches could be coloured (each skipped above with its reason)")
    console.print(f"coloured {len(result.written)} of {total} sketch{'es' if total != 1 else ''} into {escape(str(out))} with {escape(used)}",
                  soft_wrap=True, highlight=False)
    if coverage:
        console.print(escape(coverage), soft_wrap=True, highlight=False)
