"""Identity: decode a registered pass's QR code into whose pass it is and for which lesson.

The code is read from the registered image, where the template says it is, resampled at a
few scales (whole-page QR detection on noisy 150-200 dpi scans mostly fails). OpenCV's
detector sometimes raises instead of returning empty: that is caught and counts as a miss.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from exitscan import payload
from exitscan.register import Registration, warp
from exitscan.template import Template

#: Margin around the code's box (mm) so the finder patterns are never cut by a small error.
QR_MARGIN_MM = 2.5


@dataclass(frozen=True)
class Identity:
    code: payload.PassCode | None
    error: str  # plain words when code is None


def _attempts(crop: np.ndarray):
    yield crop
    _, otsu = cv2.threshold(crop, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    yield otsu
    yield cv2.GaussianBlur(crop, (0, 0), 1.2)


def read_code(gray: np.ndarray, reg: Registration, template: Template) -> Identity:
    q = template.qr.expanded(QR_MARGIN_MM)
    detector = cv2.QRCodeDetector()
    last_text = ""
    for px_per_mm in (8.0, 12.0, 6.0):
        crop = warp(gray, reg, q.x, q.y, q.w, q.h, px_per_mm)
        for attempt in _attempts(crop):
            try:
                text, _, _ = detector.detectAndDecode(attempt)
            except cv2.error:
                continue
            if text:
                last_text = text
                try:
                    return Identity(payload.decode(text), "")
                except payload.PayloadError:
                    continue
    if last_text:
        try:
            payload.decode(last_text)
        except payload.PayloadError as e:
            return Identity(None, f"the pass code says something else: {e}")
    return Identity(None, "the pass code (QR) could not be read")
