"""The module-level QR decoder: it reads back what reportlab printed, or says it can't; never a wrong text.

Symbols are made by reportlab exactly as `render._draw_qr` makes them. Some go through a real
raster (a PDF drawn by reportlab, rasterised by pdfium) and are sampled at the module centres,
as `identify._module_levels` does; the many random trials use reportlab's module matrix.
"""

from __future__ import annotations

import io
from functools import cache

import cv2
import numpy as np
import pypdfium2 as pdfium
import pytest
from reportlab.graphics.barcode import qrencoder
from reportlab.graphics.barcode.qr import QrCodeWidget
from reportlab.graphics.shapes import Drawing
from reportlab.pdfgen.canvas import Canvas

from exitscan import payload, qrdecode
from exitscan.payload import MAX_PAYLOAD_BYTES, PassCode
from exitscan.qrdecode import SIZE, decode_levels

BORDER = payload.QR_BORDER_MODULES
MODULE_PT = 4.0
LONG_NAME = "Maximiliana Wolfeschlegelsteinhausenbergerdorff-Ní Bhriain O'Connor"


def pass_text(name: str) -> str:
    return payload.encode(
        PassCode(template="C", serial=17, lesson_key="a3f9c2", student_id="1042", student_name=name,
                 class_name="P3B", date="2026-11-23", n_criteria=3, lesson="Writing: adjectives")
    )


NAMES = ("Siobhán Ní Bhriain", "Zoë O'Connor", "Łukasz Dąbrowski", LONG_NAME)
TEXTS = tuple(pass_text(n) for n in NAMES)


def widget(value, level: str = "M") -> QrCodeWidget:
    return QrCodeWidget(value, barLevel=level, barBorder=BORDER, qrVersion=payload.QR_VERSION)


@cache
def modules(text: str) -> np.ndarray:
    """reportlab's own module matrix (True = dark) for the symbol `render._draw_qr` prints."""
    w = widget(text)
    w.qr.make()
    dark = np.array(w.qr.modules, bool)
    dark.setflags(write=False)  # shared by the tests: damage a copy
    return dark


def levels_of(dark: np.ndarray) -> np.ndarray:
    return np.where(dark, 30.0, 220.0)


@cache
def raster(text: str, px_per_module: float) -> np.ndarray:
    """The symbol drawn into a PDF by reportlab and rasterised by pdfium: grey uint8, with its
    quiet zone, ``px_per_module`` pixels a module."""
    side = (SIZE + 2 * BORDER) * MODULE_PT
    buf = io.BytesIO()
    canvas = Canvas(buf, pagesize=(side, side))
    drawing = Drawing(side, side)
    w = widget(text)
    w.barWidth = w.barHeight = side
    drawing.add(w)
    drawing.drawOn(canvas, 0, 0)
    canvas.showPage()
    canvas.save()
    page = pdfium.PdfDocument(buf.getvalue())[0]
    img = page.render(scale=px_per_module / MODULE_PT, grayscale=True).to_numpy()
    img = img[..., 0] if img.ndim == 3 else img
    img.setflags(write=False)
    return img


def sample(img: np.ndarray, px_per_module: float, offset=(0.0, 0.0)) -> np.ndarray:
    """Grey level at each module's centre (bilinear), the grid shifted by ``offset`` pixels."""
    centres = (np.arange(SIZE) + BORDER + 0.5) * px_per_module - 0.5
    xs, ys = np.meshgrid(centres + offset[0], centres + offset[1])
    return cv2.remap(img.astype(np.float32), xs.astype(np.float32), ys.astype(np.float32), cv2.INTER_LINEAR)


def codeword_errors(got: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Codewords per block that differ between two module matrices (True = dark)."""
    bits = qrdecode._BIT_FLAT
    return (got.ravel()[bits] != truth.ravel()[bits]).any(axis=-1).sum(axis=-1)


# ---- Real symbols ----


def test_the_maximal_payload_is_84_bytes():
    assert len(TEXTS[-1].encode("utf-8")) == MAX_PAYLOAD_BYTES
    assert payload.QR_MODULES == SIZE


@pytest.mark.parametrize("name", NAMES)
def test_a_printed_code_reads_back_exactly(name):
    text = pass_text(name)
    result = decode_levels(sample(raster(text, 6.0), 6.0))
    assert result is not None
    assert (result.text, result.corrected, result.erasures) == (text, 0, 0)
    assert payload.decode(result.text).student_name == payload.decode(text).student_name


@pytest.mark.parametrize("text", TEXTS)
def test_agrees_with_opencv(text):
    img = raster(text, 6.0)
    a = BORDER * 6.0 - 0.5
    b = a + SIZE * 6.0
    corners = np.array([[[a, a], [b, a], [b, b], [a, b]]], np.float32)
    theirs, _ = cv2.QRCodeDetector().decode(img, corners)
    assert theirs == text
    assert decode_levels(sample(img, 6.0)).text == theirs


def test_a_blurred_phone_photo_reads_back():
    """2.6-pixel modules blurred (sigma 1.2 px), noisy, sampled off-centre: the refined reading."""
    rng = np.random.default_rng(7)
    beyond_plain_threshold = 0
    for k in range(8):
        text = TEXTS[k % len(TEXTS)]
        img = cv2.GaussianBlur(raster(text, 2.6).astype(np.float32), (0, 0), 1.2)
        img = 60 + 0.6 * (img + rng.normal(0, 8, img.shape))
        levels = sample(img, 2.6, rng.uniform(-0.4, 0.4, 2))
        result = decode_levels(levels)
        assert result is not None and result.text == text
        dark = modules(text)
        midpoint = (np.median(levels[dark]) + np.median(levels[~dark])) / 2
        beyond_plain_threshold += codeword_errors(levels < midpoint, dark).max() > 12
    assert beyond_plain_threshold >= 6  # so these were read by the refined reading


def smeared_photo(text: str, px_per_module: float, length: int, rng, along_columns: bool = False, noise: float = 4.0) -> np.ndarray:
    """Module levels of a hand-shaken phone photo: the symbol under a little perspective,
    smeared ``length`` pixels along the photo's rows (``along_columns``: its columns), blurred,
    dimmed, noisy, and sampled at the module centres with the grid ~0.1 module off."""
    img = raster(text, px_per_module).astype(np.float32)
    if along_columns:
        img = np.ascontiguousarray(img.T)
    h, w = img.shape
    square = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    tilted = square + rng.uniform(-0.1, 0.1, (4, 2)).astype(np.float32) * w
    tilted -= tilted.min(axis=0) - 8
    hm = cv2.getPerspectiveTransform(square, tilted)
    size = tuple(int(v) + 16 for v in tilted.max(axis=0))
    photo = cv2.warpPerspective(img, hm, size, flags=cv2.INTER_LINEAR, borderValue=255)
    photo = cv2.filter2D(photo, -1, np.full((1, length), 1.0 / length, np.float32), borderType=cv2.BORDER_REPLICATE)
    photo = cv2.GaussianBlur(photo, (0, 0), 0.7)
    photo = (40 + 0.75 * photo + rng.normal(0, noise, photo.shape)).astype(np.float32)
    centres = (np.arange(SIZE) + BORDER + 0.5) * px_per_module
    xs, ys = np.meshgrid(centres, centres)
    pts = cv2.perspectiveTransform(np.stack([xs.ravel(), ys.ravel()], 1)[None].astype(np.float64), hm)[0]
    pts += rng.uniform(-0.15, 0.15, 2) * px_per_module - 0.5
    grid = pts.reshape(SIZE, SIZE, 2).astype(np.float32)
    levels = cv2.remap(photo, grid[..., 0], grid[..., 1], cv2.INTER_LINEAR)
    return np.ascontiguousarray(levels.T) if along_columns else levels


def test_a_hand_shaken_phone_photo_reads_back():
    """A 7-pixel smear over 2.9-pixel modules (2.4 modules, phone photos at 2048 px) defeats
    every threshold, refined or not: it is read line by line along the smear, either way."""
    rng = np.random.default_rng(11)
    for k in range(8):
        text = TEXTS[k % len(TEXTS)]
        levels = smeared_photo(text, 2.9, 7, rng, along_columns=bool(k % 2))
        result = decode_levels(levels)
        assert result is not None and result.text == text
        readings = qrdecode._Readings(qrdecode._shades(levels))
        refined = list(readings)[1]
        assert codeword_errors(refined < 0.5, modules(text)).max() > 12  # the old reading fails


def test_a_smear_beyond_repair_gives_none():
    """Smeared over 4-5 modules, or noisy besides: beyond the line model, nothing reads."""
    rng = np.random.default_rng(12)
    for k in range(8):
        text = TEXTS[k % len(TEXTS)]
        assert decode_levels(smeared_photo(text, 2.9, 14, rng, along_columns=bool(k % 2))) is None
        assert decode_levels(smeared_photo(text, 2.9, 12, rng, along_columns=bool(k % 2), noise=10.0)) is None


def test_random_data_behind_true_function_patterns_never_reads():
    """The line-by-line readings run in full on a symbol whose finders, timing and format are
    right but whose data is noise (plain or smeared): no text comes out."""
    rng = np.random.default_rng(13)
    bits = qrdecode._BIT_FLAT.ravel()
    for trial in range(60):
        dark = modules(TEXTS[trial % len(TEXTS)]).copy()
        dark.ravel()[bits] = rng.integers(0, 2, bits.size).astype(bool)
        light = (~dark).astype(np.float64)
        if trial % 3 == 1:  # smeared along the rows
            light = 0.5 * light + 0.25 * (np.roll(light, 1, 1) + np.roll(light, -1, 1))
        elif trial % 3 == 2:  # along the columns
            light = 0.4 * light + 0.3 * (np.roll(light, 1, 0) + np.roll(light, -1, 0))
        assert decode_levels(40 + 180 * light + rng.normal(0, 5, light.shape)) is None


@pytest.mark.parametrize(
    "value, text",
    [
        ("20261123", "20261123"),  # reportlab picks numeric mode
        ("EXS1 C:17/P3B", "EXS1 C:17/P3B"),  # alphanumeric
        ("漢字テスト", "漢字テスト"),  # Kanji, tried before bytes
        ([qrencoder.QRNumber("2026"), qrencoder.QRAlphaNum("AB-1"), qrencoder.QR8bitByte("|Zoë")], "2026AB-1|Zoë"),
        ([qrencoder.QRECI(3), qrencoder.QR8bitByte(b"Zo\xeb")], "Zoë"),  # ISO 8859-1
        ([qrencoder.QRECI(26), qrencoder.QR8bitByte("Łukasz")], "Łukasz"),
        ("", ""),
    ],
)
def test_every_segment_mode_reportlab_writes(value, text):
    w = widget(value)
    w.qr.make()
    result = decode_levels(levels_of(np.array(w.qr.modules, bool)))
    assert result is not None and result.text == text


@pytest.mark.parametrize("mask", range(8))
def test_every_mask(mask):
    qr = qrencoder.QRCode(payload.QR_VERSION, qrencoder.QRErrorCorrectLevel.M)
    qr.addData(TEXTS[0])
    qr.makeImpl(False, mask)  # reportlab's own placement with this mask, not its pick
    assert decode_levels(levels_of(np.array(qr.modules, bool))).text == TEXTS[0]


@pytest.mark.parametrize("level", ["L", "Q", "H"])
def test_other_error_correction_levels_are_refused(level):
    w = widget("EXS1|C|17", level)
    w.qr.make()
    assert decode_levels(levels_of(np.array(w.qr.modules, bool))) is None


def test_format_information_survives_damage_to_one_copy():
    dark = modules(TEXTS[0]).copy()
    dark[8, 0:6] ^= True  # 6 of the first copy's 15 bits: that copy is lost
    assert decode_levels(levels_of(dark)).text == TEXTS[0]
    dark[SIZE - 3 :, 8] ^= True  # and 3 of the second's: still the nearest word
    assert decode_levels(levels_of(dark)).text == TEXTS[0]


def test_when_the_format_copies_disagree_the_check_codewords_decide():
    dark = modules(TEXTS[0]).copy()  # mask 2
    for fake_mask in (0, 7):
        word = qrdecode._FORMAT_BITS[fake_mask]  # level M, another mask: a valid word
        dark.ravel()[qrdecode._FORMAT_FLAT[0]] = word
        assert decode_levels(levels_of(dark)).text == TEXTS[0]
        dark.ravel()[qrdecode._FORMAT_FLAT[1]] = word  # both copies say so: nothing reads
        assert decode_levels(levels_of(dark)) is None
        dark = modules(TEXTS[0]).copy()


def test_what_is_not_a_code_gives_none():
    rng = np.random.default_rng(0)
    clean = levels_of(modules(TEXTS[0]))
    assert decode_levels(np.full((SIZE, SIZE), 128.0)) is None
    assert decode_levels(255 - clean) is None  # inverted: the finders are light
    nan = clean.copy()
    nan[20, 20] = np.nan
    assert decode_levels(nan) is None
    for _ in range(50):
        assert decode_levels(rng.uniform(0, 255, (SIZE, SIZE))) is None
        assert decode_levels(rng.integers(0, 2, (SIZE, SIZE)) * 255) is None
    assert decode_levels(np.where(modules(TEXTS[0]), -1e308, 1e308)) is None  # overflows
    speck = clean.copy()
    speck[20, 20] = 1e300  # one absurd level (glare) does not sway the rest
    assert decode_levels(speck).text == TEXTS[0]
    with pytest.raises(ValueError, match="37 x 37"):
        decode_levels(np.zeros((SIZE, SIZE - 1)))


def symbol_of_stream(bits: str, pad: bytes = b"\xec\x11" * 43) -> np.ndarray:
    """Levels of a symbol whose data codewords are ``bits`` (then zeros to a byte boundary,
    then ``pad``), with correct check codewords: reportlab places it with mask 2."""
    bits += "0" * (-len(bits) % 8)
    data = int(bits, 2).to_bytes(len(bits) // 8, "big") + pad
    data = data[: 2 * qrdecode._DATA]
    buffer = qrencoder.QRBitBuffer()
    for byte in data:
        buffer.put(byte, 8)
    level = qrencoder.QRErrorCorrectLevel.M
    qr = qrencoder.QRCode(payload.QR_VERSION, level)
    qr.dataCache = qrencoder.QRCode.createBytes(buffer, qrencoder.QRRSBlock.getRSBlocks(payload.QR_VERSION, level))
    qr.makeImpl(False, 2)
    return levels_of(np.array(qr.modules, bool))


def test_a_stream_that_breaks_the_standard_is_refused():
    hi = "0100" + "00000010" + "01001000" + "01101001"  # bytes: "Hi"
    assert decode_levels(symbol_of_stream(hi + "0000")).text == "Hi"
    assert decode_levels(symbol_of_stream(hi + "0000", pad=bytes(86))) is None  # not 0xEC 0x11
    assert decode_levels(symbol_of_stream(hi + "0001")) is None  # no terminator
    assert decode_levels(symbol_of_stream("0100" + "00000001" + "11111111" + "0000")) is None  # not UTF-8
    assert decode_levels(symbol_of_stream("0100" + "11001000" + "01001000" + "0000")) is None  # 200 bytes?
    assert decode_levels(symbol_of_stream("0011" + "0001" + "0010" + "00000000" + hi + "0000")) is None  # structured append
    assert decode_levels(symbol_of_stream("0001" + "0000000011" + "1111101000" + "0000")) is None  # "1000" as 3 digits
    assert decode_levels(symbol_of_stream("0111" + "00011010" + hi + "0000")).text == "Hi"  # ECI 26: UTF-8
    assert decode_levels(symbol_of_stream("0111" + "11111111" + hi + "0000")) is None  # no such ECI form


# ---- Seeded damage: up to the limit it reads, beyond it says so, never a wrong text ----


def damage_codewords(rng, dark: np.ndarray, per_block: list[int], grey: list[int] | None = None) -> np.ndarray:
    """Levels with ``per_block[b]`` codewords of block b flipped (1-8 of their modules) and
    ``grey[b]`` more greyed (1-8 modules near the threshold)."""
    levels = levels_of(dark).ravel()
    grey = grey or [0, 0]
    for b in (0, 1):
        chosen = rng.choice(qrdecode._BLOCK, per_block[b] + grey[b], replace=False)
        for k, i in enumerate(chosen):
            bits = qrdecode._BIT_FLAT[b, i]
            hit = bits[rng.choice(8, rng.integers(1, 9), replace=False)]
            if k < per_block[b]:
                levels[hit] = 250.0 - levels[hit]
            else:
                levels[hit] = 125.0 + rng.uniform(-20, 20, len(hit))  # within 10 % of the span
    return levels.reshape(SIZE, SIZE)


def test_flipped_codewords_up_to_12_a_block_are_corrected_and_beyond_refused():
    rng = np.random.default_rng(1)
    outcomes = {"read": 0, "refused": 0}
    for trial in range(200):
        text = TEXTS[trial % len(TEXTS)]
        dark = modules(text)
        per_block = rng.integers(0, 20, 2).tolist()
        result = decode_levels(damage_codewords(rng, dark, per_block))
        if max(per_block) <= 12:
            assert result is not None and result.text == text
            assert (result.corrected, result.erasures) == (sum(per_block), 0)
            outcomes["read"] += 1
        else:
            assert result is None
            outcomes["refused"] += 1
    assert min(outcomes.values()) > 40


def test_random_module_flips_anywhere_never_give_a_wrong_text():
    """Flips anywhere, function patterns and format included; read whenever the data allows."""
    rng = np.random.default_rng(2)
    read = 0
    for trial in range(200):
        text = TEXTS[trial % len(TEXTS)]
        dark = modules(text).copy()
        k = int(rng.integers(0, 90))
        dark.ravel()[rng.choice(SIZE * SIZE, k, replace=False)] ^= True
        result = decode_levels(levels_of(dark))
        if result is not None:
            assert result.text == text
            read += 1
        elif k <= 12:
            pytest.fail(f"{k} flipped modules were not corrected")
    assert 50 < read < 200


def test_grey_modules_become_erasures():
    """f greyed and e flipped codewords in a block: read whenever 2e + f <= 20 (and f <= 19)."""
    rng = np.random.default_rng(3)
    outcomes = {"read": 0, "erasures used": 0, "refused": 0}
    for trial in range(200):
        text = TEXTS[trial % len(TEXTS)]
        errors = rng.integers(0, 9, 2).tolist()
        grey = rng.integers(0, 26, 2).tolist()
        result = decode_levels(damage_codewords(rng, modules(text), errors, grey))
        if all(2 * e + f <= 20 and f <= 19 for e, f in zip(errors, grey)):
            assert result is not None
        if result is None:
            outcomes["refused"] += 1
        else:
            assert result.text == text
            outcomes["read"] += 1
            outcomes["erasures used"] += result.erasures > 0
    assert min(outcomes.values()) > 10


def test_the_more_erasures_the_fewer_errors_are_trusted():
    """2e + f <= 24 corrects in theory, but with few check codewords left over a wrong word
    decodes too easily: 10 erasures leave room for 6 errors (not 7), 19 for none (not 2)."""
    rng = np.random.default_rng(5)
    dark = modules(TEXTS[1])
    for grey, errors, reads in ((10, 6, True), (10, 7, False), (19, 0, True), (19, 1, False), (19, 2, False)):
        levels = levels_of(dark).ravel()
        chosen = rng.choice(qrdecode._BLOCK, grey + errors, replace=False)
        for k, i in enumerate(chosen):
            bits = qrdecode._BIT_FLAT[0, i]
            if k < grey:  # just on the wrong side of the threshold: wrong, and uncertain
                levels[bits[0]] = np.where(dark.ravel()[bits[0]], 130.0, 120.0)
            else:
                levels[bits[0]] = 250.0 - levels[bits[0]]
        result = decode_levels(levels.reshape(SIZE, SIZE))
        assert (result is not None) == reads, (grey, errors)
        if reads:
            assert (result.text, result.erasures) == (TEXTS[1], grey)


def test_blur_and_noise_on_the_levels_never_give_a_wrong_text():
    """Each module's level spread into its neighbours (3 x 3 blur), plus noise: mild damage
    reads, heavy damage is refused, nothing reads wrong."""
    rng = np.random.default_rng(4)
    read = {}
    for strength, noise in ((0.08, 0.05), (0.12, 0.1), (0.15, 0.15), (0.2, 0.25)):
        read[strength] = 0
        for trial in range(40):
            text = TEXTS[trial % len(TEXTS)]
            light = np.pad(~modules(text), 1, constant_values=True).astype(np.float64)
            around = light[:-2, 1:-1] + light[2:, 1:-1] + light[1:-1, :-2] + light[1:-1, 2:]
            levels = (1 - 4 * strength) * light[1:-1, 1:-1] + strength * around
            levels = 40 + 180 * (levels + rng.normal(0, noise, levels.shape))
            result = decode_levels(levels)
            if result is not None:
                assert result.text == text
                read[strength] += 1
    assert read[0.08] == 40 and read[0.12] >= 36
    assert read[0.2] < 40
