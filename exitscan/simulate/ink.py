"""Pens, pencils and felt tips: how a stroke looks on paper, and compositing it onto a sheet.

A stroke is a polyline in millimetres of the pass (x right, y down) with a pressure per
point; `draw_strokes` maps it through a 2x3 affine onto the sheet's pixels, draws it
anti-aliased with a width that follows the pressure, and lays the ink on by multiplying
(ink is a filter on paper: a pencil line over a green face is darker green, not grey).
Pencil gets paper-tooth grain and partial opacity; ballpoint is thin and nearly opaque;
felt tip is thick, slightly translucent, and darkens where a stroke crosses another.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

INSTRUMENTS = ("pencil", "ballpoint", "felt-tip")

#: Felt-tip colours children reach for: the three face colours first, then the rest of the tin.
FELT_COLOURS: dict[str, str] = {
    "green": "#2e9e44",
    "orange": "#f08c00",
    "red": "#d6303a",
    "blue": "#1f5fd1",
    "purple": "#7b3fb0",
    "pink": "#e0479e",
    "black": "#262626",
    "brown": "#7a4a22",
    "dark-green": "#1d6b3a",
    "light-blue": "#2aa3d8",
}
BALLPOINT_COLOURS: dict[str, str] = {"blue": "#1c3a9e", "black": "#23232b", "navy": "#1a2466"}
PENCIL_COLOUR = "#38383e"


def hex_rgb(colour: str) -> tuple[int, int, int]:
    """``#rrggbb`` -> (r, g, b)."""
    c = colour.lstrip("#")
    return (int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16))


@dataclass(frozen=True)
class Ink:
    """How one writing tool lays down a line. Widths in millimetres (on paper)."""

    instrument: str
    colour: str  # "#rrggbb"
    width_mm: float
    opacity: float  # 0-1, of a full-pressure line
    grain: float  # 0 (smooth) to 1 (pencil on rough paper)


def sample_ink(instrument: str, rng: np.random.Generator, colour: str | None = None) -> Ink:
    """A plausible tool of kind ``instrument``; ``colour`` (a name or ``#rrggbb``) to force one."""
    if instrument not in INSTRUMENTS:
        raise ValueError(f"unknown instrument {instrument!r}; use one of {', '.join(INSTRUMENTS)}")
    if colour is not None and not colour.startswith("#"):
        table = {**BALLPOINT_COLOURS, **FELT_COLOURS, "grey": PENCIL_COLOUR}
        if colour not in table:
            raise ValueError(f"unknown ink colour {colour!r}; use #rrggbb or one of {sorted(table)}")
        colour = table[colour]
    if instrument == "pencil":
        return Ink(
            "pencil",
            colour or PENCIL_COLOUR,
            float(rng.uniform(0.35, 0.6)),
            float(rng.uniform(0.6, 0.9)),
            float(rng.uniform(0.25, 0.55)),
        )
    if instrument == "ballpoint":
        if colour is None:
            colour = str(rng.choice(list(BALLPOINT_COLOURS.values()), p=[0.55, 0.35, 0.10]))
        return Ink("ballpoint", colour, float(rng.uniform(0.3, 0.5)), float(rng.uniform(0.85, 0.97)), 0.08)
    if colour is None:
        names = list(FELT_COLOURS)
        # Children often pick the face's own colour; the caller passes that when it wants it.
        colour = FELT_COLOURS[names[int(rng.integers(len(names)))]]
    return Ink("felt-tip", colour, float(rng.uniform(1.0, 1.9)), float(rng.uniform(0.82, 0.95)), 0.05)


# --------------------------------------------------------------------------- geometry helpers


def smooth_noise(t: np.ndarray, rng: np.random.Generator, terms: int = 3, scale: float = 1.0) -> np.ndarray:
    """A smooth random function of ``t`` (radians-like units), amplitude about ``scale``.

    A sum of a few sinusoids with random phases: cheap, seeded, and smooth enough for a hand.
    """
    out = np.zeros_like(t, dtype=np.float64)
    for k in range(1, terms + 1):
        out += rng.normal(0, 1) / k * np.sin(k * t + rng.uniform(0, 2 * np.pi))
    return out * scale / max(1.0, np.sqrt(sum(1 / k**2 for k in range(1, terms + 1))))


@dataclass(frozen=True)
class Stroke:
    """One pen-down movement: points (N, 2) in pass mm and pressures (N,) around 1."""

    points: np.ndarray
    pressure: np.ndarray

    @staticmethod
    def of(points: np.ndarray, rng: np.random.Generator, taper: float = 0.15) -> Stroke:
        """A stroke with natural pressure: lighter at the ends, wandering a little between."""
        n = len(points)
        t = np.linspace(0, 1, n)
        p = 1.0 + 0.12 * smooth_noise(t * 6, rng, 2)
        if taper > 0:
            p *= np.clip(np.minimum(t, 1 - t) / taper, 0.35, 1.0) ** 0.5
        return Stroke(np.asarray(points, dtype=np.float64), p)

    def transformed(self, centre: tuple[float, float], scale: float) -> Stroke:
        c = np.asarray(centre)
        return Stroke(c + (self.points - c) * scale, self.pressure)


def _apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ m[:, :2].T + m[:, 2]


def draw_strokes(
    sheet: np.ndarray,
    strokes: list[Stroke],
    ink: Ink,
    mm_to_px: np.ndarray,
    rng: np.random.Generator,
) -> None:
    """Draw ``strokes`` onto ``sheet`` (RGB uint8, (H, W, 3), modified in place).

    ``mm_to_px`` is the 2x3 affine from pass millimetres to the sheet's pixel coordinates
    (OpenCV's convention: pixel centres at integers). Each stroke is composited on its own, so
    felt-tip crossings darken like real ink does.
    """
    px_per_mm = float(np.sqrt(abs(np.linalg.det(mm_to_px[:, :2]))))
    for s in strokes:
        pts = _apply(mm_to_px, s.points)
        widths = np.maximum(1.0, ink.width_mm * px_per_mm * s.pressure)
        pad = int(np.ceil(widths.max())) + 3
        x0 = int(np.floor(pts[:, 0].min())) - pad
        y0 = int(np.floor(pts[:, 1].min())) - pad
        x1 = int(np.ceil(pts[:, 0].max())) + pad
        y1 = int(np.ceil(pts[:, 1].max())) + pad
        h, w = sheet.shape[:2]
        cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
        if cx0 >= cx1 or cy0 >= cy1:
            continue
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        fix = ((pts - (x0, y0)) * 16).round().astype(np.int32)  # 4 bits of sub-pixel precision
        for i in range(len(fix) - 1):
            th = max(1, round((widths[i] + widths[i + 1]) / 2))
            cv2.line(mask, tuple(fix[i]), tuple(fix[i + 1]), 255, th, cv2.LINE_AA, shift=4)
        cover = mask.astype(np.float32) * (ink.opacity / 255.0)
        if ink.grain > 0:
            tooth = rng.random(mask.shape, dtype=np.float32)
            tooth = cv2.GaussianBlur(tooth, (0, 0), 0.8)
            tooth = (tooth - tooth.mean()) / (tooth.std() + 1e-6)
            cover *= np.clip(1.0 - ink.grain * 0.45 * (1.0 + tooth), 0.0, 1.0)
        composite(sheet, cover[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0], ink.colour, (cx0, cy0))


def composite(sheet: np.ndarray, cover: np.ndarray, colour: str, at: tuple[int, int]) -> None:
    """Multiply ink of ``colour`` with coverage ``cover`` (float 0-1) onto ``sheet`` at (x, y)."""
    x, y = at
    hh, ww = cover.shape
    region = sheet[y : y + hh, x : x + ww]
    rgb = np.asarray(hex_rgb(colour), np.float32) / 255.0
    f = 1.0 - cover[..., None] * (1.0 - rgb)
    region[...] = np.clip(region.astype(np.float32) * f + 0.5, 0, 255).astype(np.uint8)
