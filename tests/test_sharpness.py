"""How blurred a page is, from its markers' edges (the warning for shaken photos)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from exitscan.register import find_markers
from exitscan.sharpness import BLURRED_MM, page_blur_mm
from exitscan.simulate import PassMarks, make_page
from exitscan.template import load_template

MARKER_MM = load_template("classic").marker_size


@pytest.fixture(scope="module")
def copier_page():
    page = make_page([PassMarks.clear("green")] * 4, per_page=4, profile="clean", orientation=0, seed=3)
    img = page.image
    g = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img
    return g, page.dpi / 25.4


def _blur_of(g: np.ndarray) -> float:
    markers = find_markers(g)
    assert len(markers) >= 12
    b = page_blur_mm(g, markers, MARKER_MM)
    assert b is not None
    return b


def test_a_sharp_page_is_not_blurred(copier_page):
    g, _ = copier_page
    assert _blur_of(g) < 0.6 * BLURRED_MM


@pytest.mark.parametrize("sigma_mm", [0.4, 0.6])
def test_a_blurred_page_measures_about_its_blur(copier_page, sigma_mm):
    g, px_per_mm = copier_page
    blurred = cv2.GaussianBlur(g, (0, 0), sigma_mm * px_per_mm)
    got = _blur_of(blurred)
    assert got >= BLURRED_MM
    # The print's own edge (~0.1 mm) adds in quadrature: within 20% of the blur applied.
    assert abs(got - sigma_mm) < 0.2 * sigma_mm, got


@pytest.mark.parametrize("angle", [0, 90, 30])
def test_a_shake_in_one_direction_counts(copier_page, angle):
    """A shaken photo is smeared along one direction only; the sharp direction must not hide it."""
    g, px_per_mm = copier_page
    length = round(1.6 * px_per_mm) | 1  # a 1.6-mm smear: sigma ~0.46 mm
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0 / length
    rot = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), angle, 1.0)
    kernel = cv2.warpAffine(kernel, rot, (length, length))
    kernel /= kernel.sum()
    smeared = cv2.filter2D(g, -1, kernel)
    assert _blur_of(smeared) >= BLURRED_MM


def test_no_markers_no_figure():
    assert page_blur_mm(np.full((100, 100), 255, np.uint8), [], MARKER_MM) is None
