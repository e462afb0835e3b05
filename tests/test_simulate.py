"""The scan simulator: its truth matches what it drew, it is deterministic, and its files read back.

Ink checks compare a filled-in page with the same sheet left blank (the ``clean`` profile has
no noise, skew or compression, so any difference is ink the simulator drew), zone by zone,
through the truth's own homography. Geometry checks find the printed ArUco markers in scans
of every profile and compare them with where the truth says each pass is.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pypdfium2 as pdfium
import pytest
from PIL import Image, ImageSequence

from exitscan.roster import Pupil
from exitscan.simulate import (
    PROFILES,
    Mark,
    PassMarks,
    TickMark,
    load_truth,
    make_batch,
    make_page,
    validate_truth,
)
from exitscan.simulate.__main__ import main as cli_main
from exitscan.simulate.batch import sample_lesson
from exitscan.simulate.pupil import read_row
from exitscan.template import ARUCO_DICTIONARY, Rect, load_template, marker_role

SAMPLE_SCANS = Path(__file__).resolve().parent.parent / "sample_scans"
#: A small class keeps the generator's PDF (one QR code per pass) quick to make.
CLASS = [Pupil("p1", "Siobhán Ní Bhriain"), Pupil("p2", "Zoë Schäfer"), Pupil("p3", "Łukasz Wiśniewski")]
INK = 30  # grey levels darker than the blank print: ink the simulator drew
TEXT = "I need to use more adjectives."


def grey(img: np.ndarray) -> np.ndarray:
    if img.dtype == bool:
        return img.astype(np.uint8) * 255
    return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img


def to_px(h: list[list[float]], pts: np.ndarray) -> np.ndarray:
    m = np.asarray(h)
    p = np.c_[pts, np.ones(len(pts))] @ m.T
    return p[:, :2] / p[:, 2:3]


def box_px(h: list[list[float]], r: Rect, shape: tuple[int, ...]) -> tuple[slice, slice]:
    """Rows and columns of the page covering rect ``r`` (pass mm), for an upright page."""
    c = to_px(h, np.array([[r.x, r.y], [r.right, r.bottom]]))
    x0, y0 = np.floor(c.min(axis=0)).astype(int)
    x1, y1 = np.ceil(c.max(axis=0)).astype(int) + 1
    return slice(max(0, y0), min(shape[0], y1)), slice(max(0, x0), min(shape[1], x1))


def ink_in(marked: np.ndarray, blank: np.ndarray, h, r: Rect) -> int:
    """Pixels inside rect ``r`` at least `INK` levels darker on ``marked`` than on ``blank``."""
    rows, cols = box_px(h, r, marked.shape)
    d = blank[rows, cols].astype(int) - marked[rows, cols].astype(int)
    return int((d > INK).sum())


def blank_page(**kw) -> np.ndarray:
    per_page = kw.get("per_page", 1)
    return grey(make_page([PassMarks.blank()] * per_page, profile="clean", **kw).image)


# --------------------------------------------------------------------------- truth vs ink


@pytest.mark.parametrize(
    "face,kind,instrument",
    [
        ("green", "circle", "pencil"),
        ("orange", "tick", "ballpoint"),
        ("red", "cross", "felt-tip"),
        ("green", "fill", "felt-tip"),
        ("red", "circle", "ballpoint"),
    ],
)
def test_a_mark_puts_ink_in_its_face_zone_only(face, kind, instrument):
    tpl = load_template("classic")
    page = make_page(PassMarks.clear(face, kind, instrument), profile="clean", seed=11)
    blank = blank_page(seed=11)
    (p,) = page.truth.passes
    assert (p.case, p.rating, p.review) == ("clear", face, False)
    assert [(m["face"], m["kind"], m["instrument"]) for m in p.marks] == [(face, kind, instrument)]
    g = grey(page.image)
    for f in tpl.ratings[0].faces:
        n = ink_in(g, blank, p.homography, f.zone)
        if f.name == face:
            assert n > 400, f"{kind} on {face}: only {n} inked pixels in its zone"
        else:
            assert n == 0, f"{kind} on {face} left {n} inked pixels on {f.name}"


def test_hard_cases_ink_where_the_truth_says():
    tpl = load_template("classic")
    specs = [
        PassMarks.blank(),
        PassMarks.multiple("green", "red", instrument="pencil"),
        PassMarks.corrected("orange", "green", instrument="ballpoint"),
        PassMarks.clear("orange", "circle", "felt-tip", loops=2),
    ]
    page = make_page(specs, per_page=4, profile="clean", seed=5)
    blank = blank_page(per_page=4, seed=5)
    g = grey(page.image)
    got = [(p.case, p.rating, p.review) for p in page.truth.passes]
    assert got == [
        ("none", "none", True),
        ("multiple", "multiple", True),
        ("corrected", "green", True),
        ("clear", "orange", False),
    ]
    inked = [{f.name for f in tpl.ratings[0].faces if ink_in(g, blank, p.homography, f.zone) > 400} for p in page.truth.passes]
    assert inked == [set(), {"green", "red"}, {"orange", "green"}, {"orange"}]


@pytest.mark.parametrize("template,seed", [("classic", 1), ("ticks", 2), ("criteria", 3), ("classic", 4)])
def test_random_pupils_ink_matches_truth(template, seed):
    """Whatever a random class does, every face, tick box, writing area and name box agrees."""
    tpl = load_template(template)
    mix = {"clear": 0.4, "none": 0.2, "multiple": 0.2, "corrected": 0.2}
    kw = {"template": template, "per_page": 4, "seed": seed, "pupils": [], "spares": 4}
    page = make_page(None, profile="clean", case_mix=mix, **kw)
    blank = grey(make_page([PassMarks.blank()] * 4, profile="clean", **kw).image)
    g = grey(page.image)
    lesson = sample_lesson(template, 0)
    n_rows = len(lesson.criteria) if tpl.is_per_criterion else 1
    for p in page.truth.passes:
        for row in range(n_rows):
            for f in tpl.ratings[row].faces:
                said = any(m["face"] == f.name and m["row"] == row for m in p.marks)
                n = ink_in(g, blank, p.homography, f.zone)
                assert (n > 150) == said, f"serial {p.serial} row {row} {f.name}: {n} px, truth {said}"
        if tpl.ticks is not None:
            for j, b in enumerate(tpl.ticks.boxes[: len(lesson.next_step_options)]):
                n = ink_in(g, blank, p.homography, b.expanded(-0.6))
                assert (n > 20) == (j in p.ticks), f"serial {p.serial} option {j}: {n} px, ticks {p.ticks}"
        wa = tpl.writing.box
        assert (ink_in(g, blank, p.homography, wa) > 100) == bool(p.next_step)
        name_area = Rect(tpl.name_box.x + 11, tpl.name_box.y, tpl.name_box.w - 11, tpl.name_box.h)
        assert (ink_in(g, blank, p.homography, name_area) > 50) == bool(p.spare_name)
    assert {p.case for p in page.truth.passes} <= {"clear", "none", "multiple", "corrected"}


def test_stray_marks_brush_their_zone_but_never_a_neighbour():
    """Children's marks may cross the zone's edge a little, never into the next face's zone."""
    tpl = load_template("criteria")
    lesson = sample_lesson("criteria", 0)
    faces = ("orange", "green", "red")
    spec = PassMarks(marks=tuple(Mark(f, "circle", "felt-tip", row=i, stray=True) for i, f in enumerate(faces)))
    kw = {"template": "criteria", "lesson": lesson, "seed": 9}
    page = make_page(spec, profile="clean", **kw)
    blank = blank_page(**kw)
    g = grey(page.image)
    (p,) = page.truth.passes
    for row, face in enumerate(faces):
        for f in tpl.ratings[row].faces:
            if f.name == face:
                assert ink_in(g, blank, p.homography, f.zone) > 300
                outside = ink_in(g, blank, p.homography, f.zone.expanded(1.4)) - ink_in(g, blank, p.homography, f.zone)
                assert outside >= 0
            else:
                assert ink_in(g, blank, p.homography, f.zone.expanded(-0.15)) == 0


def test_a_stray_fill_covers_its_label_and_is_for_a_person_to_look_at():
    """Colouring-in blown out to the zone's edge is as big as scribbling-out: the truth says
    review; a stray circle (a loose ring) is still a clear answer."""
    tpl = load_template("classic")
    face = tpl.ratings[0].faces[1]
    pages = {
        kind: make_page(PassMarks(marks=(Mark("orange", kind, "felt-tip", stray=True),)), profile="clean", seed=4)
        for kind in ("fill", "circle")
    }
    blank = blank_page(seed=4)
    fill, circle = (pages[k].truth.passes[0] for k in ("fill", "circle"))
    assert (fill.case, fill.rating, fill.review) == ("clear", "orange", True)
    assert (circle.case, circle.rating, circle.review) == ("clear", "orange", False)
    # The fill reaches well beyond the face: over its label, below it.
    label = face.label_box
    assert label is not None
    assert ink_in(grey(pages["fill"].image), blank, fill.homography, label) > 200
    plain = make_page(PassMarks.clear("orange", "fill", "felt-tip"), profile="clean", seed=4).truth.passes[0]
    assert plain.review is False


def test_marks_never_touch_the_markers_or_the_qr_code():
    tpl = load_template("classic")
    mix = {"clear": 0.5, "multiple": 0.25, "corrected": 0.25}
    for seed in (21, 22):
        page = make_page(None, per_page=4, profile="clean", seed=seed, case_mix=mix)
        blank = blank_page(per_page=4, seed=seed)
        g = grey(page.image)
        for p in page.truth.passes:
            for r in [*tpl.marker_rects(), tpl.qr]:
                assert ink_in(g, blank, p.homography, r.expanded(tpl.marker_size / 6)) == 0


def test_ticks_and_spare_names_are_recorded():
    spec = PassMarks(
        marks=(Mark("green", "circle", "pencil"),),
        ticks=(TickMark(1), TickMark(4, "cross")),
        text=TEXT,
        name="Róisín",
        hard_text=True,
    )
    page = make_page(spec, template="ticks", pupils=[], spares=1, seed=3)
    (p,) = page.truth.passes
    assert p.spare and p.student_id == ""
    assert p.ticks == [1, 4] and [t["kind"] for t in p.tick_marks] == ["tick", "cross"]
    assert p.spare_name == "Róisín"
    assert p.next_step == TEXT and p.writing is not None and p.writing["hard"]


def test_read_row_rules():
    m = Mark
    assert read_row([]) == ("none", "none")
    assert read_row([m("red")]) == ("clear", "red")
    assert read_row([m("red"), m("red", "tick")]) == ("clear", "red")
    assert read_row([m("red"), m("green", "fill")]) == ("multiple", "multiple")
    assert read_row([m("red"), m("red", "scribble"), m("green")]) == ("corrected", "green")
    assert read_row([m("red"), m("red", "scribble")]) == ("corrected", "none")
    with pytest.raises(ValueError, match="unknown face"):
        m("blue")


# --------------------------------------------------------------------------- scanning


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_profiles_give_the_right_pixels(profile):
    page = make_page(None, per_page=4, profile=profile, seed=7, orientation=0)
    img, t = page.image, page.truth
    p = PROFILES[profile]
    assert t.profile == profile and t.orientation == 0
    h, w = img.shape[:2]
    assert [w, h] == t.size_px
    if p.phone:
        assert img.dtype == np.uint8 and img.ndim == 3 and t.mode == "rgb"
        assert sorted((w, h)) in ([1536, 2048], [2268, 3024], [3024, 4032])
        assert t.encoding == "jpeg" and 80 < t.dpi < 400
        return
    assert t.dpi in p.dpi
    # A copier crops to the paper: the 4-up sheet is landscape A4.
    assert (w, h) == (round(297 * t.dpi / 25.4), round(210 * t.dpi / 25.4))
    if t.mode == "1":
        assert img.dtype == bool and img.ndim == 2 and t.encoding == "g4"
    elif t.mode == "gray":
        assert img.dtype == np.uint8 and img.ndim == 2
    else:
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    assert t.encoding == ("lossless" if profile == "clean" else "g4" if t.mode == "1" else "jpeg")
    assert {"classic"} == {ps.template for ps in t.passes} and len(t.passes) == 4


def _markers(img: np.ndarray) -> dict[int, np.ndarray]:
    d = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, ARUCO_DICTIONARY))
    det = cv2.aruco.ArucoDetector(d, cv2.aruco.DetectorParameters())
    corners, ids, _ = det.detectMarkers(grey(img))
    if ids is None:
        return {}
    return {int(i): c.reshape(4, 2).mean(axis=0) for i, c in zip(ids.ravel(), corners)}


@pytest.mark.parametrize(
    "profile,orientation,seed",
    [("copier", 90, 1), ("bw-copier", 180, 2), ("low-quality", 270, 3), ("phone", None, 4), ("mono-printer", 0, 5)],
)
def test_truth_geometry_finds_the_printed_markers(profile, orientation, seed):
    """The markers detected in the scan sit where the truth's homography puts them."""
    tpl = load_template("classic")
    page = make_page(None, per_page=2, profile=profile, seed=seed, orientation=orientation)
    found = _markers(page.image)
    assert len(found) >= 6, f"only {len(found)} of 8 markers found"
    by_group = {p.serial % 25: p for p in page.truth.passes}
    ms = tpl.marker_size
    for mid, centre in found.items():
        group, corner = marker_role(mid)
        p = by_group[group]
        x, y = tpl.marker_positions[corner]
        expect = to_px(p.homography, np.array([[x + ms / 2, y + ms / 2]]))[0]
        px_per_mm = np.linalg.norm(to_px(p.homography, np.array([[0, 0], [10, 0]])) @ [-1, 1]) / 10
        assert np.linalg.norm(centre - expect) < 0.6 * px_per_mm, f"marker {mid} off by {np.linalg.norm(centre - expect):.1f} px"
        x0, y0, x1, y1 = p.bbox
        assert x0 <= centre[0] <= x1 and y0 <= centre[1] <= y1


def test_orientation_turns_the_page():
    spec = [PassMarks.clear("green", text=TEXT)] * 4
    up = grey(make_page(spec, per_page=4, seed=2, orientation=0).image)
    for o, k in ((90, -1), (180, 2), (270, 1)):
        page = make_page(spec, per_page=4, seed=2, orientation=o)
        turned = grey(page.image)
        expect = np.rot90(up, k)
        assert turned.shape == expect.shape
        assert np.abs(turned.astype(int) - expect.astype(int)).mean() < 2.0, o
        # The first pass's top-left corner moves with the page.
        tl = page.truth.passes[0].corners[0]
        h, w = turned.shape
        quadrant = (tl[0] > w / 2, tl[1] > h / 2)
        assert quadrant == {90: (True, False), 180: (True, True), 270: (False, True)}[o]


def test_same_seed_same_page_and_other_seed_another():
    a = make_page(None, per_page=2, profile="copier", seed=42, orientation=None)
    b = make_page(None, per_page=2, profile="copier", seed=42, orientation=None)
    c = make_page(None, per_page=2, profile="copier", seed=43, orientation=None)
    assert a.scan.jpeg == b.scan.jpeg and np.array_equal(a.image, b.image)
    assert a.truth == b.truth
    assert a.scan.jpeg != c.scan.jpeg


# --------------------------------------------------------------------------- batches and files


def _files(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


def test_batch_is_byte_identical_for_a_seed_whatever_the_jobs(tmp_path):
    kw = {"per_page": 2, "profile": "low-quality", "formats": "pdf", "duplex": True, "seed": 8, "template": "ticks", "roster": CLASS}
    a = make_batch(tmp_path / "a", 4, jobs=1, **kw)
    b = make_batch(tmp_path / "b", 4, jobs=2, **kw)
    assert a == b
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    c = make_batch(tmp_path / "c", 4, jobs=1, **{**kw, "seed": 9})
    assert _files(tmp_path / "a")["scan_001.pdf"] != _files(tmp_path / "c")["scan_001.pdf"]
    assert c != a


def test_pdf_pages_are_images_of_the_right_size_with_duplex_backs(tmp_path):
    data = make_batch(tmp_path, 4, per_page=2, profile="copier", formats="pdf", duplex=True, seed=1, roster=CLASS)
    assert validate_truth(data, tmp_path) == []
    (f,) = data["files"]
    pages = f["pages"]
    assert [p["kind"] for p in pages] == ["pass", "blank", "pass", "blank"]
    assert [p["back_of"] for p in pages] == [None, 1, None, 3]
    pdf = pdfium.PdfDocument(tmp_path / f["file"])
    assert len(pdf) == 4
    for i, t in enumerate(pages):
        objs = list(pdf[i].get_objects())
        assert len(objs) == 1 and isinstance(objs[0], pdfium.PdfImage)
        w, h = t["size_px"]
        assert tuple(objs[0].get_px_size()) == (w, h)
        pw, ph = pdf[i].get_size()
        assert abs(pw - w * 72 / t["dpi"]) < 0.01 and abs(ph - h * 72 / t["dpi"]) < 0.01
    # A blank back is near-white paper; its front is not.
    front = grey(np.asarray(pdf[0].render(scale=0.5).to_pil().convert("L")))
    back = grey(np.asarray(pdf[1].render(scale=0.5).to_pil().convert("L")))
    assert (back < 128).mean() < 0.002 < (front < 128).mean()
    assert back.std() > 0.3  # paper noise, not a flat fill


def test_tiff_is_multipage_g4_for_black_and_white(tmp_path):
    data = make_batch(tmp_path, 3, per_page=1, profile="bw-copier", formats="tiff", seed=4, template="criteria", roster=CLASS)
    assert validate_truth(data, tmp_path) == []
    (f,) = data["files"]
    with Image.open(tmp_path / f["file"]) as im:
        frames = list(ImageSequence.Iterator(im))
        assert len(frames) == len(f["pages"]) == 3
        for fr, t in zip(frames, f["pages"]):
            assert fr.mode == "1" and fr.info["compression"] == "group4"
            assert list(fr.size) == t["size_px"] and round(fr.info["dpi"][0]) == t["dpi"]


def test_tiff_of_a_colour_copier_is_jpeg_compressed(tmp_path):
    data = make_batch(tmp_path, 2, per_page=2, profile="low-quality", formats="tiff", seed=6, roster=CLASS)
    (f,) = data["files"]
    with Image.open(tmp_path / f["file"]) as im:
        assert im.info["compression"] == "jpeg" and im.mode in ("RGB", "L")
        assert list(im.size) == f["pages"][0]["size_px"]


@pytest.mark.parametrize("fmt,suffix,profile", [("jpeg", ".jpg", "low-quality"), ("png", ".png", "bw-copier")])
def test_single_image_files_one_per_page(tmp_path, fmt, suffix, profile):
    data = make_batch(tmp_path, 2, per_page=1, profile=profile, formats=fmt, duplex=True, seed=2, roster=CLASS)
    assert validate_truth(data, tmp_path) == []
    files = data["files"]
    assert len(files) == 4 and all(len(f["pages"]) == 1 for f in files)
    assert [f["pages"][0]["kind"] for f in files] == ["pass", "blank", "pass", "blank"]
    assert all(f["pages"][0]["back_of"] is None for f in files)
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == suffix) == sorted(f["file"] for f in files)
    for f in files:
        with Image.open(tmp_path / f["file"]) as im:
            assert im.format == ("JPEG" if fmt == "jpeg" else "PNG")
            assert list(im.size) == f["pages"][0]["size_px"]
            assert round(im.info["dpi"][0]) == f["pages"][0]["dpi"]


def test_truth_json_on_disk_validates_and_catches_lies(tmp_path):
    make_batch(tmp_path, 4, per_page=4, profile="phone", formats="jpeg", seed=3, case_mix={"none": 1.0}, roster=CLASS)
    data = load_truth(tmp_path / "truth.json")
    assert validate_truth(data, tmp_path) == []
    assert data["summary"]["cases"]["none"] == 4 == data["summary"]["passes"]
    p = data["files"][0]["pages"][0]["passes"][0]
    p["rating"] = "green"  # a "none" pass cannot be green
    assert any("does not fit case" in e for e in validate_truth(data))
    data["files"][0]["file"] = "missing.jpg"
    assert any("no such file" in e for e in validate_truth(data, tmp_path))


def test_cli_writes_a_batch_and_refuses_bad_input(tmp_path, capsys):
    out = tmp_path / "scans"
    roster = tmp_path / "class.csv"
    roster.write_text("id,name\n1,Zoë Schäfer\n2,\"O'Connor, Seán\"\n", encoding="utf-8")
    args = ["--passes", "2", "--per-page", "2", "--profile", "low-quality", "--format", "png", "--seed", "5"]
    rc = cli_main(["--out", str(out), "--roster", str(roster), *args])
    assert rc == 0
    assert "1 pages" in capsys.readouterr().out
    assert validate_truth(load_truth(out / "truth.json"), out) == []
    bad_roster = tmp_path / "r.csv"
    bad_roster.write_text("id,nom\n1,Zoë\n", encoding="utf-8")
    rc = cli_main(["--out", str(tmp_path / "x"), "--passes", "1", "--roster", str(bad_roster)])
    assert rc == 3 and "roster" not in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        cli_main(["--out", str(tmp_path / "y"), "--profile", "fax"])
    assert e.value.code == 2


# --------------------------------------------------------------------------- the demo set


def test_sample_scans_match_their_truth():
    data = json.loads((SAMPLE_SCANS / "truth.json").read_text(encoding="utf-8"))
    assert validate_truth(data, SAMPLE_SCANS) == []
    total = sum(p.stat().st_size for p in SAMPLE_SCANS.rglob("*") if p.is_file())
    assert total <= 5 * 1024 * 1024
    pages = [p for f in data["files"] for p in f["pages"]]
    assert 10 <= len(pages) <= 14
    assert {p["profile"] for p in pages} >= {"copier", "bw-copier", "low-quality", "phone", "mono-printer"}
    assert {f["format"] for f in data["files"]} == {"pdf", "tiff", "jpeg", "png"}
    assert {f["template"] for f in data["files"]} == {"classic", "ticks", "criteria"}
    assert any(p["kind"] == "blank" for p in pages) and any(p["orientation"] == 180 for p in pages)
    cases = {ps["case"] for p in pages for ps in p["passes"]}
    assert cases == {"clear", "none", "multiple", "corrected"}
    for f in data["files"]:
        path = SAMPLE_SCANS / f["file"]
        if f["format"] == "pdf":
            assert len(pdfium.PdfDocument(path)) == len(f["pages"])
        else:
            with Image.open(path) as im:
                assert getattr(im, "n_frames", 1) == len(f["pages"])
                assert list(im.size) == f["pages"][0]["size_px"]
    assert (SAMPLE_SCANS / "README.md").is_file()
