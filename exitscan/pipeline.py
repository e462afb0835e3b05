"""Running a batch: every page of every input through `read_page`, in parallel.

The parent lists the inputs and their pages, hands (file, page) tasks to a pool of worker
processes, collects their typed `PageResult`s in input order, and alone writes files: the
crops as results arrive (so memory stays flat however long the batch), then results.csv,
problems.csv and the workbook results.xlsx atomically at the end. A page that fails in any
way becomes a problem row and the batch goes on; every input page ends up in results.csv or
problems.csv.
"""

from __future__ import annotations

import os
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from pathlib import Path

from exitscan import lessons, nextsteps, payload, workers
from exitscan.errors import ExitscanError, InputError, OutputError
from exitscan.export import atomic_write_bytes, crop_name, write_problems_csv, write_results_csv
from exitscan.load import LoadProblem, ScanFile, discover, load_page, page_count
from exitscan.ocr import OcrOptions, OcrUnavailable, resolve, worker_engine
from exitscan.read import PageResult, PassResult, Problem, read_page
from exitscan.sharpness import BLURRED_MM
from exitscan.workbook import write_workbook

#: Said once when pages were scanned in black and white: what the reader cannot see, it cannot flag.
BILEVEL_WARNING = (
    "{n} page{s} scanned in black and white (1-bit): a light-coloured pen (an orange or yellow felt "
    "tip) or a light pencil can vanish from such a scan, wholly or all but a few dots, and a pass "
    "with one of two marks gone looks like a clear answer. Scan in greyscale or colour to be sure."
)

#: Said once when photos were blurred (`exitscan.sharpness`): the drafts of their handwriting
#: are poor, and only a better photo mends that.
BLURRED_WARNING = (
    "{n} page{s} blurred ({where}): handwriting on {them} is too smeared for good typed drafts. "
    "Check those drafts against the pictures, or retake the photo holding the phone still (or scan "
    "on the copier)."
)


@dataclass(frozen=True)
class ProcessOptions:
    inputs: tuple[Path, ...]
    out: Path
    jobs: int = 0  # 0: all cores
    debug: Path | None = None
    progress: bool = False
    ocr: OcrOptions = field(default_factory=OcrOptions)  # next-step drafts: engine, language, timeout


@dataclass
class BatchResult:
    passes: list[PassResult] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    images: dict[int, str] = field(default_factory=dict)  # pass index -> crop path (relative)
    pages: int = 0
    files: int = 0
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)  # said once each, e.g. "Tesseract is not installed"
    blurred: list[tuple[str, int]] = field(default_factory=list)  # (source, page) named in the blur warning

    @property
    def to_review(self) -> int:
        return sum(1 for p in self.passes if p.status == "review")

    def summary(self) -> str:
        """One line: "31 pages: 28 passes read, 2 to review, 1 not a pass"."""
        parts = [f"{len(self.passes)} pass{'es' if len(self.passes) != 1 else ''} read"]
        if self.passes:
            parts.append(f"{self.to_review} to review")
        kinds: dict[str, int] = {}
        for p in self.problems:
            kinds[p.kind] = kinds.get(p.kind, 0) + 1
        words = {
            "blank": ("blank page", "blank pages"),
            "not-a-pass": ("not a pass", "not passes"),
            "unreadable": ("unreadable", "unreadable"),
            "duplicate": ("duplicate", "duplicates"),
            "unsupported": ("file not a scan", "files not scans"),
        }
        for k, n in kinds.items():
            one, many = words.get(k, (k, k))
            parts.append(f"{n} {one if n == 1 else many}")
        return f"{self.pages} page{'s' if self.pages != 1 else ''}: " + ", ".join(parts)


_crash_page = ""  # see CRASH_ENV


def _init_worker(crash_page: str = "") -> None:
    # Each worker is one core: libraries must not start threads of their own.
    global _crash_page
    os.environ["OMP_THREAD_LIMIT"] = "1"
    _crash_page = crash_page
    import cv2

    cv2.setNumThreads(1)


def _work(task: tuple[ScanFile, int, bool, OcrOptions]) -> PageResult:
    """Load and read one page; any failure becomes a problem of that page, never an exception."""
    f, index, debug, ocr = task
    page = index + 1
    start = time.perf_counter()
    if _crash_page and _crash_page == f"{f.display}:{page}":
        os._exit(70)
    try:
        loaded = load_page(f, index)
        engine, why = worker_engine(ocr)  # opened once per worker, then reused
        res = read_page(loaded.image, f.display, page, debug=debug, ocr=engine, dpi=loaded.dpi)
        if why:  # the parent found the engine, this worker could not open it: say so, once
            marked = (replace(p, ocr_error=f"unavailable: {why}") if p.next_step_written else p for p in res.passes)
            res = replace(res, passes=tuple(marked))
        return res
    except LoadProblem as e:
        return PageResult(f.display, page, (), (Problem(f.display, page, e.kind, e.message),), time.perf_counter() - start)
    except MemoryError:
        msg = f"{f.display} page {page}: too big to read in the memory available — rescan at 300 dpi"
        return PageResult(f.display, page, (), (Problem(f.display, page, "unreadable", msg),), time.perf_counter() - start)
    except Exception as e:  # noqa: BLE001 - one bad page must not stop the batch
        detail = "".join(traceback.format_exception_only(type(e), e)).strip()
        msg = f"{f.display} page {page}: could not be read because of an error in exitscan ({detail}); please report it"
        return PageResult(f.display, page, (), (Problem(f.display, page, "unreadable", msg),), time.perf_counter() - start)


def plan(inputs: tuple[Path, ...]) -> tuple[list[tuple[ScanFile, int]], list[Problem], int]:
    """(file, page index) tasks, the problems of files that can't be opened, and the file count."""
    files = discover(inputs)
    tasks: list[tuple[ScanFile, int]] = []
    problems: list[Problem] = []
    for f in files:
        try:
            n = page_count(f)
        except LoadProblem as e:
            problems.append(Problem(f.display, 0, e.kind, e.message))
            continue
        if n == 0:
            problems.append(Problem(f.display, 0, "unreadable", f"{f.display}: the file has no pages"))
        tasks.extend((f, i) for i in range(n))
    return tasks, problems, len(files)


#: Fault injection for tests: a worker given the page named here ("file.png:1") dies at once,
#: as if a native library had crashed. Read when a pool starts; nothing else uses it.
CRASH_ENV = "EXITSCAN_TEST_CRASH_PAGE"


def _crashed(task: tuple[ScanFile, int, bool, OcrOptions]) -> PageResult:
    f, index = task[0], task[1]
    msg = (
        f"{f.display} page {index + 1}: the reader crashed on this page (in a library it uses); "
        "the rest of the batch was read. Rescan the page, or please report it with the file"
    )
    return PageResult(f.display, index + 1, (), (Problem(f.display, index + 1, "unreadable", msg),), 0.0)


def _pool(jobs: int):
    # Not "fork": a parent that has used OpenCV's or pdfium's threads can leave a lock held
    # in the child, which then hangs. A fork server starts workers from a clean process.
    ctx = workers.context()
    # Workers come from the fork server, not from this process: what they must know is
    # passed explicitly (the environment they see is the server's, from when it started).
    return ProcessPoolExecutor(
        jobs,
        mp_context=ctx,
        initializer=_init_worker,
        initargs=(os.environ.get(CRASH_ENV, ""),),
        max_tasks_per_child=200,
    )


def _results(tasks: list[tuple[ScanFile, int, bool, OcrOptions]], jobs: int) -> Iterator[PageResult]:
    """Each task's result, in task order.

    A few pages per worker are in flight at a time (memory stays flat). If a worker dies
    (a native library crashing on one page), the pages that were in flight are read again
    one at a time, each in a fresh worker, so only the page that kills it is lost (and
    reported); the batch then goes on with a new pool.
    """
    if jobs <= 1 or len(tasks) <= 1:
        _init_worker()
        for t in tasks:
            yield _work(t)
        return
    window = jobs * 3
    queue = deque(tasks)
    pool = _pool(jobs)
    inflight: deque[tuple[tuple, object]] = deque()
    try:
        while queue or inflight:
            while queue and len(inflight) < window:
                t = queue.popleft()
                inflight.append((t, pool.submit(_work, t)))
            t, fut = inflight[0]
            try:
                res = fut.result()  # type: ignore[attr-defined]
            except BrokenProcessPool:
                pool.shutdown(wait=False, cancel_futures=True)
                stranded = [task for task, _ in inflight]
                inflight.clear()
                for task in stranded:
                    yield _alone(task)
                pool = _pool(jobs)
                continue
            inflight.popleft()
            yield res
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _alone(task: tuple[ScanFile, int, bool, OcrOptions]) -> PageResult:
    """Read one page in a worker of its own: its result, or a problem if it kills the worker."""
    with _pool(1) as solo:
        try:
            return solo.submit(_work, task).result()
        except BrokenProcessPool:
            return _crashed(task)


def _with_lesson_record(p: PassResult) -> PassResult:
    """Fill in the full lesson title, name and tick-box texts when this computer printed it."""
    if p.code is None:
        return p
    rec = lessons.find(p.code.lesson_key)
    if rec is None:
        return p
    code = p.code
    full_name = rec.pupils.get(code.student_id, "")
    if full_name.startswith(code.student_name.removesuffix(payload.ELLIPSIS)):
        code = replace(code, student_name=full_name)
    if rec.lesson.startswith(code.lesson.removesuffix(payload.ELLIPSIS)):
        code = replace(code, lesson=rec.lesson)
    return replace(p, code=code, tick_texts=tuple(rec.next_step_options))


def _with_match(p: PassResult) -> PassResult:
    """Offer the known next step (the lesson's options) that the OCR draft is closest to."""
    m = nextsteps.best_match(p.next_step_text, p.tick_texts) if p.next_step_text else None
    if m is None:
        return p
    return replace(p, next_step_match=m.text, next_step_match_distance=m.distance)


def _check_ocr(ocr: OcrOptions, batch: BatchResult, in_process: bool) -> OcrOptions:
    """Open the OCR engine once before the work; if it can't be had, warn once and go on without."""
    if not ocr.enabled:
        return ocr
    if not in_process:
        # Workers open their own engine: here only which one, checked without loading models
        # (RapidOCR's cost ~1.7 s of CPU and 90 MiB that the parent would only throw away).
        try:
            return resolve(ocr)
        except OcrUnavailable as e:
            batch.warnings.append(e.message)
            return replace(ocr, engine="none")
    engine, why = worker_engine(ocr)
    if engine is None:
        batch.warnings.append(why)
        return replace(ocr, engine="none")
    return ocr


def _ocr_warnings(failed: dict[str, list[str]], passes: list[PassResult], out: Path) -> list[str]:
    """One line per kind of OCR failure (however many crops it hit)."""
    if not failed:
        return []
    written = sum(1 for p in passes if p.next_step_written)
    crops = out / "crops"
    lines = []
    for kind, msgs in failed.items():
        n = len(msgs)
        what = f"{n} of {written} next step{'s' if written != 1 else ''}"
        if kind == "unavailable":
            lines.append(f"{msgs[0]} ({what} not read)")
        elif kind == "timeout":
            lines.append(f"OCR ran out of time on {what} ({msgs[0]}); their text is empty, the crops are in {crops}")
        else:
            lines.append(f"OCR failed on {what} ({msgs[0]}); their text is empty, the crops are in {crops}")
    return lines


def check_output(out: Path) -> None:
    """Refuse an output folder that can't be written, before touching a page."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / "crops").mkdir(exist_ok=True)
        probe = out / ".exitscan-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise OutputError(f"{out}: cannot write the results there ({e.strerror}); choose another folder with --out") from None


def run_batch(opts: ProcessOptions, on_page: Callable[[int, int], None] | None = None) -> BatchResult:
    """Process every page of ``opts.inputs`` and write the outputs into ``opts.out``."""
    start = time.perf_counter()
    check_output(opts.out)
    if opts.debug is not None:
        try:
            opts.debug.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutputError(f"{opts.debug}: cannot write debug images there ({e.strerror})") from None
    tasks, problems, n_files = plan(opts.inputs)
    if n_files == 0:
        raise InputError("no files found in " + ", ".join(str(p) for p in opts.inputs))
    jobs = opts.jobs or os.cpu_count() or 1
    batch = BatchResult(problems=list(problems), files=n_files, pages=len(tasks))
    ocr = _check_ocr(opts.ocr, batch, in_process=jobs <= 1 or len(tasks) <= 1)
    ocr_failed: dict[str, list[str]] = {}
    seen: dict[tuple[str, str], PassResult] = {}
    bilevel_pages = 0
    work = [(f, i, opts.debug is not None, ocr) for f, i in tasks]
    for done, res in enumerate(_results(work, jobs), start=1):
        batch.problems.extend(res.problems)
        bilevel_pages += res.bilevel and bool(res.passes)
        if res.passes and res.blur_mm is not None and res.blur_mm >= BLURRED_MM:
            batch.blurred.append((res.source, res.page))
        if res.debug_png and opts.debug is not None:
            from exitscan.export import safe_stem

            atomic_write_bytes(opts.debug / f"{safe_stem(res.source)}_p{res.page}.png", res.debug_png)
        for p in res.passes:
            if p.code is not None:
                key = p.code.identity
                if key in seen:
                    first = seen[key]
                    who = p.code.student_name or f"spare pass {p.code.serial + 1}"
                    batch.problems.append(
                        Problem(
                            p.source,
                            p.page,
                            "duplicate",
                            f"{p.source} page {p.page}: {who}'s pass for this lesson was already read "
                            f"({first.source} page {first.page}); this copy was not counted again",
                        )
                    )
                    continue
                seen[key] = p
            p = _with_match(_with_lesson_record(p))
            if p.ocr_error:
                kind, _, msg = p.ocr_error.partition(": ")
                ocr_failed.setdefault(kind, []).append(msg)
            idx = len(batch.passes)
            if p.writing_png:
                name = crop_name(p)
                atomic_write_bytes(opts.out / "crops" / name, p.writing_png)
                batch.images[idx] = f"crops/{name}"
            if p.name_png:
                atomic_write_bytes(opts.out / "crops" / crop_name(p, "name"), p.name_png)
            # Keep only the small reading in memory; the images are on disk now.
            batch.passes.append(replace(p, writing_png=b"", name_png=b""))
        if on_page is not None:
            on_page(done, len(work))
    batch.warnings.extend(_ocr_warnings(ocr_failed, batch.passes, opts.out))
    if bilevel_pages:
        batch.warnings.append(BILEVEL_WARNING.format(n=bilevel_pages, s="s were" if bilevel_pages > 1 else " was"))
    if batch.blurred:
        named = [f"{source} page {page}" for source, page in batch.blurred]
        where = ", ".join(named[:5]) + (f" and {len(named) - 5} more" if len(named) > 5 else "")
        many = len(named) > 1
        batch.warnings.append(BLURRED_WARNING.format(n=len(named), s="s were" if many else " was", where=where, them="them" if many else "it"))
    write_results_csv(opts.out / "results.csv", batch.passes, batch.images)
    write_problems_csv(opts.out / "problems.csv", batch.problems)
    _write_workbook(opts.out, batch)
    batch.seconds = time.perf_counter() - start
    return batch


def _write_workbook(out: Path, batch: BatchResult) -> None:
    """results.xlsx, written last (atomically): if it fails, the CSVs are already complete."""
    try:
        write_workbook(
            out / "results.xlsx", batch.passes, batch.problems, batch.images, out, pages=batch.pages, notes=batch.warnings
        )
    except ExitscanError:
        raise
    except Exception as e:
        detail = "".join(traceback.format_exception_only(type(e), e)).strip()
        raise ExitscanError(
            f"{out / 'results.xlsx'}: the spreadsheet could not be made because of an error in exitscan "
            f"({detail}); results.csv and problems.csv are complete; please report it"
        ) from e
