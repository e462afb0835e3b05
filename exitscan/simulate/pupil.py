"""What one pupil does to one pass: the marks, the ticked options, the sentence, the name.

`PassMarks` says it exactly (tests build them by hand: ``PassMarks.clear("green")``,
``PassMarks.corrected("red", "orange")``...); `random_pass_marks` decides it like a class
would (mostly one clear mark; sometimes nothing, two faces, or a correction), and
`fill_pass` draws it onto a rendered sheet and reports what a correct reader should say.

How a row reads (`read_row`): faces with a circle/tick/cross/fill count, minus faces that
were scribbled over. No marks at all: ``none``. One face left: that face (``clear``, or
``corrected`` when something was scribbled out). Two or more: ``multiple``. Everything
scribbled out: case ``corrected`` with rating ``none``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from exitscan.roster import Lesson
from exitscan.simulate import content
from exitscan.simulate.handwriting import fit_lines, limit_drift, sample_hand, write_line
from exitscan.simulate.ink import FELT_COLOURS, INSTRUMENTS, Ink, Stroke, draw_strokes, sample_ink
from exitscan.simulate.marks import Mark, draw_mark, zigzag
from exitscan.simulate.marks import cross as cross_strokes
from exitscan.simulate.marks import tick as tick_strokes
from exitscan.template import FACE_NAMES, PT_TO_MM, Template

CASES = ("clear", "none", "multiple", "corrected")
#: How often each case turns up in a class's stack, by default.
DEFAULT_CASE_MIX: dict[str, float] = {"clear": 0.86, "none": 0.05, "multiple": 0.05, "corrected": 0.04}
#: Mark kinds of a clear mark, and how often children use each.
KIND_MIX: dict[str, float] = {"circle": 0.64, "tick": 0.13, "cross": 0.07, "fill": 0.16}
INSTRUMENT_MIX: dict[str, float] = {"pencil": 0.4, "ballpoint": 0.3, "felt-tip": 0.3}
#: What pupils write with (mostly pencil, in primary school).
WRITING_MIX: dict[str, float] = {"pencil": 0.6, "ballpoint": 0.3, "felt-tip": 0.1}
FACE_MIX: dict[str, float] = {"green": 0.5, "orange": 0.3, "red": 0.2}


@dataclass(frozen=True)
class TickMark:
    """A mark in a next-step option box (ticks template): ``kind`` tick, cross or fill."""

    option: int
    kind: str = "tick"
    instrument: str = "pencil"


@dataclass(frozen=True)
class PassMarks:
    """Everything a pupil puts on one pass.

    ``text``: the next step written (``""``: nothing; None: a random sentence, seeded).
    ``name``: written in the name box on a spare (``""``: nothing; None: a random name on a
    spare, nothing on a named pass). ``hard_text``: per-letter jitter in the handwriting.
    """

    marks: tuple[Mark, ...] = ()
    ticks: tuple[TickMark, ...] = ()
    text: str | None = ""
    name: str | None = ""
    hard_text: bool = False
    writing_instrument: str | None = None

    # -- convenience constructors for tests and callers --------------------------------
    @staticmethod
    def clear(face: str, kind: str = "circle", instrument: str = "ballpoint", text: str | None = "", **mark) -> PassMarks:
        """One mark on one face (row 0)."""
        return PassMarks(marks=(Mark(face, kind, instrument, **mark),), text=text)

    @staticmethod
    def blank(text: str | None = "") -> PassMarks:
        """Nothing marked (and, by default, nothing written)."""
        return PassMarks(text=text)

    @staticmethod
    def multiple(*faces: str, kind: str = "circle", instrument: str = "ballpoint", text: str | None = "") -> PassMarks:
        """The same kind of mark on two or more faces."""
        return PassMarks(marks=tuple(Mark(f, kind, instrument) for f in faces), text=text)

    @staticmethod
    def corrected(first: str, final: str, instrument: str = "ballpoint", text: str | None = "") -> PassMarks:
        """``first`` circled then scribbled out, ``final`` circled."""
        return PassMarks(
            marks=(Mark(first, "circle", instrument), Mark(first, "scribble", instrument), Mark(final, "circle", instrument)),
            text=text,
        )

    @staticmethod
    def criteria(*faces: str | None, kind: str = "circle", instrument: str = "pencil", text: str | None = "") -> PassMarks:
        """One face per criterion row (None: that row left unmarked)."""
        return PassMarks(marks=tuple(Mark(f, kind, instrument, row=i) for i, f in enumerate(faces) if f), text=text)


def read_row(marks: list[Mark]) -> tuple[str, str]:
    """(case, rating) a correct reader gives one rating row with these marks."""
    if not marks:
        return "none", "none"
    crossed = {m.face for m in marks if m.kind == "scribble"}
    live = {m.face for m in marks if m.kind != "scribble"} - crossed
    if len(live) >= 2:
        return "multiple", "multiple"
    if len(live) == 1:
        return ("corrected" if crossed else "clear"), live.pop()
    return ("corrected" if crossed else "none"), "none"


def rows_of(template: Template, lesson: Lesson) -> int:
    """How many rating rows a pass of this lesson prints."""
    return len(lesson.criteria) if template.is_per_criterion else 1


# --------------------------------------------------------------------------- random pupils


def _pick(mix: dict[str, float], rng: np.random.Generator) -> str:
    keys = list(mix)
    p = np.array([mix[k] for k in keys], np.float64)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def _clear_mark(face: str, row: int, instrument: str, rng: np.random.Generator, template: Template) -> Mark:
    kind = _pick(KIND_MIX, rng)
    colour = None
    if instrument == "felt-tip" and rng.random() < 0.5:
        colour = face  # the face's own colour: green felt tip on the green face
    has_label = template.ratings[row].faces[0].label_box is not None
    return Mark(
        face,
        kind,
        instrument,
        row=row,
        colour=colour,
        loops=2 if kind == "circle" and rng.random() < 0.12 else 1,
        label=bool(kind == "circle" and has_label and rng.random() < 0.25),
        stray=bool(rng.random() < 0.04),
    )


def random_pass_marks(
    template: Template,
    lesson: Lesson,
    rng: np.random.Generator,
    case_mix: dict[str, float] | None = None,
    spare: bool = False,
) -> PassMarks:
    """What a pupil of a real class might do to this pass (all choices fixed, seeded)."""
    mix = case_mix or DEFAULT_CASE_MIX
    if spare and rng.random() < 0.35:
        return PassMarks()  # an unused spare: nobody took it
    case = _pick(mix, rng)
    instrument = _pick(INSTRUMENT_MIX, rng)
    n_rows = rows_of(template, lesson)
    hard_row = int(rng.integers(n_rows))
    marks: list[Mark] = []
    ability = rng.dirichlet([5, 3, 2])  # this pupil's leaning across the faces
    for row in range(n_rows):
        row_case = case if row == hard_row else "clear"
        face = FACE_NAMES[int(rng.choice(3, p=ability))]
        if row_case == "clear":
            marks.append(_clear_mark(face, row, instrument, rng, template))
        elif row_case == "multiple":
            a, b = rng.choice(3, size=2, replace=False)
            marks.append(_clear_mark(FACE_NAMES[a], row, instrument, rng, template))
            marks.append(_clear_mark(FACE_NAMES[b], row, instrument, rng, template))
        elif row_case == "corrected":
            a, b = rng.choice(3, size=2, replace=False)
            marks.append(Mark(FACE_NAMES[a], "circle", instrument, row=row))
            marks.append(Mark(FACE_NAMES[a], "scribble", instrument, row=row))
            marks.append(Mark(FACE_NAMES[b], "circle", instrument, row=row))
    ticks: list[TickMark] = []
    n_options = len(lesson.next_step_options) if template.ticks is not None else 0
    if n_options:
        k = int(rng.choice(3, p=[0.25, 0.65, 0.10]))
        for opt in sorted(rng.choice(n_options, size=min(k, n_options), replace=False).tolist()):
            ticks.append(TickMark(int(opt), _pick({"tick": 0.75, "cross": 0.15, "fill": 0.10}, rng), instrument))
    write = rng.random() < (0.9 if not n_options else (0.4 if ticks else 0.8))
    text = str(rng.choice(content.NEXT_STEPS)) if write else ""
    name = str(rng.choice(content.SPARE_NAMES)) if spare else ""
    writing = instrument if rng.random() < 0.5 else _pick(WRITING_MIX, rng)
    return PassMarks(tuple(marks), tuple(ticks), text, name, bool(rng.random() < 0.2), writing)


# --------------------------------------------------------------------------- drawing


@dataclass
class FilledPass:
    """What `fill_pass` drew on one pass (goes into the truth)."""

    rows: list[tuple[str, str]]  # (case, rating) per rating row
    marks: list[dict] = field(default_factory=list)
    ticks: list[int] = field(default_factory=list)
    tick_marks: list[dict] = field(default_factory=list)
    next_step: str = ""
    next_step_lines: list[str] = field(default_factory=list)
    writing: dict | None = None
    spare_name: str = ""


def _ink_for(instrument: str, colour: str | None, rng: np.random.Generator, cache: dict) -> Ink:
    """One pupil keeps the same pencil/pen: reuse the ink per (instrument, colour)."""
    key = (instrument, colour)
    if key not in cache:
        c = FELT_COLOURS.get(colour, colour) if instrument == "felt-tip" and colour else colour
        if instrument != "felt-tip" and colour in FACE_NAMES:
            c = None
        cache[key] = sample_ink(instrument, rng, c)
    return cache[key]


def fill_pass(
    sheet: np.ndarray,
    template: Template,
    lesson: Lesson,
    spec: PassMarks,
    mm_to_px: np.ndarray,
    spare: bool,
    rng: np.random.Generator,
) -> FilledPass:
    """Draw ``spec`` onto the pass placed on ``sheet`` by ``mm_to_px`` (pass mm -> sheet px)."""
    n_rows = rows_of(template, lesson)
    inks: dict = {}
    by_row: list[list[Mark]] = [[] for _ in range(n_rows)]
    out = FilledPass(rows=[])
    zones = [f.zone for r in template.ratings[:n_rows] for f in r.faces]
    for m in spec.marks:
        if m.row >= n_rows:
            raise ValueError(f"mark on row {m.row}, but this pass has {n_rows} rating row(s)")
        face = template.ratings[m.row].faces[FACE_NAMES.index(m.face)]
        ink = _ink_for(m.instrument, m.colour, rng, inks)
        others = [z for z in zones if z != face.zone]
        strokes = draw_mark(m, face, ink.width_mm, others, rng)
        draw_strokes(sheet, strokes, ink, mm_to_px, rng)
        by_row[m.row].append(m)
        out.marks.append(
            {
                "row": m.row,
                "face": m.face,
                "kind": m.kind,
                "instrument": m.instrument,
                "colour": ink.colour,
                "loops": m.loops,
                "label": m.label,
                "stray": m.stray,
            }
        )
    out.rows = [read_row(ms) for ms in by_row]

    tk = template.ticks
    n_opt = len(lesson.next_step_options) if tk is not None else 0
    for t in spec.ticks:
        if tk is None or t.option >= n_opt:
            raise ValueError(f"tick on option {t.option}, but this pass prints {n_opt} option(s)")
        box = tk.boxes[t.option]
        ink = _ink_for(t.instrument, None, rng, inks)
        c = (box.x + box.w / 2, box.y + box.h / 2)
        if t.kind == "tick":
            strokes = tick_strokes((c[0] + 0.3, c[1] - 0.2), box.h * rng.uniform(0.9, 1.4), rng)
        elif t.kind == "cross":
            strokes = cross_strokes(c, box.h * rng.uniform(0.35, 0.55), rng)
        else:
            strokes = [Stroke.of(zigzag(c, box.h * 0.5, max(ink.width_mm, 0.5), rng.uniform(0, 3), rng), rng, 0.02)]
        draw_strokes(sheet, strokes, ink, mm_to_px, rng)
        out.ticks.append(t.option)
        out.tick_marks.append({"option": t.option, "kind": t.kind, "instrument": t.instrument})
    out.ticks.sort()

    px_per_mm = float(np.sqrt(abs(np.linalg.det(mm_to_px[:, :2]))))
    writing_tool = spec.writing_instrument or "pencil"
    wink = _ink_for(writing_tool, None, rng, inks)
    if wink.instrument == "felt-tip":
        # Children write with dark felt tips; a light one is a colouring pen.
        wink = Ink(wink.instrument, str(rng.choice([FELT_COLOURS[c] for c in ("black", "blue", "purple", "dark-green")])), 0.8, wink.opacity, wink.grain)
    text = spec.text
    if text is None:
        text = str(rng.choice(content.NEXT_STEPS))
    if text:
        wa = template.writing
        label_bottom = wa.box.y + wa.label_size * PT_TO_MM * 1.4
        room = wa.box.bottom - 1 - label_bottom
        n_lines = max(1, len([y for y in wa.lines if y - label_bottom > 2.4]) or 1)
        hand = sample_hand(text, (3.2, min(5.2, room * 0.8)), rng, spec.hard_text)
        x0 = wa.box.x + rng.uniform(1.0, 4.0)
        hand, lines = fit_lines(text, hand, px_per_mm, wa.box.right - 1.5 - x0, n_lines)
        hand = limit_drift(hand, lines, px_per_mm)
        baselines = [y for y in wa.lines if y - label_bottom > 2.4] or [wa.box.bottom - 2]
        for ln, y in zip(lines, baselines):
            by = min(y + rng.normal(-0.5, 0.45), wa.box.bottom - 1.2)
            by = max(by, label_bottom + hand.cap_mm)
            write_line(sheet, ln, (x0 + rng.normal(0, 0.6) * (ln != lines[0]), by), hand, wink, mm_to_px, rng)
        out.next_step = " ".join(lines)
        out.next_step_lines = lines
        out.writing = {"instrument": wink.instrument, "colour": wink.colour, "font": hand.font, "cap_mm": round(hand.cap_mm, 2), "slant_deg": round(hand.slant_deg, 1), "hard": hand.hard}

    name = spec.name
    if name is None:
        name = str(rng.choice(content.SPARE_NAMES)) if spare else ""
    if name:
        nb = template.name_box
        x0 = nb.x + rng.uniform(12.0, 16.0)
        hand = sample_hand(name, (2.8, nb.h * 0.62), rng)
        hand, lines = fit_lines(name, hand, px_per_mm, nb.right - 1 - x0, 1)
        hand = limit_drift(hand, lines, px_per_mm, 0.8)
        write_line(sheet, lines[0], (x0, nb.bottom - rng.uniform(1.2, 1.8)), hand, wink, mm_to_px, rng)
        out.spare_name = lines[0]
    return out


__all__ = [
    "CASES",
    "DEFAULT_CASE_MIX",
    "INSTRUMENTS",
    "Mark",
    "PassMarks",
    "TickMark",
    "fill_pass",
    "random_pass_marks",
    "read_row",
]
