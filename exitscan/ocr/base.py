"""The OCR engine interface: a cleaned handwriting crop in, a text draft and a confidence out.

Every engine (RapidOCR, Tesseract) lives in its own module, knows its version and
how to say it is missing, and implements `OcrEngine`. Engines are opened once per worker
process (`exitscan.ocr.open_engine`) and reused for every crop that worker reads.

Failures are exceptions that carry plain words: `OcrUnavailable` (the engine or its language
data is not installed: the message holds the install line) and `OcrFailed` (one crop: the
engine crashed or ran out of time). A batch never stops for either: the pass keeps its crop
and an empty draft, and the parent says once what happened.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

#: A draft below this confidence is shown but marked as a guess ("check the crop"). Each engine
#: calibrates its scores (`calibrated`) so that drafts at or above it have <= 2% character errors.
LOW_CONFIDENCE = 0.8


def calibrated(raw: float, trusted_at: float) -> float:
    """An engine's own score (0-1) as a confidence that means the same for every engine.

    ``trusted_at``: the raw score from which the engine's drafts have <= 2% character errors
    on the scan simulator (measured per engine: benchmarks/ocr.py); it maps to
    `LOW_CONFIDENCE`, and the rest is linear on either side (0 -> 0, 1 -> 1).
    """
    s = min(1.0, max(0.0, float(raw)))
    if s >= trusted_at:
        conf = LOW_CONFIDENCE + (1.0 - LOW_CONFIDENCE) * (s - trusted_at) / max(1e-9, 1.0 - trusted_at)
    else:
        conf = LOW_CONFIDENCE * s / trusted_at
    return round(min(1.0, max(0.0, conf)), 3)


@dataclass(frozen=True)
class OcrText:
    """What an engine read in one crop."""

    text: str  # one line: the writing's lines joined by spaces; "" when nothing was read
    confidence: float  # 0-1, calibrated (`calibrated`): >= LOW_CONFIDENCE means <= 2% CER on the simulator
    seconds: float  # time spent in the engine

    @property
    def trusted(self) -> bool:
        return bool(self.text) and self.confidence >= LOW_CONFIDENCE


class OcrUnavailable(Exception):
    """The engine (or the language data asked for) is not installed; ``message`` says how to fix it."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class OcrFailed(Exception):
    """The engine failed on one crop. ``kind``: ``timeout`` or ``crashed``."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message


@runtime_checkable
class OcrEngine(Protocol):
    """One OCR engine, opened for one language set, reused for many crops."""

    name: str  # "tesseract"
    version: str  # the engine's own version, e.g. "5.3.0"

    def read(self, image: np.ndarray, lines: int = 0) -> OcrText:
        """Read ``image`` ((rows, cols) uint8, dark writing on white, ~8 px/mm).

        ``lines``: how many lines of writing it holds, when known (0: unknown). Raises
        `OcrFailed` for this crop; never returns text from another crop.
        """
        ...

    def close(self) -> None:
        """Free the engine (models, processes); safe to call twice."""
        ...


@dataclass(frozen=True)
class OcrOptions:
    """How `exitscan process` runs OCR (one validated object, built at the CLI)."""

    engine: str = "auto"  # auto | rapidocr | tesseract | none
    lang: str = "eng"  # Tesseract's language codes, "+"-joined: eng, eng+fra (RapidOCR maps them)
    timeout_s: float = 10.0  # per crop
    tesseract_cmd: str | None = None  # a particular tesseract program (uses it, not the library)

    @property
    def enabled(self) -> bool:
        return self.engine != "none"


__all__ = ["LOW_CONFIDENCE", "OcrEngine", "OcrFailed", "OcrOptions", "OcrText", "OcrUnavailable", "calibrated"]
