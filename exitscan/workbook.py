"""The workbook a teacher opens: ``results.xlsx``.

Built from the batch's readings after results.csv and problems.csv, with XlsxWriter. Sheets,
in the order a teacher needs them:

- **Next lesson** — per lesson, the pupils in groups: look at these first (the reading needs a
  person), support group (red), check-in (orange), extension (green), and the pupils on the
  class list with no pass; each with their handwritten next step.
- **Results** — one row per pass, sorted by pupil name: the face as a word on its colour, the
  handwriting crop beside the computer's draft, rows to check highlighted.
- **Review** — the passes to check, in the order of the scanned stack, with the reason.
- **Summary** — counts per lesson (and per criterion), a chart, the most ticked next steps.
- **Problems** — problems.csv as a sheet.

Every cell that holds text from a roster, a lesson record or a scan is written as a string,
never through XlsxWriter's guessing ``write``; one that starts with ``= + - @`` also gets the
cell's "quote prefix", so it stays text even when the teacher edits it. The crops are
embedded as cleaned-up, downscaled copies (the files in ``crops/`` stay the record). The file
is built in memory and written atomically: a failed run leaves the previous workbook as it was.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np
import xlsxwriter
from xlsxwriter.worksheet import Worksheet

from exitscan import lessons
from exitscan.export import atomic_write_bytes, crop_name
from exitscan.payload import PassCode
from exitscan.read import CROP_PX_PER_MM, PassResult, Problem

#: Sheet names, in tab order.
SHEETS = ("Next lesson", "Results", "Review", "Summary", "Problems")

#: What each rating says, as a word a teacher reads without a legend (and in black and white).
RATING_WORDS = {
    "green": "Green: I did it",
    "orange": "Orange: Almost",
    "red": "Red: Not yet",
    "none": "Nothing marked",
    "multiple": "More than one face",
}
#: Cell fill and text colour per rating: light fills, dark text, readable when printed grey.
RATING_COLOURS = {
    "green": ("#C6EFCE", "#006100"),
    "orange": ("#FCD5B4", "#7A3A00"),
    "red": ("#FFC7CE", "#9C0006"),
    "none": ("#E7E6E6", "#3A3A3A"),
    "multiple": ("#E7E6E6", "#3A3A3A"),
}
REVIEW_FILL = "#FFF2CC"  # a row a person should look at
CHECK_FILL = "#FFD966"  # the "Check" cell itself, and the "look at these first" group
PROBLEM_WORDS = {
    "unreadable": "Could not be read",
    "blank": "Blank page",
    "not-a-pass": "Not an exit pass",
    "duplicate": "Scanned twice",
    "unsupported": "Not a scan",
}

#: Handwriting is stored at this resolution (sharp when zoomed or printed) ...
STORED_PX_PER_MM = 6.0
#: ... and shown at this one: a 120 mm writing line is ~420 screen pixels wide.
SHOWN_PX_PER_MM = 3.5
#: Longest crop shown, in millimetres (a longer one is scaled down to fit).
MAX_SHOWN_MM = (130.0, 30.0)
#: Cells that a spreadsheet would read as a formula if typed in.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PX_TO_PT = 0.75  # row heights are in points; images are placed in 96-dpi pixels


# ----------------------------------------------------------------------------- the data


@dataclass(frozen=True)
class Shown:
    """A crop prepared for the workbook: PNG bytes and the size to show it at (pixels)."""

    png: bytes
    width: int  # stored pixels
    height: int
    scale: float  # shown / stored

    @property
    def shown_height(self) -> int:
        return round(self.height * self.scale)

    @property
    def shown_width(self) -> int:
        return round(self.width * self.scale)


@dataclass
class _Pass:
    index: int  # in the batch: the order of the scanned stack
    r: PassResult
    name: str  # as shown
    known: bool  # a named pupil (not a spare, not an unreadable code)
    writing: Shown | None
    written_name: Shown | None  # the write-in name (spares, unreadable codes)
    draft: str
    match: str
    lesson: str = ""  # the lesson's title as shown

    @property
    def review(self) -> bool:
        return self.r.status == "review"

    @property
    def draft_shown(self) -> str:
        """The draft, or why there is none when nothing was written (the picture stays)."""
        return self.draft or ("" if self.r.next_step_written else "(nothing written)")


@dataclass
class _Lesson:
    key: str | None  # None: the passes whose code could not be read
    title: str
    class_name: str
    date: str
    record: lessons.LessonRecord | None
    passes: list[_Pass] = field(default_factory=list)

    @property
    def heading(self) -> str:
        parts = [self.title or "Lesson not known (pass code unreadable)"]
        if self.class_name:
            parts.append(self.class_name)
        if self.date:
            parts.append(_nice_date(self.date))
        return " · ".join(parts)

    @property
    def missing(self) -> list[tuple[str, str]]:
        """Roster pupils (id, name) with no pass in this batch, when the roster is known."""
        if self.record is None:
            return []
        seen = {p.r.code.student_id for p in self.passes if p.r.code is not None}
        out = [(i, n) for i, n in self.record.pupils.items() if i not in seen]
        return sorted(out, key=lambda x: name_key(x[1]))

    @property
    def n_criteria(self) -> int:
        return max((len(p.r.row_ratings) for p in self.passes), default=0)

    def criterion(self, i: int) -> str:
        if self.record is not None and i < len(self.record.criteria):
            return f"{i + 1}. {self.record.criteria[i]}"
        return f"Criterion {i + 1}"


_FOLD = str.maketrans({"ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "đ": "d", "Đ": "D", "ß": "ss",
                       "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "ı": "i", "þ": "th", "Þ": "Th"})


def name_key(name: str) -> str:
    """Sort key for names in any script: Łukasz by L, Élodie by E, case ignored."""
    s = unicodedata.normalize("NFKD", name.translate(_FOLD))
    return "".join(c for c in s if not unicodedata.combining(c)).casefold()


def _nice_date(iso: str) -> str:
    try:
        return dt.date.fromisoformat(iso).strftime("%a %-d %b %Y")
    except ValueError:
        return iso


def _who(r: PassResult) -> tuple[str, bool]:
    if r.code is None:
        return "Unknown pupil (pass code unreadable)", False
    if r.code.is_spare:
        return f"Spare pass {r.code.serial + 1}: name to confirm", False
    return r.code.student_name or r.code.student_id, True


def _ticked(r: PassResult) -> list[str]:
    return [r.tick_texts[j] if j < len(r.tick_texts) else f"option {j + 1}" for j in r.ticks]


def _draft(r: PassResult) -> str:
    """The OCR draft of the next step, marked when the engine was unsure of it."""
    text = " ".join(r.next_step_text.split())
    if text and not r.next_step_trusted:
        text += " (unsure)"
    return text


# ----------------------------------------------------------------------------- images


def _clean(gray: np.ndarray) -> np.ndarray:
    """Paper to white, ink kept: divide by the paper's own brightness (shadows, grey scans).

    ``gray``: (rows, cols) uint8. The paper level is a max filter on a quarter-size copy,
    wider than any pen stroke, so strokes do not lift it.
    """
    h, w = gray.shape
    small = cv2.resize(gray, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA)
    # A closing 4.5 mm wide (at the crops' CROP_PX_PER_MM) lifts every stroke but follows a shadow's edge.
    k = max(3, round(4.5 * CROP_PX_PER_MM / 4)) | 1
    paper = cv2.morphologyEx(small, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    paper = cv2.blur(paper, (5, 5))
    paper = cv2.resize(paper, (w, h), interpolation=cv2.INTER_LINEAR)
    flat = gray.astype(np.float32) * (255.0 / np.maximum(paper.astype(np.float32), 32.0))
    return flat.clip(0, 255).astype(np.uint8)


# Levels: near-paper becomes white, mid-greys darken (light pencil stays readable); 16 grey
# steps keep strokes smooth and make the PNG small (a noisy grey page costs 5x more).
_LEVELS = np.clip((np.arange(256, dtype=np.float32) - 30.0) / (225.0 - 30.0), 0, 1) ** 1.8 * 255
_LEVELS = (np.round(_LEVELS / 17.0) * 17.0).astype(np.uint8)


def shown_image(path: Path) -> Shown | None:
    """A crop file made ready to embed; None when it is missing or not an image."""
    try:
        data = np.fromfile(path, np.uint8)
    except OSError:
        return None
    gray = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if data.size else None
    if gray is None or gray.size == 0:
        return None
    h, w = gray.shape
    mm_w, mm_h = w / CROP_PX_PER_MM, h / CROP_PX_PER_MM
    fit = min(1.0, MAX_SHOWN_MM[0] / mm_w, MAX_SHOWN_MM[1] / mm_h)
    sw = max(1, round(mm_w * fit * STORED_PX_PER_MM))
    sh = max(1, round(mm_h * fit * STORED_PX_PER_MM))
    img = cv2.LUT(_clean(gray), _LEVELS)
    img = cv2.resize(img, (sw, sh), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 6])
    if not ok:
        return None
    return Shown(buf.tobytes(), sw, sh, SHOWN_PX_PER_MM / STORED_PX_PER_MM)


# ----------------------------------------------------------------------------- formats


class _Formats:
    """Cell formats made once per distinct set of properties (a workbook's style table is small)."""

    BASE: ClassVar[dict[str, object]] = {"font_name": "Arial", "font_size": 10, "valign": "top"}

    def __init__(self, wb: xlsxwriter.Workbook):
        self.wb = wb
        self._cache: dict[tuple, object] = {}

    def __call__(self, **props: object):
        props = {k: v for k, v in props.items() if v is not None}
        key = tuple(sorted(props.items()))
        if key not in self._cache:
            self._cache[key] = self.wb.add_format({**self.BASE, **props})
        return self._cache[key]

    def rating(self, rating: str, **props: object):
        fill, font = RATING_COLOURS.get(rating, RATING_COLOURS["none"])
        return self(bg_color=fill, font_color=font, bold=True, border=1, border_color="#BFBFBF", **props)


def _text(ws: Worksheet, row: int, col: int, value: object, fmts: _Formats, **props: object) -> None:
    """Write text as text: never a formula, a number or a link, now or when edited."""
    s = "" if value is None else str(value)
    if s.startswith(_FORMULA_START):
        props = {**props, "quote_prefix": True}
    ws.write_string(row, col, s, fmts(**props))


def _banner(ws: Worksheet, row: int, last: int, value: str, fmts: _Formats, **props: object) -> None:
    """Text across columns 0..last of a row (merged, so a fill spans the whole row)."""
    ws.merge_range(row, 0, row, last, "", fmts(**props))
    _text(ws, row, 0, value, fmts, **props)


def _image(ws: Worksheet, row: int, col: int, shown: Shown | None, what: str, fmts: _Formats, **props: object) -> None:
    if shown is None:
        _text(ws, row, col, "(no image)", fmts, font_color="#7F7F7F", **props)
        return
    ws.write_blank(row, col, None, fmts(**props))
    _place(ws, row, col, shown, what)


def _place(ws: Worksheet, row: int, col: int, shown: Shown, what: str, y_offset: int = 3) -> None:
    ws.insert_image(
        row,
        col,
        "crop.png",
        {
            "image_data": io.BytesIO(shown.png),
            "x_scale": shown.scale,
            "y_scale": shown.scale,
            "x_offset": 3,
            "y_offset": y_offset,
            "object_position": 1,  # moves and hides with its row (sorting, filtering)
            "description": what,
        },
    )


def _lines(cells: Sequence[tuple[str, float]]) -> int:
    """How many lines the tallest of these wrapped (text, column width) cells takes."""
    most = 1
    for text, width in cells:
        per = max(1, int(width) - 1)
        most = max(most, sum(max(1, -(-len(line) // per)) for line in text.split("\n")))
    return most


def _fit_row(ws: Worksheet, row: int, *shown: Shown | None, lines: int = 1) -> None:
    """Make a row with images tall enough for them and for ``lines`` lines of text.

    Set explicitly: LibreOffice does not grow a row for wrapped text when it opens an .xlsx.
    """
    px = max([s.shown_height for s in shown if s is not None] + [0])
    if px or lines > 1:
        ws.set_row(row, max(px * _PX_TO_PT + 6, 13 * lines + 4))


def _width(values: Sequence[str], lo: int, hi: int) -> int:
    longest = max((max((len(line) for line in v.split("\n")), default=0) for v in values), default=0)
    return max(lo, min(hi, longest + 2))


def _image_col_width(items: Sequence[Shown | None]) -> float:
    px = max([s.shown_width for s in items if s is not None] + [120])
    return (px + 8) / 7.0  # column width units are ~7 pixels of Arial 10


# ----------------------------------------------------------------------------- sheets


@dataclass(frozen=True)
class _Col:
    header: str
    width: float
    note: str = ""


def _header(ws: Worksheet, row: int, cols: Sequence[_Col], fmts: _Formats) -> None:
    for c, col in enumerate(cols):
        _text(ws, row, c, col.header, fmts, bold=True, bg_color="#D9E1F2", border=1, border_color="#8EA9DB", text_wrap=True)
        ws.set_column(c, c, col.width)
        if col.note:
            ws.write_comment(row, c, col.note, {"x_scale": 2, "y_scale": 1.2})
    ws.set_row(row, 30)


class _Cells:
    """One row written left to right; remembers its wrapped text, to size the row."""

    def __init__(self, ws: Worksheet, row: int, fmts: _Formats, cols: Sequence[_Col], base: dict):
        self.ws, self.row, self.fmts, self.cols, self.base = ws, row, fmts, cols, base
        self.c = 0
        self.wrapped: list[tuple[str, float]] = []

    def text(self, value: object, **props: object) -> None:
        s = "" if value is None else str(value)
        _text(self.ws, self.row, self.c, s, self.fmts, **{**self.base, **props})
        self.wrapped.append((s, self.cols[self.c].width))
        self.c += 1

    def rating(self, rating: str) -> None:
        word = RATING_WORDS.get(rating, rating)
        self.ws.write_string(self.row, self.c, word, self.fmts.rating(rating, text_wrap=True))
        self.c += 1

    def number(self, value: float, **props: object) -> None:
        self.ws.write_number(self.row, self.c, value, self.fmts(**{**self.base, **props}))
        self.c += 1

    def date(self, iso: str) -> None:
        _date(self.ws, self.row, self.c, iso, self.fmts, self.base)
        self.c += 1

    def image(self, shown: Shown | None, what: str) -> None:
        _image(self.ws, self.row, self.c, shown, what, self.fmts, **self.base)
        self.c += 1

    def blank(self) -> None:
        self.ws.write_blank(self.row, self.c, None, self.fmts(**self.base))
        self.c += 1


def _results_sheet(ws: Worksheet, items: list[_Pass], fmts: _Formats) -> None:
    has_draft = any(p.draft for p in items)
    has_match = any(p.match for p in items)
    has_ticks = any(p.r.tick_texts or p.r.ticks or p.r.template == "ticks" for p in items)
    n_crit = max((len(p.r.row_ratings) for p in items), default=0)
    # With several lessons, the lesson goes beside the name (a pupil has a row per lesson).
    many = len({p.lesson for p in items}) > 1
    lesson_cols = [_Col("Lesson", _width([p.lesson for p in items], 12, 30)), _Col("Date", 15)]
    cols = [
        _Col("Pupil", _width([p.name for p in items], 16, 34)),
        *(lesson_cols if many else []),
        _Col("Face circled", 19),
        _Col("Check?", 8, "Check: the computer was not sure of this pass. The reason is in the next column."),
        _Col("Why to check", _width([p.r.reason for p in items], 14, 40)),
        _Col("Next step (as written)", _image_col_width([p.writing for p in items])),
    ]
    if has_draft:
        cols.append(_Col("Next step (typed by the computer: a draft)", 34, "Computers misread children's handwriting: the picture is what the pupil wrote."))
    if has_match:
        cols.append(_Col("Closest suggested next step", 28))
    if has_ticks:
        cols.append(_Col("Next steps ticked", 30))
    cols += [_Col(f"Criterion {i + 1}", 17) for i in range(n_crit)]
    cols += [
        *([] if many else lesson_cols),
        _Col("Class", 8),
        _Col("Sure (%)", 8, "How sure the computer is of the face it read."),
        _Col("Pupil id", 10),
        _Col("Scan file", _width([p.r.source for p in items], 10, 30)),
        _Col("Page", 6),
    ]
    _header(ws, 0, cols, fmts)
    ws.freeze_panes(1, 1)
    for row, p in enumerate(items, start=1):
        r, code = p.r, p.r.code
        fill = {"bg_color": REVIEW_FILL} if p.review else {}
        w = _Cells(ws, row, fmts, cols, {"text_wrap": True, "border": 1, "border_color": "#D9D9D9", **fill})
        w.text(p.name, bold=not p.known or None)
        if many:
            w.text(p.lesson)
            w.date(code.date if code else "")
        w.rating(r.rating)
        if p.review:
            w.text("Check", bold=True, bg_color=CHECK_FILL)
        else:
            w.text("OK", font_color="#7F7F7F")
        w.text(r.reason)
        w.image(p.writing, f"Next step written by {p.name}")
        if has_draft:
            w.text(p.draft_shown, font_color=None if p.draft else "#7F7F7F")
        if has_match:
            w.text(p.match)
        if has_ticks:
            w.text("\n".join(_ticked(r)))
        for i in range(n_crit):
            if i < len(r.row_ratings):
                w.rating(r.row_ratings[i])
            else:
                w.blank()
        if not many:
            w.text(p.lesson)
            w.date(code.date if code else "")
        w.text(code.class_name if code else "")
        w.number(float(r.confidence), num_format="0%")
        w.text(code.student_id if code else "")
        w.text(r.source)
        w.number(r.page)
        _fit_row(ws, row, p.writing, lines=_lines(w.wrapped))
    ws.autofilter(0, 0, max(1, len(items)), len(cols) - 1)
    if not items:
        _text(ws, 1, 0, "No pass was read in this batch: see the Problems sheet.", fmts, italic=True)


def _date(ws: Worksheet, row: int, col: int, iso: str, fmts: _Formats, base: dict) -> None:
    try:
        d = dt.datetime.fromisoformat(iso) if iso else None
    except ValueError:
        d = None
    if d is None:
        _text(ws, row, col, iso, fmts, **base)
    else:
        ws.write_datetime(row, col, d, fmts(num_format="ddd d mmm yyyy", align="left", **base))


_GROUPS = (
    # key, heading, what it means, fill
    ("review", "Look at these first", "the computer was not sure: check the pass (Review sheet), then place the pupil", CHECK_FILL),
    ("red", "Support group: Not yet (red)", "need support", RATING_COLOURS["red"][0]),
    ("orange", "Check in: Almost (orange)", "need a little help", RATING_COLOURS["orange"][0]),
    ("green", "Extension: I did it (green)", "ready for more", RATING_COLOURS["green"][0]),
    ("missing", "No pass", "on the class list, but no pass was scanned (absent? pass lost?)", "#D9D9D9"),
)


def _group_of(p: _Pass) -> str:
    if p.review or p.r.rating not in ("green", "orange", "red"):
        return "review"
    return p.r.rating


def _note(p: _Pass, lesson: _Lesson) -> str:
    """What the teacher should know beside the face: why to check, criteria not yet met."""
    parts = []
    if p.review and p.r.reason:
        parts.append("Check: " + p.r.reason)
    for word, rating in (("Not yet", "red"), ("Almost", "orange")):
        crit = [lesson.criterion(i) for i, x in enumerate(p.r.row_ratings) if x == rating]
        if crit:
            parts.append(f"{word}: " + "; ".join(crit))
    return "\n".join(parts)


def _next_lesson_sheet(ws: Worksheet, groups: list[_Lesson], fmts: _Formats, overview: str) -> None:
    all_passes = [p for les in groups for p in les.passes]
    has_draft = any(p.draft for p in all_passes)
    has_ticks = any(p.r.template == "ticks" or p.r.ticks for p in all_passes)
    cols = [
        _Col("Pupil", _width([p.name for p in all_passes], 18, 34)),
        _Col("Face circled", 19),
        _Col("Next step (as written)", _image_col_width([p.writing for p in all_passes])),
    ]
    if has_draft:
        cols.append(_Col("Next step (typed by the computer: a draft)", 32))
    if has_ticks:
        cols.append(_Col("Next steps ticked", 28))
    cols.append(_Col("Note", 50))
    last = len(cols) - 1
    ws.hide_gridlines(2)
    _banner(ws, 0, last, "Next lesson: who needs what", fmts, bold=True, font_size=14, valign="vcenter")
    ws.set_row(0, 24)
    _banner(ws, 1, last, overview, fmts, text_wrap=True)
    ws.set_row(1, 30 + 30 * overview.count("\n"))  # a note may wrap onto a second line
    _header(ws, 2, cols, fmts)
    ws.freeze_panes(3, 0)
    row = 3
    if not groups:
        _text(ws, row, 0, "No pass was read in this batch: see the Problems sheet.", fmts, italic=True)
    for les in groups:
        row += 1
        _banner(ws, row, last, les.heading, fmts, bold=True, font_size=13, bottom=2)
        ws.set_row(row, 20)
        row += 1
        _banner(ws, row, last, _lesson_counts(les), fmts, italic=True, font_color="#404040")
        row += 1
        members: dict[str, list] = {g[0]: [] for g in _GROUPS}
        for p in les.passes:
            members[_group_of(p)].append(p)
        members["missing"] = les.missing
        for key, title, meaning, fill in _GROUPS:
            people = members[key]
            if key == "missing" and les.record is None:
                continue  # no class list known: we cannot say who is missing
            if key == "missing" and not les.record.pupils:  # type: ignore[union-attr]
                continue
            n = len(people)
            head = f"{title}: {n} pupil{'' if n == 1 else 's'}, {meaning}" if n else f"{title}: nobody"
            _banner(ws, row, last, head, fmts, bold=True, bg_color=fill, top=1, bottom=1)
            ws.set_row(row, 18)
            row += 1
            if not people:
                continue
            for person in people:
                if key == "missing":
                    _text(ws, row, 0, person[1], fmts, text_wrap=True)
                    note = "No pass scanned."
                    if any(not p.known for p in les.passes):
                        note += " A spare or unreadable pass to check may be theirs."
                    _text(ws, row, last, note, fmts, text_wrap=True, font_color="#404040")
                    row += 1
                    continue
                p: _Pass = person
                c = 0
                _text(ws, row, c, p.name, fmts, text_wrap=True, bold=not p.known or None)
                c += 1
                word = RATING_WORDS.get(p.r.rating, p.r.rating) + (" (to check)" if p.review else "")
                ws.write_string(row, c, word, fmts.rating(p.r.rating, text_wrap=True))
                c += 1
                _image(ws, row, c, p.writing, f"Next step written by {p.name}", fmts)
                c += 1
                if has_draft:
                    _text(ws, row, c, p.draft_shown, fmts, text_wrap=True, font_color=None if p.draft else "#7F7F7F")
                    c += 1
                if has_ticks:
                    _text(ws, row, c, "\n".join(_ticked(p.r)), fmts, text_wrap=True)
                    c += 1
                note = _note(p, les)
                _text(ws, row, c, note, fmts, text_wrap=True, font_color="#404040")
                texts = [(p.name, cols[0].width), (note, cols[last].width), (p.draft, 32), ("\n".join(_ticked(p.r)), 28)]
                lines = _lines(texts)
                if p.written_name is not None:
                    # Who it is: the name written on the pass, under the note.
                    _place(ws, row, c, p.written_name, "Name written on the pass", y_offset=round(lines * 13 / _PX_TO_PT) + 4)
                    _fit_row(ws, row, p.writing, lines=lines + 1 + round(p.written_name.shown_height * _PX_TO_PT / 13))
                else:
                    _fit_row(ws, row, p.writing, lines=lines)
                row += 1
    ws.set_landscape()
    ws.fit_to_pages(1, 0)
    ws.repeat_rows(2)


def _lesson_counts(les: _Lesson) -> str:
    c = _counts(les.passes)
    parts = [f"{len(les.passes)} pass{'' if len(les.passes) == 1 else 'es'} read"]
    parts.append(f"{c['green']} green, {c['orange']} orange, {c['red']} red")
    if c["none"] or c["multiple"]:
        parts.append(f"{c['none'] + c['multiple']} with no clear face")
    if c["review"]:
        parts.append(f"{c['review']} to check")
    if les.record is not None and les.record.pupils:
        m = len(les.missing)
        parts.append(f"{m} pupil{'' if m == 1 else 's'} on the class list with no pass")
    return "; ".join(parts)


def _counts(items: Sequence[_Pass]) -> dict[str, int]:
    c = {k: 0 for k in RATING_WORDS} | {"review": 0}
    for p in items:
        c[p.r.rating if p.r.rating in c else "none"] += 1
        c["review"] += p.review
    return c


def _review_sheet(ws: Worksheet, items: list[_Pass], fmts: _Formats) -> None:
    todo = sorted((p for p in items if p.review), key=lambda p: p.index)  # the stack's order
    has_draft = any(p.draft for p in todo)
    cols = [
        _Col("#", 4),
        _Col("Scan file", _width([p.r.source for p in todo], 10, 28)),
        _Col("Page", 6),
        _Col("Pass on the page", 9, "Passes are counted left to right, top to bottom, as printed."),
        _Col("Pupil", _width([p.name for p in todo], 16, 34)),
        _Col("Why to check", _width([p.r.reason for p in todo], 20, 44)),
        _Col("Computer's reading", 19),
        _Col("Next step (as written)", _image_col_width([p.writing for p in todo])),
        _Col("Name written on the pass", _image_col_width([p.written_name for p in todo]) if any(p.written_name for p in todo) else 14),
    ]
    if has_draft:
        cols.append(_Col("Next step (typed by the computer: a draft)", 30))
    cols.append(_Col("Lesson", _width([p.lesson for p in todo], 12, 30)))
    _header(ws, 0, cols, fmts)
    ws.freeze_panes(1, 0)
    base = {"text_wrap": True, "border": 1, "border_color": "#D9D9D9"}
    for row, p in enumerate(todo, start=1):
        r = p.r
        ws.write_number(row, 0, row, fmts(**base))
        _text(ws, row, 1, r.source, fmts, **base)
        ws.write_number(row, 2, r.page, fmts(**base))
        ws.write_number(row, 3, r.position, fmts(**base))
        _text(ws, row, 4, p.name, fmts, bold=not p.known or None, **base)
        _text(ws, row, 5, r.reason, fmts, **base)
        ws.write_string(row, 6, RATING_WORDS.get(r.rating, r.rating), fmts.rating(r.rating, text_wrap=True))
        _image(ws, row, 7, p.writing, f"Next step written by {p.name}", fmts, **base)
        if p.written_name is not None:
            _image(ws, row, 8, p.written_name, "Name written on the pass", fmts, **base)
        else:
            ws.write_blank(row, 8, None, fmts(**base))
        c = 9
        if has_draft:
            _text(ws, row, c, p.draft_shown, fmts, font_color=None if p.draft else "#7F7F7F", **base)
            c += 1
        _text(ws, row, c, p.lesson, fmts, **base)
        _fit_row(ws, row, p.writing, p.written_name, lines=_lines([(r.reason, cols[5].width), (p.name, cols[4].width), (p.draft, 30)]))
    if todo:
        ws.autofilter(0, 0, len(todo), len(cols) - 1)
    else:
        _text(ws, 1, 0, "Nothing to check: every pass was read clearly.", fmts, italic=True)
        ws.set_column(0, 0, 45)


_FACES = ("green", "orange", "red", "none", "multiple")
_CHART_FILLS = {"green": "#63BE7B", "orange": "#F4A259", "red": "#E06666", "none": "#D0D0D0", "multiple": "#8C8C8C"}


def _summary_sheet(wb: xlsxwriter.Workbook, ws: Worksheet, groups: list[_Lesson], fmts: _Formats, overview: str) -> None:
    ws.hide_gridlines(2)
    _text(ws, 0, 0, "Summary", fmts, bold=True, font_size=14)
    rosters = any(les.record is not None and les.record.pupils for les in groups)
    cols = [
        _Col("Lesson", _width([les.title for les in groups] + ["Per success criterion"], 24, 44)),
        _Col("Class", 8),
        _Col("Date", 15),
        _Col("Passes read", 8),
        *(_Col(RATING_WORDS[k], 10) for k in _FACES),
        _Col("To check", 8, "Passes the computer was not sure of: see the Review sheet."),
    ]
    if rosters:
        cols.append(_Col("No pass (on the class list)", 12, "Pupils on the class list the passes were printed for, with no pass in these scans."))
    top = 3
    _header(ws, top, cols, fmts)
    ws.set_row(top, 30)
    _banner(ws, 1, len(cols) - 1, overview, fmts, text_wrap=True)
    ws.set_row(1, 28 + 30 * overview.count("\n"))
    cell = {"border": 1, "border_color": "#D9D9D9"}

    def count(row: int, col: int, n: int, rating: str | None = None) -> None:
        if n and rating is not None:
            ws.write_number(row, col, n, fmts.rating(rating))
        else:
            ws.write_number(row, col, n, fmts(**cell))

    for i, les in enumerate(groups):
        row = top + 1 + i
        c = _counts(les.passes)
        title = les.title or "Lesson not known (pass code unreadable)"
        _text(ws, row, 0, title, fmts, text_wrap=True, **cell)
        _text(ws, row, 1, les.class_name, fmts, **cell)
        _date(ws, row, 2, les.date, fmts, cell)
        count(row, 3, len(les.passes))
        for j, k in enumerate(_FACES):
            count(row, 4 + j, c[k], k)
        if c["review"]:
            ws.write_number(row, 9, c["review"], fmts(bg_color=CHECK_FILL, bold=True, **cell))
        else:
            count(row, 9, 0)
        if rosters:
            if les.record is not None and les.record.pupils:
                count(row, 10, len(les.missing))
            else:
                _text(ws, row, 10, "—", fmts, align="right", **cell)
        _fit_row(ws, row, lines=_lines([(title, cols[0].width)]))
    row = top + 1 + max(1, len(groups)) + 1
    if groups:
        height = 150 + 45 * len(groups)
        chart = wb.add_chart({"type": "bar", "subtype": "stacked"})
        first, lastrow = top + 1, top + len(groups)
        for j, k in enumerate(_FACES):
            chart.add_series(
                {
                    "name": ["Summary", top, 4 + j],
                    "categories": ["Summary", first, 0, lastrow, 0],
                    "values": ["Summary", first, 4 + j, lastrow, 4 + j],
                    "fill": {"color": _CHART_FILLS[k]},
                    "border": {"color": "#404040", "width": 0.5},
                    # The count on each bar (zeros hidden): readable without colour.
                    "data_labels": {"value": True, "num_format": "0;-0;;@", "font": {"bold": True, "color": "#000000"}},
                    "gap": 60,
                }
            )
        chart.set_title({"name": "Faces circled, per lesson", "name_font": {"size": 12}})
        chart.set_legend({"position": "bottom"})
        chart.set_y_axis({"reverse": True})  # the first lesson on top, as in the table
        chart.set_x_axis({"name": "pupils", "major_gridlines": {"visible": True, "line": {"color": "#E0E0E0"}}})
        chart.set_size({"width": 760, "height": height})
        ws.insert_chart(row, 0, chart, {"x_offset": 4, "y_offset": 4, "object_position": 1})
        row += height // 20 + 2
    # Per criterion, for lessons with a row of faces per success criterion.
    crit = [les for les in groups if les.n_criteria]
    if crit:
        _text(ws, row, 0, "Per success criterion", fmts, bold=True, font_size=12)
        row += 1
        for les in crit:
            _text(ws, row, 0, les.heading, fmts, bold=True, bottom=1)
            ws.write_blank(row, 1, None, fmts(bottom=1))
            ws.write_blank(row, 2, None, fmts(bottom=1))
            for j, h in enumerate(("Passes", "Green", "Orange", "Red", "Nothing marked", "More than one", "")):
                _text(ws, row, 3 + j, h, fmts, bold=True, bottom=1, text_wrap=True)
            ws.set_row(row, 28)
            row += 1
            for i in range(les.n_criteria):
                ratings = [p.r.row_ratings[i] for p in les.passes if i < len(p.r.row_ratings)]
                _text(ws, row, 0, les.criterion(i), fmts, text_wrap=True, **cell)
                count(row, 3, len(ratings))
                for j, k in enumerate(_FACES):
                    count(row, 4 + j, ratings.count(k), k)
                _fit_row(ws, row, lines=_lines([(les.criterion(i), cols[0].width)]))
                row += 1
        row += 1
    # The tick-box next steps pupils chose, most ticked first, with who ticked them.
    ticked = [les for les in groups if any(p.r.ticks for p in les.passes)]
    if ticked:
        _text(ws, row, 0, "Next steps ticked most", fmts, bold=True, font_size=12)
        row += 1
        for les in ticked:
            _text(ws, row, 0, les.heading, fmts, bold=True, bottom=1)
            _text(ws, row, 3, "Pupils", fmts, bold=True, bottom=1)
            _text(ws, row, 4, "Who", fmts, bold=True, bottom=1)
            for j in range(5, 10):
                ws.write_blank(row, j, None, fmts(bottom=1))
            row += 1
            who: dict[str, list[str]] = {}
            for p in les.passes:
                for t in _ticked(p.r):
                    who.setdefault(t, []).append(p.name)
            for text, names in sorted(who.items(), key=lambda kv: (-len(kv[1]), name_key(kv[0]))):
                _text(ws, row, 0, text, fmts, text_wrap=True, **cell)
                count(row, 3, len(names))
                _text(ws, row, 4, ", ".join(sorted(names, key=name_key)), fmts)
                _fit_row(ws, row, lines=_lines([(text, cols[0].width)]))
                row += 1
    ws.freeze_panes(top + 1, 0)


def _problems_sheet(ws: Worksheet, problems: Sequence[Problem], fmts: _Formats) -> None:
    cols = [
        _Col("Scan file", _width([p.source for p in problems], 12, 36)),
        _Col("Page", 6),
        _Col("What happened", 18),
        _Col("Details", _width([p.message for p in problems], 40, 90)),
    ]
    _header(ws, 0, cols, fmts)
    ws.freeze_panes(1, 0)
    base = {"text_wrap": True, "border": 1, "border_color": "#D9D9D9"}
    for row, p in enumerate(problems, start=1):
        _text(ws, row, 0, p.source, fmts, **base)
        if p.page:
            ws.write_number(row, 1, p.page, fmts(**base))
        else:
            _text(ws, row, 1, "", fmts, **base)
        _text(ws, row, 2, PROBLEM_WORDS.get(p.kind, p.kind), fmts, **base)
        _text(ws, row, 3, p.message, fmts, **base)
        _fit_row(ws, row, lines=_lines([(p.source, cols[0].width), (p.message, cols[3].width)]))
    if problems:
        ws.autofilter(0, 0, len(problems), len(cols) - 1)
    else:
        _text(ws, 1, 0, "No problems: every page held a pass.", fmts, italic=True)


# ----------------------------------------------------------------------------- the workbook


def _prepare(
    passes: Sequence[PassResult],
    images: Mapping[int, str],
    base: Path,
    find_lesson: Callable[[str], lessons.LessonRecord | None],
) -> tuple[list[_Pass], list[_Lesson]]:
    items: list[_Pass] = []
    # Crops to prepare: the next step of every pass, the write-in name of those with no known pupil.
    files: list[Path | None] = []
    for i, r in enumerate(passes):
        files.append(base / images[i] if i in images else None)
        no_pupil = r.code is None or r.code.is_spare
        files.append(base / "crops" / crop_name(r, "name") if no_pupil else None)
    # OpenCV lets go of the GIL while it decodes, resizes and encodes: threads use every core.
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        shown = list(pool.map(lambda f: shown_image(f) if f is not None else None, files))
    for i, r in enumerate(passes):
        name, known = _who(r)
        items.append(_Pass(i, r, name, known, shown[2 * i], shown[2 * i + 1], _draft(r), r.next_step_match))
    records: dict[str, lessons.LessonRecord | None] = {}
    by_key: dict[str | None, _Lesson] = {}
    for p in items:
        code = p.r.code
        key = code.lesson_key if code is not None else None
        if key not in by_key:
            if key is not None and key not in records:
                records[key] = find_lesson(key)
            rec = records.get(key) if key is not None else None
            by_key[key] = _Lesson(
                key,
                _title(code, rec),
                code.class_name if code else "",
                code.date if code else "",
                rec,
            )
        by_key[key].passes.append(p)
        p.lesson = by_key[key].title
    known = sorted((les for k, les in by_key.items() if k is not None), key=lambda les: name_key(les.title))
    known.sort(key=lambda les: les.date, reverse=True)  # the latest lesson first: the next lesson follows it
    unknown = by_key.get(None)
    if unknown is not None:
        if len(known) == 1:  # one lesson in the batch: its unreadable passes are shown with it, to check
            known[0].passes.extend(unknown.passes)
        else:
            known.append(unknown)
    for les in known:
        les.passes.sort(key=_sort_key)
    return sorted(items, key=_sort_key), known


def _title(code: PassCode | None, rec: lessons.LessonRecord | None) -> str:
    """The lesson's title: in full from this computer's record, else as the pass code holds it
    (a title cut to fit the code ends in "…")."""
    if code is None:
        return ""
    return rec.lesson if rec is not None else code.lesson


def _sort_key(p: _Pass) -> tuple:
    code = p.r.code
    if not p.known:  # spares and unreadable codes: after the names, in the stack's order
        return (1, "", "", "", p.index)
    return (0, name_key(p.name), code.date if code else "", p.lesson, p.index)


def _overview(items: list[_Pass], problems: Sequence[Problem], pages: int) -> str:
    c = _counts(items)
    n = len(items)
    s = f"{n} pass{'' if n == 1 else 'es'} read"
    if pages:
        s += f" from {pages} page{'' if pages == 1 else 's'}"
    s += f": {c['green']} green, {c['orange']} orange, {c['red']} red"
    if c["none"] + c["multiple"]:
        s += f", {c['none'] + c['multiple']} with no clear face"
    s += f". {c['review']} to check (Review sheet)" if c["review"] else ". Nothing to check"
    if problems:
        s += f"; {len(problems)} file{'' if len(problems) == 1 else 's'} or page{'' if len(problems) == 1 else 's'} gave no pass (Problems sheet)"
    return s + f". Read {dt.datetime.now():%a %-d %b %Y, %H:%M}."


def build_workbook(
    passes: Sequence[PassResult],
    problems: Sequence[Problem],
    images: Mapping[int, str],
    base: Path,
    *,
    pages: int = 0,
    find_lesson: Callable[[str], lessons.LessonRecord | None] = lessons.find,
    notes: Sequence[str] = (),
) -> bytes:
    """The workbook's bytes. ``images``: pass index -> crop path relative to ``base``;
    ``notes``: what the teacher should know about the whole batch (each on a line of its own
    under the overview, e.g. that pages were scanned in black and white)."""
    items, groups = _prepare(passes, images, Path(base), find_lesson)
    overview = "\n".join([_overview(items, problems, pages), *notes])
    buf = io.BytesIO()
    wb = xlsxwriter.Workbook(
        buf,
        {
            "in_memory": True,
            # Never guess: text stays text (a pupil called "=1+1", "0042" or "http://...").
            "strings_to_numbers": False,
            "strings_to_formulas": False,
            "strings_to_urls": False,
        },
    )
    wb.set_properties({"title": "Exit passes", "comments": "Made by exitscan"})
    fmts = _Formats(wb)
    sheets = {name: wb.add_worksheet(name) for name in SHEETS}
    _next_lesson_sheet(sheets["Next lesson"], groups, fmts, overview)
    _results_sheet(sheets["Results"], items, fmts)
    _review_sheet(sheets["Review"], items, fmts)
    _summary_sheet(wb, sheets["Summary"], groups, fmts, overview)
    _problems_sheet(sheets["Problems"], problems, fmts)
    sheets["Next lesson"].activate()
    for ws in sheets.values():
        ws.set_landscape()
        ws.set_margins(0.4, 0.4, 0.5, 0.5)
        ws.fit_to_pages(1, 0)  # one page wide, as long as it takes
        if ws.name in ("Results", "Review", "Problems"):
            ws.repeat_rows(0)
        ws.set_footer("&L&A&R&P / &N")
    wb.close()
    return buf.getvalue()


def write_workbook(
    path: Path,
    passes: Sequence[PassResult],
    problems: Sequence[Problem],
    images: Mapping[int, str],
    base: Path,
    *,
    pages: int = 0,
    find_lesson: Callable[[str], lessons.LessonRecord | None] = lessons.find,
    notes: Sequence[str] = (),
) -> None:
    """Write results.xlsx atomically: the previous file stays until the new one is whole."""
    data = build_workbook(passes, problems, images, base, pages=pages, find_lesson=find_lesson, notes=notes)
    atomic_write_bytes(Path(path), data)
