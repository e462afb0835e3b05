"""Scanning a filled-in sheet: copier, black-and-white copier, poor scanner, phone photo.

A `Profile` is a kind of device with ranges; `sample_session` fixes what stays the same for
one stack (resolution, colour mode, JPEG quality, tone), `sample_pose` what changes sheet by
sheet (orientation, skew, shift; for a phone: angle, tilt, framing, light and shadow).
`scan_sheet` turns a rendered sheet (RGB uint8 at the render resolution, the sheet's frame)
into the scanned page and the 3x3 transform from paper millimetres to the page's pixels, so
the truth can say where every pass landed.

Conventions: orientation is how far the printed sheet is turned *clockwise* in the scan (0,
90, 180, 270; rotate the scan counter-clockwise by it to read it). Pixel coordinates are
OpenCV's: the centre of pixel (col, row) is at (x, y) = (col, row). A copier crops to the
paper, so a copier page is always the paper's size at its resolution (content turned by
skew may be cut at the edges); a phone photo is the camera's frame with the desk around.

Image dtypes: colour RGB uint8 (H, W, 3); grey uint8 (H, W); black-and-white bool (H, W)
with True = white (Pillow's mode "1").
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass, field
from functools import cached_property, lru_cache

import cv2
import numpy as np
from PIL import Image

MODES = ("rgb", "gray", "1")
ORIENTATIONS = (0, 90, 180, 270)


#: Black-and-white mode's cut-off on the 0-255 grey scale, drawn per session from
#: [low, high): paper and light print above it become white. A pen whose own colour is
#: lighter than ``low`` (an orange felt tip is 154) can vanish from such a scan.
BW_THRESHOLDS = (150, 176)


@dataclass(frozen=True)
class Profile:
    """A scanning device and how it is used. Angles in degrees, shifts in mm, blur in pixels."""

    name: str
    description: str
    dpi: tuple[int, ...]
    modes: dict[str, float]
    skew_deg: float
    shift_mm: float
    blur_px: tuple[float, float]
    noise: tuple[float, float]  # standard deviation, grey levels
    jpeg_quality: tuple[int, int] | None  # None: lossless (or CCITT G4 for "1")
    orientations: dict[int, float] = field(default_factory=lambda: {0: 0.55, 180: 0.3, 90: 0.075, 270: 0.075})
    mono_printer: bool = False
    phone: bool = False
    dither: float = 0.0  # chance a black-and-white scan uses ordered dithering (photo mode)


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            "clean",
            "no scanning at all: the filled-in sheet at 300 dpi, lossless, upright (for tests)",
            (300,), {"rgb": 1.0}, 0.0, 0.0, (0.0, 0.0), (0.0, 0.0), None, {0: 1.0},
        ),
        Profile(
            "copier",
            "school copier, scan to PDF/folder: 200/300 dpi, colour or grey JPEG, +-3 deg skew",
            (200, 300), {"rgb": 0.5, "gray": 0.5}, 3.0, 3.0, (0.3, 0.8), (1.5, 4.0), (70, 92),
        ),
        Profile(
            "bw-copier",
            "copier in black-and-white mode: 1-bit, CCITT G4, 200/300 dpi, +-3 deg skew",
            (200, 300), {"1": 1.0}, 3.0, 3.0, (0.3, 0.7), (2.0, 5.0), None, dither=0.25,
        ),
        Profile(
            "low-quality",
            "old or badly set scanner: 150 dpi, +-10 deg skew, heavy JPEG",
            (150,), {"rgb": 0.5, "gray": 0.5}, 10.0, 6.0, (0.6, 1.2), (3.0, 7.0), (20, 45),
        ),
        Profile(
            "phone",
            "phone photo: perspective, desk around the page, uneven light, shadow, +-15 deg",
            (72,), {"rgb": 1.0}, 15.0, 0.0, (0.5, 1.5), (2.0, 5.0), (75, 92), phone=True,
        ),
        Profile(
            "mono-printer",
            "passes printed on a black-and-white laser, then scanned on the copier",
            (200, 300), {"gray": 0.7, "rgb": 0.3}, 3.0, 3.0, (0.3, 0.8), (1.5, 4.0), (70, 92),
            mono_printer=True,
        ),
    )
}


def get_profile(name: str | Profile) -> Profile:
    if isinstance(name, Profile):
        return name
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown scan profile {name!r}; the profiles are: {', '.join(PROFILES)}") from None


def _pick(mix: dict, rng: np.random.Generator):
    keys = list(mix)
    p = np.array([mix[k] for k in keys], np.float64)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


@dataclass(frozen=True)
class Session:
    """A device's settings for one stack (one scanning job)."""

    profile: str
    dpi: int
    mode: str  # rgb, gray, 1
    jpeg_quality: int | None
    white: float  # paper white after the scanner's tone curve
    black: float
    gamma: float
    cast: tuple[float, float, float]  # per-channel gain (colour scanners are never neutral)
    backing: int  # lid/ADF backing seen where a skewed sheet leaves the page
    threshold: int  # black-and-white cut-off
    dither: bool
    blur_px: float
    noise: float
    photo_long_side: int = 0


def sample_session(profile: Profile | str, rng: np.random.Generator) -> Session:
    p = get_profile(profile)
    clean = p.name == "clean"
    q = None if p.jpeg_quality is None else int(rng.integers(p.jpeg_quality[0], p.jpeg_quality[1] + 1))
    return Session(
        profile=p.name,
        dpi=int(rng.choice(p.dpi)),
        mode=_pick(p.modes, rng),
        jpeg_quality=q,
        white=255.0 if clean else float(rng.uniform(238, 255)),
        black=0.0 if clean else float(rng.uniform(12, 40)),
        gamma=1.0 if clean else float(rng.uniform(0.85, 1.15)),
        cast=(1.0, 1.0, 1.0) if clean else tuple(float(x) for x in rng.uniform(0.97, 1.02, 3)),  # type: ignore[arg-type]
        backing=255 if clean else int(rng.choice([255, 250, 235, 215])),
        threshold=int(rng.integers(*BW_THRESHOLDS)),
        dither=bool(rng.random() < p.dither),
        blur_px=float(rng.uniform(*p.blur_px)),
        noise=float(rng.uniform(*p.noise)),
        photo_long_side=int(rng.choice([2048, 3024, 4032], p=[0.4, 0.4, 0.2])) if p.phone else 0,
    )


@dataclass(frozen=True)
class Pose:
    """How one sheet lies on the glass (or under the phone)."""

    orientation: int
    skew_deg: float
    shift_mm: tuple[float, float]
    print_scale: float  # "fit to printable area" shrinks the print a few per cent
    print_shift_mm: tuple[float, float]
    # Phone only.
    tilt_deg: tuple[float, float] = (0.0, 0.0)
    fill: float = 0.0  # fraction of the frame the page spans
    offset: tuple[float, float] = (0.0, 0.0)  # page centre off the frame centre, fraction
    light: tuple[float, ...] = ()
    background: str = ""


def sample_pose(profile: Profile | str, rng: np.random.Generator, orientation: int | None = None) -> Pose:
    p = get_profile(profile)
    o = int(_pick(p.orientations, rng)) if orientation is None else int(orientation)
    if o not in ORIENTATIONS:
        raise ValueError(f"orientation must be one of {ORIENTATIONS}, not {orientation!r}")
    if p.name == "clean":
        return Pose(o, 0.0, (0.0, 0.0), 1.0, (0.0, 0.0))
    fit = rng.random() < 0.35
    pose = Pose(
        orientation=o,
        skew_deg=float(np.clip(rng.normal(0, p.skew_deg / 2), -p.skew_deg, p.skew_deg)),
        shift_mm=(float(rng.uniform(-1, 1) * p.shift_mm), float(rng.uniform(-1, 1) * p.shift_mm)),
        print_scale=float(rng.uniform(0.965, 0.985)) if fit else 1.0,
        print_shift_mm=(float(rng.normal(0, 0.6)), float(rng.normal(0, 0.6))),
    )
    if p.phone:
        pose = Pose(
            **{
                **asdict(pose),
                "skew_deg": float(rng.uniform(-p.skew_deg, p.skew_deg)),
                "shift_mm": (0.0, 0.0),
                "tilt_deg": (float(rng.normal(0, 6)), float(rng.normal(0, 6))),
                "fill": float(rng.uniform(0.68, 0.88)),
                "offset": (float(rng.uniform(-0.05, 0.05)), float(rng.uniform(-0.05, 0.05))),
                "light": tuple(float(x) for x in rng.uniform(0, 1, 12)),
                "background": str(rng.choice(["wood", "grey-desk", "dark-table", "white-desk", "carpet"])),
            }
        )
    return pose


# --------------------------------------------------------------------------- geometry


def orient_matrix(size_mm: tuple[float, float], orientation: int) -> tuple[np.ndarray, tuple[float, float]]:
    """3x3 from paper mm to the turned paper's mm, and the turned size."""
    w, h = size_mm
    if orientation == 0:
        return np.eye(3), (w, h)
    if orientation == 90:
        return np.array([[0, -1, h], [1, 0, 0], [0, 0, 1]], np.float64), (h, w)
    if orientation == 180:
        return np.array([[-1, 0, w], [0, -1, h], [0, 0, 1]], np.float64), (w, h)
    return np.array([[0, 1, 0], [-1, 0, w], [0, 0, 1]], np.float64), (h, w)


def print_matrix(size_mm: tuple[float, float], pose: Pose) -> np.ndarray:
    """3x3 from the sheet's mm (as drawn in the PDF) to the paper's mm (as printed)."""
    cx, cy = size_mm[0] / 2, size_mm[1] / 2
    s = pose.print_scale
    return np.array(
        [[s, 0, cx - s * cx + pose.print_shift_mm[0]], [0, s, cy - s * cy + pose.print_shift_mm[1]], [0, 0, 1]], np.float64
    )


def _mm_to_px(dpi: float) -> np.ndarray:
    k = dpi / 25.4
    return np.array([[k, 0, -0.5], [0, k, -0.5], [0, 0, 1]], np.float64)


def _px_to_mm(size_px: tuple[int, int], size_mm: tuple[float, float]) -> np.ndarray:
    kx, ky = size_mm[0] / size_px[0], size_mm[1] / size_px[1]
    return np.array([[kx, 0, 0.5 * kx], [0, ky, 0.5 * ky], [0, 0, 1]], np.float64)


def copier_geometry(size_mm: tuple[float, float], session: Session, pose: Pose) -> tuple[np.ndarray, tuple[int, int]]:
    """3x3 from paper mm to page pixels, and the page's (width, height) in pixels."""
    o, (w, h) = orient_matrix(size_mm, pose.orientation)
    a = np.radians(pose.skew_deg)
    c, s = np.cos(a), np.sin(a)
    cx, cy = w / 2, h / 2
    skew = np.array(
        [[c, -s, cx - c * cx + s * cy + pose.shift_mm[0]], [s, c, cy - s * cx - c * cy + pose.shift_mm[1]], [0, 0, 1]]
    )
    size = (round(w * session.dpi / 25.4), round(h * session.dpi / 25.4))
    return _mm_to_px(session.dpi) @ skew @ o, size


def phone_geometry(size_mm: tuple[float, float], session: Session, pose: Pose) -> tuple[np.ndarray, tuple[int, int]]:
    """Homography from paper mm to photo pixels (a pinhole camera over a tilted page)."""
    o, (w, h) = orient_matrix(size_mm, pose.orientation)
    long_side = session.photo_long_side
    fw, fh = (long_side, long_side * 3 // 4) if w > h else (long_side * 3 // 4, long_side)
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)
    p3 = np.concatenate([corners - (w / 2, h / 2), np.zeros((4, 1))], axis=1)
    ax, ay = np.radians(pose.tilt_deg)
    az = np.radians(pose.skew_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    q = p3 @ (rx @ ry @ rz).T
    dist = 1.6 * max(w, h)
    uv = q[:, :2] / (q[:, 2:3] + dist)[:, :1] * dist
    span = uv.max(axis=0) - uv.min(axis=0)
    scale = pose.fill * min(fw / span[0], fh / span[1])
    uv = (uv - (uv.max(axis=0) + uv.min(axis=0)) / 2) * scale
    uv += (fw / 2 + pose.offset[0] * fw, fh / 2 + pose.offset[1] * fh)
    uv -= 0.5  # pixel centres at integers
    hm = cv2.getPerspectiveTransform(corners.astype(np.float32), uv.astype(np.float32)).astype(np.float64)
    return hm @ o, (fw, fh)


# --------------------------------------------------------------------------- the scan


@dataclass
class Scan:
    """A scanned page: the device's pixels, and the JPEG it wrote (if it did).

    ``image`` is what a reader gets back from the file (the JPEG decoded, else ``raw``).
    ``raw`` (the pixels before JPEG compression) may be dropped once only the JPEG is needed
    (`lean`), so pages travel light between processes.
    """

    raw: np.ndarray | None  # before lossy encoding
    dpi: int  # resolution of the page (a phone's: about, at the page; its JPEG says 72)
    mode: str  # rgb, gray, 1
    jpeg: bytes | None  # the JPEG as the device wrote it (None: lossless or G4)
    jpeg_quality: int | None
    sheet_to_page: np.ndarray  # 3x3: the sheet's mm (the PDF page's frame) -> page pixels
    size: tuple[int, int] = (0, 0)  # (width, height) in pixels

    def __post_init__(self) -> None:
        if self.raw is not None:
            self.size = (int(self.raw.shape[1]), int(self.raw.shape[0]))

    @cached_property
    def image(self) -> np.ndarray:
        return decode_jpeg(self.jpeg) if self.jpeg is not None else self.pixels()

    def pixels(self) -> np.ndarray:
        """The best pixels there are: ``raw``, else the decoded JPEG."""
        if self.raw is not None:
            return self.raw
        if self.jpeg is None:
            raise ValueError("a scan with neither pixels nor a JPEG")
        return decode_jpeg(self.jpeg)

    def lean(self) -> Scan:
        """This scan without ``raw`` when the JPEG says it all."""
        if self.jpeg is None:
            return self
        return Scan(None, self.dpi, self.mode, self.jpeg, self.jpeg_quality, self.sheet_to_page, self.size)


def _resample_source(src: np.ndarray, size_mm: tuple[float, float], px_per_mm_out: float) -> tuple[np.ndarray, np.ndarray]:
    """Shrink ``src`` with area averaging when the output is much coarser; return it and px->mm."""
    _h, w = src.shape[:2]
    k_in = w / size_mm[0]
    if px_per_mm_out < 0.8 * k_in:
        nw, nh = round(size_mm[0] * px_per_mm_out), round(size_mm[1] * px_per_mm_out)
        src = cv2.resize(src, (nw, nh), interpolation=cv2.INTER_AREA)
    return src, _px_to_mm((src.shape[1], src.shape[0]), size_mm)


def _tone(img: np.ndarray, s: Session) -> np.ndarray:
    x = np.arange(256, dtype=np.float64) / 255.0
    base = s.black + (s.white - s.black) * x**s.gamma
    lut = np.stack([np.clip(base * g, 0, 255) for g in s.cast], axis=1).round().astype(np.uint8)
    return cv2.LUT(img, lut.reshape(1, 256, 3))


@lru_cache(maxsize=1)
def _noise_tile() -> np.ndarray:
    """A fixed 2048x2048 tile of standard normal noise (pages take it at random offsets)."""
    t = np.random.default_rng(0x0153).standard_normal((2048, 2048), dtype=np.float32)
    t.setflags(write=False)
    return t


def _noise(img: np.ndarray, sigma: float, rng: np.random.Generator, mottle: float) -> np.ndarray:
    """Add grey sensor noise of ``sigma`` levels (and low-frequency paper mottle), saturating."""
    h, w = img.shape[:2]
    tile = _noise_tile()
    if rng.random() < 0.5:
        tile = tile[::-1]
    oy, ox = (int(v) for v in rng.integers(0, 2048, 2))
    rolled = np.roll(tile, (-oy, -ox), axis=(0, 1))
    n = np.empty((h, w), np.float32)
    for y in range(0, h, 2048):  # fill block by block from the tile
        for x in range(0, w, 2048):
            n[y : y + 2048, x : x + 2048] = rolled[: min(2048, h - y), : min(2048, w - x)]
    n *= np.float32(sigma)
    if mottle > 0:
        low = rng.standard_normal((max(2, h // 32), max(2, w // 32)), dtype=np.float32)
        n += cv2.resize(cv2.GaussianBlur(low, (0, 0), 1.5), (w, h), interpolation=cv2.INTER_LINEAR) * np.float32(mottle)
    # Split into what brightens and what darkens, each rounded and saturated to uint8.
    up = cv2.convertScaleAbs(cv2.threshold(n, 0, 0, cv2.THRESH_TOZERO)[1])
    down = cv2.convertScaleAbs(cv2.threshold(n, 0, 0, cv2.THRESH_TOZERO_INV)[1])
    if img.ndim == 3:
        up, down = cv2.merge([up] * 3), cv2.merge([down] * 3)
    return cv2.subtract(cv2.add(img, up), down)


_BAYER8 = None


def _bayer(h: int, w: int) -> np.ndarray:
    global _BAYER8
    if _BAYER8 is None:
        m = np.array([[0, 2], [3, 1]])
        for _ in range(2):
            m = np.block([[4 * m, 4 * m + 2], [4 * m + 3, 4 * m + 1]])
        _BAYER8 = ((m + 0.5) / 64.0 * 255).astype(np.float32)
    return np.tile(_BAYER8, (h // 8 + 1, w // 8 + 1))[:h, :w]


def to_mode(img: np.ndarray, s: Session) -> np.ndarray:
    """Convert an RGB scan to the session's colour mode (see the module's dtypes)."""
    if s.mode == "rgb":
        return img
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    if s.mode == "gray":
        return grey
    if s.dither:
        # Photo mode: an ordered dither after stretching so paper stays white.
        g = np.clip((grey.astype(np.float32) - 40) * (255 / 170), 0, 255)
        return g > _bayer(*g.shape)
    return grey > s.threshold


def encode_jpeg(img: np.ndarray, quality: int, dpi: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=int(quality), dpi=(dpi, dpi))
    return buf.getvalue()


def decode_jpeg(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im if im.mode in ("L", "RGB") else im.convert("RGB"))


def _finish(img: np.ndarray, s: Session, rng: np.random.Generator, paper_to_page: np.ndarray, dpi: int, mottle: float) -> Scan:
    if s.blur_px > 0.05:
        img = cv2.GaussianBlur(img, (0, 0), s.blur_px)
    if s.noise > 0:
        img = _noise(img, s.noise, rng, mottle)
    raw = to_mode(img, s)
    if s.mode != "1" and s.jpeg_quality is not None:
        data = encode_jpeg(raw, s.jpeg_quality, dpi)
        return Scan(raw, dpi, s.mode, data, s.jpeg_quality, paper_to_page)
    return Scan(raw, dpi, s.mode, None, None, paper_to_page)


def scan_sheet(
    sheet: np.ndarray,
    size_mm: tuple[float, float],
    session: Session,
    pose: Pose,
    rng: np.random.Generator,
) -> Scan:
    """Scan a printed, filled-in ``sheet`` (RGB uint8, the PDF page's frame, any resolution)."""
    if get_profile(session.profile).phone:
        return _photo(sheet, size_mm, session, pose, rng)
    printed = print_matrix(size_mm, pose)
    paper_to_page, (w, h) = copier_geometry(size_mm, session, pose)
    src, px_to_mm = _resample_source(sheet, size_mm, session.dpi / 25.4 * pose.print_scale)
    m = paper_to_page @ printed @ px_to_mm
    if np.allclose(m, np.eye(3)) and src.shape[:2] == (h, w):
        img = src.copy()
    else:
        img = cv2.warpAffine(src, m[:2], (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(session.backing,) * 3)
    if session.profile != "clean":
        img = _tone(img, session)
    return _finish(img, session, rng, paper_to_page @ printed, session.dpi, mottle=1.2 if session.noise else 0.0)


# --------------------------------------------------------------------------- phone photos


def _background(kind: str, h: int, w: int, quad: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A desk under the page (at ``quad``, its corners in pixels): built small, then enlarged.

    The page casts a soft shadow on it, a little down and to the right. RGB uint8 (h, w, 3).
    """
    sh, sw = max(8, h // 8), max(8, w // 8)
    y, x = np.mgrid[0:sh, 0:sw].astype(np.float32)
    base = {
        "wood": (150, 105, 65),
        "grey-desk": (125, 128, 130),
        "dark-table": (55, 50, 48),
        "white-desk": (212, 210, 204),
        "carpet": (90, 70, 110),
    }[kind]
    img = np.empty((sh, sw, 3), np.float32)
    img[:] = base
    tex = rng.standard_normal((sh, sw)).astype(np.float32)
    if kind == "wood":
        angle = rng.uniform(0, np.pi)
        u = x * np.cos(angle) + y * np.sin(angle)
        grain = np.sin(u * rng.uniform(0.15, 0.35) + 2.0 * cv2.GaussianBlur(tex, (0, 0), 6) * 4)
        img *= (1 + 0.12 * grain)[..., None]
    elif kind == "carpet":
        img *= (1 + 0.12 * tex)[..., None]
    else:
        img *= (1 + 0.05 * cv2.GaussianBlur(tex, (0, 0), 3))[..., None]
    shadow = np.zeros((sh, sw), np.float32)
    cv2.fillConvexPoly(shadow, (quad * (sw / w) + (3, 4)).astype(np.int32), 1.0)
    img *= (1 - 0.35 * cv2.GaussianBlur(shadow, (0, 0), 4))[..., None]
    img = cv2.resize(np.clip(img, 0, 255), (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(img, 0, 255).astype(np.uint8)


def _lighting(h: int, w: int, light: tuple[float, ...]) -> np.ndarray:
    """Multiplicative light over the photo: gradient, vignette and a soft shadow (float32, (H, W))."""
    sh, sw = max(8, h // 16), max(8, w // 16)
    y, x = np.mgrid[0:sh, 0:sw].astype(np.float32)
    xn, yn = x / sw - 0.5, y / sh - 0.5
    a = (light[0] - 0.5) * 0.5
    b = (light[1] - 0.5) * 0.5
    field = 1.0 + a * xn + b * yn
    field *= 1.0 - (0.15 + 0.25 * light[2]) * (xn**2 + yn**2) * 2
    if light[3] < 0.75:
        # A shadow (the photographer's hand or phone) from one side, with a soft edge.
        side = int(light[4] * 4)
        depth = 0.15 + 0.3 * light[5]
        pts = {
            0: [(0, 0), (sw * depth, 0), (sw * depth * (0.6 + light[6]), sh), (0, sh)],
            1: [(sw, 0), (sw * (1 - depth), 0), (sw * (1 - depth * (0.6 + light[6])), sh), (sw, sh)],
            2: [(0, 0), (sw, 0), (sw, sh * depth), (0, sh * depth * (0.6 + light[6]))],
            3: [(0, sh), (sw, sh), (sw, sh * (1 - depth)), (0, sh * (1 - depth * (0.6 + light[6])))],
        }[side]
        mask = np.zeros((sh, sw), np.float32)
        cv2.fillPoly(mask, [np.asarray(pts, np.int32)], 1.0)
        mask = cv2.GaussianBlur(mask, (0, 0), 1.5 + 3 * light[7])
        field *= 1.0 - (0.25 + 0.3 * light[8]) * mask
    field *= 0.82 + 0.2 * light[9]  # exposure
    return cv2.resize(field, (w, h), interpolation=cv2.INTER_LINEAR)


def _photo(sheet: np.ndarray, size_mm: tuple[float, float], s: Session, pose: Pose, rng: np.random.Generator) -> Scan:
    printed = print_matrix(size_mm, pose)
    paper_to_page, (w, h) = phone_geometry(size_mm, s, pose)
    quad = cv2.perspectiveTransform(
        np.array([[[0, 0], [size_mm[0], 0], [size_mm[0], size_mm[1]], [0, size_mm[1]]]], np.float64), paper_to_page
    )[0]
    area_px = cv2.contourArea(quad.astype(np.float32))
    px_per_mm = float(np.sqrt(area_px / (size_mm[0] * size_mm[1])))
    src, px_to_mm = _resample_source(sheet, size_mm, px_per_mm * 1.1)
    bg = _background(pose.background, h, w, quad, rng)
    m = paper_to_page @ printed @ px_to_mm
    # Paper is not quite white under room light.
    paper = cv2.convertScaleAbs(src, alpha=float(rng.uniform(0.93, 0.99)))
    img = cv2.warpPerspective(paper, m, (w, h), dst=bg, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_TRANSPARENT)
    light = _lighting(h, w, pose.light)
    tint = {0: (1.04, 1.0, 0.86), 1: (0.96, 1.0, 1.05), 2: (1.0, 1.0, 1.0)}[int(pose.light[10] * 3)]
    lit = np.clip(light * 200.0, 0, 255).astype(np.uint8)  # light in 1/200 steps
    img = cv2.multiply(img, cv2.merge([lit] * 3), scale=1 / 200.0)
    lut = np.stack([np.clip(np.arange(256) * t, 0, 255) for t in tint], axis=1).astype(np.uint8)
    img = cv2.LUT(img, lut.reshape(1, 256, 3))
    if pose.light[11] < 0.2:
        k = int(3 + pose.light[11] * 20) | 1  # a little hand shake
        kernel = np.zeros((k, k), np.float32)
        kernel[k // 2, :] = 1.0 / k
        img = cv2.filter2D(img, -1, kernel)
    out = _finish(img, Session(**{**asdict(s), "jpeg_quality": None}), rng, paper_to_page @ printed, s.dpi, mottle=0.0)
    # Phones sharpen before they compress.
    px = out.pixels()
    sharp = cv2.addWeighted(px, 1.5, cv2.GaussianBlur(px, (0, 0), 2.0), -0.5, 0)
    q = s.jpeg_quality or 90
    data = encode_jpeg(sharp, q, s.dpi)  # phones write 72 dpi; the page's own is below
    page_dpi = round(px_per_mm * 25.4)
    return Scan(sharp, page_dpi, s.mode, data, q, out.sheet_to_page)


# --------------------------------------------------------------------------- duplex backs


def back_of(sheet: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The blank back of a printed ``sheet``: faint, blurred, mirrored bleed-through of the front.

    Returned at a quarter of the front's resolution (it is all blur); `scan_sheet` takes any.
    """
    h, w = sheet.shape[:2]
    small = cv2.resize(sheet, (w // 4, h // 4), interpolation=cv2.INTER_AREA)[:, ::-1]
    dark = 255.0 - cv2.cvtColor(np.ascontiguousarray(small), cv2.COLOR_RGB2GRAY).astype(np.float32)
    dark = cv2.GaussianBlur(dark, (0, 0), rng.uniform(0.5, 1.0))
    back = np.clip(255.0 - dark * rng.uniform(0.025, 0.08), 0, 255).astype(np.uint8)
    return cv2.cvtColor(back, cv2.COLOR_GRAY2RGB)
