"""Loading scans: turn what a copier or a phone left in a folder into greyscale page images.

This is the first stage of the pipeline (load -> register -> read -> export). It knows nothing of
exit passes; it only answers three questions, each without crashing the batch:

- :func:`discover` — which files did the user give us? (folders recursively, natural order)
- :func:`page_count` — how many pages does a file hold? (cheap: headers only)
- :func:`load_page` — page ``index`` of a file as a ``(rows, cols)`` ``uint8`` greyscale array.

Every problem with a user's file becomes a :class:`LoadProblem` whose ``kind`` is ``'unreadable'``
(it looks like a scan format but cannot be read) or ``'unsupported'`` (it is not a scan format),
and whose message names the file as the user knows it and says what to do next. Problems with the
command line itself (a path that does not exist) raise :class:`InputError` before any work starts.

The format is decided by the file's content (magic bytes), not its extension: a ``.jpg`` that is
really a PNG still loads. Decoding is the largest item of the speed budget, so large JPEGs are
decoded at reduced size by libjpeg itself (``cv2.IMREAD_REDUCED_GRAYSCALE_2/4``), other large
images are reduced right after decoding, and PDFs are rendered no finer than reading needs.

All functions are pure: no global state, no printing, nothing kept open between calls, so worker
processes may call :func:`load_page` independently.
"""

from __future__ import annotations

import io
import math
import os
import re
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import pypdfium2 as pdfium
from PIL import Image

from exitscan import errors

__all__ = [
    "DEFAULT_MIN_LONG_SIDE",
    "MAX_PIXELS",
    "PDF_DPI_DEFAULT",
    "PDF_DPI_MAX",
    "PDF_DPI_MIN",
    "InputError",
    "LoadProblem",
    "LoadedPage",
    "ScanFile",
    "discover",
    "load_page",
    "page_count",
]

MAX_PIXELS = 120_000_000
"""Largest image, in pixels, that is decoded. An A4 sheet at 1200 dpi is 140 Mpx as RGB bytes;
at 600 dpi it is 35 Mpx. Anything larger is refused from its header, before any decoding, so a
"decompression bomb" (a small file that claims a huge image) cannot exhaust memory."""

DEFAULT_MIN_LONG_SIDE = 1700
"""Default for ``load_page(min_long_side=...)``: a 300-dpi A4 scan (3508 px) halves to 1754 px."""

PDF_DPI_MIN = 150.0
"""Lowest resolution a PDF page is rendered at, whatever its embedded scan's resolution."""
PDF_DPI_MAX = 200.0
"""Highest resolution a PDF page is rendered at: finer costs time and reads no better."""
PDF_DPI_DEFAULT = 200.0
#: A PDF page longer than this (inches) is not a scanned sheet (A4 is 11.7, Letter 11).
_MAX_PAPER_INCHES = 12.5
#: Long side, in pixels, up to which a photo in a PDF keeps its own resolution.
_PHOTO_LONG_SIDE = 4200
"""Resolution for a PDF page whose scan resolution cannot be found (no page-sized image)."""

_PDF_SCAN_COVERAGE = 0.3
"""An image covering at least this fraction of the PDF page is taken to be the page's scan."""

_DPI_RANGE = (50.0, 2400.0)
"""Resolution metadata outside this range is treated as unknown."""
_MAX_SHEET_INCHES = 20.0
"""Resolution metadata implying a longer side than this (A3 is 16.5 in) is a software default
(phones write 72 dpi on a 4000-px photo), not a scan resolution, and is treated as unknown."""

_REDUCTIONS = (4, 2)
_DIB_HEADER_SIZES = (12, 16, 40, 52, 56, 64, 108, 124)
_OPAQUE_MODES = ("1", "L", "P", "RGB", "RGBX", "CMYK", "YCbCr", "LAB", "HSV")
_FORMATS_TEXT = "PDF, TIFF, JPEG, PNG and BMP"
_FORMAT_NAMES = {"pdf": "PDF", "tiff": "TIFF", "jpeg": "JPEG", "png": "PNG", "bmp": "BMP"}
_SCAN_SUFFIXES = {
    ".pdf": "pdf",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".jpe": "jpeg",
    ".jfif": "jpeg",
    ".png": "png",
    ".bmp": "bmp",
    ".dib": "bmp",
}
_OFFICE_SUFFIXES = {
    ".doc": "Word document",
    ".docx": "Word document",
    ".docm": "Word document",
    ".odt": "OpenDocument text",
    ".xls": "Excel workbook",
    ".xlsx": "Excel workbook",
    ".xlsm": "Excel workbook",
    ".ods": "OpenDocument spreadsheet",
    ".ppt": "PowerPoint presentation",
    ".pptx": "PowerPoint presentation",
    ".odp": "OpenDocument presentation",
}
_OTHER_SUFFIXES = {
    ".txt": "text file",
    ".csv": "CSV file",
    ".md": "text file",
    ".rtf": "RTF document",
    ".html": "web page",
    ".htm": "web page",
    ".eml": "e-mail message",
    ".msg": "Outlook message",
    ".ini": "settings file",
    ".db": "database file",
    ".xml": "XML file",
    ".json": "JSON file",
    ".mp4": "video",
    ".mov": "video",
}
_IMAGE_ADVICE = "save or export it as JPEG or PNG and run exitscan again"
_HEIC_ADVICE = (
    "export it as JPEG, or set the iPhone camera to 'Most Compatible' (Settings > Camera > Formats)"
)

ProblemKind = Literal["unreadable", "unsupported"]


# An input named on the command line that cannot be used at all (e.g. it does not exist):
# raised by `discover` before any page is read, so the CLI rejects the usage (exit code 3).
InputError = errors.InputError


class LoadProblem(Exception):
    """A user's file (or one page of it) cannot be loaded.

    Attributes
    ----------
    kind : {'unreadable', 'unsupported'}
        ``'unreadable'``: the file looks like a scan format (by content or name) but cannot be read
        (empty, truncated, damaged, password-protected, too large). ``'unsupported'``: the file is
        not a scan format at all (a Word document, ``Thumbs.db``, a text file).
    message : str
        Plain words for the teacher: names the file as given (``ScanFile.display``, never a temp
        path), says what is wrong and what to do.
    """

    def __init__(self, kind: ProblemKind, message: str) -> None:
        super().__init__(kind, message)  # both in args, so the exception pickles across processes
        self.kind: ProblemKind = kind
        self.message = message

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class ScanFile:
    """One input file.

    Attributes
    ----------
    path : Path
        Absolute path of the file.
    display : str
        The file as the user knows it, with POSIX separators: its path relative to the folder
        given on the command line, or its name when the file itself was given. Used for the
        ``source`` column of results.csv and in every message.
    """

    path: Path
    display: str


@dataclass(frozen=True, eq=False)
class LoadedPage:
    """One page image, ready for registration.

    Attributes
    ----------
    image : ndarray of uint8, shape (rows, cols)
        Greyscale, 0 = black, 255 = white; EXIF/TIFF orientation applied; transparency flattened
        onto white; 1-bit images as 0/255; pixels square (anisotropic fax resolutions resampled).
    dpi : float or None
        Effective resolution of ``image`` in dots per inch, when known: the file's resolution
        metadata divided by ``reduction``, or a PDF's render resolution. ``None`` when the file
        carries no plausible resolution (typical of phone photos).
    reduction : int
        Factor (1, 2 or 4) by which the stored image was reduced on loading.
    """

    image: np.ndarray
    dpi: float | None
    reduction: int

    def __post_init__(self) -> None:
        if self.image.dtype != np.uint8 or self.image.ndim != 2:
            raise ValueError(
                f"LoadedPage.image must be a 2-D uint8 array, got {self.image.dtype} "
                f"with shape {self.image.shape}"
            )


# --------------------------------------------------------------------------------------------
# discover


def discover(inputs: Sequence[Path | str]) -> list[ScanFile]:
    """List the files to process from the paths given on the command line.

    Folders are searched recursively; files are taken as given. Within a folder, files come in
    natural order ("page2" before "page10", case-insensitive), folders' own files and subfolders
    interleaved by name; inputs keep the order they were given in. Hidden files and folders (name
    starting with ".") inside a folder are skipped. Foreign files (``Thumbs.db``, ``.docx``) are
    *returned*, so that they can be reported as ``'unsupported'`` rather than silently dropped.
    A file reached twice (a folder and a file inside it) is listed once, at its first place.

    Parameters
    ----------
    inputs : sequence of Path or str
        Files and folders, as typed by the user.

    Returns
    -------
    list of ScanFile
        In processing order. ``display`` is unique: when two inputs would yield the same name,
        the input as typed is put in front of it.

    Raises
    ------
    InputError
        No input was given, an input does not exist or is neither file nor folder, or a folder
        cannot be listed.
    """
    if not inputs:
        raise InputError("no scans given: name one or more files or folders")
    found: list[tuple[Path, str, str]] = []  # (absolute path, display, display prefixed by input)
    seen: set[Path] = set()
    for raw in inputs:
        given = Path(raw)
        typed = given.as_posix()
        if given.is_dir():
            entries = [
                (path, relative, f"{typed}/{relative}")
                for path in _walk(given, typed)
                for relative in [path.relative_to(given).as_posix()]
            ]
            entries.sort(key=lambda entry: _natural_path_key(entry[1]))
        elif given.is_file():
            entries = [(given, given.name, typed)]
        elif given.exists() or given.is_symlink():
            raise InputError(f"{typed}: not a file or a folder (exitscan reads files and folders)")
        else:
            raise InputError(f"{typed}: no such file or folder — check the name and the location")
        for path, display, prefixed in entries:
            key = _identity(path)
            if key not in seen:
                seen.add(key)
                found.append((path.absolute(), display, prefixed))
    counts: dict[str, int] = {}
    for _, display, _ in found:
        counts[display] = counts.get(display, 0) + 1
    return [
        ScanFile(path=path, display=display if counts[display] == 1 else prefixed)
        for path, display, prefixed in found
    ]


def _walk(folder: Path, typed: str) -> Iterator[Path]:
    """Yield the non-hidden files below ``folder`` (symlinked folders are not followed)."""

    def fail(error: OSError) -> None:
        raise InputError(
            f"{typed}: a folder inside could not be read ({error.strerror or error}) — "
            "check its permissions"
        ) from error

    for root, dirs, files in os.walk(folder, onerror=fail):
        dirs[:] = [d for d in dirs if not _is_hidden(d)]
        for name in files:
            if not _is_hidden(name):
                yield Path(root, name)


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def _identity(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:  # a symlink loop, say: fall back to the path itself
        return path.absolute()


def _natural_key(text: str) -> tuple[str | int, ...]:
    # re.split with a group alternates text and digit runs, so equal positions hold equal types.
    parts = re.split(r"(\d+)", text.casefold())
    return tuple(int(part) if i % 2 else part for i, part in enumerate(parts))


def _natural_path_key(relative: str) -> tuple[tuple[tuple[str | int, ...], ...], str]:
    return tuple(_natural_key(part) for part in relative.split("/")), relative


# --------------------------------------------------------------------------------------------
# page_count and load_page


def page_count(f: ScanFile) -> int:
    """Count the pages of a file cheaply, from its headers (no page is decoded).

    Parameters
    ----------
    f : ScanFile
        The file.

    Returns
    -------
    int
        Number of pages, >= 1. Single images count 1.

    Raises
    ------
    LoadProblem
        The file is empty, unreadable, damaged, password-protected, too large, or not a scan.
    """
    fmt = _identify(f)
    if fmt == "pdf":
        doc = _open_pdf(f)
        try:
            count = len(doc)
        finally:
            doc.close()
        if count < 1:
            raise LoadProblem("unreadable", f"{f.display}: the PDF has no pages — scan it again")
        return count
    if fmt != "tiff":
        # Single images are read whole (a few MB, well under a millisecond from the disk cache)
        # to catch a file that ends early now, rather than when its page is decoded.
        data = _read_all(f)
        _check_complete(f.display, fmt, data)
        with _open_image(f, fmt, data) as im:
            _check_pixels(f.display, im.size)
        return 1
    with _open_image(f, fmt) as im:
        # A TIFF's pages are checked one by one in load_page: one huge page spoils only itself.
        try:
            return max(1, int(getattr(im, "n_frames", 1)))
        except Exception as error:  # a damaged chain of TIFF pages can fail in many ways
            raise LoadProblem(
                "unreadable",
                f"{f.display}: the TIFF's list of pages is damaged — scan the pages again",
            ) from error


def load_page(f: ScanFile, index: int, *, min_long_side: int = DEFAULT_MIN_LONG_SIDE) -> LoadedPage:
    """Load one page of a file as a greyscale image.

    Large scans are reduced by 2 or 4 when the reduced long side stays >= ``min_long_side``
    (photos, whose resolution is unknown, are not: the page is only part of the frame)
    (JPEGs are decoded at reduced size by libjpeg itself, which skips most of the inverse DCT
    and never holds the full image; other formats are reduced right after decoding). PDF pages are rendered with pdfium at the resolution of the page's scan, clamped to
    [``PDF_DPI_MIN``, ``PDF_DPI_MAX``] (``PDF_DPI_DEFAULT`` when unknown), raised within that
    cap so the long side reaches ``min_long_side``.

    Parameters
    ----------
    f : ScanFile
        The file.
    index : int
        0-based page number, ``0 <= index < page_count(f)``.
    min_long_side : int, optional
        Smallest long side, in pixels, that a reduction may leave.

    Returns
    -------
    LoadedPage
        ``image`` is ``(rows, cols)`` uint8.

    Raises
    ------
    LoadProblem
        The file or this page cannot be read, or the file is not a scan.
    IndexError
        ``index`` is outside the file's pages (a caller's mistake, not the user's).
    ValueError
        ``min_long_side`` < 1.
    """
    if min_long_side < 1:
        raise ValueError(f"min_long_side must be >= 1, got {min_long_side}")
    fmt = _identify(f)
    if fmt == "pdf":
        return _load_pdf_page(f, index, min_long_side)
    if fmt == "tiff":
        return _load_tiff_page(f, index, min_long_side)
    if index != 0:
        raise IndexError(f"{f.display} is a single image; page index {index} is out of range")
    data = _read_all(f)
    _check_complete(f.display, fmt, data)
    with _open_image(f, fmt, data) as im:
        _check_pixels(f.display, im.size)
        orientation = _exif_orientation(im)
        dpi_xy = _dpi_from_info(im.info, im.size)
        long_side = max(im.size)
        # Transparent images are rare and need Pillow to flatten them; the rest goes to OpenCV.
        gray = _decode_pil(f.display, im) if _has_transparency(im) else None
    reduction = 1
    if gray is None:
        if fmt == "jpeg" and dpi_xy is not None:
            reduction = _choose_reduction(long_side, min_long_side)
        gray = _decode_cv2(f.display, fmt, data, _CV2_FLAGS[reduction])
    return _finish(gray, orientation, dpi_xy, reduction, min_long_side)


# Orientation is applied by us, from Pillow's reading of the tags, the same for every format.
_CV2_FLAGS = {
    1: cv2.IMREAD_GRAYSCALE | cv2.IMREAD_IGNORE_ORIENTATION,
    2: cv2.IMREAD_REDUCED_GRAYSCALE_2 | cv2.IMREAD_IGNORE_ORIENTATION,
    4: cv2.IMREAD_REDUCED_GRAYSCALE_4 | cv2.IMREAD_IGNORE_ORIENTATION,
}


def _finish(
    gray: np.ndarray,
    orientation: int,
    dpi_xy: tuple[float, float] | None,
    reduction: int,
    min_long_side: int,
) -> LoadedPage:
    """Orient, square the pixels and (if not done while decoding) reduce a decoded image.

    ``dpi_xy`` is the stored image's (x, y) resolution; ``reduction`` is what decoding already
    applied (1 when the decoder could not reduce).
    """
    if dpi_xy is not None:
        dpi_xy = (dpi_xy[0] / reduction, dpi_xy[1] / reduction)
    gray = _apply_orientation(gray, orientation)
    if dpi_xy is not None and orientation in (5, 6, 7, 8):
        dpi_xy = (dpi_xy[1], dpi_xy[0])
    gray, dpi = _square_pixels(gray, dpi_xy)
    # No trustworthy resolution means a photo (phones write 72 dpi): the page fills only part
    # of the frame and 4-up passes are small in it, so it keeps every pixel it has.
    if reduction == 1 and dpi is not None:
        reduction = _choose_reduction(max(gray.shape), min_long_side)
        if reduction > 1:
            rows, cols = gray.shape
            size = (cols // reduction, rows // reduction)
            # Whole blocks only (an odd width sends OpenCV down its ~30x slower fractional path).
            whole = gray[: size[1] * reduction, : size[0] * reduction]
            gray = cv2.resize(whole, size, interpolation=cv2.INTER_AREA)
            dpi = None if dpi is None else dpi / reduction
    return LoadedPage(image=np.ascontiguousarray(gray), dpi=dpi, reduction=reduction)


def _choose_reduction(long_side: int, min_long_side: int) -> int:
    for factor in _REDUCTIONS:
        if long_side // factor >= min_long_side:
            return factor
    return 1


# --------------------------------------------------------------------------------------------
# knowing what a file is


def _identify(f: ScanFile) -> str:
    """Return the scan format of ``f`` ('pdf', 'tiff', 'jpeg', 'png', 'bmp') from its content.

    Raises LoadProblem for an empty, unopenable or foreign file.
    """
    try:
        with open(f.path, "rb") as stream:
            head = stream.read(2048)
    except OSError as error:
        raise _open_failed(f.display, error) from error
    fmt = _sniff(head)
    if fmt is not None:
        return fmt
    suffix = f.path.suffix.lower()
    named = _SCAN_SUFFIXES.get(suffix)
    if not head:
        if named is not None or not suffix:
            raise LoadProblem(
                "unreadable",
                f"{f.display}: the file is empty (0 bytes) — was the scan interrupted?",
            )
        raise LoadProblem(
            "unsupported",
            f"{f.display}: not a scan (an empty {_suffix_kind(suffix)}); "
            f"exitscan reads {_FORMATS_TEXT}",
        )
    kind, advice = _describe_foreign(f.path, head)
    if named is not None:
        what = "not in any format exitscan reads" if kind == "unknown content" else f"a {kind}"
        raise LoadProblem(
            "unreadable",
            f"{f.display}: named as {_FORMAT_NAMES[named]} but the content is {what} — the file "
            "may be damaged or incompletely copied; scan or copy it again",
        )
    if advice:
        raise LoadProblem(
            "unsupported", f"{f.display}: a {kind}, which exitscan does not read — {advice}"
        )
    raise LoadProblem(
        "unsupported", f"{f.display}: not a scan ({kind}); exitscan reads {_FORMATS_TEXT}"
    )


def _sniff(head: bytes) -> str | None:
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    # "BM" alone is too weak a signature: also require a known DIB header size.
    if head.startswith(b"BM") and int.from_bytes(head[14:18], "little") in _DIB_HEADER_SIZES:
        return "bmp"
    if b"%PDF-" in head[:1024]:  # the PDF spec tolerates junk before the header
        return "pdf"
    return None


def _describe_foreign(path: Path, head: bytes) -> tuple[str, str]:
    """Name a non-scan file's kind in plain words, with advice when there is a useful one."""
    suffix = path.suffix.lower()
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):  # OLE2 compound file
        if path.name.lower() == "thumbs.db":
            return "Windows thumbnail cache", ""
        return _OFFICE_SUFFIXES.get(suffix, "Microsoft Office file"), ""
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        if suffix in _OFFICE_SUFFIXES:
            return _OFFICE_SUFFIXES[suffix], ""
        return "ZIP archive", "extract it and give exitscan the folder"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "GIF image", _IMAGE_ADVICE
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP image", _IMAGE_ADVICE
    if head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"hevc", b"heif", b"mif1"):
        return "HEIC/HEIF photo", _HEIC_ADVICE
    if head[4:8] == b"ftyp" and head[8:12] == b"avif":
        return "AVIF image", _IMAGE_ADVICE
    if suffix in _OFFICE_SUFFIXES or suffix in _OTHER_SUFFIXES:
        return _suffix_kind(suffix), ""
    if _looks_like_text(head):
        return "text file", ""
    return "unknown content", ""


def _suffix_kind(suffix: str) -> str:
    return _OFFICE_SUFFIXES.get(suffix) or _OTHER_SUFFIXES.get(suffix) or "file"


def _looks_like_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        return error.start >= len(head) - 3  # a multi-byte character cut by the 2 KiB window
    return True


def _open_failed(display: str, error: OSError) -> LoadProblem:
    reason = error.strerror or type(error).__name__
    return LoadProblem(
        "unreadable",
        f"{display}: could not be opened ({reason.lower()}) — check that the file is still there "
        "and that you may read it",
    )


def _read_all(f: ScanFile) -> bytes:
    try:
        return f.path.read_bytes()
    except OSError as error:
        raise _open_failed(f.display, error) from error


def _check_pixels(display: str, size: tuple[int, int]) -> None:
    cols, rows = size
    if cols < 1 or rows < 1:
        raise LoadProblem("unreadable", f"{display}: the image has no pixels ({cols} x {rows})")
    if cols * rows > MAX_PIXELS:
        raise _too_large(display, f"{cols} x {rows} pixels, {cols * rows / 1e6:.0f} megapixels")


def _too_large(display: str, size_text: str) -> LoadProblem:
    return LoadProblem(
        "unreadable",
        f"{display}: the image is too large to read safely ({size_text}; exitscan reads up to "
        f"{MAX_PIXELS // 1_000_000} megapixels) — scan at 300 dpi or less",
    )


def _check_complete(display: str, fmt: str, data: bytes) -> None:
    """Refuse a single-image file that ends early, before a decoder half-reads it."""
    complete = {"jpeg": _jpeg_complete, "png": _png_complete, "bmp": _bmp_complete}[fmt](data)
    if not complete:
        raise LoadProblem(
            "unreadable",
            f"{display}: the {_FORMAT_NAMES[fmt]} image is incomplete (the file ends early) — "
            "was the scan or the copy interrupted? Scan the page again",
        )


def _jpeg_complete(data: bytes) -> bool:
    """True unless the JPEG visibly ends before its end-of-image marker.

    Walks the marker segments (skipping EXIF thumbnails, which carry their own markers) to the
    first start-of-scan; entropy-coded data stuffs every 0xFF, so an end-of-image marker after
    that point is the image's own. Odd structures are left to the decoder to judge.
    """
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return True
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        if marker == 0xD9:
            return True  # end before any scan: no image, the decoder will say so
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if marker == 0xDA:  # search from the end: the marker is normally the last two bytes
            return data.rfind(b"\xff\xd9", i + 2 + length) != -1
        i += 2 + length
    return False


def _png_complete(data: bytes) -> bool:
    """True when the PNG's chunk chain reaches its IEND chunk."""
    i, n = 8, len(data)
    while i + 8 <= n:
        length = int.from_bytes(data[i : i + 4], "big")
        if data[i + 4 : i + 8] == b"IEND":
            return True
        i += 12 + length
    return False


def _bmp_complete(data: bytes) -> bool:
    """True unless an uncompressed BMP holds fewer bytes than its rows need."""
    if len(data) < 34 or int.from_bytes(data[14:18], "little") < 40:
        return True
    offset = int.from_bytes(data[10:14], "little")
    cols = int.from_bytes(data[18:22], "little", signed=True)
    rows = int.from_bytes(data[22:26], "little", signed=True)
    bits = int.from_bytes(data[28:30], "little")
    compression = int.from_bytes(data[30:34], "little")
    if compression not in (0, 3) or cols <= 0:  # 0 = BI_RGB, 3 = BI_BITFIELDS
        return True
    stride = (cols * bits + 31) // 32 * 4
    return len(data) >= offset + stride * abs(rows)


# --------------------------------------------------------------------------------------------
# raster images (Pillow for headers and TIFF, OpenCV for fast decoding)


@contextmanager
def _open_image(f: ScanFile, fmt: str, data: bytes | None = None) -> Iterator[Image.Image]:
    """Open an image lazily (header only) with Pillow, turning every failure into LoadProblem.

    Pillow's own decompression-bomb guard is kept quiet (we check against ``MAX_PIXELS``) and its
    error, raised for images far beyond our limit, becomes a LoadProblem too.
    """
    source = io.BytesIO(data) if data is not None else f.path
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(source, formats=[fmt.upper()])
    except Image.DecompressionBombError as error:
        match = re.search(r"\((\d+) pixels\)", str(error))
        size_text = f"{int(match[1]) / 1e6:.0f} megapixels" if match else "many megapixels"
        raise _too_large(f.display, size_text) from error
    except OSError as error:
        if isinstance(error, (FileNotFoundError, PermissionError)):
            raise _open_failed(f.display, error) from error
        raise _damaged(f.display, fmt) from error
    except Exception as error:  # Pillow's parsers raise many types on damaged headers
        raise _damaged(f.display, fmt) from error
    try:
        yield im
    finally:
        im.close()


def _damaged(display: str, fmt: str) -> LoadProblem:
    return LoadProblem(
        "unreadable",
        f"{display}: the {_FORMAT_NAMES[fmt]} file is damaged and cannot be read — "
        "scan the page again",
    )


def _decode_cv2(display: str, fmt: str, data: bytes, flags: int) -> np.ndarray:
    """Decode an encoded image with OpenCV; never lets a None (or cv2.error) through."""
    try:
        gray = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error as error:
        raise _damaged(display, fmt) from error
    if gray is None or gray.size == 0:
        raise _damaged(display, fmt)
    if gray.ndim == 3:  # should not happen with grayscale flags; be safe
        gray = cv2.cvtColor(gray, cv2.COLOR_BGR2GRAY)
    if gray.dtype != np.uint8:
        gray = (gray >> 8).astype(np.uint8) if gray.dtype == np.uint16 else gray.astype(np.uint8)
    return gray


def _decode_pil(display: str, im: Image.Image, page_text: str = "") -> np.ndarray:
    """Decode the current frame of a Pillow image to uint8 greyscale, shape (rows, cols)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im.load()
            return _pil_to_gray(im)
    except LoadProblem:
        raise
    except Exception as error:  # truncated strips, bad compression data, libtiff errors...
        fmt = (im.format or "image").upper()
        raise LoadProblem(
            "unreadable",
            f"{display}{page_text}: the {fmt} image data is damaged or incomplete — "
            "scan the page again",
        ) from error


def _pil_to_gray(im: Image.Image) -> np.ndarray:
    mode = im.mode
    if mode in _OPAQUE_MODES and not _has_transparency(im):
        # Pillow writes 1-bit as 0/255 and converts colour with ITU-R 601-2 luma, like OpenCV.
        return _writable(np.asarray(im if mode == "L" else im.convert("L")))
    if mode.startswith("I;16") or mode == "I":
        wide = np.asarray(im).astype(np.int64)
        top = 255 if mode == "I" and wide.max(initial=0) <= 255 else 65535
        return np.clip(wide * 255 // top, 0, 255).astype(np.uint8)
    if mode == "F":
        values = np.nan_to_num(np.asarray(im, dtype=np.float64))
        scale = 255.0 if values.max(initial=0.0) <= 1.0 else 1.0
        return np.clip(values * scale, 0, 255).round().astype(np.uint8)
    # Transparency: flatten onto white paper, as a viewer or printer would.
    rgba = im.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return _writable(np.asarray(Image.alpha_composite(white, rgba).convert("L")))


def _writable(array: np.ndarray) -> np.ndarray:
    return array if array.flags.writeable else array.copy()


def _has_transparency(im: Image.Image) -> bool:
    return im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in im.info


def _exif_orientation(im: Image.Image) -> int:
    try:
        value = im.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 - damaged EXIF must not cost the page: assume upright
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _apply_orientation(gray: np.ndarray, orientation: int) -> np.ndarray:
    """Turn a stored image upright per its EXIF/TIFF orientation tag (1..8), like Pillow's
    ``ImageOps.exif_transpose``."""
    if orientation == 2:
        return cv2.flip(gray, 1)
    if orientation == 3:
        return cv2.rotate(gray, cv2.ROTATE_180)
    if orientation == 4:
        return cv2.flip(gray, 0)
    if orientation == 5:
        return cv2.transpose(gray)
    if orientation == 6:
        return cv2.rotate(gray, cv2.ROTATE_90_CLOCKWISE)
    if orientation == 7:
        return cv2.rotate(cv2.transpose(gray), cv2.ROTATE_180)
    if orientation == 8:
        return cv2.rotate(gray, cv2.ROTATE_90_COUNTERCLOCKWISE)
    return gray


def _dpi_from_info(info: dict, size: tuple[int, int]) -> tuple[float, float] | None:
    """(x, y) resolution from Pillow's ``info['dpi']`` when plausible for a scanned sheet."""
    raw = info.get("dpi")
    try:
        x_dpi, y_dpi = (float(v) for v in raw)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return None
    low, high = _DPI_RANGE
    if not (low <= x_dpi <= high and low <= y_dpi <= high):
        return None
    if max(size[0] / x_dpi, size[1] / y_dpi) > _MAX_SHEET_INCHES:
        return None
    # Formats store dpi as fractions or pixels per metre: 300 dpi comes back as 299.9994.
    return round(x_dpi, 1), round(y_dpi, 1)


def _square_pixels(
    gray: np.ndarray, dpi_xy: tuple[float, float] | None
) -> tuple[np.ndarray, float | None]:
    """Resample an image whose x and y resolutions differ (fax modes: 204 x 98 dpi) so that its
    pixels are square at the finer resolution. Returns the image and its single resolution."""
    if dpi_xy is None:
        return gray, None
    x_dpi, y_dpi = dpi_xy
    ratio = max(x_dpi, y_dpi) / min(x_dpi, y_dpi)
    if ratio <= 1.01:
        return gray, x_dpi
    if ratio > 4:  # no real scanner does this: distrust the metadata, keep the pixels
        return gray, None
    rows, cols = gray.shape
    size = (round(cols * ratio), rows) if x_dpi < y_dpi else (cols, round(rows * ratio))
    if size[0] * size[1] > MAX_PIXELS:
        return gray, None
    return cv2.resize(gray, size, interpolation=cv2.INTER_LINEAR), max(x_dpi, y_dpi)


def _load_tiff_page(f: ScanFile, index: int, min_long_side: int) -> LoadedPage:
    page_text = f" page {index + 1}"
    with _open_image(f, "tiff") as im:
        try:
            count = max(1, int(getattr(im, "n_frames", 1)))
        except Exception as error:
            raise LoadProblem(
                "unreadable",
                f"{f.display}: the TIFF's list of pages is damaged — scan the pages again",
            ) from error
        if not 0 <= index < count:
            raise IndexError(f"{f.display} has {count} pages; page index {index} is out of range")
        try:
            # Seeking reads only the page directories in between, never their image data.
            im.seek(index)
        except Exception as error:
            raise LoadProblem(
                "unreadable",
                f"{f.display}{page_text}: the page cannot be found in the TIFF (the file is "
                "damaged) — scan the pages again",
            ) from error
        _check_pixels(f"{f.display}{page_text}", im.size)
        stored = _tiff_orientation(im)
        dpi_xy = _dpi_from_info(im.info, im.size)
        gray = _decode_pil(f.display, im, page_text)
        # Recent Pillow turns a TIFF upright while loading it and drops the tag; older Pillow
        # leaves both to us. Either way, what the tag still says is what remains to be done.
        pending = _tiff_orientation(im)
    if pending != stored and stored in (5, 6, 7, 8) and dpi_xy is not None:
        dpi_xy = (dpi_xy[1], dpi_xy[0])
    return _finish(gray, pending, dpi_xy, 1, min_long_side)


def _tiff_orientation(im: Image.Image) -> int:
    tags = getattr(im, "tag_v2", None)
    value = tags.get(0x0112, 1) if tags is not None else 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


# --------------------------------------------------------------------------------------------
# PDF (pdfium): a document is opened per call and closed before returning


def _open_pdf(f: ScanFile) -> pdfium.PdfDocument:
    try:
        return pdfium.PdfDocument(f.path)
    except pdfium.PdfiumError as error:
        code = getattr(error, "err_code", None)
        if code == pdfium.raw.FPDF_ERR_PASSWORD:
            message = (
                f"{f.display}: the PDF is password-protected — save or scan it again without a "
                "password"
            )
        elif code == pdfium.raw.FPDF_ERR_SECURITY:
            message = (
                f"{f.display}: the PDF is locked with an encryption exitscan cannot open — save "
                "or scan it again without protection"
            )
        elif code == pdfium.raw.FPDF_ERR_FILE:
            message = f"{f.display}: the PDF could not be opened — check that you may read it"
        else:
            message = (
                f"{f.display}: the PDF is damaged or incomplete — was the scan or the download "
                "interrupted? Scan or save it again"
            )
        raise LoadProblem("unreadable", message) from error
    except OSError as error:
        raise _open_failed(f.display, error) from error


def _load_pdf_page(f: ScanFile, index: int, min_long_side: int) -> LoadedPage:
    where = f"{f.display} page {index + 1}"
    doc = _open_pdf(f)
    try:
        count = len(doc)
        if not 0 <= index < count:
            raise IndexError(f"{f.display} has {count} pages; page index {index} is out of range")
        try:
            page = doc[index]
        except pdfium.PdfiumError as error:
            raise LoadProblem(
                "unreadable", f"{where}: the page is damaged and cannot be read — scan it again"
            ) from error
        try:
            width_pt, height_pt = page.get_size()
            if not (width_pt > 0 and height_pt > 0 and math.isfinite(width_pt * height_pt)):
                raise LoadProblem("unreadable", f"{where}: the page has no size — scan it again")
            scan = _pdf_page_jpeg(page, width_pt, height_pt)
            if scan is not None:
                # A copier's PDF page: one JPEG, the whole page. Decoded as a JPEG file is
                # (at half size when large): 300-dpi A4 in ~16 ms, where drawing it took ~65.
                data, dpi_xy, size = scan
                _check_pixels(where, size)
                reduction = _choose_reduction(max(size), min_long_side)
                gray = _decode_cv2(where, "jpeg", data, _CV2_FLAGS[reduction])
                return _finish(gray, 1, dpi_xy, reduction, min_long_side)
            dpi = _pdf_render_dpi(page, width_pt, height_pt, min_long_side)
            try:
                # A grey bitmap, not the FPDF_GRAYSCALE flag: same luma, about half the time.
                bitmap = page.render(
                    scale=dpi / 72.0, force_bitmap_format=pdfium.raw.FPDFBitmap_Gray
                )
            except pdfium.PdfiumError as error:
                raise LoadProblem(
                    "unreadable", f"{where}: the page could not be drawn — scan it again"
                ) from error
            try:
                gray = np.array(bitmap.to_numpy(), dtype=np.uint8, copy=True)
            finally:
                bitmap.close()
        finally:
            page.close()
    finally:
        doc.close()
    return LoadedPage(image=gray, dpi=round(dpi, 1), reduction=1)


def _pdf_page_jpeg(
    page: pdfium.PdfPage, width_pt: float, height_pt: float
) -> tuple[bytes, tuple[float, float], tuple[int, int]] | None:
    """The page's scan as JPEG bytes, when the page is nothing but one upright JPEG filling it
    (grey or RGB: what copiers write): (data, (x, y) dpi, (width, height) px). None otherwise
    (a rotated page, other content, another encoding, a scan under PDF_DPI_MIN): the page is
    then drawn by pdfium. (An inverted /Decode array, which no copier writes, would come out as a
    negative: no markers, so "not a pass" in problems.csv, never a wrong reading.)"""
    try:
        if page.get_rotation() != 0:
            return None
        objs = list(page.get_objects(max_depth=1))
        if len(objs) != 1 or objs[0].type != pdfium.raw.FPDF_PAGEOBJ_IMAGE:
            return None
        img = objs[0]
        filters = img.get_filters()
        # JPEG data, perhaps wrapped in text-safe or zip encodings that pdfium undoes here.
        if not filters or filters[-1] != "DCTDecode" or not set(filters[:-1]) <= set(pdfium.PdfImage.SIMPLE_FILTERS):
            return None
        meta = img.get_metadata()
        if meta.colorspace not in (pdfium.raw.FPDF_COLORSPACE_DEVICEGRAY, pdfium.raw.FPDF_COLORSPACE_DEVICERGB):
            return None
        a, b, c, d, e, f = img.get_matrix().get()
        # Upright and unflipped, covering the page to within 1% (PDF: y up, images drawn upright when d > 0).
        tol_w, tol_h = 0.01 * width_pt, 0.01 * height_pt
        if abs(b) > 1e-6 or abs(c) > 1e-6 or a <= 0 or d <= 0:
            return None
        if abs(a - width_pt) > tol_w or abs(d - height_pt) > tol_h or abs(e) > tol_w or abs(f) > tol_h:
            return None
        px_w, px_h = img.get_px_size()
        data = bytes(img.get_data(decode_simple=True))
    except pdfium.PdfiumError:
        return None
    if px_w < 1 or px_h < 1 or data[:2] != b"\xff\xd8":
        return None
    dpi_xy = (px_w * 72.0 / a, px_h * 72.0 / d)
    if min(dpi_xy) < PDF_DPI_MIN - 0.5:  # a coarse scan: drawn larger, as before
        return None
    return data, dpi_xy, (px_w, px_h)


def _pdf_render_dpi(
    page: pdfium.PdfPage, width_pt: float, height_pt: float, min_long: int
) -> float:
    """Resolution to render a page at: its scan's, clamped to [PDF_DPI_MIN, PDF_DPI_MAX], raised
    (within the cap) so the long side reaches ``min_long`` px, lowered if over MAX_PIXELS."""
    scan_dpi = _pdf_scan_dpi(page, width_pt * height_pt)
    dpi = PDF_DPI_DEFAULT if scan_dpi is None else min(max(scan_dpi, PDF_DPI_MIN), PDF_DPI_MAX)
    dpi = max(dpi, min(PDF_DPI_MAX, min_long * 72.0 / max(width_pt, height_pt)))
    long_in = max(width_pt, height_pt) / 72.0
    if scan_dpi is not None and long_in > _MAX_PAPER_INCHES:
        # Bigger than any sheet of paper: a photo put in a PDF (phone scanning apps do it).
        # The page is only part of the frame, so keep the photo's own pixels.
        dpi = max(dpi, min(scan_dpi, _PHOTO_LONG_SIDE / long_in))
    pixels = (width_pt * dpi / 72.0) * (height_pt * dpi / 72.0)
    if pixels > MAX_PIXELS:  # a poster-sized page: render coarser rather than exhaust memory
        dpi *= math.sqrt(MAX_PIXELS / pixels)
    return dpi


def _pdf_scan_dpi(page: pdfium.PdfPage, page_area: float) -> float | None:
    """Resolution of the largest top-level image on the page, if it covers enough of the page.

    Reads only the image's pixel size (from its dictionary) and its placement matrix; decodes
    nothing. For a rotated or anisotropic placement, the coarser of the two axes counts.
    """
    best_area, best_dpi = 0.0, None
    try:
        for obj in page.get_objects(filter=[pdfium.raw.FPDF_PAGEOBJ_IMAGE], max_depth=1):
            px_w, px_h = obj.get_px_size()
            a, b, c, d, _, _ = obj.get_matrix().get()
            w_in, h_in = math.hypot(a, b) / 72.0, math.hypot(c, d) / 72.0
            area = abs(a * d - b * c)
            if px_w > 0 and px_h > 0 and w_in > 0 and h_in > 0 and area > best_area:
                best_area, best_dpi = area, min(px_w / w_in, px_h / h_in)
    except pdfium.PdfiumError:
        return None
    if best_dpi is None or best_area < _PDF_SCAN_COVERAGE * page_area:
        return None
    return best_dpi
