"""Packing scanned pages as a teacher's folder holds them: PDF, multi-page TIFF, JPEG, PNG.

PDFs are written like a copier's scan-to-PDF: one image per page, the page exactly the
image's size at its resolution; JPEG pages are embedded as they are (DCTDecode, no second
compression), black-and-white pages as CCITT G4, lossless ones deflated. The writer is a
few lines of PDF syntax rather than a library so that the bytes are deterministic (no dates,
no random IDs). TIFFs use G4 for black-and-white, JPEG for pages a device would JPEG, LZW
otherwise. Every file records its resolution.
"""

from __future__ import annotations

import io
import os
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from exitscan.simulate.scan import Scan


def encoding_of(scan: Scan) -> str:
    """How a device stores this page: jpeg, g4 or lossless."""
    if scan.mode == "1":
        return "g4"
    return "jpeg" if scan.jpeg is not None else "lossless"


def _pil(arr: np.ndarray) -> Image.Image:
    return Image.fromarray(arr)


def g4_strip(bits: np.ndarray) -> bytes:
    """CCITT G4 data of a bool image (True = white) in one strip, as Pillow/libtiff encodes it."""
    buf = io.BytesIO()
    _pil(bits).save(buf, "TIFF", compression="group4", strip_size=1 << 30)
    with Image.open(io.BytesIO(buf.getvalue())) as t:
        off, n = t.tag_v2[273][0], t.tag_v2[279][0]
    return buf.getvalue()[off : off + n]


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def pdf_bytes(pages: list[Scan], title: str = "Scan") -> bytes:
    """An image-only PDF, one page per scan (see the module docstring)."""
    objs: list[bytes] = []

    def add(body: bytes) -> int:
        objs.append(body)
        return len(objs)

    def stream(head: str, data: bytes) -> bytes:
        return f"<< {head} /Length {len(data)} >>\nstream\n".encode() + data + b"\nendstream"

    add(b"")  # 1: catalog, filled in below
    add(b"")  # 2: page tree
    info = add(f"<< /Producer (exitscan scan simulator) /Title ({title}) >>".encode())
    kids = []
    for sc in pages:
        w, h = sc.size
        if sc.mode == "1":
            data = g4_strip(sc.pixels())
            img = stream(
                f"/Type /XObject /Subtype /Image /Width {w} /Height {h} /ColorSpace /DeviceGray "
                f"/BitsPerComponent 1 /Filter /CCITTFaxDecode "
                f"/DecodeParms << /K -1 /Columns {w} /Rows {h} /BlackIs1 true >>",
                data,
            )
        else:
            cs = "/DeviceRGB" if sc.mode == "rgb" else "/DeviceGray"
            if sc.jpeg is not None:
                img = stream(f"/Type /XObject /Subtype /Image /Width {w} /Height {h} /ColorSpace {cs} /BitsPerComponent 8 /Filter /DCTDecode", sc.jpeg)
            else:
                raw = np.ascontiguousarray(sc.pixels()).tobytes()
                img = stream(f"/Type /XObject /Subtype /Image /Width {w} /Height {h} /ColorSpace {cs} /BitsPerComponent 8 /Filter /FlateDecode", zlib.compress(raw, 6))
        im_no = add(img)
        pw, ph = w * 72.0 / sc.dpi, h * 72.0 / sc.dpi
        content = add(stream("", f"q {pw:.4f} 0 0 {ph:.4f} 0 0 cm /Im0 Do Q".encode()))
        kids.append(
            add(
                f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {pw:.4f} {ph:.4f}] "
                f"/Resources << /XObject << /Im0 {im_no} 0 R >> >> /Contents {content} 0 R >>".encode()
            )
        )
    objs[0] = b"<< /Type /Catalog /Pages 2 0 R >>"
    objs[1] = f"<< /Type /Pages /Kids [{' '.join(f'{k} 0 R' for k in kids)}] /Count {len(kids)} >>".encode()
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objs, start=1):
        offsets.append(out.tell())
        out.write(f"{i} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode())
    for o in offsets:
        out.write(f"{o:010d} 00000 n \n".encode())
    out.write(f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R /Info {info} 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()


def write_pdf(path: Path, pages: list[Scan]) -> None:
    _atomic_write(path, pdf_bytes(pages, title=path.stem))


def _tiff_frame(sc: Scan) -> Image.Image:
    im = _pil(sc.pixels())
    info: dict = {"dpi": (sc.dpi, sc.dpi)}
    if sc.mode == "1":
        info["compression"] = "group4"
    elif sc.jpeg is not None:
        info["compression"] = "jpeg"
        info["quality"] = int(sc.jpeg_quality or 85)
    else:
        info["compression"] = "tiff_lzw"
    im.encoderinfo = info
    return im


def tiff_bytes(pages: list[Scan]) -> bytes:
    """A multi-page TIFF; each page keeps its own compression and resolution."""
    frames = [_tiff_frame(sc) for sc in pages]
    buf = io.BytesIO()
    first = frames[0]
    first.save(buf, "TIFF", save_all=True, append_images=frames[1:], **first.encoderinfo)
    return buf.getvalue()


def write_tiff(path: Path, pages: list[Scan]) -> None:
    _atomic_write(path, tiff_bytes(pages))


def image_bytes(sc: Scan, fmt: str) -> bytes:
    """One page as a JPEG or PNG file's bytes."""
    buf = io.BytesIO()
    if fmt == "jpeg":
        if sc.jpeg is not None:
            return sc.jpeg
        px = sc.pixels()
        arr = px.astype(np.uint8) * 255 if sc.mode == "1" else px
        _pil(arr).save(buf, "JPEG", quality=90, dpi=(sc.dpi, sc.dpi))
    elif fmt == "png":
        _pil(sc.pixels()).save(buf, "PNG", dpi=(sc.dpi, sc.dpi))
    else:
        raise ValueError(f"unknown image format {fmt!r}")
    return buf.getvalue()


def write_image(path: Path, sc: Scan, fmt: str) -> None:
    _atomic_write(path, image_bytes(sc, fmt))
