"""Handwritten-looking text: a next-step sentence on the ruled lines, a name in the name box.

Uses the handwriting fonts Debian ships (fonts-dkg-handwriting, fonts-breip, fonts-sjfonts,
fonts-comic-neue), found at their installed paths, and makes each line look written rather
than typeset: size, slant and baseline angle vary per writer, words bob up and down, spaces
are uneven, and the "hard" variant jitters every letter's size, position and angle. A font
is only used for text whose every character it has (names carry fadas, umlauts, Ł...);
when no handwriting font has them all, DejaVu Sans Oblique (or Pillow's own font) writes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from exitscan.simulate.ink import Ink, composite

_FONT_DIRS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"))
#: Handwriting font files by file name, and a weight for how often writers get each.
HAND_FONTS: dict[str, float] = {
    "dkg.ttf": 1.0,
    "dkgIt.ttf": 0.8,
    "dkgBd.ttf": 0.5,
    "Breip.ttf": 1.0,
    "SteveHand.ttf": 0.8,
    "Delphine.ttf": 0.6,
    "ComicNeue-Regular.otf": 0.6,
    "ComicNeue-Light.otf": 0.5,
    "ComicNeue-Italic.otf": 0.4,
}
_FALLBACKS = ("DejaVuSans-Oblique.ttf", "DejaVuSans.ttf")


@lru_cache(maxsize=1)
def font_files() -> dict[str, Path]:
    """Installed handwriting (and fallback) fonts: file name -> path."""
    wanted = set(HAND_FONTS) | set(_FALLBACKS)
    found: dict[str, Path] = {}
    for d in _FONT_DIRS:
        if d.is_dir():
            for p in sorted(d.rglob("*")):
                if p.name in wanted and p.name not in found:
                    found[p.name] = p
    return found


@lru_cache(maxsize=256)
def _font(name: str, size_px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    path = font_files().get(name)
    if path is None:
        return ImageFont.load_default(size_px)
    return ImageFont.truetype(str(path), size_px)


@lru_cache(maxsize=4096)
def _has_glyph(name: str, ch: str) -> bool:
    if ch.isspace():
        return True
    glyph = _glyph(name, ch)
    return bool(glyph.any()) and not np.array_equal(glyph, _glyph(name, "\U0010fffd"))


@lru_cache(maxsize=4096)
def _glyph(name: str, ch: str) -> np.ndarray:
    im = Image.new("L", (96, 96), 0)
    ImageDraw.Draw(im).text((16, 64), ch, font=_font(name, 40), fill=255, anchor="ls")
    return np.asarray(im)


@lru_cache(maxsize=64)
def _cap_ratio(name: str) -> float:
    """Cap height of the font per pixel of font size."""
    f = _font(name, 100)
    _x0, y0, _x1, y1 = f.getbbox("H", anchor="ls")
    return max(0.3, (y1 - y0) / 100 if y1 > y0 else 0.7)


def fonts_for(text: str) -> list[str]:
    """Handwriting fonts that can write all of ``text`` (else the fallbacks that can)."""
    have = font_files()
    ok = [n for n in HAND_FONTS if n in have and all(_has_glyph(n, c) for c in text)]
    if ok:
        return ok
    ok = [n for n in _FALLBACKS if n in have and all(_has_glyph(n, c) for c in text)]
    return ok or ["<pillow-default>"]


@dataclass(frozen=True)
class Hand:
    """One writer's way of writing: font, cap height (mm), slant and baseline tilt (degrees)."""

    font: str
    cap_mm: float
    slant_deg: float
    tilt_deg: float
    word_space: float  # multiple of the font's space width
    bob: float  # word baseline wobble, fraction of the cap height
    hard: bool  # per-letter jitter (a harder read for OCR)


def sample_hand(text: str, cap_mm: tuple[float, float], rng: np.random.Generator, hard: bool = False) -> Hand:
    names = fonts_for(text)
    w = np.array([HAND_FONTS.get(n, 1.0) for n in names])
    font = names[int(rng.choice(len(names), p=w / w.sum()))]
    return Hand(
        font=font,
        cap_mm=float(rng.uniform(*cap_mm)),
        slant_deg=float(rng.normal(4, 6)),
        tilt_deg=float(rng.normal(-0.3, 0.8)),
        word_space=float(rng.uniform(1.0, 1.8)),
        bob=float(rng.uniform(0.02, 0.08)),
        hard=hard,
    )


def _size_px(hand: Hand, px_per_mm: float) -> int:
    return max(6, round(hand.cap_mm * px_per_mm / _cap_ratio(hand.font)))


def line_width_mm(text: str, hand: Hand, px_per_mm: float) -> float:
    """About how wide ``text`` comes out in this hand, in mm."""
    size_px = _size_px(hand, px_per_mm)
    f = _font(hand.font, size_px)
    words = text.split()
    space = max(f.getlength(" "), 0.3 * size_px) * hand.word_space
    w = sum(f.getlength(wd) for wd in words) + space * max(0, len(words) - 1)
    if hand.hard:
        w *= 1.08
    return w / px_per_mm + abs(np.tan(np.radians(hand.slant_deg))) * hand.cap_mm


def wrap(text: str, hand: Hand, px_per_mm: float, width_mm: float) -> list[str]:
    """Break ``text`` into lines no wider than ``width_mm`` (a long word gets its own line)."""
    lines: list[str] = []
    cur = ""
    for wd in text.split():
        trial = f"{cur} {wd}".strip()
        if not cur or line_width_mm(trial, hand, px_per_mm) <= width_mm:
            cur = trial
        else:
            lines.append(cur)
            cur = wd
    if cur:
        lines.append(cur)
    return lines


def _render_line(text: str, hand: Hand, size_px: int, rng: np.random.Generator, thicken: int) -> tuple[np.ndarray, int, int]:
    """The line's coverage (uint8) and where its baseline starts in it (x, y)."""
    f = _font(hand.font, size_px)
    words = text.split()
    natural = sum(f.getlength(wd) for wd in words) + max(f.getlength(" "), 0.3 * size_px) * hand.word_space * 1.3 * len(words)
    est = int(natural * 1.25) + 4 * size_px + 2 * thicken
    h = int(size_px * 3.4)
    base_y = int(size_px * 2.2)
    canvas = np.zeros((h, est), np.uint8)
    img = Image.new("L", (est, h), 0)
    d = ImageDraw.Draw(img)
    x = float(size_px * 0.3)
    # Some fonts' spaces are hair-thin; children leave a finger space.
    space = max(f.getlength(" "), 0.3 * size_px) * hand.word_space
    for wi, word in enumerate(text.split()):
        if wi:
            x += space * rng.uniform(0.75, 1.3)
        dy = rng.normal(0, hand.bob) * size_px
        if not hand.hard:
            d.text((x, base_y + dy), word, font=f, fill=255, anchor="ls", stroke_width=thicken, stroke_fill=255)
            x += f.getlength(word)
            continue
        for ch in word:
            s = max(6, int(size_px * rng.uniform(0.86, 1.16)))
            fc = _font(hand.font, s)
            gw = int(fc.getlength(ch)) + 2 * s
            glyph = Image.new("L", (gw, 3 * s), 0)
            ImageDraw.Draw(glyph).text((s, 2 * s), ch, font=fc, fill=255, anchor="ls", stroke_width=thicken, stroke_fill=255)
            g = np.asarray(glyph.rotate(rng.normal(0, 6), resample=Image.BILINEAR, center=(s, 2 * s)))
            ox = round(x - s)
            oy = round(base_y + dy + rng.normal(0, 0.07) * size_px - 2 * s)
            # Clip the glyph to the canvas (a big letter near the edge loses a sliver, no more).
            y0, x0 = max(0, oy), max(0, ox)
            y1, x1 = min(h, oy + g.shape[0]), min(est, ox + g.shape[1])
            if y0 < y1 and x0 < x1:
                part = g[y0 - oy : y1 - oy, x0 - ox : x1 - ox]
                canvas[y0:y1, x0:x1] = np.maximum(canvas[y0:y1, x0:x1], part)
            x += fc.getlength(ch) * rng.uniform(0.92, 1.15)
    return np.maximum(np.asarray(img), canvas), int(size_px * 0.3), base_y


def write_line(
    sheet: np.ndarray,
    text: str,
    start_mm: tuple[float, float],
    hand: Hand,
    ink: Ink,
    mm_to_px: np.ndarray,
    rng: np.random.Generator,
) -> None:
    """Write ``text`` with its baseline starting at ``start_mm`` (pass mm) onto ``sheet``."""
    px_per_mm = float(np.sqrt(abs(np.linalg.det(mm_to_px[:, :2]))))
    size_px = _size_px(hand, px_per_mm)
    thicken = max(0, round((ink.width_mm - 0.45) * px_per_mm / 2))
    cover, bx, by = _render_line(text, hand, size_px, rng, thicken)
    # Slant (shear about the baseline) and tilt (rotation about the line's start), then the
    # pass's own placement on the sheet: one affine from the line's pixels to the sheet's.
    sh = np.tan(np.radians(hand.slant_deg))
    shear = np.array([[1, -sh, sh * by], [0, 1, 0], [0, 0, 1]], np.float64)
    t = np.radians(hand.tilt_deg)
    rot = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
    to_start = np.array([[1, 0, -bx], [0, 1, -by], [0, 0, 1]], np.float64)
    # Line pixels -> pass mm: scale by 1/px_per_mm and the pass's orientation on the sheet.
    lin = mm_to_px[:, :2] / px_per_mm  # rotation part of the pass on the sheet
    place = np.eye(3)
    place[:2, :2] = lin
    place[:2, 2] = mm_to_px[:, :2] @ np.asarray(start_mm) + mm_to_px[:, 2]
    m = (place @ rot @ shear @ to_start)[:2]
    h, w = cover.shape
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64) @ m[:, :2].T + m[:, 2]
    x0, y0 = np.floor(corners.min(axis=0)).astype(int) - 2
    x1, y1 = np.ceil(corners.max(axis=0)).astype(int) + 2
    H, W = sheet.shape[:2]
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(W, x1), min(H, y1)
    if x0 >= x1 or y0 >= y1:
        return
    m_local = m.copy()
    m_local[:, 2] -= (x0, y0)
    patch = cv2.warpAffine(cover, m_local, (int(x1 - x0), int(y1 - y0)), flags=cv2.INTER_LINEAR, borderValue=0)
    c = patch.astype(np.float32) * (ink.opacity / 255.0)
    if ink.grain > 0:
        tooth = cv2.GaussianBlur(rng.random(c.shape, dtype=np.float32), (0, 0), 0.8)
        tooth = (tooth - tooth.mean()) / (tooth.std() + 1e-6)
        c *= np.clip(1.0 - ink.grain * 0.45 * (1.0 + tooth), 0.0, 1.0)
    composite(sheet, c, ink.colour, (int(x0), int(y0)))


def fit_lines(
    text: str,
    hand: Hand,
    px_per_mm: float,
    width_mm: float,
    max_lines: int,
    min_cap_mm: float = 2.2,
) -> tuple[Hand, list[str]]:
    """Shrink the hand until ``text`` wraps into ``max_lines`` lines of ``width_mm`` (as pupils do)."""
    from dataclasses import replace

    h = hand
    while True:
        lines = wrap(text, h, px_per_mm, width_mm)
        if len(lines) <= max_lines and all(line_width_mm(ln, h, px_per_mm) <= width_mm for ln in lines):
            return h, lines
        if h.cap_mm <= min_cap_mm:
            return h, lines[:max_lines]
        h = replace(h, cap_mm=max(min_cap_mm, h.cap_mm * 0.9))


def limit_drift(hand: Hand, lines: list[str], px_per_mm: float, drift_mm: float = 1.2) -> Hand:
    """Clamp the baseline tilt so a line drifts at most ``drift_mm`` off its ruled line."""
    from dataclasses import replace

    width = max((line_width_mm(ln, hand, px_per_mm) for ln in lines), default=0.0)
    if width <= 0:
        return hand
    limit = float(np.degrees(np.arctan(drift_mm / width)))
    return replace(hand, tilt_deg=float(np.clip(hand.tilt_deg, -limit, limit)))
