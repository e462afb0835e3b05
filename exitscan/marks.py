"""Reading the marks: which face was circled (or ticked, crossed, coloured in), which boxes ticked.

Works on a registered pass resampled to the template frame at `READ_PX_PER_MM`. Ink is
what is darker than the template's blank rendering expects at that spot: paper is
normalised by a background estimate (uneven light, grey or colour scans), the faces' tinted
fill by its observed level, and dark print is ignored. Each face zone yields an ink area in
square millimetres of the template (not pixels of one resolution), the angular coverage of
ink around the face (a ring) and the density of ink around it (scribbling out). The
decision keeps a margin: a clear single mark is accepted; anything less is sent to review,
with the reason and the raw scores kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache

import cv2
import numpy as np

from exitscan.reference import Reference
from exitscan.template import FACE_NAMES, Face, RatingRow, Rect, Template

#: A face at the template's usual size (radius 8.5 mm) is marked with at least this much
#: ink (mm^2); a pencil tick is ~6-10, a circle ~25-60, colouring-in ~100+. Scaled by face
#: size for smaller faces.
MARKED_MM2 = 3.5
#: Below this a zone counts as clean (dust, JPEG noise, a stray dot). Measured on 2,498
#: simulated rows (five profiles, three seeds): an unmarked face holds >= 0.5 mm^2 in 8 of
#: 5,017, each beside a neighbour's felt-tip circle (rows in review anyway), and never
#: 0.5-1.2; a real second mark can be this faint: a pencil tick across a face's tinted fill
#: on a phone photo left 0.96 mm^2 (at 1.2 the row was read as the other face alone).
CLEAN_MM2 = 0.5
#: The strongest face must have this many times the ink of the next one to be accepted.
MIN_RATIO = 4.0
#: Ink around a face (outside it) this dense is scribbling-out, not a circle.
SCRIBBLE_DENSITY = 0.22
#: A lone face this inked inside (fraction of its fill) and around (fraction of the space
#: around it) may be a mark scribbled out, the real answer lost: it goes to review.
SCRUBBED_INNER = 0.5
SCRUBBED_AROUND = 0.15
#: A face whose tinted fill shows darker than this fraction of the row's lightest face's was
#: coloured in or scribbled over, not printed so (226 simulated rows over five profiles:
#: printed faces >= 0.856 of the row's lightest, coloured-in ones <= 0.733); and a row whose
#: every face shows darker than this fraction of the blank rendering's tint has all three
#: coloured in (printed faces >= 0.85 of it).
COLOURED_RELATIVE = 0.8
COLOURED_ALL = 0.75
#: A face's only ink may be the edge of a shadow, not a mark, when it is barely ink (the
#: median level of its ink pixels is at least SHADE_DEPTH of the level expected there: shadow
#: edges 0.754-0.776, real marks 0.40-0.75), it is not a ring round the face (ring coverage
#: under RING_MARK), and the face's tint is lit unevenly (the darkest of its 24 sectors, by
#: each sector's brightest tint, under SHADE_EVENNESS of the brightest: shadow edges 0.79-0.85,
#: real marks that faint 0.94-0.99). Phone photos: 7 of 720 simulated blank passes, and once
#: in ~1,200 passes of the accuracy benchmark, were read as a face from a shadow across it;
#: now 0, at a cost of ~1 clear pass in 200 on phone and 150-dpi scans sent to review.
SHADE_DEPTH = 0.74
SHADE_EVENNESS = 0.9
RING_MARK = 0.5
#: ...and a shadow's ink is a sliver along its edge (0.015-0.126 of the face's fill inked),
#: where a light felt tip colouring in two thirds of a face covers 0.8 of it (depth 0.74,
#: evenness 0.76: the same light and unevenness, read "orange" on a copier scan).
SHADE_INNER = 0.3
#: Darker than the expected level by this fraction counts as ink.
INK_CONTRAST = 0.22
#: A row's only mark may be lighter than MARKED_MM2 (a light pencil tick: 2-3.5 mm^2) and
#: still be the answer, as a person reads it, if it holds this fraction of MARKED_MM2 and the
#: other faces hold no more than LONE_OTHERS of it (measured on 1790 simulated rows: ink at
#: unmarked faces reaches 0.33 of MARKED_MM2 only beside another face's mark, and is 0 in
#: 3284 of 3302; the faint ticks that were sent to review held 0.57-0.99).
LONE_MARK = 0.5
LONE_OTHERS = 0.05
NOMINAL_RADIUS = 8.5
#: Inked fraction of a tick box's inside that counts as ticked, and below which it is clean.
TICKED_FRACTION = 0.075
UNCLEAR_TICK_FRACTION = 0.045
#: Rows of faces (one per criterion) lie 14 mm apart, their zones touching, and a child's
#: circle round a face can reach ~1 mm past its zone into the next row's. A stroke that crosses
#: a zone's top or bottom edge and has more of itself beyond that edge (looked at up to
#: SPILL_MM past it) than inside belongs to the other row, where it is counted.
SPILL_MM = 4.0
#: Paper kept around the zones the reader looks at (mm): the paper level is taken from bare
#: paper up to ~2 mm away and smoothed over ~4.5 mm, so 8 mm leaves every zone's level as
#: it is on the whole pass; the rest of the pass (code, writing) is not resampled for marks.
REGION_MARGIN_MM = 8.0


@dataclass(frozen=True)
class FaceScore:
    face: str
    ink_mm2: float  # ink in the face's zone
    inner: float  # fraction of the face's fill that is inked
    ring: float  # angular coverage (0-1) of ink around the face
    density: float  # fraction of the space around the face that is inked

    def as_dict(self) -> dict[str, float]:
        return {
            "ink_mm2": round(self.ink_mm2, 2),
            "inner": round(self.inner, 3),
            "ring": round(self.ring, 3),
            "density": round(self.density, 3),
        }


@dataclass(frozen=True)
class RowReading:
    rating: str  # green | orange | red | none | multiple
    confident: bool  # False: a person should look
    reason: str  # plain words, empty when confident
    confidence: float  # 0-1
    scores: tuple[FaceScore, FaceScore, FaceScore]


@dataclass(frozen=True)
class TickReading:
    ticked: tuple[int, ...]  # 0-based option indices
    unclear: tuple[int, ...]
    fill: tuple[float, ...]  # inked fraction inside each box


def read_region(template: Template, margin_mm: float = REGION_MARGIN_MM) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1), whole mm: the part of a pass the mark reader looks at (every face
    zone and tick box, and the paper around them the paper level is taken from)."""
    zones = [f.zone for r in template.ratings for f in r.faces]
    zones += list(template.ticks.boxes) if template.ticks is not None else []
    w, h = template.size
    x0 = max(0, math.floor(min(z.x for z in zones) - margin_mm))
    y0 = max(0, math.floor(min(z.y for z in zones) - margin_mm))
    x1 = min(math.floor(w), math.ceil(max(z.right for z in zones) + margin_mm))
    y1 = min(math.floor(h), math.ceil(max(z.bottom for z in zones) + margin_mm))
    return x0, y0, x1, y1


def ink_map(pass_img: np.ndarray, ref: Reference, region: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Normalise a registered pass: (rows, cols) float32, 1.0 = its paper.

    ``pass_img`` is the pass warped to the reference's frame and scale, uint8; or, with
    ``region`` ((x0, y0, x1, y1), whole mm, see `read_region`), only that part of it: the map
    is still of the whole pass (1.0 outside the region), so zones index it the same way.
    The paper's brightness is measured only where the blank pass is bare paper, as the
    brightest paper within ~2.5 mm (a mark never covers all the paper around it), and
    carried smoothly into the printed parts. So a phone's shadow or uneven light is followed
    closely, and colouring-in, which sits on a face and not on paper, is never taken for paper.
    """
    if region is not None:
        s = round(ref.px_per_mm)
        x0, y0, x1, y1 = region
        sub = replace(
            ref,
            paper=ref.paper[y0 * s : y1 * s, x0 * s : x1 * s],
            paper_small=ref.paper_small[y0:y1, x0:x1],
        )
        # The region's map, with paper (1.0) around it (one call: OpenCV fills a border by rows).
        H, W = ref.paper.shape
        inner = ink_map(pass_img, sub)
        return cv2.copyMakeBorder(inner, y0 * s, H - y1 * s, x0 * s, W - x1 * s, cv2.BORDER_CONSTANT, value=1.0)
    h, w = pass_img.shape
    den = ref.paper_small
    size = (den.shape[1], den.shape[0])
    num = cv2.resize(cv2.bitwise_and(pass_img, ref.paper), size, interpolation=cv2.INTER_AREA)
    paper = np.where(den > 0.5, num.astype(np.float32) / np.maximum(den, 1e-3), 0.0).astype(np.float32)
    env = cv2.dilate(paper, np.ones((5, 5), np.uint8))
    known = (env > 0).astype(np.float32)
    if not known.all():  # far from any bare paper: carry the envelope in from around
        fill = cv2.GaussianBlur(env, (0, 0), 6.0) / _spread_weights(np.packbits(known > 0).tobytes(), known.shape)
        env = np.where(known > 0, env, fill)
        if not (known > 0).any():
            env = np.full_like(env, float(np.percentile(pass_img, 95)))
    bg = cv2.GaussianBlur(env, (0, 0), 1.5)
    bg = cv2.resize(np.maximum(bg, 8.0), (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.divide(pass_img, bg, dtype=cv2.CV_32F)


@lru_cache(maxsize=16)
def _spread_weights(known_bits: bytes, shape: tuple[int, int]) -> np.ndarray:
    """The weights `ink_map` carries the paper's envelope in with: where paper is known
    (``known_bits``: np.packbits of the (rows, cols) bool map), blurred, floored at 1e-3.

    Where paper is known is the template's bare paper on nearly every pass (unless a whole
    cell of it reads black), so this blur is made once per template and region, not per pass.
    """
    known = np.unpackbits(np.frombuffer(known_bits, np.uint8), count=shape[0] * shape[1]).reshape(shape)
    weights = np.maximum(cv2.GaussianBlur(known.astype(np.float32), (0, 0), 6.0), 1e-3)
    weights.setflags(write=False)
    return weights


def _zone_slices(zone: Rect, ref: Reference) -> tuple[slice, slice]:
    s = ref.px_per_mm
    y0, y1 = max(0, int(zone.y * s)), min(ref.lum.shape[0], int(np.ceil(zone.bottom * s)))
    x0, x1 = max(0, int(zone.x * s)), min(ref.lum.shape[1], int(np.ceil(zone.right * s)))
    return slice(y0, y1), slice(x0, x1)


@dataclass(frozen=True)
class _FaceGeometry:
    """Per-pixel facts about one face's zone, computed once per template and scale."""

    ys: slice
    xs: slice
    inside: np.ndarray  # bool: within the face's outline
    fill: np.ndarray  # bool: the face's tinted fill, clear of its print
    around: np.ndarray  # bool: paper just around the face (where a circle goes)
    outer: np.ndarray  # bool: from the face's rim outwards (for ring coverage)
    angle_bin: np.ndarray  # int: 24 angular sectors around the face's centre
    lum: np.ndarray  # float32: the blank rendering
    printed: np.ndarray  # bool: dark print
    clear: np.ndarray  # bool: not ``printed`` (where ink can be seen)
    tint: np.ndarray  # bool: the part of ``fill`` printed in a tint (what calibrates it)
    tint_level: float  # the blank rendering's median level over ``tint``
    lum_inside: np.ndarray  # float32: ``lum`` inside the face, +inf outside (paper is 1.0 there)
    n_fill: int
    n_tint: int
    n_around: int
    band: slice  # rows: the zone and SPILL_MM above and below it (a template of several rows)
    band_paper: np.ndarray  # bool, (band, xs): bare paper of the blank rendering there


_GEOMETRY: dict[tuple[str, float, int, int], _FaceGeometry] = {}


def _geometry(ref: Reference, face: Face, row_index: int) -> _FaceGeometry:
    key = (ref.template.name, ref.px_per_mm, row_index, face.index)
    g = _GEOMETRY.get(key)
    if g is None:
        ys, xs = _zone_slices(face.zone, ref)
        s = ref.px_per_mm
        yy, xx = np.mgrid[ys, xs]
        dx, dy = (xx + 0.5) / s - face.centre[0], (yy + 0.5) / s - face.centre[1]
        d = np.hypot(dx, dy)
        printed = ref.printed[ys, xs]
        lum = ref.lum[ys, xs]
        fill = (d < face.radius) & ~printed
        tint = fill & (lum < 0.97)
        e = round(SPILL_MM * s)
        band = slice(max(0, ys.start - e), min(ref.lum.shape[0], ys.stop + e))
        g = _FaceGeometry(
            ys=ys,
            xs=xs,
            inside=d < face.radius,
            fill=fill,
            around=(d >= face.radius + 0.6) & (d <= face.radius + 6.0) & ~printed,
            outer=d >= face.radius * 0.9,
            angle_bin=(((np.arctan2(dy, dx) + np.pi) / (2 * np.pi) * 24).astype(np.int32) % 24),
            lum=lum,
            printed=printed,
            clear=~printed,
            tint=tint,
            tint_level=float(np.median(lum[tint])) if tint.any() else 1.0,
            lum_inside=np.where(d < face.radius, lum, np.inf).astype(np.float32),
            n_fill=int(np.count_nonzero(fill)),
            n_around=int(np.count_nonzero((d >= face.radius + 0.6) & (d <= face.radius + 6.0) & ~printed)),
            n_tint=int(np.count_nonzero(tint)),
            band=band,
            band_paper=(ref.lum[band, xs] >= 0.97) & ~ref.printed[band, xs],
        )
        _GEOMETRY[key] = g
    return g


def _fill_calibration(norm: np.ndarray, ref: Reference, row: RatingRow, row_index: int) -> tuple[list[float], list[float | None]]:
    """How much darker (or lighter) each face's tinted fill printed than the reference says:
    (the factor each face is read with, the factor each face's fill shows; None: no tint).

    Printers, copiers and black-and-white dithering change each tint differently, so each
    face has its own factor; but a face is never expected darker than the row's median
    factor, so one coloured-in face still stands out as ink. (Two coloured-in faces make the
    median one of them: `_coloured_in` looks for that.)
    """
    ratios: list[float | None] = []
    for f in row.faces:
        g = _geometry(ref, f, row_index)
        if g.n_tint < 10:
            ratios.append(None)
            continue
        obs = _quantile(norm[g.ys, g.xs][g.tint], 0.6)
        ratios.append(obs / max(g.tint_level, 0.05))
    known = [r for r in ratios if r is not None]
    known.sort()  # (three values at most: np.median's overhead is most of a row's calibration)
    mid = len(known) // 2
    median = (known[mid] if len(known) % 2 else (known[mid - 1] + known[mid]) / 2) if known else 1.0
    # (Floored: with two faces coloured solid black the median is 0, and inf * 0 outside a face
    # is NaN. The row is `_coloured_in` then, whatever its faces score.)
    return [max(median if r is None else max(r, median), 0.01) for r in ratios], ratios


def _coloured_in(ratios: list[float | None]) -> list[int]:
    """The faces whose fill is so much darker than printing makes it that they were coloured in
    (or scribbled over): when two or more are, the row's calibration took one of them for the
    tint. Empty when the row looks printed as usual or only one face is."""
    known = [(i, r) for i, r in enumerate(ratios) if r is not None]
    if len(known) < 2:
        return []
    lightest = max(r for _, r in known)
    dark = [i for i, r in known if r < COLOURED_RELATIVE * lightest]
    if len(dark) >= 2:
        return dark
    if len(known) == len(ratios) and lightest < COLOURED_ALL:
        return [i for i, _ in known]
    return []


def _quantile(values: np.ndarray, q: float) -> float:
    """``np.quantile(values, q)`` (linear), by partitioning only: ~5x less overhead."""
    pos = q * (values.size - 1)
    lo = int(pos)
    hi = min(lo + 1, values.size - 1)
    part = np.partition(values, (lo, hi))
    return float(part[lo] + (pos - lo) * (part[hi] - part[lo]))


def score_face(
    norm: np.ndarray,
    ref: Reference,
    face: Face,
    fill_k: float,
    row_index: int = 0,
    smooth: np.ndarray | None = None,
) -> FaceScore:
    """Ink in one face's zone. ``smooth``: a smoothed ``norm`` read inside the face instead
    (black-and-white scans, where a dithered tint is dots of black, not a grey)."""
    g = _geometry(ref, face, row_index)
    n = norm[g.ys, g.xs]
    if smooth is not None:
        n = np.where(g.inside, smooth[g.ys, g.xs], n)
    s = ref.px_per_mm
    # Expected level: paper is 1.0; inside the face the tinted fill, as printed on this pass.
    # (In place: each temporary was a pass over the zone, a dozen zones a page.)
    expected = g.lum_inside * fill_k
    np.minimum(expected, 1.0, out=expected)
    expected *= 1.0 - INK_CONTRAST
    ink = n < expected
    ink &= g.clear
    # Drop isolated specks (JPEG noise, dust): keep pixels with two inked neighbours. (An
    # integer box sum counts them; filter2D's float kernel took twice the instructions.)
    neighbours = cv2.boxFilter(ink.view(np.uint8), -1, (3, 3), normalize=False, borderType=cv2.BORDER_CONSTANT)
    ink &= neighbours >= 3
    if len(ref.template.ratings) > 1 and (ink[0].any() or ink[-1].any()):
        ink = _without_spill(ink, norm, g)
    ink_mm2 = float(np.count_nonzero(ink)) / (s * s)
    inner = np.count_nonzero(ink & g.fill) / g.n_fill if g.n_fill else 0.0
    density = np.count_nonzero(ink & g.around) / g.n_around if g.n_around else 0.0
    ring_px = ink & g.outer
    if ring_px.any():
        bins = np.bincount(g.angle_bin[ring_px], minlength=24)
        ring = float((bins >= 2).mean())
    else:
        ring = 0.0
    return FaceScore(face.name, ink_mm2, inner, ring, density)


def _without_spill(ink: np.ndarray, norm: np.ndarray, g: _FaceGeometry) -> np.ndarray:
    """``ink`` (the zone's) without the strokes that cross its top or bottom edge and lie
    mostly beyond it: on a pass with a row of faces per criterion, a child's circle round a
    face of the next row reaches into this one's zone (`SPILL_MM`)."""
    band = norm[g.band, g.xs] < 1.0 - INK_CONTRAST
    band &= g.band_paper
    top = g.ys.start - g.band.start
    band[top : top + ink.shape[0]] = ink
    n, labels, stats, _ = cv2.connectedComponentsWithStats(band.view(np.uint8), connectivity=8)
    within = labels[top : top + ink.shape[0]]
    inside = np.bincount(within.ravel(), minlength=n)
    beyond = stats[:, cv2.CC_STAT_AREA] - inside > inside  # more of it outside than in
    beyond[0] = False
    return ink & ~beyond[within] if beyond.any() else ink


def _shadow_like(norm: np.ndarray, ref: Reference, face: Face, fill_k: float, row_index: int, smooth: np.ndarray | None) -> bool:
    """Whether one face's ink could be the edge of a shadow (see `SHADE_DEPTH`)."""
    g = _geometry(ref, face, row_index)
    n = norm[g.ys, g.xs]
    if smooth is not None:
        n = np.where(g.inside, smooth[g.ys, g.xs], n)
    rel = n / np.minimum(g.lum_inside * fill_k, 1.0)
    ink = (rel < 1.0 - INK_CONTRAST) & g.clear
    if not ink.any() or float(np.median(rel[ink])) < SHADE_DEPTH:
        return False
    tint = rel[g.tint]
    sectors = g.angle_bin[g.tint]
    levels = [float(np.percentile(tint[sectors == b], 90)) for b in range(24) if np.count_nonzero(sectors == b) >= 10]
    return bool(levels) and min(levels) < SHADE_EVENNESS * max(levels)


def row_printed(norm: np.ndarray, ref: Reference, row: RatingRow, row_index: int) -> bool:
    """Whether a rating row's faces were printed at all (criteria passes print only as many
    rows as the lesson has criteria; without the pass code, the page must say)."""
    printed = []
    for f in row.faces:
        g = _geometry(ref, f, row_index)
        outline = g.printed & g.inside
        if outline.any():
            # The darkest quarter: the outline and features, which every printer keeps.
            seen = float(np.percentile(norm[g.ys, g.xs][outline], 25))
            blank = float(np.percentile(g.lum[outline], 25))
            printed.append(seen < 1.0 - 0.5 * (1.0 - blank))  # nearer the print than paper
    return sum(printed) >= 2


def is_bilevel(img: np.ndarray) -> bool:
    """A black-and-white (1-bit) scan, as loaded: nearly every pixel is at one extreme."""
    hist = cv2.calcHist([np.ascontiguousarray(img)], [0], None, [256], [0, 256]).ravel()
    return bool(hist[:40].sum() + hist[216:].sum() > 0.97 * img.size)


#: Per template and scale: the bare-paper mask, and 1 / its blur (see `smoothed`).
_BARE: dict[tuple[str, float], tuple[np.ndarray, np.ndarray]] = {}


def smoothed(norm: np.ndarray, ref: Reference) -> np.ndarray:
    """``norm`` blurred over ~0.5 mm, the print left out: a dithered tint becomes the grey it
    stands for, and the black print beside it does not.

    A plain blur spread a face's black mouth and eyes ~1 mm into its tint, past the print
    mask, where the halo read as ink: a pencil tick on green came out "also a smaller mark
    near orange" on 1-bit scans. Only unprinted pixels are averaged here (a blur of the
    paper-only image divided by the blur of the paper mask)."""
    sigma = 0.5 * ref.px_per_mm
    key = (ref.template.name, ref.px_per_mm)
    if key not in _BARE:
        bare = (~ref.printed).astype(np.float32)
        # Deep inside thick print no bare pixel is near (weight ~0): print is never ink anyway.
        weight = np.maximum(cv2.GaussianBlur(bare, (0, 0), sigma), 0.05)
        _BARE[key] = (bare, 1.0 / weight)
    bare, inverse = _BARE[key]
    return cv2.GaussianBlur(norm * bare, (0, 0), sigma) * inverse


def read_row(
    norm: np.ndarray,
    ref: Reference,
    row: RatingRow,
    row_index: int = 0,
    smooth: np.ndarray | None = None,
) -> RowReading:
    """Decide which face of a row was marked, with a margin; unsure means review."""
    base = smooth if smooth is not None else norm
    ks, ratios = _fill_calibration(base, ref, row, row_index)
    scores = tuple(score_face(norm, ref, f, k, row_index, smooth) for f, k in zip(row.faces, ks))
    coloured = _coloured_in(ratios)
    if coloured:
        # Two (or three) faces coloured in: each was read against the other's darkness, so
        # neither shows as ink, and a spill outside one could pass for the only mark.
        names = " and ".join(FACE_NAMES[i] for i in coloured)
        return RowReading("multiple", False, f"{names} are coloured in (or scribbled over): check", 0.4, scores)  # type: ignore[arg-type]
    # Smaller faces take smaller marks: a tick or cross across a face scales with its size,
    # and on a small face most of it falls on the print, where ink can't be seen.
    size = row.faces[0].radius / NOMINAL_RADIUS
    marked_t = MARKED_MM2 * max(size * size, 0.25)
    clean_t = CLEAN_MM2 * max(size, 0.5)
    inks = [sc.ink_mm2 for sc in scores]
    order = sorted(range(3), key=lambda i: -inks[i])
    marked = [i for i in range(3) if inks[i] >= marked_t]
    unclear = [i for i in range(3) if clean_t <= inks[i] < marked_t]
    top, second = inks[order[0]], inks[order[1]]
    conf_strength = min(1.0, top / (3 * marked_t))
    conf_margin = 1.0 - second / top if top > 0 else 0.0

    def accepted(i: int, confidence: float) -> RowReading:
        sc = scores[i]
        if sc.ring < RING_MARK and sc.inner < SHADE_INNER and _shadow_like(norm, ref, row.faces[i], ks[i], row_index, smooth):
            reason = f"a faint mark at {FACE_NAMES[i]}, or a shadow across it: check"
            return RowReading(FACE_NAMES[i], False, reason, round(0.5 * confidence, 2), scores)  # type: ignore[arg-type]
        return RowReading(FACE_NAMES[i], True, "", confidence, scores)  # type: ignore[arg-type]

    if not marked and not unclear:
        return RowReading("none", False, "nothing marked", 0.9, scores)  # type: ignore[arg-type]
    if not marked:
        i = order[0]
        lone = top >= LONE_MARK * marked_t and second <= LONE_OTHERS * marked_t
        if lone and scores[i].density < SCRIBBLE_DENSITY:
            # One light mark and nothing at all anywhere else in the row: that is the answer,
            # with a confidence of 0.55-0.6 (a teacher sorting by it sees these first).
            return accepted(i, round(0.5 + 0.3 * conf_strength, 2))
        names = " and ".join(FACE_NAMES[i] for i in unclear)
        return RowReading(
            "none", False, f"only a faint mark near {names}", round(0.3 * conf_strength, 2), scores  # type: ignore[arg-type]
        )
    if len(marked) == 1:
        i = marked[0]
        sc = scores[i]
        if sc.inner >= SCRUBBED_INNER and sc.density >= SCRUBBED_AROUND:
            # Ink over the face *and* all round it: coloured in, or scribbled out? A
            # black-and-white copier can drop a light pen's other mark entirely, so this
            # is never taken as the answer on its own.
            return RowReading(
                FACE_NAMES[i],
                False,
                f"{FACE_NAMES[i]} is heavily marked (coloured in, or crossed out?): check",
                0.4,
                scores,  # type: ignore[arg-type]
            )
        if not unclear and top >= MIN_RATIO * max(second, clean_t * 0.5):
            return accepted(i, round(0.5 + 0.5 * min(conf_strength, conf_margin), 2))
        others = " and ".join(FACE_NAMES[j] for j in unclear) or FACE_NAMES[order[1]]
        return RowReading(
            FACE_NAMES[i],
            False,
            f"{FACE_NAMES[i]} is marked, but there is also a smaller mark near {others}",
            round(0.5 * conf_margin, 2),
            scores,  # type: ignore[arg-type]
        )
    # Two or three faces marked: a correction (all but one scribbled out), or several.
    scribbled = [i for i in marked if scores[i].density >= SCRIBBLE_DENSITY]
    kept = [i for i in marked if i not in scribbled]
    if len(kept) == 1 and scribbled:
        i = kept[0]
        gone = " and ".join(FACE_NAMES[j] for j in scribbled)
        return RowReading(
            FACE_NAMES[i],
            False,
            f"{gone} scribbled out and {FACE_NAMES[i]} marked: check the reading",
            0.5,
            scores,  # type: ignore[arg-type]
        )
    names = " and ".join(FACE_NAMES[j] for j in marked)
    return RowReading("multiple", False, f"more than one face marked ({names})", 0.8, scores)  # type: ignore[arg-type]


def read_ticks(norm: np.ndarray, ref: Reference, boxes: tuple[Rect, ...], n: int) -> TickReading:
    """Which of the first ``n`` tick boxes hold a mark (the inside of each box, its print excluded)."""
    fills = []
    ticked, unclear = [], []
    for j, b in enumerate(boxes[:n]):
        inner = Rect(b.x + 0.5, b.y + 0.5, b.w - 1.0, b.h - 1.0)
        ys, xs = _zone_slices(inner, ref)
        ink = (norm[ys, xs] < 1.0 - INK_CONTRAST) & ~ref.printed[ys, xs]
        frac = float(ink.mean()) if ink.size else 0.0
        fills.append(round(frac, 3))
        # A tick's stroke across the 3 mm inside of a box covers 10-30% of it; ink clipped
        # from a neighbour's tick or the pupil's writing stays under 5%.
        if frac >= TICKED_FRACTION:
            ticked.append(j)
        elif frac >= UNCLEAR_TICK_FRACTION:
            unclear.append(j)
    return TickReading(tuple(ticked), tuple(unclear), tuple(fills))
