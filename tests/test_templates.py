"""Templates: the shipped ones are sound, broken ones are refused with the reason, sheets tile."""

from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import pytest

from exitscan.errors import InputError
from exitscan.template import (
    MARKER_GROUPS,
    TEMPLATES_DIR,
    Rect,
    available_templates,
    load_template,
    marker_ids,
    marker_role,
    sheet_layout,
    template_by_code,
    validate,
)

SHIPPED = ("classic", "ticks", "criteria")


def test_the_three_templates_ship_and_validate():
    assert set(SHIPPED) <= set(available_templates())
    codes = []
    for name in available_templates():
        t = load_template(name)
        assert validate(t) == [], name
        assert t.name == name
        codes.append(t.code)
        assert template_by_code(t.code).name == name
    assert len(codes) == len(set(codes)), "two templates share a QR code letter"


def test_template_kinds():
    classic, ticks, criteria = (load_template(n) for n in SHIPPED)
    assert not classic.is_per_criterion and classic.ticks is None and len(classic.ratings) == 1
    assert ticks.ticks is not None and len(ticks.ticks.boxes) == 6
    assert criteria.is_per_criterion and criteria.max_criteria == 4


@pytest.mark.parametrize("name", SHIPPED)
def test_faces_have_room_for_a_childs_circle(name):
    t = load_template(name)
    for row in t.ratings:
        faces = row.faces
        assert [f.name for f in faces] == ["green", "orange", "red"]
        assert faces[0].centre[0] < faces[1].centre[0] < faces[2].centre[0]  # told apart by position too
        for a, b in itertools.pairwise(faces):
            gap = (b.centre[0] - b.radius) - (a.centre[0] + a.radius)
            assert gap >= 8.0, f"{name}: only {gap:.1f} mm between the {a.name} and {b.name} faces"
        for a, b in itertools.combinations(faces, 2):
            assert not a.zone.overlaps(b.zone)
    if not t.is_per_criterion:
        assert t.clearance >= 8.0  # the issue's ~8 mm of clear space around each face


@pytest.mark.parametrize("name", SHIPPED)
def test_markers_sit_in_the_corners(name):
    t = load_template(name)
    w, h = t.size
    corners = [(0, 0), (w, 0), (w, h), (0, h)]
    for r, (cx, cy) in zip(t.marker_rects(), corners):
        mx, my = r.x + r.w / 2, r.y + r.h / 2
        assert abs(mx - cx) < 12 and abs(my - cy) < 12
    assert t.marker_size >= 7.0  # 4x4 cells + border: >= 1.1 mm cells for a 150 dpi copier


def test_marker_ids_are_distinct_and_say_group_and_corner():
    all_ids = [i for g in range(MARKER_GROUPS) for i in marker_ids(g)]
    assert len(set(all_ids)) == len(all_ids) == 4 * MARKER_GROUPS
    assert max(all_ids) < 100  # DICT_4X4_100
    assert cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_4X4_100).bytesList.shape[0] == 100
    for g in range(MARKER_GROUPS):
        assert [marker_role(i) for i in marker_ids(g)] == [(g, k) for k in range(4)]
    assert marker_ids(MARKER_GROUPS + 3) == marker_ids(3)  # groups cycle with the serial


@pytest.mark.parametrize("name", SHIPPED)
@pytest.mark.parametrize("paper", ["a4", "letter"])
@pytest.mark.parametrize("per_page", [1, 2, 4])
def test_sheet_layout_tiles_the_sheet(name, paper, per_page):
    t = load_template(name)
    layout = sheet_layout(t, paper, per_page)
    sw, sh = layout.size
    assert sorted(layout.size) == sorted({"a4": (210.0, 297.0), "letter": (215.9, 279.4)}[paper])
    assert len(layout.slots) == per_page == layout.cols * layout.rows
    sheet = Rect(0, 0, sw, sh)
    for s in layout.slots:
        placed = Rect(s.x, s.y, t.size[0] * s.scale, t.size[1] * s.scale)
        assert placed.inside(s.cell) and s.cell.inside(sheet)
        assert t.qr.w * s.scale >= 20.0  # the code's printed size, for poor scans
    for a, b in itertools.combinations(layout.slots, 2):
        assert not a.cell.overlaps(b.cell)
    # Reading order: left to right, then top to bottom.
    keys = [(round(s.y, 3), round(s.x, 3)) for s in layout.slots]
    assert keys == sorted(keys)


def test_sheet_layout_refuses_bad_options():
    t = load_template("classic")
    with pytest.raises(InputError, match="per-page"):
        sheet_layout(t, "a4", 3)
    with pytest.raises(InputError, match="a4 or letter"):
        sheet_layout(t, "a3", 4)


def test_unknown_template_lists_the_available_ones():
    with pytest.raises(InputError) as e:
        load_template("fancy")
    assert "unknown template 'fancy'" in e.value.message
    assert "classic, criteria, ticks" in e.value.message


# --------------------------------------------------------------------------- broken templates


def broken(tmp_path: Path, *replacements: tuple[str, str]) -> Path:
    """classic.toml with some text replaced, written to tmp_path."""
    text = (TEMPLATES_DIR / "classic.toml").read_text(encoding="utf-8")
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new)
    p = tmp_path / "mine.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_a_copy_of_a_shipped_template_loads_by_path(tmp_path):
    t = load_template(broken(tmp_path))
    assert t.name == "classic" and validate(t) == []


@pytest.mark.parametrize(
    ("replacements", "message"),
    [
        # Orange moved next to green: a circle round one would take in the other.
        ([("centres = [[28, 52], [62, 52], [96, 52]]", "centres = [[28, 52], [44, 52], [96, 52]]")],
         "face green of row 1 and face orange of row 1 are too close"),
        ([('clearance = 8 ', 'clearance = 20 ')], "are too close"),
        ([("box = [14, 76, 120, 24]", "box = [14, 60, 120, 40]")], "face green of row 1 runs into the writing area"),
        ([("box = [15, 3, 95, 7]", "box = [15, 3, 95, 40]")], "runs into the name box"),
        ([("position = [113, 13.5]", "position = [130, 13.5]")], "the QR code runs off the pass"),
        ([("position = [113, 13.5]", "position = [113, 6]")], "the QR code overlaps the top-right marker's quiet zone"),
        ([("positions = [[4, 4], [136, 4], [136, 93], [4, 93]]", "positions = [[136, 4], [4, 4], [136, 93], [4, 93]]")],
         "not in top-left, top-right, bottom-right, bottom-left order"),
        ([('code = "C"', 'code = "CL"')], "code must be one letter"),
        ([('field = "lesson"', 'field = "lesson_title"')], "unknown text field 'lesson_title'"),
        ([("[writing]", "[writing_area]")], "not a valid exitscan template"),
        ([("size = 28 ", "size = [28 ")], "not a valid exitscan template"),
    ],
)
def test_broken_templates_are_refused_with_the_reason(tmp_path, replacements, message):
    with pytest.raises(InputError) as e:
        load_template(broken(tmp_path, *replacements))
    assert e.value.message.startswith("mine.toml: ")
    assert message in e.value.message


def test_missing_template_file(tmp_path):
    with pytest.raises(InputError, match="template file not found"):
        load_template(tmp_path / "nope.toml")
