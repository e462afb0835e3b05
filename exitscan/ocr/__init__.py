"""OCR of handwriting crops: engines behind one interface, opened once per process.

``open_engine(OcrOptions(engine="auto", lang="eng"))`` gives an `OcrEngine` (or raises
`OcrUnavailable` with the install line); ``engine.read(crop)`` gives an `OcrText` (or raises
`OcrFailed` for that crop). `worker_engine` keeps one engine per worker process, so models
load once, and remembers why there is none.

Engines, best first (``auto`` takes the first one installed): rapidocr (`exitscan.ocr.rapid`,
the optional ``ocr`` extra), tesseract (`exitscan.ocr.tesseract`, Debian's tesseract-ocr).
"""

from __future__ import annotations

import atexit
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from exitscan.ocr.base import (
    LOW_CONFIDENCE,
    OcrEngine,
    OcrFailed,
    OcrOptions,
    OcrText,
    OcrUnavailable,
    calibrated,
)

if TYPE_CHECKING:
    from exitscan.handwriting import WritingCrop


def _rapidocr(opts: OcrOptions) -> OcrEngine:
    from exitscan.ocr.rapid import RapidOcrEngine

    return RapidOcrEngine(opts.lang, opts.timeout_s)


def _tesseract(opts: OcrOptions) -> OcrEngine:
    from exitscan.ocr.tesseract import TesseractEngine

    return TesseractEngine(opts.lang, opts.timeout_s, opts.tesseract_cmd)


def _probe_rapidocr(opts: OcrOptions) -> None:
    from exitscan.ocr.rapid import probe

    probe(opts.lang)


#: Engines that can say whether they would open without opening (loading models is slow).
PROBES: dict[str, Callable[[OcrOptions], None]] = {"rapidocr": _probe_rapidocr}


#: Engine name -> opener, best first: RapidOCR reads the simulator's handwriting with about a
#: quarter of Tesseract's character errors (benchmarks/ocr.py; the README has the table).
ENGINES: dict[str, Callable[[OcrOptions], OcrEngine]] = {"rapidocr": _rapidocr, "tesseract": _tesseract}
#: What ``--ocr-engine`` accepts.
CHOICES: tuple[str, ...] = ("auto", *ENGINES, "none")


def open_engine(opts: OcrOptions) -> OcrEngine:
    """The engine ``opts`` asks for, ready to read; `OcrUnavailable` if it can't be had."""
    if opts.engine == "none":
        raise OcrUnavailable("OCR is off")
    if opts.engine != "auto":
        try:
            opener = ENGINES[opts.engine]
        except KeyError:
            raise OcrUnavailable(f"unknown OCR engine {opts.engine!r}; choose one of: {', '.join(CHOICES)}") from None
        return opener(opts)
    problems: list[str] = []
    for opener in ENGINES.values():
        try:
            return opener(opts)
        except OcrUnavailable as e:
            problems.append(e.message)
    raise OcrUnavailable(problems[0] if len(problems) == 1 else " / ".join(problems))


def resolve(opts: OcrOptions) -> OcrOptions:
    """``opts`` naming the engine `open_engine` would give (``auto`` resolved), checked without
    loading its models where the engine can (`PROBES`), else opened and closed again.

    The batch's parent uses it so that every worker opens the same engine, and the parent
    holds no models. Raises `OcrUnavailable` as `open_engine` does.
    """
    if opts.engine == "none":
        raise OcrUnavailable("OCR is off")
    if opts.engine != "auto" and opts.engine not in ENGINES:
        raise OcrUnavailable(f"unknown OCR engine {opts.engine!r}; choose one of: {', '.join(CHOICES)}")
    names = list(ENGINES) if opts.engine == "auto" else [opts.engine]
    problems: list[str] = []
    for name in names:
        chosen = replace(opts, engine=name)
        try:
            if name in PROBES:
                PROBES[name](chosen)
            else:
                ENGINES[name](chosen).close()
        except OcrUnavailable as e:
            problems.append(e.message)
            continue
        return chosen
    raise OcrUnavailable(problems[0] if len(problems) == 1 else " / ".join(problems))


_opened: dict[OcrOptions, OcrEngine | OcrUnavailable] = {}


def worker_engine(opts: OcrOptions) -> tuple[OcrEngine | None, str]:
    """This process's engine for ``opts`` (opened on first use), or (None, why not)."""
    if not opts.enabled:
        return None, ""
    got = _opened.get(opts)
    if got is None:
        try:
            got = open_engine(opts)
        except OcrUnavailable as e:
            got = e
        _opened[opts] = got
    if isinstance(got, OcrUnavailable):
        return None, got.message
    return got, ""


@dataclass(frozen=True)
class Draft:
    """The OCR draft of one handwriting crop, or why there is none."""

    text: str = ""
    confidence: float | None = None  # None: no engine read this crop
    seconds: float = 0.0
    engine: str = ""  # "tesseract 5.3.0"
    error: str = ""  # "timeout: ...", "crashed: ...", "unavailable: ..." (for the parent to report once)


def draft(crop: WritingCrop, engine: OcrEngine | None, unavailable: str = "") -> Draft:
    """Read ``crop`` with ``engine``. Nothing written: an empty draft. Never raises for a crop."""
    if not crop.written:
        return Draft()
    if engine is None:
        return Draft(error=f"unavailable: {unavailable}" if unavailable else "")
    name = f"{engine.name} {engine.version}"
    try:
        got = engine.read(crop.for_ocr(), crop.lines)
    except OcrFailed as e:
        return Draft(engine=name, error=f"{e.kind}: {e.message}")
    return Draft(got.text, got.confidence, round(got.seconds, 4), name)


@atexit.register
def close_all() -> None:
    """Close every engine this process opened (frees Tesseract's model cleanly)."""
    for got in _opened.values():
        if not isinstance(got, OcrUnavailable):
            with contextlib.suppress(Exception):  # closing at exit must never raise
                got.close()
    _opened.clear()


__all__ = [
    "CHOICES",
    "ENGINES",
    "LOW_CONFIDENCE",
    "Draft",
    "OcrEngine",
    "OcrFailed",
    "OcrOptions",
    "OcrText",
    "OcrUnavailable",
    "calibrated",
    "close_all",
    "draft",
    "open_engine",
    "resolve",
    "worker_engine",
]
