"""The ``exitscan`` command line: a thin layer over the library.

Options are checked and turned into one typed object here; the core never sees click.
Every `ExitscanError` is mapped to its documented exit code by `main`, in one place.
"""

from __future__ import annotations

import datetime as dt
import re
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import click

from exitscan import __version__, lessons
from exitscan.errors import ExitCode, ExitscanError, InputError, NothingReadError
from exitscan.ocr import CHOICES as OCR_CHOICES
from exitscan.ocr import OcrOptions
from exitscan.roster import Lesson, check_date, load_lesson_file, load_roster
from exitscan.template import Template, available_templates, load_template


@dataclass(frozen=True)
class GenerateOptions:
    template: Template
    lesson: Lesson
    roster: Path | None
    per_page: int
    paper: str
    spares: int | None
    out: Path


def _generate_options(
    template: str | None,
    roster: Path | None,
    class_name: str | None,
    lesson: str | None,
    date: str | None,
    criteria: tuple[str, ...],
    options: tuple[str, ...],
    lesson_file: Path | None,
    per_page: int,
    paper: str,
    spares: int | None,
    out: Path,
) -> GenerateOptions:
    values: dict[str, object] = {}
    if lesson_file is not None:
        values.update(load_lesson_file(lesson_file))
    # The command line wins over the lesson file.
    given = {
        "class_name": class_name,
        "lesson": lesson,
        "date": check_date(date, "--date") if date else None,
        "criteria": tuple(" ".join(c.split()) for c in criteria if c.strip()) or None,
        "next_step_options": tuple(" ".join(o.split()) for o in options if o.strip()) or None,
        "template": template,
    }
    values.update({k: v for k, v in given.items() if v is not None})
    les = Lesson(**values)  # type: ignore[arg-type]
    if not les.date:
        les = replace(les, date=dt.date.today().isoformat())
    if not les.lesson.strip():
        raise InputError("--lesson cannot be empty")
    name = les.template or ("ticks" if les.next_step_options else "classic")
    tpl = load_template(name)
    if out.suffix.lower() != ".pdf":
        raise InputError(f"--out {out}: the passes are a PDF; give a file name ending in .pdf")
    return GenerateOptions(tpl, les, roster, per_page, paper, spares, out)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="exitscan")
def cli() -> None:
    """Print exit passes, scan them, and read them back into a spreadsheet."""


@cli.command()
@click.option("--template", "template", metavar="NAME", help=f"Pass design: {', '.join(available_templates())} (default: classic, or ticks with --next-step-option).")
@click.option("--roster", type=click.Path(path_type=Path, dir_okay=False), help="Class list CSV with columns id,name: one named pass per pupil, in roster order.")
@click.option("--class", "class_name", metavar="NAME", help="Class name printed on each pass, e.g. P3B.")
@click.option("--lesson", metavar="TEXT", help="Lesson title.")
@click.option("--date", metavar="YYYY-MM-DD", help="Lesson date (default: today).")
@click.option("--criterion", "criteria", multiple=True, metavar="TEXT", help="A success criterion (repeatable).")
@click.option("--next-step-option", "options", multiple=True, metavar="TEXT", help="A next step pupils can tick (repeatable, up to 6; ticks template).")
@click.option("--intention", "intention", metavar="TEXT", help="Learning intention.")
@click.option("--lesson-file", type=click.Path(path_type=Path, dir_okay=False), help="TOML file with the lesson's details, to reuse them; options given here win.")
@click.option("--per-page", type=click.Choice(["1", "2", "4"]), default="4", show_default=True, help="Passes per sheet.")
@click.option("--paper", type=click.Choice(["a4", "letter"], case_sensitive=False), default="a4", show_default=True)
@click.option("--spares", type=click.IntRange(min=0), default=None, help="Blank passes with a write-in name box (default: fill the last sheet; 30 with no roster).")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True, help="The PDF to write.")
def generate(template, roster, class_name, lesson, date, criteria, options, intention, lesson_file, per_page, paper, spares, out) -> None:
    """Make a PDF of exit passes to print."""
    from exitscan.render import plan_passes, write_pdf

    opts = _generate_options(template, roster, class_name, lesson, date, criteria, options, lesson_file, int(per_page), paper.lower(), spares, out)
    if intention is not None:
        opts = replace(opts, lesson=replace(opts.lesson, intention=" ".join(intention.split())))
    pupils = load_roster(opts.roster) if opts.roster else None
    passes = plan_passes(opts.template, opts.lesson, pupils, opts.spares, opts.per_page)
    layout = write_pdf(opts.out, opts.template, opts.lesson, passes, opts.paper, opts.per_page)
    les = opts.lesson
    lessons.save(
        lessons.LessonRecord(
            key=passes[0].code.lesson_key,
            template=opts.template.name,
            class_name=les.class_name,
            lesson=les.lesson,
            date=les.date,
            intention=les.intention,
            criteria=les.criteria,
            next_step_options=les.next_step_options,
            pupils={p.id: p.name for p in (pupils or [])},
        )
    )
    sheets = -(-len(passes) // len(layout.slots))
    named = sum(1 for p in passes if not p.is_spare)
    click.echo(
        f"{opts.out}: {len(passes)} passes ({named} named, {len(passes) - named} spare) "
        f"on {sheets} sheet{'s' if sheets != 1 else ''} of {opts.paper.upper() if opts.paper == 'a4' else 'Letter'}, "
        f"template {opts.template.name}"
    )


@cli.command()
@click.argument("scans", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=Path("exitscan-results"), show_default=True, help="Folder for results.csv, problems.csv and crops/.")
@click.option("--jobs", type=click.IntRange(min=0), default=0, help="Pages read in parallel (default: all cores).")
@click.option("--debug", type=click.Path(path_type=Path, file_okay=False), default=None, help="Write annotated images of each page (markers, passes, zones, readings) here.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--no-ocr", is_flag=True, help="Don't draft the next steps' text; keep their images only.")
@click.option("--ocr-engine", type=click.Choice(OCR_CHOICES), default="auto", show_default=True, help="OCR engine for the next steps' drafts (auto: the best one installed).")
@click.option("--lang", default="eng", show_default=True, metavar="LANG", help="Language(s) of the handwriting, Tesseract codes: eng, eng+fra.")
def process(scans, out, jobs, debug, quiet, no_ocr, ocr_engine, lang) -> None:
    """Read scanned passes (folders or files: PDF, TIFF, JPEG, PNG, BMP)."""
    if jobs != 1:
        from exitscan import workers

        workers.start_early()  # its ~0.5 s of imports overlap with the next line's
    from exitscan.pipeline import ProcessOptions, run_batch

    for s in scans:
        if not s.exists():
            raise InputError(f"{s}: no such file or folder")
    ocr = _ocr_options(no_ocr, ocr_engine, lang)
    opts = ProcessOptions(tuple(scans), out, jobs, debug, progress=not quiet and sys.stderr.isatty(), ocr=ocr)
    bar = _progress_bar() if opts.progress else None
    batch = run_batch(opts, bar)
    if bar is not None:
        click.echo("", err=True)
    for w in batch.warnings:
        click.echo(f"exitscan: warning: {w}", err=True)
    click.echo(batch.summary())
    click.echo(f"Results: {opts.out / 'results.xlsx'}")
    if not batch.passes and batch.pages:
        raise NothingReadError(f"no pass could be read in {batch.pages} page{'s' if batch.pages != 1 else ''}; see {opts.out / 'problems.csv'}")


def _ocr_options(no_ocr: bool, engine: str, lang: str) -> OcrOptions:
    """``--no-ocr``, ``--ocr-engine``, ``--lang`` as one checked object."""
    lang = lang.strip()
    if not re.fullmatch(r"[A-Za-z_]+(\+[A-Za-z_]+)*", lang):
        raise InputError(f"--lang {lang!r}: give language codes such as eng, or eng+fra for two")
    return OcrOptions(engine="none" if no_ocr else engine, lang=lang)


def _progress_bar():
    start = time.monotonic()

    def show(done: int, total: int) -> None:
        width = 30
        filled = int(width * done / max(total, 1))
        rate = done / max(time.monotonic() - start, 1e-6)
        click.echo(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} pages, {rate:.1f}/s", err=True, nl=False)

    return show


def main() -> None:
    """Console entry point: run the CLI and map errors to documented exit codes."""
    try:
        cli.main(standalone_mode=False)
    except ExitscanError as e:
        click.echo(f"exitscan: {e.message}", err=True)
        sys.exit(int(e.exit_code))
    except click.exceptions.Abort:
        click.echo("exitscan: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(int(ExitCode.USAGE) if e.exit_code == 2 else e.exit_code)
    except KeyboardInterrupt:
        click.echo("exitscan: interrupted", err=True)
        sys.exit(130)
    sys.exit(0)
