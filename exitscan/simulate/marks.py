"""What a child draws on a face: hand-like circles, ticks, crosses, colouring-in, scribbles.

Geometry only, in millimetres of the pass: each function returns `Stroke`s around a face,
and `fit_to` scales a mark about its anchor so that its ink (half the pen width included)
stays inside the face's zone — or, for the few marks that stray as children's do, brushes
just past the zone's edge without reaching a neighbouring face's zone.

Circles are never perfect: the radius wobbles, the centre is off, the ends neither meet nor
close (a gap or an overlap), some are ellipses, some go twice round, and some take in the
face's label too. Sizes follow children's: 1.2-1.9x the face's radius.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from exitscan.simulate.ink import Stroke, smooth_noise
from exitscan.template import FACE_NAMES, Face, Rect

MARK_KINDS = ("circle", "tick", "cross", "fill", "scribble")


@dataclass(frozen=True)
class Mark:
    """One mark a pupil makes on one face.

    ``kind``: circle, tick, cross, fill (colouring-in) or scribble (crossing a mark out).
    ``row``: which rating row (0 on single-row templates; the criterion's index otherwise).
    ``colour``: ink colour (a name from `ink.FELT_COLOURS`/`ink.BALLPOINT_COLOURS` or
    ``#rrggbb``); None picks the instrument's usual one. ``loops``: 2 draws a circle twice round.
    ``label``: the circle takes in the face's label. ``stray``: the mark brushes the zone's edge.
    """

    face: str
    kind: str = "circle"
    instrument: str = "ballpoint"
    row: int = 0
    colour: str | None = None
    loops: int = 1
    label: bool = False
    stray: bool = False

    def __post_init__(self) -> None:
        if self.face not in FACE_NAMES:
            raise ValueError(f"unknown face {self.face!r}; use one of {', '.join(FACE_NAMES)}")
        if self.kind not in MARK_KINDS:
            raise ValueError(f"unknown mark kind {self.kind!r}; use one of {', '.join(MARK_KINDS)}")
        if self.loops not in (1, 2):
            raise ValueError("loops must be 1 or 2")


def _step(length_mm: float) -> int:
    """Points for a path of this length: about one every 0.35 mm."""
    return max(8, int(length_mm / 0.35))


def circle(face: Face, rng: np.random.Generator, loops: int = 1, label: bool = False) -> tuple[list[Stroke], tuple[float, float]]:
    """A hand-drawn loop around ``face``; returns the strokes and the anchor to scale about."""
    cx, cy = face.centre
    r = face.radius
    if label and face.label_box is not None:
        lb = face.label_box
        top, bottom = cy - r, lb.bottom
        acx, acy = cx, (top + bottom) / 2
        ry = (bottom - top) / 2 * rng.uniform(1.08, 1.25)
        rx = max(r, lb.w / 2) * rng.uniform(1.15, 1.45)
        tilt = rng.normal(0, 0.08)
    else:
        acx, acy = cx, cy
        big = r * rng.uniform(1.2, 1.9)
        e = rng.uniform(0.78, 1.28) if rng.random() < 0.35 else rng.uniform(0.95, 1.05)
        rx, ry = big * e, big / e
        tilt = rng.uniform(0, np.pi)
        # Off-centre: children start the loop where the pen is, not at the centre.
        acx += rng.normal(0, 0.07) * big
        acy += rng.normal(0, 0.07) * big
    theta0 = rng.uniform(0, 2 * np.pi)
    direction = 1 if rng.random() < 0.55 else -1
    # Not closed: a gap of up to ~35 degrees, or an overlap of up to ~50 degrees.
    sweep = 2 * np.pi * loops + rng.uniform(-0.6, 0.85)
    n = _step(sweep * max(rx, ry))
    t = np.linspace(0, sweep, n)
    wobble = 1 + 0.045 * smooth_noise(t, rng, 3) + 0.02 * smooth_noise(t * 3, rng, 2)
    drift = rng.uniform(-0.08, 0.12) * t / (2 * np.pi)  # the second loop goes wider or tighter
    # The pen lands and lifts off the ideal path: the last 15% spirals in or out.
    end = np.clip((t / sweep - 0.85) / 0.15, 0, 1) * rng.uniform(-0.1, 0.14)
    rr = wobble + drift + end
    a = theta0 + direction * t
    x = rx * rr * np.cos(a)
    y = ry * rr * np.sin(a)
    ct, st = np.cos(tilt), np.sin(tilt)
    pts = np.stack([acx + ct * x - st * y, acy + st * x + ct * y], axis=1)
    return [Stroke.of(pts, rng, taper=0.04)], (acx, acy)


def _bezier(p0, p1, p2, n: int) -> np.ndarray:
    t = np.linspace(0, 1, n)[:, None]
    p0, p1, p2 = (np.asarray(p, dtype=np.float64) for p in (p0, p1, p2))
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2


def _rot(pts: np.ndarray, angle: float, about: tuple[float, float]) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    a = np.asarray(about)
    d = pts - a
    return a + np.stack([c * d[:, 0] - s * d[:, 1], s * d[:, 0] + c * d[:, 1]], axis=1)


def tick(centre: tuple[float, float], size: float, rng: np.random.Generator) -> list[Stroke]:
    """A check mark of overall height about ``size`` mm: a short stroke down, a long one up."""
    cx, cy = centre
    s = size
    a = np.array([cx - 0.42 * s, cy - 0.02 * s]) + rng.normal(0, 0.04 * s, 2)
    b = np.array([cx - 0.12 * s, cy + 0.38 * s]) + rng.normal(0, 0.04 * s, 2)
    c = np.array([cx + 0.5 * s, cy - 0.62 * s]) + rng.normal(0, 0.06 * s, 2)
    leg1 = _bezier(a, (a + b) / 2 + rng.normal(0, 0.05 * s, 2), b, _step(0.5 * s))
    leg2 = _bezier(b, (b + c) / 2 + (rng.normal(0.05, 0.08) * s, rng.normal(0.05, 0.05) * s), c, _step(1.0 * s))
    pts = np.concatenate([leg1, leg2[1:]])
    pts = _rot(pts, rng.normal(0, 0.18), (cx, cy))
    return [Stroke.of(pts, rng, taper=0.12)]


def cross(centre: tuple[float, float], half: float, rng: np.random.Generator) -> list[Stroke]:
    """Two crossing strokes of half-length about ``half`` mm."""
    cx, cy = centre
    angle = rng.normal(0, 0.2)
    out = []
    for sx in (1, -1):
        p0 = np.array([cx - sx * half, cy - half]) + rng.normal(0, 0.08 * half, 2)
        p2 = np.array([cx + sx * half, cy + half]) + rng.normal(0, 0.08 * half, 2)
        p1 = (p0 + p2) / 2 + rng.normal(0, 0.07 * half, 2)
        pts = _rot(_bezier(p0, p1, p2, _step(2.8 * half)), angle, (cx, cy))
        out.append(Stroke.of(pts, rng, taper=0.1))
    return out


def zigzag(
    centre: tuple[float, float],
    radius: float,
    spacing: float,
    angle: float,
    rng: np.random.Generator,
    coverage: float = 1.0,
    overshoot: float = 0.06,
) -> np.ndarray:
    """Back-and-forth hatching across a disc (one pen-down path), as in colouring-in."""
    cx, cy = centre
    n_lines = max(3, int(2 * radius / spacing))
    offsets = np.linspace(-radius, radius, n_lines)
    keep = int(np.ceil(n_lines * coverage))
    start = int(rng.integers(0, n_lines - keep + 1))
    pts = []
    for k, off in enumerate(offsets[start : start + keep]):
        half = np.sqrt(max(radius**2 - off**2, 0.0)) * (1 + rng.normal(0, overshoot))
        ends = [(-half, off), (half, off)]
        if k % 2:
            ends.reverse()
        for u, v in ends:
            pts.append((u + rng.normal(0, 0.04 * spacing), v + rng.normal(0, 0.12 * spacing)))
    arr = np.asarray(pts)
    # Densify so the pressure and width vary along each sweep.
    dense = [arr[0]]
    for p, q in itertools.pairwise(arr):
        m = max(2, int(np.hypot(*(q - p)) / 0.5))
        dense.extend(p + (q - p) * (np.arange(1, m + 1)[:, None] / m))
    return _rot(np.asarray(dense), angle, (0, 0)) + (cx, cy)


def fill(face: Face, width_mm: float, rng: np.random.Generator) -> list[Stroke]:
    """Colouring the face in: dense hatching over the disc, not always all of it."""
    radius = face.radius * rng.uniform(0.85, 1.06)
    spacing = width_mm * rng.uniform(0.55, 1.0)
    coverage = 1.0 if rng.random() < 0.6 else rng.uniform(0.7, 0.95)
    pts = zigzag(face.centre, radius, spacing, rng.uniform(0, np.pi), rng, coverage)
    return [Stroke.of(pts, rng, taper=0.02)]


def scribble(centre: tuple[float, float], radius: float, width_mm: float, rng: np.random.Generator) -> list[Stroke]:
    """Crossing something out: two fast, dense zigzags at different angles over the area."""
    out = []
    angle = rng.uniform(0, np.pi)
    for k in range(2):
        spacing = max(width_mm * 1.2, radius / rng.uniform(5, 9))
        pts = zigzag(centre, radius * rng.uniform(0.9, 1.05), spacing, angle + k * rng.uniform(0.9, 1.6), rng, 1.0, 0.15)
        out.append(Stroke.of(pts, rng, taper=0.02))
    return out


# --------------------------------------------------------------------------- fitting


def extent(strokes: list[Stroke], width_mm: float) -> Rect:
    """Bounding box of the ink of ``strokes`` (pen width included)."""
    pts = np.concatenate([s.points for s in strokes])
    hw = width_mm * float(max(s.pressure.max() for s in strokes)) / 2
    x0, y0 = pts.min(axis=0) - hw
    x1, y1 = pts.max(axis=0) + hw
    return Rect(float(x0), float(y0), float(x1 - x0), float(y1 - y0))


def max_scale(strokes: list[Stroke], anchor: tuple[float, float], width_mm: float, box: Rect) -> float:
    """The largest factor by which ``strokes`` can be scaled about ``anchor`` and stay in ``box``."""
    pts = np.concatenate([s.points for s in strokes])
    hw = width_mm * float(max(s.pressure.max() for s in strokes)) / 2
    ax, ay = anchor
    best = np.inf
    for d, lo, hi in ((pts[:, 0] - ax, box.x - ax + hw, box.right - ax - hw), (pts[:, 1] - ay, box.y - ay + hw, box.bottom - ay - hw)):
        pos, neg = d > 1e-9, d < -1e-9
        if pos.any():
            best = min(best, float((hi / d[pos]).min()))
        if neg.any():
            best = min(best, float((lo / d[neg]).min()))
    return max(best, 0.05)


def stray_box(zone: Rect, others: list[Rect], reach: float) -> Rect:
    """``zone`` grown by ``reach`` mm on each side where that does not touch another zone."""
    x0, y0, x1, y1 = zone.x, zone.y, zone.right, zone.bottom
    for side in range(4):
        trial = [x0, y0, x1, y1]
        trial[side] += -reach if side < 2 else reach
        r = Rect(trial[0], trial[1], trial[2] - trial[0], trial[3] - trial[1])
        if not any(r.overlaps(o) for o in others):
            x0, y0, x1, y1 = trial
    return Rect(x0, y0, x1 - x0, y1 - y0)


def fit_to(
    strokes: list[Stroke],
    anchor: tuple[float, float],
    width_mm: float,
    zone: Rect,
    others: list[Rect],
    stray: bool,
    rng: np.random.Generator,
) -> list[Stroke]:
    """Scale a mark so its ink stays in ``zone`` (a 0.3 mm margin), or brushes its edge if ``stray``."""
    if stray:
        box = stray_box(zone, others, rng.uniform(0.4, 1.2))
        s = max_scale(strokes, anchor, width_mm, box)
    else:
        s = min(1.0, max_scale(strokes, anchor, width_mm, zone.expanded(-0.3)))
    return [st.transformed(anchor, s) for st in strokes]


def draw_mark(
    mark: Mark,
    face: Face,
    width_mm: float,
    others: list[Rect],
    rng: np.random.Generator,
) -> list[Stroke]:
    """The strokes of ``mark`` on ``face``, fitted into its zone (see `fit_to`)."""
    r = face.radius
    anchor: tuple[float, float] = face.centre
    if mark.kind == "circle":
        strokes, anchor = circle(face, rng, mark.loops, mark.label)
    elif mark.kind == "tick":
        size = r * rng.uniform(1.0, 1.7)
        centre = (face.centre[0] + rng.normal(0, 0.12 * r), face.centre[1] + rng.normal(0, 0.12 * r))
        strokes = tick(centre, size, rng)
    elif mark.kind == "cross":
        centre = (face.centre[0] + rng.normal(0, 0.1 * r), face.centre[1] + rng.normal(0, 0.1 * r))
        strokes = cross(centre, r * rng.uniform(0.65, 1.15), rng)
    elif mark.kind == "fill":
        strokes = fill(face, width_mm, rng)
    else:
        strokes = scribble(face.centre, r * rng.uniform(1.3, 1.7), width_mm, rng)
    return fit_to(strokes, anchor, width_mm, face.zone, others, mark.stray, rng)
