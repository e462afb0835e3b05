"""Tests for exitscan.load: real files of every kind made in tmp_path, with known content."""

from __future__ import annotations

import io
import os
import pickle
import struct
import time
import warnings
import zipfile
import zlib
from pathlib import Path

import cv2
import numpy as np
import pypdfium2 as pdfium
import pytest
from PIL import Image, ImageOps
from reportlab.lib.pagesizes import A4, landscape, letter
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen import canvas

from exitscan.load import (
    MAX_PIXELS,
    PDF_DPI_DEFAULT,
    PDF_DPI_MAX,
    PDF_DPI_MIN,
    InputError,
    LoadedPage,
    LoadProblem,
    ScanFile,
    discover,
    load_page,
    page_count,
)

CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")


# --------------------------------------------------------------------------------------------
# helpers: sheets with a black block in a known corner, and a way to find it again


def sheet(rows: int, cols: int, corner: str = "top-left") -> np.ndarray:
    """White (rows, cols) uint8 page with a black block filling a third of one corner."""
    img = np.full((rows, cols), 255, np.uint8)
    r, c = rows // 3, cols // 3
    top = corner.startswith("top")
    left = corner.endswith("left")
    img[
        (slice(0, r) if top else slice(rows - r, rows)),
        (slice(0, c) if left else slice(cols - c, cols)),
    ] = 0
    return img


def dark_corner(img: np.ndarray) -> str:
    """The corner whose third is darkest; asserts it is clearly dark and the centre is light."""
    rows, cols = img.shape
    r, c = rows // 3, cols // 3
    means = {
        "top-left": img[:r, :c].mean(),
        "top-right": img[:r, -c:].mean(),
        "bottom-left": img[-r:, :c].mean(),
        "bottom-right": img[-r:, -c:].mean(),
    }
    corner = min(means, key=means.__getitem__)
    assert means[corner] < 60, means
    assert img[r + r // 4 : 2 * r - r // 4, c + c // 4 : 2 * c - c // 4].mean() > 200
    assert sorted(means.values())[1] > 200, means  # exactly one dark corner
    return corner


def scan_file(path: Path) -> ScanFile:
    return ScanFile(path=path, display=path.name)


def problem(f: ScanFile, index: int = 0) -> LoadProblem:
    with pytest.raises(LoadProblem) as info:
        load_page(f, index)
    return info.value


def write_pdf_of_images(path: Path, pages: list[np.ndarray], dpi: float) -> None:
    images = [Image.fromarray(p) for p in pages]
    images[0].save(path, save_all=True, append_images=images[1:], resolution=dpi)


# --------------------------------------------------------------------------------------------
# discover


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_discover_recurses_in_natural_order_and_skips_hidden_but_keeps_foreign(tmp_path):
    scans = tmp_path / "scans"
    for name in [
        "page10.jpg",
        "page2.jpg",
        "Page1.png",
        "sub/page3.tif",
        "sub 2/a.pdf",
        ".hidden.jpg",
        ".git/page0.jpg",
        "sub/.DS_Store",
        "Thumbs.db",
        "notes.docx",
    ]:
        touch(scans / name)
    found = discover([scans])
    assert [f.display for f in found] == [
        "notes.docx",
        "Page1.png",
        "page2.jpg",
        "page10.jpg",
        "sub/page3.tif",
        "sub 2/a.pdf",
        "Thumbs.db",
    ]
    assert all(f.path.is_absolute() and f.path.is_file() for f in found)
    assert found[4].path == (scans / "sub" / "page3.tif").absolute()
    assert discover([scans]) == found  # deterministic


def test_discover_keeps_input_order_lists_files_once_and_makes_names_unique(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    touch(tmp_path / "a" / "p1.jpg")
    touch(tmp_path / "b" / "p1.jpg")
    single = touch(tmp_path / "single.png")
    found = discover(["b", Path("a"), single, "a/p1.jpg"])
    assert [f.display for f in found] == ["b/p1.jpg", "a/p1.jpg", "single.png"]
    assert [f.path for f in found] == [
        tmp_path / "b" / "p1.jpg",
        tmp_path / "a" / "p1.jpg",
        single,
    ]
    files = discover(["a/p1.jpg", tmp_path / "b" / "p1.jpg", "b/../a/p1.jpg"])
    assert [f.display for f in files] == ["a/p1.jpg", f"{(tmp_path / 'b').as_posix()}/p1.jpg"]


def test_discover_rejects_missing_inputs_before_any_work(tmp_path):
    touch(tmp_path / "ok.jpg")
    with pytest.raises(InputError, match=r"nope\.pdf: no such file or folder"):
        discover([tmp_path / "ok.jpg", tmp_path / "nope.pdf"])
    with pytest.raises(InputError):
        discover([])
    # One class for bad inputs everywhere, so the CLI maps it to exit code 3.
    from exitscan.errors import InputError as CliInputError

    assert issubclass(InputError, CliInputError)


# --------------------------------------------------------------------------------------------
# every format, content landing where it should


@pytest.mark.parametrize(
    ("name", "save"),
    [
        ("p.png", lambda im, p: im.save(p)),
        ("p.jpg", lambda im, p: im.save(p, quality=90)),
        ("p.bmp", lambda im, p: im.save(p)),
        ("p.tif", lambda im, p: im.save(p, compression="tiff_lzw")),
        ("p.tiff", lambda im, p: im.convert("1").save(p, compression="group4")),
        ("rgb.png", lambda im, p: im.convert("RGB").save(p)),
        ("rgb.jpg", lambda im, p: im.convert("RGB").save(p, quality=90)),
        ("palette.bmp", lambda im, p: im.convert("P").save(p)),
        ("one-bit.png", lambda im, p: im.convert("1").save(p)),
    ],
)
def test_each_format_loads_as_uint8_grey_with_content_in_place(tmp_path, name, save):
    path = tmp_path / name
    save(Image.fromarray(sheet(300, 240, "bottom-right")), path)
    f = scan_file(path)
    assert page_count(f) == 1
    page = load_page(f, 0)
    assert isinstance(page, LoadedPage)
    assert page.image.dtype == np.uint8 and page.image.shape == (300, 240)
    assert page.reduction == 1
    assert dark_corner(page.image) == "bottom-right"
    page.image[0, 0] = 7  # callers may work in place


def test_format_is_decided_by_content_not_extension(tmp_path):
    path = tmp_path / "really-a-png.jpg"
    Image.fromarray(sheet(200, 150, "top-right")).save(path, format="PNG")
    page = load_page(scan_file(path), 0)
    assert np.array_equal(page.image, sheet(200, 150, "top-right"))  # lossless: it was read as PNG


def test_one_bit_images_become_0_and_255(tmp_path):
    rng = np.random.default_rng(3)
    bits = rng.random((120, 160)) < 0.5
    for name, kwargs in [("g4.tif", {"compression": "group4"}), ("bw.png", {}), ("bw.bmp", {})]:
        path = tmp_path / name
        Image.fromarray(bits).save(path, **kwargs)
        image = load_page(scan_file(path), 0).image
        assert set(np.unique(image)) == {0, 255}
        assert np.array_equal(image == 255, bits), name


def test_transparent_png_is_flattened_onto_white(tmp_path):
    rgba = np.zeros((100, 100, 4), np.uint8)  # black but fully transparent...
    rgba[:50, :50] = (0, 0, 0, 255)  # ...except an opaque black corner
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(path)
    image = load_page(scan_file(path), 0).image
    assert image[:50, :50].max() == 0 and image[50:, 50:].min() == 255


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path):
    deep = np.full((80, 60), 32768, np.uint16)
    deep[:, :30] = 65535
    path = tmp_path / "deep.png"
    assert cv2.imwrite(str(path), deep)
    image = load_page(scan_file(path), 0).image
    assert image[0, 0] == 255 and 126 <= image[0, 59] <= 129


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_like_a_viewer_would(tmp_path, orientation):
    stored = sheet(90, 60, "top-left")
    stored[:10, -10:] = 128  # a grey mark, so that mirror images differ too
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.png"
    Image.fromarray(stored).save(path, exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)))
    image = load_page(scan_file(path), 0).image
    assert np.array_equal(image, expected)


def test_exif_rotated_jpeg_comes_out_upright(tmp_path):
    # A phone held sideways stores the pixels turned and says "rotate 90° clockwise" (tag 6).
    stored = sheet(300, 400, "top-left")
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    Image.fromarray(stored).save(path, quality=90, exif=exif)
    page = load_page(scan_file(path), 0)
    assert page.image.shape == (400, 300)
    assert dark_corner(page.image) == "top-right"


def test_tiff_orientation_tag_is_applied(tmp_path):
    path = tmp_path / "turned.tif"
    Image.fromarray(sheet(300, 400, "top-left")).save(path, tiffinfo={0x0112: 3})
    assert dark_corner(load_page(scan_file(path), 0).image) == "bottom-right"


# --------------------------------------------------------------------------------------------
# multi-page TIFF


@pytest.mark.parametrize(
    ("compression", "mode"), [("group4", "1"), ("tiff_lzw", "L"), ("jpeg", "L"), ("jpeg", "RGB")]
)
def test_multipage_tiff_each_page_is_its_own(tmp_path, compression, mode):
    pages = [Image.fromarray(sheet(330, 240, corner)).convert(mode) for corner in CORNERS]
    path = tmp_path / f"stack-{compression}-{mode}.tif"
    pages[0].save(
        path, save_all=True, append_images=pages[1:], compression=compression, dpi=(200, 200)
    )
    f = scan_file(path)
    assert page_count(f) == 4
    for index, corner in reversed(list(enumerate(CORNERS))):
        page = load_page(f, index)
        assert page.image.shape == (330, 240)
        assert page.dpi == pytest.approx(200)
        assert dark_corner(page.image) == corner
    with pytest.raises(IndexError):
        load_page(f, 4)


def test_late_page_of_a_long_tiff_costs_about_what_the_first_does(tmp_path):
    # Loading page k must seek (read page directories), not decode the k pages before it.
    page = Image.fromarray(sheet(3508, 2480)).convert("1")
    path = tmp_path / "long.tif"
    page.save(path, save_all=True, append_images=[page] * 49, compression="group4")
    f = scan_file(path)
    assert page_count(f) == 50

    def best_time(index: int) -> float:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            load_page(f, index)
            times.append(time.perf_counter() - start)
        return min(times)

    first, last = best_time(0), best_time(49)
    assert last < 5 * first + 0.05, (first, last)


def test_fax_resolution_tiff_gets_square_pixels(tmp_path):
    path = tmp_path / "fax.tif"
    Image.fromarray(sheet(100, 408, "top-left")).convert("1").save(
        path, compression="group4", dpi=(204, 98)
    )
    page = load_page(scan_file(path), 0)
    assert page.image.shape == (208, 408)  # rows stretched by 204 / 98
    assert page.dpi == pytest.approx(204)
    assert dark_corner(page.image) == "top-left"


# --------------------------------------------------------------------------------------------
# reduction and resolution


def test_big_jpeg_is_decoded_at_half_size(tmp_path):
    path = tmp_path / "a4-300dpi.jpg"
    Image.fromarray(sheet(3508, 2480, "bottom-left")).save(path, quality=85, dpi=(300, 300))
    page = load_page(scan_file(path), 0)
    assert page.reduction == 2
    assert page.image.shape == (1754, 1240)
    assert page.dpi == pytest.approx(150)
    assert dark_corner(page.image) == "bottom-left"
    full = load_page(scan_file(path), 0, min_long_side=3508)
    assert (
        full.reduction == 1 and full.image.shape == (3508, 2480) and full.dpi == pytest.approx(300)
    )


def test_reduction_never_goes_below_min_long_side(tmp_path):
    small = tmp_path / "small.jpg"
    Image.fromarray(sheet(3000, 2000)).save(small, quality=85)  # halved it would be 1500 < 1700
    page = load_page(scan_file(small), 0)
    assert page.reduction == 1 and page.image.shape == (3000, 2000)
    strip = tmp_path / "strip.jpg"
    Image.fromarray(sheet(7000, 500)).save(strip, quality=85, dpi=(600, 600))
    page = load_page(scan_file(strip), 0)
    assert page.reduction == 4 and page.image.shape == (1750, 125)


def test_big_png_is_reduced_after_decoding(tmp_path):
    path = tmp_path / "big.png"
    Image.fromarray(sheet(3600, 2400, "top-right")).save(path, dpi=(300, 300))
    page = load_page(scan_file(path), 0)
    assert page.reduction == 2 and page.image.shape == (1800, 1200)
    assert page.dpi == pytest.approx(150)
    assert dark_corner(page.image) == "top-right"


def test_implausible_resolution_metadata_is_treated_as_unknown(tmp_path):
    path = tmp_path / "phone.jpg"  # phones write 72 dpi on a 4000-pixel photo: a 55-inch "sheet"
    Image.fromarray(sheet(4000, 3000)).save(path, quality=80, dpi=(72, 72))
    page = load_page(scan_file(path), 0)
    # A photo: the page is only part of the frame, so every pixel is kept.
    assert page.dpi is None and page.reduction == 1 and page.image.shape == (4000, 3000)


# --------------------------------------------------------------------------------------------
# PDF


def test_image_pdf_pages_count_and_land_in_place(tmp_path):
    path = tmp_path / "stack.pdf"
    write_pdf_of_images(path, [sheet(1754, 1240, corner) for corner in CORNERS], dpi=150)
    f = scan_file(path)
    assert page_count(f) == 4
    for index, corner in enumerate(CORNERS):
        page = load_page(f, index)
        assert page.dpi == pytest.approx(150, abs=0.5)  # the scan's own resolution
        assert page.reduction == 1
        assert abs(page.image.shape[0] - 1754) <= 2 and abs(page.image.shape[1] - 1240) <= 2
        assert dark_corner(page.image) == corner
    with pytest.raises(IndexError):
        load_page(f, 4)


def test_a_copiers_jpeg_pdf_page_is_decoded_as_a_jpeg_not_drawn(tmp_path):
    """One JPEG filling an upright page (what copiers write): its own bytes, decoded at half size
    like a JPEG file (~16 ms for 300-dpi A4, where pdfium took ~65 ms to draw it)."""
    fine = tmp_path / "fine.pdf"
    img = sheet(3508, 2480, "top-right")
    write_pdf_of_images(fine, [img], dpi=300)
    page = load_page(scan_file(fine), 0)
    assert (page.dpi, page.reduction, page.image.shape) == (pytest.approx(150, abs=0.5), 2, (1754, 1240))
    assert dark_corner(page.image) == "top-right"
    doc = pdfium.PdfDocument(fine)
    try:
        (obj,) = list(doc[0].get_objects(max_depth=1))
        jpeg = bytes(obj.get_data(decode_simple=False))
    finally:
        doc.close()
    want = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_REDUCED_GRAYSCALE_2)
    assert np.array_equal(page.image, want)
    # The same JPEG embedded in ASCII85 (reportlab's default) is taken out all the same.
    jpg = tmp_path / "scan.jpg"
    jpg.write_bytes(jpeg)
    wrapped = tmp_path / "a85.pdf"
    c = canvas.Canvas(str(wrapped), pagesize=(595.3, 841.9))
    c.drawImage(str(jpg), 0, 0, 595.3, 841.9)
    c.showPage()
    c.save()
    doc = pdfium.PdfDocument(wrapped)
    try:
        assert next(iter(doc[0].get_objects(max_depth=1))).get_filters() == ["ASCII85Decode", "DCTDecode"]
    finally:
        doc.close()
    assert np.array_equal(load_page(scan_file(wrapped), 0).image, want)
    # A page that is more than its scan (a label drawn on it) or turned is drawn, as before.
    drawn = tmp_path / "drawn.pdf"
    c = canvas.Canvas(str(drawn), pagesize=(595.3, 841.9))
    c.drawImage(ImageReader(Image.fromarray(img)), 0, 0, 595.3, 841.9)
    c.drawString(50, 50, "a note on the scan")
    c.showPage()
    c.save()
    drawn_page = load_page(scan_file(drawn), 0)
    assert drawn_page.dpi == pytest.approx(PDF_DPI_MAX) and drawn_page.reduction == 1
    assert dark_corner(drawn_page.image) == "top-right"
    turned = tmp_path / "turned.pdf"
    doc = pdfium.PdfDocument(fine)
    try:
        doc[0].set_rotation(90)
        doc.save(turned)
    finally:
        doc.close()
    turned_page = load_page(scan_file(turned), 0)
    assert turned_page.dpi == pytest.approx(PDF_DPI_MAX) and turned_page.image.shape[0] < turned_page.image.shape[1]


def test_pdf_render_resolution_follows_the_scan_within_bounds(tmp_path):
    coarse = tmp_path / "coarse.pdf"
    write_pdf_of_images(coarse, [sheet(1170, 827)], dpi=100)
    page = load_page(scan_file(coarse), 0)
    assert page.dpi == pytest.approx(PDF_DPI_MIN)
    assert dark_corner(page.image) == "top-left"
    # US Letter is 11 in long: drawn at 150 dpi it would be 1650 px, so the floor rises to 1700 px.
    letter_pdf = tmp_path / "letter.pdf"
    write_pdf_of_images(letter_pdf, [sheet(1540, 1190)], dpi=140)
    page = load_page(scan_file(letter_pdf), 0)
    assert max(page.image.shape) >= 1700 and page.dpi < PDF_DPI_MAX


def test_pdf_drawn_with_reportlab_renders_where_drawn_at_default_resolution(tmp_path):
    path = tmp_path / "drawn.pdf"
    width, height = A4
    c = canvas.Canvas(str(path), pagesize=A4)
    black = ImageReader(Image.new("L", (100, 100), 0))
    c.drawImage(black, 0, height * 2 / 3, width=width / 3, height=height / 3)  # a small image:
    c.showPage()  # not a page-sized scan, so the resolution falls back to the default
    # A portrait MediaBox with /Rotate 90 (reportlab swaps the size it is given): shown landscape.
    c.setPageSize(landscape(A4))
    c.setPageRotation(90)
    c.drawImage(black, 0, height * 2 / 3, width=width / 3, height=height / 3)
    c.showPage()
    c.save()
    f = scan_file(path)
    assert page_count(f) == 2
    upright = load_page(f, 0)
    assert upright.dpi == pytest.approx(PDF_DPI_DEFAULT)
    assert upright.image.shape[0] > upright.image.shape[1]
    assert dark_corner(upright.image) == "top-left"
    turned = load_page(f, 1)  # /Rotate 90 is honoured: the page's top-left turns clockwise
    assert turned.image.shape[1] > turned.image.shape[0]
    assert dark_corner(turned.image) == "top-right"


def test_nothing_stays_open_between_calls(tmp_path):
    fds = Path("/proc/self/fd")
    if not fds.exists():
        pytest.skip("needs /proc to count open files")
    pdf = tmp_path / "a.pdf"
    write_pdf_of_images(pdf, [sheet(400, 300)] * 2, dpi=100)
    tif = tmp_path / "a.tif"
    Image.fromarray(sheet(400, 300)).save(
        tif, save_all=True, append_images=[Image.new("L", (30, 30))]
    )
    before = len(os.listdir(fds))
    for f in (scan_file(pdf), scan_file(tif)):
        page_count(f)
        load_page(f, 1)
    assert len(os.listdir(fds)) == before


# --------------------------------------------------------------------------------------------
# problems: every kind named in plain words, never a raw exception


def encrypted_pdf(path: Path) -> None:
    c = canvas.Canvas(str(path), pagesize=letter, encrypt="secret")
    c.drawString(100, 700, "top secret passes")
    c.showPage()
    c.save()


def truncated(data: bytes, keep: float = 0.6) -> bytes:
    return data[: int(len(data) * keep)]


def jpeg_bytes() -> bytes:
    rng = np.random.default_rng(0)
    ok, buf = cv2.imencode(".jpg", rng.integers(0, 255, (400, 300), dtype=np.uint8))
    assert ok
    return buf.tobytes()


def png_bytes() -> bytes:
    rng = np.random.default_rng(1)
    ok, buf = cv2.imencode(".png", rng.integers(0, 255, (400, 300), dtype=np.uint8))
    assert ok
    return buf.tobytes()


def pdf_bytes(tmp_path: Path) -> bytes:
    path = tmp_path / "source.pdf"
    write_pdf_of_images(path, [sheet(400, 300)] * 3, dpi=100)
    return path.read_bytes()


def docx_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
    return buffer.getvalue()


OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504)

PROBLEMS = {
    # name: (make bytes, kind, words the message must hold)
    "b.pdf": (lambda tmp: b"", "unreadable", ["empty (0 bytes)", "interrupted"]),
    "empty.jpg": (lambda tmp: b"", "unreadable", ["empty"]),
    "cut.jpg": (lambda tmp: truncated(jpeg_bytes()), "unreadable", ["incomplete"]),
    "cut.png": (lambda tmp: truncated(png_bytes()), "unreadable", ["incomplete"]),
    "cut.pdf": (lambda tmp: truncated(pdf_bytes(tmp)), "unreadable", ["damaged or incomplete"]),
    "junk.pdf": (lambda tmp: b"%PDF-1.7\n" + bytes(range(256)) * 8, "unreadable", ["damaged"]),
    "mail.pdf": (
        lambda tmp: b"<html><body>Session expired</body></html>",
        "unreadable",
        ["named as PDF", "text file"],
    ),
    "Thumbs.db": (lambda tmp: OLE2, "unsupported", ["not a scan", "thumbnail", "PDF, TIFF"]),
    "notes.docx": (lambda tmp: docx_bytes(), "unsupported", ["not a scan (Word document)"]),
    "notes.txt": (lambda tmp: "Class 4B — next lesson".encode(), "unsupported", ["text file"]),
    "empty.txt": (lambda tmp: b"", "unsupported", ["not a scan"]),
    "passes.zip": (lambda tmp: docx_bytes(), "unsupported", ["ZIP archive", "extract"]),
    "IMG_0001.HEIC": (
        lambda tmp: b"\x00\x00\x00\x18ftypheic" + bytes(40),
        "unsupported",
        ["HEIC", "JPEG"],
    ),
    "mystery": (lambda tmp: bytes(range(256)) * 4, "unsupported", ["not a scan"]),
}


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_problem_files_are_named_in_plain_words(tmp_path, name):
    make, kind, words = PROBLEMS[name]
    folder = tmp_path / "scans"
    folder.mkdir()
    data = make(tmp_path)
    (folder / name).write_bytes(data)
    (f,) = discover([folder])
    for call in (lambda: page_count(f), lambda: load_page(f, 0)):
        with pytest.raises(LoadProblem) as info:
            call()
        error = info.value
        assert error.kind == kind
        assert str(error) == error.message
        assert error.message.startswith(f"{name}: ")
        for word in words:
            assert word in error.message
        assert str(tmp_path) not in error.message and "/tmp" not in error.message


def test_encrypted_pdf_says_password_protected(tmp_path):
    path = tmp_path / "locked.pdf"
    encrypted_pdf(path)
    f = scan_file(path)
    for call in (lambda: page_count(f), lambda: load_page(f, 0)):
        with pytest.raises(LoadProblem) as info:
            call()
        assert info.value.kind == "unreadable"
        assert info.value.message.startswith("locked.pdf: ")
        assert "password-protected" in info.value.message


def test_truncated_tiff_page_is_unreadable_with_its_page_number(tmp_path):
    rng = np.random.default_rng(5)
    pages = [Image.fromarray(rng.integers(0, 255, (300, 200), dtype=np.uint8)) for _ in range(2)]
    buffer = io.BytesIO()
    pages[0].save(buffer, format="TIFF", save_all=True, append_images=pages[1:])
    data = buffer.getvalue()
    # Pillow writes each page's pixels before its directory: cut into page 2's pixels.
    path = tmp_path / "cut.tif"
    path.write_bytes(data[: len(data) - 30_000])
    f = scan_file(path)
    page = load_page(f, 0)
    assert page.image.shape == (300, 200)
    with pytest.raises(LoadProblem) as info:  # page 2's directory is gone or its strips are cut
        load_page(f, 1)
    assert info.value.kind == "unreadable"
    assert info.value.message.startswith("cut.tif")


def patched_png_size(path: Path, cols: int, rows: int) -> None:
    """Rewrite a PNG's IHDR to claim another size (with a valid CRC): a decompression bomb."""
    data = bytearray(path.read_bytes())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", cols, rows)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(("cols", "rows"), [(30_000, 30_000), (12_000, 11_000)])
def test_decompression_bomb_is_refused_from_its_header(tmp_path, cols, rows):
    assert cols * rows > MAX_PIXELS
    path = tmp_path / "bomb.png"
    Image.new("L", (64, 64), 255).save(path)
    patched_png_size(path, cols, rows)
    f = scan_file(path)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's DecompressionBombWarning must not escape either
        for call in (lambda: page_count(f), lambda: load_page(f, 0)):
            with pytest.raises(LoadProblem) as info:
                call()
            assert info.value.kind == "unreadable"
            assert "too large" in info.value.message
            assert f"{cols * rows / 1e6:.0f} megapixels" in info.value.message
    assert time.perf_counter() - start < 1.0


def test_load_problem_survives_the_trip_between_processes():
    error = LoadProblem("unsupported", "notes.docx: not a scan (Word document)")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.kind, copy.message, str(copy)) == (error.kind, error.message, error.message)
    f = ScanFile(Path("/x/a.pdf"), "a.pdf")
    assert pickle.loads(pickle.dumps(f)) == f


def test_single_image_has_only_page_zero(tmp_path):
    path = tmp_path / "p.png"
    Image.fromarray(sheet(50, 40)).save(path)
    with pytest.raises(IndexError):
        load_page(scan_file(path), 1)
    with pytest.raises(ValueError):
        load_page(scan_file(path), 0, min_long_side=0)
