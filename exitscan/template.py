"""Pass templates: the one source of truth for where everything on a pass is.

A template is a TOML file in ``templates/``. Geometry is in millimetres on the pass itself,
origin at the pass's top-left corner, x to the right and y downwards (the same convention as
image rows and columns, so the reader's homography maps scans straight into this frame).
The PDF generator draws from it and the scan reader measures from it; nothing here is in
pixels.

Sheets: `sheet_layout` places passes 1, 2 or 4 to a sheet of A4 or US Letter, scaling each
pass uniformly into its slot. Markers: `marker_ids` says which ArUco IDs a pass carries; the
IDs alone tell a pass's corner (orientation) and its group (which pass on a page).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

from exitscan.errors import InputError

#: Where the shipped templates live (the repository's ``templates/`` folder).
TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"

#: ArUco dictionary of every pass marker (OpenCV's ``cv2.aruco.DICT_4X4_100``): 4x4 bits
#: give big cells for a given print size, which is what low-resolution copiers need.
ARUCO_DICTIONARY = "DICT_4X4_100"
#: A pass's four markers are ``4 * group + corner``; groups cycle through passes in print
#: order, so up to this many consecutive passes on one scanned page never share an ID.
MARKER_GROUPS = 25
#: Corner order of the four markers (and of `Template.marker_positions`).
CORNERS = ("top-left", "top-right", "bottom-right", "bottom-left")

FACE_NAMES = ("green", "orange", "red")

PT_TO_MM = 25.4 / 72.0


class Rect(NamedTuple):
    """An axis-aligned box in millimetres: top-left (x, y), width w, height h."""

    x: float
    y: float
    w: float
    h: float

    @property
    def right(self) -> float:
        return self.x + self.w

    @property
    def bottom(self) -> float:
        return self.y + self.h

    def expanded(self, d: float) -> Rect:
        return Rect(self.x - d, self.y - d, self.w + 2 * d, self.h + 2 * d)

    def overlaps(self, other: Rect) -> bool:
        return not (
            self.right <= other.x
            or other.right <= self.x
            or self.bottom <= other.y
            or other.bottom <= self.y
        )

    def inside(self, other: Rect) -> bool:
        return (
            self.x >= other.x
            and self.y >= other.y
            and self.right <= other.right
            and self.bottom <= other.bottom
        )


@dataclass(frozen=True)
class Face:
    """One face of a rating row: where it is drawn and the zone the reader looks at."""

    index: int  # 0 green, 1 orange, 2 red
    centre: tuple[float, float]
    radius: float
    label: str
    label_box: Rect | None  # None when the labels head columns instead
    zone: Rect  # face (+ label) + clearance: a mark in here belongs to this face

    @property
    def name(self) -> str:
        return FACE_NAMES[self.index]


@dataclass(frozen=True)
class RatingRow:
    """Three faces side by side: the pass's overall rating, or one success criterion's."""

    faces: tuple[Face, Face, Face]
    criterion_box: Rect | None


@dataclass(frozen=True)
class TextBlock:
    """A printed text field. ``field`` is one of `TEXT_FIELDS`."""

    field: str
    box: Rect
    font_size: float
    bold: bool
    max_lines: int


TEXT_FIELDS = ("name", "class_date", "lesson", "intention", "criteria")


@dataclass(frozen=True)
class TickBoxes:
    """Tick-box next-step options (the ``ticks`` template)."""

    label: str
    label_position: tuple[float, float]
    box_size: float
    text_size: float
    text_width: float
    boxes: tuple[Rect, ...]


@dataclass(frozen=True)
class WritingArea:
    """Where the pupil writes the next step, and the ruled lines printed there."""

    label: str
    box: Rect
    lines: tuple[float, ...]
    label_size: float


@dataclass(frozen=True)
class Template:
    name: str
    code: str
    title: str
    size: tuple[float, float]  # width, height in mm
    marker_size: float
    marker_positions: tuple[tuple[float, float], ...]  # top-left of each, in CORNERS order
    qr: Rect
    name_box: Rect
    texts: tuple[TextBlock, ...]
    face_colours: tuple[str, str, str]
    face_label_size: float
    clearance: float
    column_labels_y: float | None
    ratings: tuple[RatingRow, ...]
    ticks: TickBoxes | None
    writing: WritingArea
    source: Path

    @property
    def bounds(self) -> Rect:
        return Rect(0.0, 0.0, self.size[0], self.size[1])

    @property
    def max_criteria(self) -> int:
        """How many success criteria get a row of faces of their own (0: one overall row)."""
        return len(self.ratings) if self.is_per_criterion else 0

    @property
    def is_per_criterion(self) -> bool:
        return any(r.criterion_box is not None for r in self.ratings)

    def marker_rects(self) -> tuple[Rect, ...]:
        s = self.marker_size
        return tuple(Rect(x, y, s, s) for x, y in self.marker_positions)

    def marker_corners_mm(self) -> dict[int, tuple[tuple[float, float], ...]]:
        """Each corner index -> its marker's 4 corners in OpenCV's order (TL, TR, BR, BL)."""
        out = {}
        for k, r in enumerate(self.marker_rects()):
            out[k] = ((r.x, r.y), (r.right, r.y), (r.right, r.bottom), (r.x, r.bottom))
        return out

    def text_block(self, field: str) -> TextBlock | None:
        for t in self.texts:
            if t.field == field:
                return t
        return None


def marker_ids(group: int) -> tuple[int, int, int, int]:
    """The ArUco IDs of a pass in marker group ``group``, in `CORNERS` order."""
    g = group % MARKER_GROUPS
    return (4 * g, 4 * g + 1, 4 * g + 2, 4 * g + 3)


def marker_role(marker_id: int) -> tuple[int, int]:
    """(group, corner index) of an ArUco ID printed by exitscan."""
    return marker_id // 4, marker_id % 4


# --------------------------------------------------------------------------- loading


def available_templates() -> list[str]:
    """Names of the shipped templates, sorted."""
    return sorted(p.stem for p in TEMPLATES_DIR.glob("*.toml"))


def load_template(name_or_path: str | Path) -> Template:
    """Load a shipped template by name (``classic``) or a template file by path.

    Raises `InputError` naming the template and what is wrong with it.
    """
    p = Path(name_or_path)
    if p.suffix != ".toml":
        p = TEMPLATES_DIR / f"{name_or_path}.toml"
        if not p.is_file():
            raise InputError(
                f"unknown template {str(name_or_path)!r}; "
                f"the templates are: {', '.join(available_templates())}"
            )
    if not p.is_file():
        raise InputError(f"{p}: template file not found")
    # Readers ask for a template on every page: parse each file once (per version of it).
    return _load_file(str(p.resolve()), p.stat().st_mtime_ns)


@lru_cache(maxsize=32)
def _load_file(path: str, mtime_ns: int) -> Template:
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
        t = _parse(data, p)
    except (tomllib.TOMLDecodeError, KeyError, TypeError, ValueError, IndexError) as e:
        raise InputError(f"{p.name}: not a valid exitscan template ({e})") from e
    problems = validate(t)
    if problems:
        raise InputError(f"{p.name}: " + "; ".join(problems))
    return t


_BY_CODE: dict[str, Template] = {}


def template_by_code(code: str) -> Template:
    """The shipped template whose one-letter QR code is ``code`` (cached)."""
    if not _BY_CODE:
        for n in available_templates():
            t = load_template(n)
            _BY_CODE[t.code] = t
    try:
        return _BY_CODE[code]
    except KeyError:
        raise InputError(f"no template has the code {code!r}") from None


def _rect(v) -> Rect:
    x, y, w, h = (float(a) for a in v)
    return Rect(x, y, w, h)


def _pt(v) -> tuple[float, float]:
    x, y = (float(a) for a in v)
    return (x, y)


def _parse(d: dict, source: Path) -> Template:
    faces_cfg = d["faces"]
    labels = tuple(faces_cfg["labels"])
    colours = tuple(faces_cfg["colours"])
    if len(labels) != 3 or len(colours) != 3:
        raise ValueError("[faces] needs 3 labels and 3 colours (green, orange, red)")
    label_size = float(faces_cfg["label_size"])
    clearance = float(faces_cfg["clearance"])
    column_labels_y = faces_cfg.get("column_labels_y")

    rows = []
    for r in d["ratings"]:
        radius = float(r["radius"])
        gap = r.get("label_gap")
        faces = []
        for i, c in enumerate(r["centres"]):
            cx, cy = _pt(c)
            label_box = None
            top = cy - radius
            bottom = cy + radius
            half_w = radius
            if column_labels_y is None:
                if gap is None:
                    raise ValueError("a rating row without column labels needs label_gap")
                lh = label_size * PT_TO_MM * 1.25
                # Labels are short; allow 0.55 em per character, centred under the face.
                lw = max(2 * radius, len(labels[i]) * label_size * PT_TO_MM * 0.55)
                label_box = Rect(cx - lw / 2, cy + radius + float(gap), lw, lh)
                bottom = label_box.bottom
                half_w = max(radius, lw / 2)
            zone = Rect(cx - half_w, top, 2 * half_w, bottom - top).expanded(clearance)
            faces.append(Face(i, (cx, cy), radius, labels[i], label_box, zone))
        if len(faces) != 3:
            raise ValueError("each [[ratings]] row needs exactly 3 centres")
        cb = r.get("criterion_box")
        rows.append(RatingRow(tuple(faces), _rect(cb) if cb is not None else None))

    texts = tuple(
        TextBlock(
            field=t["field"],
            box=_rect(t["box"]),
            font_size=float(t["font_size"]),
            bold=bool(t.get("bold", False)),
            max_lines=int(t.get("max_lines", 1)),
        )
        for t in d.get("text", [])
    )
    ticks = None
    if "ticks" in d:
        tk = d["ticks"]
        bs = float(tk["box_size"])
        ticks = TickBoxes(
            label=tk["label"],
            label_position=_pt(tk["label_position"]),
            box_size=bs,
            text_size=float(tk["text_size"]),
            text_width=float(tk["text_width"]),
            boxes=tuple(Rect(*_pt(b), bs, bs) for b in tk["boxes"]),
        )
    w = d["writing"]
    m = d["markers"]
    q = d["qr"]
    return Template(
        name=str(d["name"]),
        code=str(d["code"]),
        title=str(d.get("title", "Exit pass")),
        size=_pt(d["size"]),
        marker_size=float(m["size"]),
        marker_positions=tuple(_pt(p) for p in m["positions"]),
        qr=Rect(*_pt(q["position"]), float(q["size"]), float(q["size"])),
        name_box=_rect(d["name_box"]["box"]),
        texts=texts,
        face_colours=colours,  # type: ignore[arg-type]
        face_label_size=label_size,
        clearance=clearance,
        column_labels_y=float(column_labels_y) if column_labels_y is not None else None,
        ratings=tuple(rows),
        ticks=ticks,
        writing=WritingArea(
            label=w["label"],
            box=_rect(w["box"]),
            lines=tuple(float(y) for y in w.get("lines", [])),
            label_size=float(w["label_size"]),
        ),
        source=source,
    )


def validate(t: Template) -> list[str]:
    """Geometry checks every template must pass; returns plain-words problems (empty: fine).

    These are what make a pass readable: markers at the corners, nothing outside the pass,
    face zones that no neighbour's mark can reach, regions that don't run into each other.
    """
    problems: list[str] = []
    if len(t.code) != 1 or not t.code.isalpha():
        problems.append("code must be one letter")
    if len(t.marker_positions) != 4:
        problems.append("[markers] needs 4 positions (top-left, top-right, bottom-right, bottom-left)")
        return problems
    bounds = t.bounds
    # A marker needs a quiet zone of one cell (1/6 of its size) around it.
    quiet = t.marker_size / 6
    markers = [r.expanded(quiet) for r in t.marker_rects()]
    xs = [p[0] for p in t.marker_positions]
    ys = [p[1] for p in t.marker_positions]
    if not (xs[0] < xs[1] and xs[3] < xs[2] and ys[0] < ys[3] and ys[1] < ys[2]):
        problems.append("markers are not in top-left, top-right, bottom-right, bottom-left order")
    for f in ("name", "class_date", "lesson"):
        if t.text_block(f) is None:
            problems.append(f"no [[text]] block for {f!r}")
    for tb in t.texts:
        if tb.field not in TEXT_FIELDS:
            problems.append(f"unknown text field {tb.field!r}")
    named: list[tuple[str, Rect]] = [("the QR code", t.qr), ("the writing area", t.writing.box)]
    # A spare's handwritten name is ink like any other: keep it out of face zones and markers.
    named.append(("the name box", t.name_box))
    named += [(f"text {tb.field}", tb.box) for tb in t.texts]
    for i, row in enumerate(t.ratings):
        for f in row.faces:
            named.append((f"face {f.name} of row {i + 1}", f.zone))
        if row.criterion_box is not None:
            named.append((f"criterion box {i + 1}", row.criterion_box))
    if t.ticks is not None:
        for j, b in enumerate(t.ticks.boxes):
            named.append((f"tick box {j + 1}", Rect(b.x, b.y, b.w + 1 + t.ticks.text_width, b.h)))
    for what, r in named + [(f"marker {CORNERS[k]}", m) for k, m in enumerate(markers)]:
        if not r.inside(bounds):
            problems.append(f"{what} runs off the pass")
    for what, r in named:
        for k, m in enumerate(markers):
            if r.overlaps(m):
                problems.append(f"{what} overlaps the {CORNERS[k]} marker's quiet zone")
    # Face zones must not overlap each other, nor anything whose ink varies from pass to
    # pass (text, the QR code, handwriting, tick boxes): the reader compares a zone with the
    # template's blank rendering, which only holds what every pass prints the same.
    zones = [(n, r) for n, r in named if n.startswith("face ")]
    others = [(n, r) for n, r in named if not n.startswith("face ")]
    for a in range(len(zones)):
        for b in range(a + 1, len(zones)):
            if zones[a][1].overlaps(zones[b][1]):
                problems.append(f"{zones[a][0]} and {zones[b][0]} are too close")
        for n, r in others:
            if zones[a][1].overlaps(r):
                problems.append(f"{zones[a][0]} runs into {n}")
    return problems


# --------------------------------------------------------------------------- sheets

PAPER_SIZES_MM = {"a4": (210.0, 297.0), "letter": (215.9, 279.4)}
#: Blank margin around the sheet's edge: a skewed sheet in a sheet-fed copier loses its
#: corners, so markers keep >= 10 mm from the edge.
SHEET_MARGIN_MM = 6.5


@dataclass(frozen=True)
class Slot:
    """Where one pass goes on a sheet: its top-left corner and uniform scale, in mm."""

    x: float
    y: float
    scale: float
    cell: Rect  # the slot's cell on the sheet; cut lines run along cell edges


@dataclass(frozen=True)
class SheetLayout:
    paper: str
    landscape: bool
    size: tuple[float, float]  # sheet width, height in mm as printed (after orientation)
    slots: tuple[Slot, ...]  # in reading order: left to right, top to bottom
    cols: int
    rows: int


def sheet_layout(template: Template, paper: str = "a4", per_page: int = 4) -> SheetLayout:
    """Place ``per_page`` passes on a sheet, row by row, each scaled to fill its cell."""
    if paper not in PAPER_SIZES_MM:
        raise InputError(f"unknown paper {paper!r}; use a4 or letter")
    if per_page not in (1, 2, 4):
        raise InputError("--per-page must be 1, 2 or 4")
    pw, ph = PAPER_SIZES_MM[paper]
    tw, th = template.size
    cols, rows = {1: (1, 1), 2: (1, 2), 4: (2, 2)}[per_page]
    # Pick the sheet orientation whose cells best match the pass's shape.
    best = None
    for landscape in (False, True):
        sw, sh = (ph, pw) if landscape else (pw, ph)
        cw = (sw - 2 * SHEET_MARGIN_MM) / cols
        chh = (sh - 2 * SHEET_MARGIN_MM) / rows
        scale = min(cw / tw, chh / th)
        if best is None or scale > best[0]:
            best = (scale, landscape, sw, sh, cw, chh)
    assert best is not None
    scale, landscape, sw, sh, cw, chh = best
    slots = []
    for r in range(rows):
        for c in range(cols):
            cx = SHEET_MARGIN_MM + c * cw
            cy = SHEET_MARGIN_MM + r * chh
            x = cx + (cw - tw * scale) / 2
            y = cy + (chh - th * scale) / 2
            slots.append(Slot(x, y, scale, Rect(cx, cy, cw, chh)))
    return SheetLayout(paper, landscape, (sw, sh), tuple(slots), cols, rows)
