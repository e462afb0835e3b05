"""Handwriting crops: print removed, crossing strokes kept, trimmed, written vs empty.

Pages come from the scan simulator (real passes, handwriting-like fonts, known truth); dirt
and crossing strokes are drawn onto them in the pass's millimetres through the truth's
homography, so every test knows exactly what should come out.
"""

from __future__ import annotations

from itertools import pairwise

import cv2
import numpy as np
import pytest

from exitscan.handwriting import CROP_PX_PER_MM, clean_area, deslant, slant_of
from exitscan.nextsteps import best_match, cer, levenshtein, normalise
from exitscan.read import read_page
from exitscan.register import find_markers, register_page
from exitscan.simulate import Mark, PassMarks, make_page
from exitscan.template import load_template

SENTENCE = "Use commas in a list."


def gray(page) -> np.ndarray:
    img = page.image
    if img.dtype == bool:
        return np.where(img, 255, 0).astype(np.uint8)
    if img.ndim == 3:
        return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    return img.copy()


def to_px(page, x_mm: float, y_mm: float, which: int = 0) -> tuple[int, int]:
    h = np.array(page.truth.passes[which].homography, np.float64)
    v = h @ np.array([x_mm, y_mm, 1.0])
    return round(v[0] / v[2]), round(v[1] / v[2])


def px_per_mm(page, which: int = 0) -> float:
    a, b = to_px(page, 10, 10, which), to_px(page, 110, 10, which)
    return float(np.hypot(b[0] - a[0], b[1] - a[1]) / 100)


def crop_of(g: np.ndarray, template: str = "classic", bilevel: bool = False, box=None):
    t = load_template(template)
    regs, _ = register_page(g, lambda _: t, find_markers(g))
    assert len(regs) == 1
    return clean_area(g, regs[0], t.name, box or t.writing.box, CROP_PX_PER_MM, bilevel)


@pytest.fixture(scope="module")
def blank_page():
    return make_page(PassMarks.clear("green", text=""), profile="clean", seed=4)


# --------------------------------------------------------------------------- written or not


@pytest.mark.parametrize("profile", ["clean", "copier", "bw-copier", "low-quality", "phone", "mono-printer"])
def test_written_and_empty_areas_are_told_apart_on_every_profile(profile):
    marks = [PassMarks.clear("green", text=SENTENCE), PassMarks.clear("orange", text="")]
    page = make_page(marks, per_page=2, profile=profile, seed=11)
    res = read_page(gray(page), "scan.png", 1)
    truth = {t.serial: t for t in page.truth.passes}
    assert len(res.passes) == 2
    for p in res.passes:
        t = truth[p.code.serial]
        assert p.next_step_written == bool(t.next_step), (profile, t.next_step, p.scores["writing"])
        assert p.writing_png  # every pass has its crop, written or not
        if not t.next_step:
            # Empty: no text, and a clear rating stays accepted.
            assert p.next_step_text == "" and p.status == "ok", (p.reason, p.scores["writing"])


def test_printed_label_and_rules_alone_are_not_writing(blank_page):
    crop = crop_of(gray(blank_page))
    assert not crop.written
    assert crop.evidence["strokes"] == 0 and crop.reason == "nothing written"
    # The empty crop is the area as scanned: the printed rules are still there to see.
    assert crop.image.shape == (round(24 * CROP_PX_PER_MM), round(120 * CROP_PX_PER_MM))
    assert (crop.image < 200).any(axis=1).sum() >= 2


def test_dirt_specks_and_a_stray_dot_are_not_writing(blank_page):
    g = gray(blank_page)
    k = px_per_mm(blank_page)
    rng = np.random.default_rng(3)
    for _ in range(6):  # copier dust: 0.2-0.4 mm specks scattered over the area
        x, y = rng.uniform(20, 128), rng.uniform(80, 98)
        cv2.circle(g, to_px(blank_page, x, y), max(1, round(rng.uniform(0.1, 0.2) * k)), 40, -1)
    cv2.circle(g, to_px(blank_page, 70, 84), round(0.6 * k), 30, -1)  # a stray felt-tip dot
    # A faint grey smudge (a thumb), wide but light.
    smudge = np.zeros_like(g, np.float32)
    cv2.ellipse(smudge, to_px(blank_page, 100, 92), (round(6 * k), round(3 * k)), 0, 0, 360, 1.0, -1)
    smudge = cv2.GaussianBlur(smudge, (0, 0), 1.5 * k)
    g = np.clip(g.astype(np.float32) * (1 - 0.12 * smudge), 0, 255).astype(np.uint8)
    crop = crop_of(g)
    assert not crop.written, crop.evidence
    assert crop.evidence["specks"] >= 1
    assert crop.reason == "only specks or a stray mark"


def test_a_short_word_is_writing():
    page = make_page(PassMarks.clear("green", text="yes"), profile="copier", seed=5)
    crop = crop_of(gray(page))
    assert crop.written, crop.evidence


# --------------------------------------------------------------------------- the clean crop


@pytest.mark.parametrize("profile, seed", [("copier", 9), ("copier", 12), ("clean", 8), ("phone", 12)])
def test_rules_and_label_are_removed_and_the_crop_is_trimmed(profile, seed):
    page = make_page(PassMarks.clear("green", text=SENTENCE), profile=profile, seed=seed)
    crop = crop_of(gray(page))
    assert crop.written
    img = crop.image
    h, w = img.shape
    # Trimmed to the writing: far smaller than the 120 x 24 mm area, a white margin all round.
    assert w < 120 * CROP_PX_PER_MM * 0.9 and h < 24 * CROP_PX_PER_MM * 0.8
    m = int(1.5 * CROP_PX_PER_MM)
    assert img[:m].min() > 200 and img[-m:].min() > 200 and img[:, :m].min() > 200 and img[:, -m:].min() > 200
    # No ruled line left, not even a grey one: it would be a row inked almost all the way
    # across (the densest row of handwriting is about half ink).
    assert (img < 200).mean(axis=1).max() < 0.7
    # The paper is white, the strokes dark (light pencil is stretched, not left grey).
    assert np.median(img) == 255 and img.min() < 60
    # The label "My next step:" is not in the crop: it sits above the writing's first line.
    assert crop.box_mm[1] > 76 + 1.0


def test_a_stroke_crossing_a_ruled_line_is_kept_whole(blank_page):
    g = gray(blank_page)
    k = px_per_mm(blank_page)
    # A pupil's long downstroke through the first ruled line (y = 87 mm), and a horizontal
    # one lying along it for a while: the first must survive the line's removal unbroken.
    cv2.line(g, to_px(blank_page, 50, 80), to_px(blank_page, 50, 95), 60, max(1, round(0.4 * k)))
    cv2.line(g, to_px(blank_page, 60, 83), to_px(blank_page, 80, 83), 60, max(1, round(0.4 * k)))
    crop = crop_of(g)
    assert crop.written
    bx, by = crop.box_mm[0], crop.box_mm[1]
    col = round((50 - bx) * CROP_PX_PER_MM)
    rows = range(round((81 - by) * CROP_PX_PER_MM), round((94 - by) * CROP_PX_PER_MM))
    band = crop.image[:, col - 3 : col + 4]
    gaps = [r for r in rows if band[r].min() > 128]
    assert not gaps, f"stroke broken at crop rows {gaps} (rule at {round((87 - by) * CROP_PX_PER_MM)})"
    # ...and the rule itself is gone beside the stroke.
    rule_row = round((87 - by) * CROP_PX_PER_MM)
    assert crop.image[rule_row - 2 : rule_row + 3, col + 24 : col + 60].min() > 200


def test_the_spare_name_box_is_cleaned_too():
    named = make_page(PassMarks(marks=(Mark("green", "circle", "ballpoint"),), text="", name="Róisín Kelly"), pupils=[], spares=1, profile="copier", seed=2)
    res = read_page(gray(named), "scan.png", 1)
    (p,) = res.passes
    assert p.code.is_spare and p.name_png
    assert p.scores["name_writing"]["written"], p.scores["name_writing"]
    img = cv2.imdecode(np.frombuffer(p.name_png, np.uint8), cv2.IMREAD_GRAYSCALE)
    # The box outline and its "Name:" label are gone; the name is dark on white.
    assert img.shape[1] < 95 * CROP_PX_PER_MM and (img < 128).mean(axis=1).max() < 0.6
    unused = make_page(PassMarks(marks=(Mark("green", "circle", "ballpoint"),), text="", name=""), pupils=[], spares=1, profile="copier", seed=2)
    (q,) = read_page(gray(unused), "scan.png", 1).passes
    assert not q.scores["name_writing"]["written"], q.scores["name_writing"]


def test_for_ocr_is_upright_with_paper_around_and_empty_when_nothing_was_written(blank_page):
    page = make_page(PassMarks.clear("green", text=SENTENCE), profile="clean", seed=8)
    crop = crop_of(gray(page))
    img = crop.for_ocr()
    assert img.dtype == np.uint8 and img.ndim == 2
    assert img[:4].min() == 255 and img[-4:].min() == 255
    assert crop.for_ocr(px_per_mm=4.0).shape[0] < img.shape[0]
    assert crop_of(gray(blank_page)).for_ocr().size == 0


@pytest.mark.parametrize("angle", [-20, 0, 15])
def test_slant_is_measured_and_removed(angle):
    img = np.full((80, 300), 255, np.uint8)
    t = np.tan(np.radians(angle))
    for x in range(30, 270, 30):  # upright bars, then leaned by ``angle``
        top, bottom = (x + t * 30, 10), (x - t * 30, 70)
        cv2.line(img, (round(top[0]), top[1]), (round(bottom[0]), bottom[1]), 0, 3)
    assert abs(slant_of(img) - angle) <= 5
    upright = deslant(img)
    assert abs(slant_of(upright)) <= 5


# --------------------------------------------------------------------------- known next steps


def test_levenshtein_and_cer():
    assert levenshtein("kitten", "sitting") == 3
    assert levenshtein("", "abc") == 3 and levenshtein("abc", "abc") == 0
    assert cer("Use comas in a list.", "Use commas in a list.") == pytest.approx(1 / 21)
    assert cer("", "text") == 1.0 and cer("", "") == 0.0
    assert normalise("  Use COMMAS, in a list! ") == "use commas in a list"


def test_a_close_draft_is_offered_its_known_step_with_the_distance():
    known = ["Use commas in a list.", "Check my capital letters", "Practise my times tables"]
    m = best_match("Use cornmas in a 1ist", known)
    assert m is not None and m.text == "Use commas in a list."
    assert 0 < m.distance < 0.2
    assert best_match("Use commas in a list", known).distance == 0.0


def test_a_new_or_ambiguous_draft_is_offered_nothing():
    known = ["Use commas in a list.", "Check my capital letters"]
    assert best_match("I want to try the challenge next time", known) is None
    assert best_match("", known) is None
    # Halfway between two known steps: no offer rather than a coin toss.
    assert best_match("learn my 7 times table", ["Learn my 7 times tables", "Learn my 8 times tables"]) is not None
    assert best_match("learn my times table", ["Learn my 7 times table", "Learn my 8 times table"]) is None


# --------------------------------------------------------------------------- light strokes, print left over


def _word(g, page, x_mm: float, y_mm: float, value: int, k: float) -> None:
    """A word-like squiggle (two humps and a stem, ~6 x 4 mm) drawn in grey ``value``."""
    pts = [(0, 4), (1, 0), (2, 4), (3, 0), (4, 4), (5, 1), (5.5, -2), (6, 4)]
    px = np.array([to_px(page, x_mm + a, y_mm + b) for a, b in pts], np.int32)
    cv2.polylines(g, [px], False, value, max(1, round(0.4 * k)))


def test_a_light_word_beside_dark_writing_stays_in_the_crop(blank_page):
    g = gray(blank_page)
    k = px_per_mm(blank_page)
    for x in (20, 30, 40):  # pencil: ~0.37 ink
        _word(g, blank_page, x, 81, 160, k)
    # The same pupil pressing lightly: ~0.16 ink, under the 0.22 a stroke needs to count as
    # writing on its own, far above the paper's noise (as faint as a blurred scan leaves it).
    _word(g, blank_page, 90, 81, 214, k)
    crop = crop_of(g)
    assert crop.written
    bx = crop.box_mm[0]
    c0, c1 = round((90 - bx) * CROP_PX_PER_MM), round((96 - bx) * CROP_PX_PER_MM)
    assert c1 <= crop.image.shape[1], "the crop was trimmed before the light word"
    assert (crop.image[:, c0:c1] < 128).sum() >= 3 * CROP_PX_PER_MM, "the light word was dropped"


def test_a_light_word_alone_is_still_not_writing(blank_page):
    # Relaxed thresholds only once the area is known to be written: the decision is unchanged.
    g = gray(blank_page)
    _word(g, blank_page, 90, 81, 214, px_per_mm(blank_page))
    assert not crop_of(g).written


def test_a_label_printed_a_little_off_is_not_left_in_the_crop(blank_page):
    g = gray(blank_page)
    k = px_per_mm(blank_page)
    # The label "My next step:" (x 15-40, y 76.5-80 mm) printed 0.6 mm lower than the template
    # puts it, the ruled lines where they should be (the pass is upright on this page).
    (x0, y0), (x1, y1) = to_px(blank_page, 14.5, 76), to_px(blank_page, 45, 80.5)
    d = round(0.6 * k)
    g[y0 + d : y1 + d, x0:x1] = np.minimum(g[y0 + d : y1 + d, x0:x1], g[y0:y1, x0:x1])
    g[y0 : y0 + d, x0:x1] = np.maximum(g[y0 : y0 + d, x0:x1], 250)
    for x in (30, 45, 60, 75):  # writing from y = 81.5 mm down
        _word(g, blank_page, x, 83.5, 60, k)
    crop = crop_of(g)
    assert crop.written
    top = round((80.8 - crop.box_mm[1]) * CROP_PX_PER_MM)  # rows of the crop above y = 80.8 mm
    assert top <= 0 or crop.image[:top].min() > 128, f"print left in the crop's top {top} rows"


def test_pencil_a_1bit_scan_broke_into_dots_stays_in_the_crop(blank_page):
    g = gray(blank_page)
    k = px_per_mm(blank_page)
    for x in (20, 30):  # felt tip: solid strokes
        _word(g, blank_page, x, 81, 0, k)
    # The next word in light pencil, which the 1-bit scan kept as dots ~0.9 mm apart: too far
    # apart to bridge, and most of them further than a dot's reach from the felt-tip words.
    pts = np.array([(0, 4), (1, 0), (2, 4), (3, 0), (4, 4), (5, 1), (5.5, -2), (6, 4)], np.float64)
    for (a0, b0), (a1, b1) in pairwise(pts):
        for f in np.arange(0, 1, 0.9 / np.hypot(a1 - a0, b1 - b0)):
            cv2.circle(g, to_px(blank_page, 39 + a0 + f * (a1 - a0), 81 + b0 + f * (b1 - b0)), max(1, round(0.12 * k)), 0, -1)
    g = np.where(g > 128, 255, 0).astype(np.uint8)
    crop = crop_of(g, bilevel=True)
    assert crop.written
    bx = crop.box_mm[0]
    c0, c1 = round((43 - bx) * CROP_PX_PER_MM), round((45 - bx) * CROP_PX_PER_MM)
    assert c1 <= crop.image.shape[1], "the crop was trimmed before the dotted word's end"
    assert (crop.image[:, c0:c1] < 128).sum() >= 4, "the dotted word's end was dropped"


def test_a_crossbar_lying_on_a_ruled_line_is_kept(blank_page):
    g = gray(blank_page)
    k = px_per_mm(blank_page)
    for x in (20, 30):
        _word(g, blank_page, x, 81, 90, k)
    # A t written low: its stem stops short of the first ruled line (y = 87 mm), its crossbar,
    # 7 mm long, lies on the line, over most of one of the 10-mm strips the line is measured
    # in (x 54-64 mm from the area's left at 14 mm).
    cv2.line(g, to_px(blank_page, 56, 81), to_px(blank_page, 56, 85.8), 90, max(1, round(0.4 * k)))
    cv2.line(g, to_px(blank_page, 54.5, 87), to_px(blank_page, 61.5, 87), 90, max(1, round(0.4 * k)))
    crop = crop_of(g)
    assert crop.written
    bx, by = crop.box_mm[0], crop.box_mm[1]
    c0, c1 = round((56 - bx) * CROP_PX_PER_MM), round((60 - bx) * CROP_PX_PER_MM)
    row = round((87 - by) * CROP_PX_PER_MM)
    assert c1 <= crop.image.shape[1], "the crop was trimmed before the stroke on the line"
    band = crop.image[row - 2 : row + 3, c0:c1]
    assert (band.min(axis=0) < 128).mean() > 0.9, "the stroke was removed with the ruled line"


def test_a_descender_through_the_ruled_line_is_not_a_second_line(blank_page):
    g = gray(blank_page)
    k = px_per_mm(blank_page)
    t = max(1, round(0.4 * k))
    _word(g, blank_page, 20, 82.5, 60, k)
    # A "g": its bowl on the first line (ruled at y = 87 mm), its tail looping 4 mm below it.
    cv2.ellipse(g, to_px(blank_page, 31, 85), (round(1.2 * k), round(1.5 * k)), 0, 0, 360, 60, t)
    cv2.line(g, to_px(blank_page, 32.2, 84), to_px(blank_page, 32.2, 90.5), 60, t)
    cv2.ellipse(g, to_px(blank_page, 31, 90.5), (round(1.2 * k), round(1.2 * k)), 0, 0, 180, 60, t)
    crop = crop_of(g)
    assert crop.written
    assert crop.lines == 1, crop.evidence
