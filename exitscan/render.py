"""Drawing exit passes into a printable PDF (reportlab), from a template and a lesson.

Everything is drawn as vectors from the template's millimetre geometry: the ArUco markers
from OpenCV's own dictionary bits, the faces as shapes (no emoji font), the QR code with
reportlab's widget. `plan_passes` decides who gets which pass; `check_fits` refuses text
that does not fit before a page is drawn; `write_pdf` draws and writes atomically.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import cv2
import numpy as np
from reportlab.graphics.barcode.qr import QrCodeWidget
from reportlab.graphics.shapes import Drawing
from reportlab.lib.colors import Color, HexColor, black, white
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

from exitscan import payload
from exitscan.errors import InputError, OutputError
from exitscan.roster import Lesson, Pupil
from exitscan.template import (
    ARUCO_DICTIONARY,
    PT_TO_MM,
    Rect,
    SheetLayout,
    Slot,
    Template,
    marker_ids,
    sheet_layout,
)

INK = HexColor("#222222")
RULE = HexColor("#a6a6a6")
CUT = HexColor("#b0b0b0")
#: Faces are filled with a light tint of their colour and outlined in the full colour:
#: recognisable for children, and light enough that a pencil tick on the face still shows.
FACE_TINT = 0.38
#: The sheet footer starts here (left, clear of the vertical cut line).
SHEET_FOOT_X_MM = 8.0

# Fonts with wide Unicode coverage (names may be Siobhán, Zoë, Łukasz, Дмитрий...): Debian's
# DejaVu when installed, else the Vera fonts reportlab ships (Latin-1 only).
_FONT_CANDIDATES = [
    ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"),
    ("Vera.ttf", "VeraBd.ttf"),
]


@lru_cache(maxsize=1)
def fonts() -> tuple[str, str]:
    """Register and return (regular, bold) font names."""
    for regular, bold in _FONT_CANDIDATES:
        try:
            pdfmetrics.registerFont(TTFont("ExsSans", regular))
            pdfmetrics.registerFont(TTFont("ExsSans-Bold", bold))
            return ("ExsSans", "ExsSans-Bold")
        except Exception:  # noqa: BLE001, S112 - a missing/unreadable font file: try the next
            continue
    return ("Helvetica", "Helvetica-Bold")


def missing_glyphs(text: str, bold: bool = False) -> str:
    """Characters of ``text`` the pass font cannot draw (empty: all fine)."""
    name = fonts()[1 if bold else 0]
    font = pdfmetrics.getFont(name)
    face = getattr(font, "face", None)
    cmap = getattr(face, "charToGlyph", None)
    if cmap is None:
        return "".join(sorted({c for c in text if ord(c) > 255}))
    return "".join(sorted({c for c in text if c.isprintable() and not c.isspace() and ord(c) not in cmap}))


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class PassSpec:
    """One pass to print: its code and what is printed on it."""

    code: payload.PassCode
    name: str  # full name as printed ("" on a spare)

    @property
    def is_spare(self) -> bool:
        return self.code.is_spare


def lesson_key_of(lesson: Lesson, template: Template) -> str:
    return payload.lesson_key(
        template.name,
        lesson.class_name,
        lesson.date,
        lesson.lesson,
        lesson.intention,
        *lesson.criteria,
        "--",
        *lesson.next_step_options,
    )


def plan_passes(
    template: Template,
    lesson: Lesson,
    pupils: list[Pupil] | None,
    spares: int | None,
    per_page: int,
) -> list[PassSpec]:
    """Passes in print order: the roster's pupils in roster order, then spares.

    ``spares=None`` fills the last sheet with spares (and prints 30 spares with no roster,
    rounded up to a full sheet), so no paper is wasted.
    """
    pupils = pupils or []
    if spares is None:
        base = len(pupils) if pupils else 30
        spares = (-base) % per_page + (0 if pupils else 30)
    if spares < 0:
        raise InputError("--spares cannot be negative")
    if not pupils and spares == 0:
        raise InputError("nothing to print: no roster and --spares 0")
    key = lesson_key_of(lesson, template)
    n_crit = len(lesson.criteria) if template.is_per_criterion else 0
    out = []
    people = [(p.id, p.name) for p in pupils] + [("", "")] * spares
    for serial, (pid, name) in enumerate(people):
        code = payload.PassCode(
            template=template.code,
            serial=serial,
            lesson_key=key,
            student_id=pid,
            student_name=name,
            class_name=lesson.class_name,
            date=lesson.date,
            n_criteria=n_crit,
            lesson=lesson.lesson,
        )
        out.append(PassSpec(code, name))
    return out


# --------------------------------------------------------------------------- text fitting


def _wrap(text: str, font: str, size: float, width_pt: float) -> list[str]:
    """Word-wrap ``text``; a newline in it always starts a new line."""
    lines: list[str] = []
    for para in text.split("\n"):
        cur = ""
        for w in para.split():
            trial = f"{cur} {w}".strip()
            if pdfmetrics.stringWidth(trial, font, size) <= width_pt or not cur:
                cur = trial
            else:
                lines.append(cur)
                cur = w
        if cur:
            lines.append(cur)
    # A single word wider than the box still counts as not fitting.
    return lines


def fit_text(
    text: str, width_mm: float, height_mm: float, size: float, bold: bool, max_lines: int
) -> tuple[list[str], float] | None:
    """Wrap ``text`` into the box, shrinking the font to no less than 80%; None if it can't."""
    font = fonts()[1 if bold else 0]
    s = size
    while s >= size * 0.8 - 1e-9:
        lines = _wrap(text, font, s, width_mm * mm)
        line_h = s * PT_TO_MM * 1.18
        if (
            len(lines) <= max_lines
            and len(lines) * line_h <= height_mm + 0.01 + s * PT_TO_MM * 0.2
            and all(pdfmetrics.stringWidth(ln, font, s) <= width_mm * mm for ln in lines)
        ):
            return lines, s
        s -= 0.25
    return None


def _room(width_mm: float, max_lines: int, size: float, bold: bool) -> int:
    """About how many characters fit (for messages): average glyph width of a sample."""
    font = fonts()[1 if bold else 0]
    sample = "the quick brown fox jumps over the lazy dog"
    per_char = pdfmetrics.stringWidth(sample, font, size * 0.8) / len(sample)
    return int(width_mm * mm / per_char) * max_lines


def _field_texts(template: Template, lesson: Lesson, spec: PassSpec) -> dict[str, str]:
    date = ""
    if lesson.date:
        d = dt.date.fromisoformat(lesson.date)
        date = f"{d:%A} {d.day} {d:%B %Y}"
    class_date = " · ".join(x for x in (f"Class {lesson.class_name}" if lesson.class_name else "", date) if x)
    crit = ""
    if lesson.criteria and not template.is_per_criterion:
        crit = "Success criteria: " + "  ".join(
            f"{i + 1}. {c}" for i, c in enumerate(lesson.criteria)
        )
    intention = f"Learning intention: {lesson.intention}" if lesson.intention else ""
    if crit and _criteria_follow_intention(template):
        # No place of their own on this template (ticks): the criteria follow the intention
        # instead of being left off the pass without a word.
        tb = template.text_block("intention")
        assert tb is not None
        both = f"{intention}\n{crit}" if intention else crit
        # Each on a line of its own when that fits, else one run of text.
        if intention and fit_text(both, tb.box.w, tb.box.h, tb.font_size, tb.bold, tb.max_lines) is None:
            both = f"{intention}  {crit}"
        intention, crit = both, ""
    return {
        "name": spec.name,
        "class_date": class_date,
        "lesson": lesson.lesson,
        "intention": intention,
        "criteria": crit,
    }


def _criteria_follow_intention(template: Template) -> bool:
    """The template prints success criteria in the intention's block (it has none for them)."""
    return (
        not template.is_per_criterion
        and template.text_block("criteria") is None
        and template.text_block("intention") is not None
    )


FIELD_WORDS = {
    "name": "the pupil's name",
    "class_date": "the class and date",
    "lesson": "the lesson title",
    "intention": "the learning intention",
    "criteria": "the success criteria",
}


def check_fits(template: Template, lesson: Lesson, passes: list[PassSpec]) -> None:
    """Refuse, before drawing, any text that does not fit its place on the template."""
    if template.is_per_criterion:
        if len(lesson.criteria) > template.max_criteria:
            raise InputError(
                f"{len(lesson.criteria)} success criteria, but the {template.name} template has "
                f"rows for at most {template.max_criteria}"
            )
        if not lesson.criteria:
            raise InputError(
                f"the {template.name} template needs at least one success criterion "
                "(--criterion TEXT, repeatable)"
            )
    if lesson.next_step_options:
        if template.ticks is None:
            raise InputError(
                f"next-step options need the ticks template (this is {template.name}); "
                "add --template ticks"
            )
        if len(lesson.next_step_options) > len(template.ticks.boxes):
            raise InputError(
                f"{len(lesson.next_step_options)} next-step options, but the ticks template "
                f"has room for {len(template.ticks.boxes)}"
            )
    for spec in passes:
        # The code must hold id, class and some of the name; a long id (a GUID from the
        # school's system) or class would otherwise fail halfway through drawing.
        try:
            payload.encode(spec.code)
        except ValueError:
            who = f"the pupil id {spec.code.student_id!r} and " if spec.code.student_id else ""
            raise InputError(
                f"{who}the class {spec.code.class_name!r} {'are' if who else 'is'} too long for the pass's QR code "
                f"({payload.MAX_PAYLOAD_BYTES} bytes for everything it holds); use "
                + ("shorter ids in the roster or " if who else "")
                + "a shorter --class"
            ) from None
    checked: set[tuple[str, str]] = set()
    for spec in passes:
        for field, text in _field_texts(template, lesson, spec).items():
            tb = template.text_block(field)
            if tb is None or not text or (field, text) in checked:
                continue
            checked.add((field, text))
            words = FIELD_WORDS[field]
            if field == "intention" and lesson.criteria and _criteria_follow_intention(template):
                words = "the learning intention with the success criteria (printed together here)"
            bad = missing_glyphs(text, tb.bold)
            if bad:
                raise InputError(f"{words} {text!r} has characters the pass font cannot print: {bad}")
            if fit_text(text, tb.box.w, tb.box.h, tb.font_size, tb.bold, tb.max_lines) is None:
                room = _room(tb.box.w, tb.max_lines, tb.font_size, tb.bold)
                lines = f"{tb.max_lines} line{'s' if tb.max_lines > 1 else ''}"
                raise InputError(
                    f"{words} is too long for the {template.name} template: "
                    f"{len(text)} characters, room for about {room} ({lines} of {tb.box.w:g} mm): "
                    f"{text[:60]!r}{'...' if len(text) > 60 else ''}"
                )
    for i, c in enumerate(lesson.criteria if template.is_per_criterion else ()):
        box = template.ratings[i].criterion_box
        assert box is not None
        if fit_text(c, box.w, box.h, template.face_label_size + 0.5, False, 2) is None:
            raise InputError(
                f"success criterion {i + 1} is too long for the {template.name} template: "
                f"{len(c)} characters, room for about {_room(box.w, 2, template.face_label_size + 0.5, False)}"
            )
    if template.ticks is not None:
        for j, o in enumerate(lesson.next_step_options):
            if fit_text(o, template.ticks.text_width, 5, template.ticks.text_size, False, 1) is None:
                room = _room(template.ticks.text_width, 1, template.ticks.text_size, False)
                raise InputError(
                    f"next-step option {j + 1} is too long: {len(o)} characters, room for about {room}"
                )


# --------------------------------------------------------------------------- drawing


@cache
def marker_bits(marker_id: int) -> np.ndarray:
    """The marker's cells as a (6, 6) bool array, True = white, border included."""
    d = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, ARUCO_DICTIONARY))
    img = cv2.aruco.generateImageMarker(d, marker_id, 6)
    return img > 127


def _tint(hex_colour: str, amount: float) -> Color:
    c = HexColor(hex_colour)
    return Color(1 - (1 - c.red) * amount, 1 - (1 - c.green) * amount, 1 - (1 - c.blue) * amount)


class _PassPen:
    """Draws in a pass's millimetre frame (y down) onto a sheet (reportlab, y up, points)."""

    def __init__(self, c: Canvas, layout: SheetLayout, slot: Slot):
        self.c = c
        self.s = slot.scale
        self.ox = slot.x
        self.oy = slot.y
        self.sheet_h = layout.size[1]

    def xy(self, x: float, y: float) -> tuple[float, float]:
        return ((self.ox + x * self.s) * mm, (self.sheet_h - (self.oy + y * self.s)) * mm)

    def d(self, v: float) -> float:
        """A length in pass millimetres, in points."""
        return v * self.s * mm

    def rect(self, r: Rect, stroke: int = 1, fill: int = 0) -> None:
        x, y = self.xy(r.x, r.bottom)
        self.c.rect(x, y, self.d(r.w), self.d(r.h), stroke=stroke, fill=fill)

    def text(self, x: float, y_baseline: float, s: str, font: str, size: float, centre: bool = False) -> None:
        self.c.setFont(font, size * self.s)
        px, py = self.xy(x, y_baseline)
        if centre:
            self.c.drawCentredString(px, py, s)
        else:
            self.c.drawString(px, py, s)


def _draw_marker(pen: _PassPen, x: float, y: float, size: float, marker_id: int) -> None:
    bits = marker_bits(marker_id)
    cell = size / bits.shape[0]
    c = pen.c
    c.setFillColor(black)
    pen.rect(Rect(x, y, size, size), stroke=0, fill=1)
    c.setFillColor(white)
    for r in range(bits.shape[0]):
        for col in range(bits.shape[1]):
            if bits[r, col]:
                # Slight overlap so anti-aliased renderers leave no hairline seams.
                pen.rect(Rect(x + col * cell - 0.01, y + r * cell - 0.01, cell + 0.02, cell + 0.02), stroke=0, fill=1)


def _draw_face(pen: _PassPen, cx: float, cy: float, r: float, kind: int, colour: str) -> None:
    c = pen.c
    c.setFillColor(_tint(colour, FACE_TINT))
    c.setStrokeColor(HexColor(colour))
    c.setLineWidth(pen.d(max(0.5, r * 0.09)))
    px, py = pen.xy(cx, cy)
    c.circle(px, py, pen.d(r), stroke=1, fill=1)
    # Eyes.
    c.setFillColor(INK)
    for dx in (-0.33, 0.33):
        ex, ey = pen.xy(cx + dx * r, cy - 0.2 * r)
        c.circle(ex, ey, pen.d(0.11 * r), stroke=0, fill=1)
    # Mouth: smile, straight, frown; told apart by shape alone in black and white.
    c.setStrokeColor(INK)
    c.setLineWidth(pen.d(0.1 * r))
    c.setLineCap(1)
    x0, x1 = cx - 0.45 * r, cx + 0.45 * r
    p = c.beginPath()
    if kind == 0:
        y_end, y_ctrl = cy + 0.22 * r, cy + 0.72 * r
    elif kind == 1:
        y_end = y_ctrl = cy + 0.42 * r
    else:
        y_end, y_ctrl = cy + 0.58 * r, cy + 0.12 * r
    p.moveTo(*pen.xy(x0, y_end))
    p.curveTo(*pen.xy(cx - 0.2 * r, y_ctrl), *pen.xy(cx + 0.2 * r, y_ctrl), *pen.xy(x1, y_end))
    c.drawPath(p, stroke=1, fill=0)
    c.setLineCap(0)


def _draw_qr(pen: _PassPen, box: Rect, text: str) -> None:
    side = pen.d(box.w)
    # Sized directly: asking the widget for its bounds builds the whole code (mask search and
    # all) a second time, which was half the time of drawing a pass.
    w = QrCodeWidget(
        text,
        barLevel="M",
        barBorder=payload.QR_BORDER_MODULES,
        qrVersion=payload.QR_VERSION,
        barWidth=side,
        barHeight=side,
    )
    d = Drawing(side, side)
    d.add(w)
    px, py = pen.xy(box.x, box.bottom)
    d.drawOn(pen.c, px, py)


def draw_pass(
    c: Canvas,
    layout: SheetLayout,
    slot: Slot,
    template: Template,
    lesson: Lesson,
    spec: PassSpec,
    code_grey: float | None = None,
) -> None:
    """Draw one pass into its slot. ``code_grey``: draw the code's symbol as a flat square of
    that grey (0 black - 1 white) instead of the code: what the reader's blank reference
    needs (the QR widget takes ~0.1 s to build, every worker used to build two)."""
    regular, bold = fonts()
    pen = _PassPen(c, layout, slot)
    for k, (x, y) in enumerate(template.marker_positions):
        _draw_marker(pen, x, y, template.marker_size, marker_ids(spec.code.serial)[k])
    if code_grey is None:
        _draw_qr(pen, template.qr, payload.encode(spec.code))
    else:
        quiet = template.qr.w * payload.QR_BORDER_MODULES / (payload.QR_MODULES + 2 * payload.QR_BORDER_MODULES)
        q = template.qr
        c.setFillGray(code_grey)
        c.rect(*pen.xy(q.x + quiet, q.bottom - quiet), pen.d(q.w - 2 * quiet), pen.d(q.h - 2 * quiet), stroke=0, fill=1)

    c.setFillColor(INK)
    texts = _field_texts(template, lesson, spec)
    for tb in template.texts:
        if tb.field == "name" and spec.is_spare:
            nb = template.name_box
            c.setStrokeColor(RULE)
            c.setLineWidth(pen.d(0.3))
            pen.rect(nb)
            c.setFillColor(HexColor("#666666"))
            pen.text(nb.x + 1.5, nb.y + nb.h / 2 + 1.1, "Name:", regular, 8)
            c.setFillColor(INK)
            continue
        text = texts.get(tb.field, "")
        if not text:
            continue
        fitted = fit_text(text, tb.box.w, tb.box.h, tb.font_size, tb.bold, tb.max_lines)
        if fitted is None:  # check_fits runs first; this is a programming error
            raise AssertionError(f"text does not fit: {tb.field}")
        lines, size = fitted
        font = bold if tb.bold else regular
        lh = size * PT_TO_MM * 1.18
        for i, ln in enumerate(lines):
            pen.text(tb.box.x, tb.box.y + size * PT_TO_MM * 0.9 + i * lh, ln, font, size)

    # Faces.
    for ri, row in enumerate(template.ratings):
        if template.is_per_criterion and ri >= len(lesson.criteria):
            break
        for f in row.faces:
            _draw_face(pen, f.centre[0], f.centre[1], f.radius, f.index, template.face_colours[f.index])
            if f.label_box is not None:
                c.setFillColor(INK)
                pen.text(
                    f.centre[0],
                    f.label_box.y + template.face_label_size * PT_TO_MM * 0.9,
                    f.label,
                    bold,
                    template.face_label_size,
                    centre=True,
                )
        if row.criterion_box is not None:
            cb = row.criterion_box
            size0 = template.face_label_size + 0.5
            fitted = fit_text(lesson.criteria[ri], cb.w, cb.h, size0, False, 2)
            assert fitted is not None
            lines, size = fitted
            lh = size * PT_TO_MM * 1.18
            top = cb.y + (cb.h - len(lines) * lh) / 2
            c.setFillColor(INK)
            for i, ln in enumerate(lines):
                pen.text(cb.x, top + size * PT_TO_MM * 0.9 + i * lh, ln, regular, size)
    if template.column_labels_y is not None:
        c.setFillColor(INK)
        for f in template.ratings[0].faces:
            pen.text(f.centre[0], template.column_labels_y, f.label, bold, template.face_label_size, centre=True)

    # Tick-box options.
    tk = template.ticks
    if tk is not None and lesson.next_step_options:
        c.setFillColor(INK)
        pen.text(tk.label_position[0], tk.label_position[1], tk.label, bold, template.writing.label_size)
        c.setStrokeColor(INK)
        c.setLineWidth(pen.d(0.3))
        for box, option in zip(tk.boxes, lesson.next_step_options):
            pen.rect(box)
            fitted = fit_text(option, tk.text_width, 5, tk.text_size, False, 1)
            assert fitted is not None
            pen.text(box.right + 1.5, box.y + box.h / 2 + tk.text_size * PT_TO_MM * 0.35, fitted[0][0], regular, fitted[1])

    # Writing area: label and ruled lines.
    wa = template.writing
    label = wa.label if (tk is None or lesson.next_step_options) else "My next step:"
    c.setFillColor(INK)
    pen.text(wa.box.x + 1, wa.box.y + wa.label_size * PT_TO_MM * 1.1, label, bold, wa.label_size)
    c.setStrokeColor(RULE)
    c.setLineWidth(pen.d(0.3))
    for y in wa.lines:
        c.line(*pen.xy(wa.box.x + 1, y), *pen.xy(wa.box.right - 1, y))


def _draw_cut_marks(c: Canvas, layout: SheetLayout) -> None:
    """Dashed lines between the passes of a sheet, where the teacher cuts."""
    if len(layout.slots) == 1:
        return
    sw, sh = layout.size
    c.setStrokeColor(CUT)
    c.setLineWidth(0.5)
    c.setDash(4, 3)
    xs = sorted({round(s.cell.x, 3) for s in layout.slots})[1:]
    ys = sorted({round(s.cell.y, 3) for s in layout.slots})[1:]
    for x in xs:
        c.line(x * mm, 0, x * mm, sh * mm)
    for y in ys:
        c.line(0, (sh - y) * mm, sw * mm, (sh - y) * mm)
    c.setDash()


def write_pdf(
    out: Path,
    template: Template,
    lesson: Lesson,
    passes: list[PassSpec],
    paper: str = "a4",
    per_page: int = 4,
) -> SheetLayout:
    """Draw ``passes`` onto sheets and write the PDF atomically (no partial file on failure)."""
    check_fits(template, lesson, passes)
    layout = sheet_layout(template, paper, per_page)
    out = Path(out)
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"{out}: the folder {folder} does not exist")
    regular, _ = fonts()
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=folder)
    except OSError as e:
        raise OutputError(f"{out}: cannot write there ({e.strerror})") from None
    os.close(fd)
    try:
        c = Canvas(tmp, pagesize=(layout.size[0] * mm, layout.size[1] * mm), pageCompression=1)
        c.setTitle(f"Exit passes: {lesson.lesson}")
        c.setAuthor("exitscan")
        c.setSubject(" · ".join(x for x in (lesson.class_name, lesson.date, template.name) if x))
        n = len(layout.slots)
        sheets = (len(passes) + n - 1) // n
        for s in range(sheets):
            for slot, spec in zip(layout.slots, passes[s * n : (s + 1) * n]):
                draw_pass(c, layout, slot, template, lesson, spec)
            _draw_cut_marks(c, layout)
            c.setFillColor(HexColor("#8a8a8a"))
            c.setFont(regular, 6)
            foot = f"exitscan · {lesson.lesson} · sheet {s + 1} of {sheets}"
            if n > 1:
                foot += " · cut along the dashed lines"
            c.drawString(SHEET_FOOT_X_MM * mm, 2.6 * mm, foot)
            c.showPage()
        c.save()
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return layout
