"""How blurred a page is, measured on its markers: a shaken or out-of-focus photo's warning.

A phone photo taken with a shaking hand smears the handwriting so that no OCR engine reads
it (and a person struggles): measured on the simulator's phone photos, pages whose markers
were blurred by more than `BLURRED_MM` gave drafts with 42-57% of their characters wrong on
5 pages of 6, those under it at most 16%. The ratings are checked as usual (a faint mark is
still sent to review); what the teacher can do about the drafts is retake the photo, so the
batch says which pages.

Each marker is a black square with straight, sharp edges printed on white: across an edge
blurred by a Gaussian of width sigma, the brightness rises with a steepest slope of
contrast / (sigma * sqrt(2 pi)). The slope is read along each of the marker's two axes
and the blurrier axis counts (a shake smears one direction only), in millimetres of the
page (the marker's printed size gives the scale), so any resolution compares.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from exitscan.register import Marker

#: A page whose markers' blur (sigma, mm) reaches this is "blurred". Simulated scans: copier
#: 0.13-0.16 mm, 150-dpi scanner 0.20-0.26, steady phone photos 0.13-0.31, shaken ones
#: 0.33-0.60.
BLURRED_MM = 0.32
#: Markers measured on a page: a few suffice (one shake blurs the whole photo).
MARKERS_MEASURED = 4


def _quantile(values: np.ndarray, q: float) -> float:
    k = int(q * (values.size - 1))
    return float(np.partition(values, k)[k])


def marker_blur_mm(gray: np.ndarray, marker: Marker, marker_mm: float) -> float | None:
    """Blur (Gaussian sigma, mm of the page) of one marker's edges in ``gray``; None when the
    marker is too small or too faint to say."""
    c = marker.corners.astype(np.float64)
    side = marker.side
    if side < 8:
        return None
    pad = 0.25 * side
    x0, y0 = np.floor(c.min(axis=0) - pad).astype(int)
    x1, y1 = np.ceil(c.max(axis=0) + pad).astype(int)
    crop = gray[max(y0, 0) : max(y1, 0), max(x0, 0) : max(x1, 0)]
    if crop.shape[0] < 8 or crop.shape[1] < 8:
        return None
    crop = crop.astype(np.float32)
    flat = crop.ravel()
    contrast = _quantile(flat, 0.95) - _quantile(flat, 0.05)
    if contrast < 40:  # not a black square on white (cut off, or washed out): no figure
        return None
    # Sobel's 3x3 kernel answers 8x the slope of a ramp.
    gx = cv2.Sobel(crop, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    gy = cv2.Sobel(crop, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    dx, dy = c[1] - c[0]
    a = np.arctan2(dy, dx)
    along = np.abs(gx * np.cos(a) + gy * np.sin(a)).ravel()
    across = np.abs(-gx * np.sin(a) + gy * np.cos(a)).ravel()
    slope = min(_quantile(along, 0.995), _quantile(across, 0.995))
    if slope <= 0:
        return None
    sigma_px = contrast / (slope * np.sqrt(2.0 * np.pi))
    return float(sigma_px * marker_mm / side)


def page_blur_mm(gray: np.ndarray, markers: Sequence[Marker], marker_mm: float) -> float | None:
    """The median blur of a few of a page's markers (spread over its passes), or None."""
    if not markers:
        return None
    picked = sorted(markers, key=lambda m: (m.corner, m.group))[:MARKERS_MEASURED]
    values = [v for v in (marker_blur_mm(gray, m, marker_mm) for m in picked) if v is not None]
    return float(np.median(values)) if values else None


__all__ = ["BLURRED_MM", "MARKERS_MEASURED", "marker_blur_mm", "page_blur_mm"]
