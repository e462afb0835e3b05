"""Writing results: results.csv, problems.csv and the handwriting crops.

Every file is written atomically (a temporary file in the same folder, then a rename), so
a failed run leaves the previous results as they were. Text that came from a roster or a
scan never becomes a spreadsheet formula: cells starting with ``= + - @`` (or a tab or a
carriage return) get a leading apostrophe, as OWASP recommends for CSV.
"""

from __future__ import annotations

import csv
import io
import os
import re
import tempfile
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path

from exitscan.errors import OutputError
from exitscan.read import PassResult, Problem

RESULTS_COLUMNS = [
    "source",
    "page",
    "student_id",
    "student_name",
    "class",
    "lesson",
    "date",
    "template",
    "rating",
    "confidence",
    "status",
    "reason",
    "next_step_text",
    "next_step_image",
    "next_step_match",
    "ticks",
    # Added after the first release, so at the end: how sure the OCR draft is (0-1; empty when
    # no engine read it; below exitscan.ocr.LOW_CONFIDENCE it is a guess to check against the
    # crop) and how far the draft is from next_step_match (0 = the same words).
    "next_step_confidence",
    "next_step_match_distance",
]
PROBLEM_COLUMNS = ["source", "page", "kind", "message"]

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> str:
    """A value as CSV text that no spreadsheet will run as a formula."""
    s = "" if value is None else str(value)
    if s.startswith(_FORMULA_START):
        return "'" + s
    return s


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and a rename."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    except OSError as e:
        raise OutputError(f"{path.parent}: cannot write there ({e.strerror})") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot write it ({e.strerror})") from None


def _csv_bytes(header: Sequence[str], rows: Iterable[Sequence[object]]) -> bytes:
    buf = io.StringIO(newline="")
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(header)
    for r in rows:
        w.writerow([safe_cell(v) for v in r])
    # UTF-8 with a byte-order mark: Excel then shows Siobhán, not SiobhÃ¡n.
    return buf.getvalue().encode("utf-8-sig")


_UNSAFE = re.compile(r"[^\w.-]+", re.UNICODE)


def safe_stem(*parts: str, limit: int = 90) -> str:
    """A file-name stem from free text (pupil names, file names): no path tricks, no clashes.

    Letters of any script are kept (Siobhán stays readable), everything else becomes ``_``;
    leading dots are dropped so nothing can be hidden or climb out of the folder.
    """
    text = "_".join(p for p in parts if p)
    text = unicodedata.normalize("NFC", text)
    text = _UNSAFE.sub("_", text).strip("._")
    text = re.sub(r"_+", "_", text)
    return (text[:limit].rstrip("._") or "pass")


def crop_name(r: PassResult, kind: str = "next-step") -> str:
    who = r.code.student_name if r.code and r.code.student_name else ("spare" if r.code else "unknown")
    sid = r.code.student_id if r.code else ""
    src = safe_stem(r.source, limit=40)
    return f"{safe_stem(who, sid, limit=50)}_{kind}_{src}_p{r.page}-{r.position}.png"


def ticks_text(r: PassResult) -> str:
    options = r.tick_texts
    out = []
    for j in r.ticks:
        if options and j < len(options):
            out.append(options[j])
        else:
            out.append(f"option {j + 1}")
    return "; ".join(out)


def result_row(r: PassResult, image: str, text: str | None = None, match: str | None = None) -> list[object]:
    """One results.csv row (without rating_1...); ``text``/``match`` override the pass's own."""
    c = r.code
    conf = r.next_step_confidence
    dist = r.next_step_match_distance
    return [
        r.source,
        r.page,
        c.student_id if c else "",
        c.student_name if c else "",
        c.class_name if c else "",
        c.lesson if c else "",
        c.date if c else "",
        r.template,
        r.rating,
        f"{r.confidence:.2f}",
        r.status,
        r.reason,
        r.next_step_text if text is None else text,
        image,
        r.next_step_match if match is None else match,
        ticks_text(r),
        "" if conf is None else f"{conf:.2f}",
        "" if dist is None else f"{dist:.2f}",
    ]


def write_results_csv(path: Path, results: Sequence[PassResult], images: dict[int, str]) -> None:
    """results.csv: one row per pass; per-criterion templates add rating_1, rating_2, ..."""
    n_crit = max((len(r.row_ratings) for r in results), default=0)
    header = RESULTS_COLUMNS + [f"rating_{i + 1}" for i in range(n_crit)]
    rows = []
    for i, r in enumerate(results):
        row = result_row(r, images.get(i, ""))
        row += list(r.row_ratings) + [""] * (n_crit - len(r.row_ratings))
        rows.append(row)
    atomic_write_bytes(path, _csv_bytes(header, rows))


def write_problems_csv(path: Path, problems: Sequence[Problem]) -> None:
    rows = [[p.source, p.page if p.page else "", p.kind, p.message] for p in problems]
    atomic_write_bytes(path, _csv_bytes(PROBLEM_COLUMNS, rows))
