"""Decode a pass's QR code from the grey level of each of its modules.

Every pass carries a version-5 symbol (37 x 37 modules, error correction M) at a place the
template knows, so after registration the reader can sample each module's centre directly
(`identify._module_levels`) instead of asking OpenCV to find and decode the symbol again
(~3 ms a pass, and it gives up on blurred phone photos). This module turns those 37 x 37
levels into the payload text: it thresholds midway between the dark and light levels of the
finder, timing and alignment patterns (modules whose colour is known), reads the format
information, unmasks and de-interleaves the two Reed-Solomon blocks (67 codewords each:
43 data + 24 check) and corrects them.

Three fall-backs, each tried only when the readings before it fail:

* Erasures. A module whose level is close to the threshold is uncertain; the codewords
  holding uncertain modules are decoded as erasures, which cost half as much of the
  correction budget as errors (2 * errors + erasures <= 24 per block). This rescues local
  damage: a smudge, a pen stroke, glare over a few modules.
* A refined reading for blur, which greys a lone module towards its neighbours: each module
  is read against the blur its neighbours cause, with the blur's strength fitted on this
  image (`_equalise`, `_refine`). Blurred 2.6-pixel modules that plain thresholding (and
  OpenCV) misread by the dozen come back with a handful of errors.
* A line-by-line reading for a smear (`_sequence`): a hand-shaken phone photo smears the
  symbol over two or more modules one way, which no threshold undoes (at the module
  frequency the contrast may even invert). Along the smear each line's shades follow from its
  modules by a short filter fitted on this image, and Viterbi picks the line that explains
  them best; tried along the axis the blur seems to be, then the other (~5-20 ms). Phone
  photos at 2048 px with a 7-pixel shake: 15-58 wrong codewords a block after `_refine`;
  read line by line, all 11 such codes of two benchmark runs read (0-17 corrected).

A wrong text is worse than none: every correction is checked (locator degree, roots in
range, syndromes of the corrected block zero), the more erasures are used the fewer errors
are trusted (see `_max_errors`), and the bit stream must end as the standard says
(terminator, zero bits, 0xEC 0x11 padding). Anything else returns ``None``.

The byte segments are read as UTF-8 unless an ECI says otherwise: reportlab writes UTF-8
without an ECI. Numeric, alphanumeric and Kanji segments are read too: reportlab picks one
of them for the whole text when it fits (Kanji before bytes).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import zip_longest
from math import comb

import numpy as np

#: Modules on a side of a version-5 symbol (`payload.QR_MODULES`).
SIZE = 37
_BLOCK = 67  # codewords per block; the symbol has two
_DATA = 43  # data codewords per block
_CHECK = _BLOCK - _DATA  # 24, generator roots alpha^0 .. alpha^23
_EC_LEVEL_M = 0  # the format's two error-correction bits for level M
#: A module whose shade (0 = the finders' ink, 1 = their paper) is this close to the
#: midpoint is uncertain.
_UNCERTAIN = 0.2
#: Format information: nearest valid word within this Hamming distance, in either copy.
_FORMAT_DISTANCE = 3


@dataclass(frozen=True)
class DecodeResult:
    """What a symbol says, and how much correcting it took (the evidence behind a read)."""

    text: str
    corrected: int  # codewords changed by error correction, both blocks
    erasures: int  # codewords decoded as erasures, both blocks


# ---- GF(256), primitive polynomial x^8 + x^4 + x^3 + x^2 + 1 (0x11D) ----

_EXP = [0] * 510
_LOG = [0] * 256
_x = 1
for _i in range(255):
    _EXP[_i] = _EXP[_i + 255] = _x
    _LOG[_x] = _i
    _x <<= 1
    if _x & 0x100:
        _x ^= 0x11D
#: Array forms where log(0) points past the table's end into zeros, so a zero coefficient
#: needs no special case: exp(log 0 + anything) = 0.
_EXP_Z = np.zeros(1024, np.uint8)
_EXP_Z[:510] = _EXP
_LOG_Z = np.array(_LOG, np.int64)
_LOG_Z[0] = 510
#: Products and inverses as nested lists: the scalar steps below run in plain Python.
_MUL = _EXP_Z[_LOG_Z[:, None] + _LOG_Z[None, :]].tolist()
_INV = [0] + [_EXP[255 - _LOG[a]] for a in range(1, 256)]
#: Codeword i of a block is the coefficient of x^(66 - i).
_POWER = _BLOCK - 1 - np.arange(_BLOCK)
_SYNDROME_EXP = (np.arange(_CHECK)[:, None] * _POWER[None, :]) % 255  # (24, 67)
_CHIEN_EXP = (-np.arange(_CHECK + 1)[:, None] * _POWER[None, :]) % 255  # (25, 67)


def _syndromes(received: np.ndarray) -> np.ndarray:
    """S_j = R(alpha^j), j = 0..23, of (..., 67) codewords: (..., 24) ints."""
    terms = _EXP_Z[_LOG_Z[received][..., None, :] + _SYNDROME_EXP]
    return np.bitwise_xor.reduce(terms, axis=-1)


def _max_errors(erasures: int) -> int:
    """Most errors trusted next to this many erasures in a block (-1: none).

    A word beyond repair decodes to *some* codeword when it lies within the decoding radius
    of one; for a random word that chance is V(n', e) / 256^r' (n' = 67 - erasures, r' =
    24 - erasures, V the volume of a Hamming ball of radius e). Keep it below 1e-10.
    """
    n, spare = _BLOCK - erasures, _CHECK - erasures
    best = -1
    for e in range(spare // 2 + 1):
        if sum(comb(n, i) * 255**i for i in range(e + 1)) * 10**10 >= 256**spare:
            break
        best = e
    return best


_MAX_ERRORS = [_max_errors(f) for f in range(_CHECK + 1)]
_MAX_ERASURES = max(f for f, e in enumerate(_MAX_ERRORS) if e >= 0)


def _horner(poly: list[int], x: int) -> int:
    """poly(x), coefficients lowest power first."""
    row = _MUL[x]
    value = 0
    for c in reversed(poly):
        value = row[value] ^ c
    return value


def _correct(received: np.ndarray, syndromes: np.ndarray, erasures: list[int]) -> list[int] | None:
    """Correct one block (67 codewords) given its syndromes and erased indices; None if unsure.

    Berlekamp-Massey started from the erasure locator, Chien search over the 67 positions,
    Forney for the values; the corrected block must have zero syndromes.
    """
    syn = syndromes.tolist()
    f = len(erasures)
    most = f + _MAX_ERRORS[f]  # the locator's degree never shrinks: stop once past this
    lam = [1]  # the erasure locator: prod (1 + X x), X = alpha^(66 - i)
    for i in erasures:
        row = _MUL[_EXP[_BLOCK - 1 - i]]
        lam = [a ^ row[b] for a, b in zip([*lam, 0], [0, *lam])]
    prev = lam[:]
    size = f
    for r in range(f, _CHECK):
        delta = 0
        for a, b in zip(lam, reversed(syn[: r + 1])):
            delta ^= _MUL[a][b]
        prev.insert(0, 0)
        if not delta:
            continue
        row = _MUL[delta]
        new = [a ^ row[b] for a, b in zip_longest(lam, prev, fillvalue=0)]
        if 2 * size <= r + f:
            row = _MUL[_INV[delta]]
            prev = [row[c] for c in lam]
            size = r + 1 + f - size
            if size > most:
                return None
        lam = new
    while not lam[-1]:
        lam.pop()
    if len(lam) - 1 != size:
        return None
    values = np.bitwise_xor.reduce(_EXP_Z[_LOG_Z[lam][:, None] + _CHIEN_EXP[: size + 1]], axis=0)
    roots = np.flatnonzero(values == 0)  # codeword indices i with Lambda(alpha^-(66-i)) = 0
    if len(roots) != size:
        return None
    omega = [0] * size  # S(x) Lambda(x) mod x^size: the rest vanishes for a true solution
    for k in range(size):
        for a, b in zip(lam, reversed(syn[: k + 1])):
            omega[k] ^= _MUL[a][b]
    slope = [c if j % 2 else 0 for j, c in enumerate(lam)][1:]  # Lambda'(x)
    fixed = received.tolist()
    for i in roots.tolist():
        x = _EXP[_BLOCK - 1 - i]
        den = _horner(slope, _INV[x])
        if not den:
            return None
        # Forney, generator roots from alpha^0: value = X Omega(X^-1) / Lambda'(X^-1)
        fixed[i] ^= _MUL[x][_MUL[_horner(omega, _INV[x])][_INV[den]]]
    if _syndromes(np.array(fixed, np.uint8)).any():
        return None
    return fixed


# ---- Symbol layout (version 5) ----


def _layout() -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]:
    """(known dark, known light, data module order) of the symbol: modules of the function
    patterns have a known colour; the format's do not, and hold no data either."""
    function = np.zeros((SIZE, SIZE), bool)
    dark = np.zeros((SIZE, SIZE), bool)
    light = np.zeros((SIZE, SIZE), bool)

    def put(r: int, c: int, is_dark: bool) -> None:
        function[r, c] = True
        dark[r, c], light[r, c] = is_dark, not is_dark

    for cr, cc in ((3, 3), (3, SIZE - 4), (SIZE - 4, 3)):  # finders with their separators
        for dr in range(-4, 5):
            for dc in range(-4, 5):
                if 0 <= cr + dr < SIZE and 0 <= cc + dc < SIZE:
                    put(cr + dr, cc + dc, max(abs(dr), abs(dc)) not in (2, 4))
    for i in range(8, SIZE - 8):  # timing
        put(6, i, i % 2 == 0)
        put(i, 6, i % 2 == 0)
    for dr in range(-2, 3):  # the one alignment pattern
        for dc in range(-2, 3):
            put(30 + dr, 30 + dc, max(abs(dr), abs(dc)) != 1)
    put(SIZE - 8, 8, True)  # the dark module
    for r, c in _FORMAT_MODULES.reshape(-1, 2).tolist():
        function[r, c] = True

    order = []
    for right in range(SIZE - 1, 0, -2):  # column pairs right to left, zig-zag up and down
        if right <= 6:
            right -= 1  # skip the vertical timing column
        upward = (right + 1) & 2 == 0
        for vert in range(SIZE):
            r = SIZE - 1 - vert if upward else vert
            for c in (right, right - 1):
                if not function[r, c]:
                    order.append((r, c))
    return dark, light, order


#: (row, column) of format bit i (i = 0 least significant) in its two copies: (2, 15, 2).
_FORMAT_MODULES = np.array(
    [
        [(i, 8) for i in range(6)] + [(7, 8), (8, 8), (8, 7)] + [(8, 14 - i) for i in range(9, 15)],
        [(8, SIZE - 1 - i) for i in range(8)] + [(SIZE - 15 + i, 8) for i in range(8, 15)],
    ]
)
_FORMAT_FLAT = _FORMAT_MODULES[..., 0] * SIZE + _FORMAT_MODULES[..., 1]


def _format_word(data: int) -> int:
    """The 15-bit format word of 5 data bits (EC level, mask): BCH(15, 5), XOR 0x5412."""
    rem = data << 10
    for shift in range(4, -1, -1):
        if rem & (1 << (shift + 10)):
            rem ^= 0x537 << shift
    return ((data << 10) | rem) ^ 0x5412


_FORMAT_BITS = np.array([[(_format_word(d) >> i) & 1 for i in range(15)] for d in range(32)], bool)

_KNOWN_DARK, _KNOWN_LIGHT, _ORDER = _layout()
_KNOWN_DARK_FLAT = np.flatnonzero(_KNOWN_DARK)
_KNOWN_LIGHT_FLAT = np.flatnonzero(_KNOWN_LIGHT)


def _codeword_modules() -> np.ndarray:
    """Flat module index of each bit, by block, codeword and bit (MSB first): (2, 67, 8).

    The symbol holds the codewords interleaved: data 0 of block 0, data 0 of block 1, ...,
    then the check codewords likewise; the last 7 modules of the order are remainder bits.
    """
    flat = np.array([r * SIZE + c for r, c in _ORDER[: 2 * _BLOCK * 8]]).reshape(2 * _BLOCK, 8)
    table = np.empty((2, _BLOCK, 8), np.int64)
    for k in range(2 * _BLOCK):
        j = k if k < 2 * _DATA else k - 2 * _DATA
        index = j // 2 if k < 2 * _DATA else _DATA + j // 2
        table[j % 2, index] = flat[k]
    return table


_BIT_FLAT = _codeword_modules()
_MASKS = (
    lambda r, c: (r + c) % 2 == 0,
    lambda r, c: r % 2 == 0,
    lambda r, c: c % 3 == 0,
    lambda r, c: (r + c) % 3 == 0,
    lambda r, c: (r // 2 + c // 3) % 2 == 0,
    lambda r, c: (r * c) % 2 + (r * c) % 3 == 0,
    lambda r, c: ((r * c) % 2 + (r * c) % 3) % 2 == 0,
    lambda r, c: ((r + c) % 2 + (r * c) % 3) % 2 == 0,
)
#: Whether each mask inverts each data bit: (8, 2, 67, 8).
_MASK_BITS = np.array([m(_BIT_FLAT // SIZE, _BIT_FLAT % SIZE) for m in _MASKS])


def _format_candidates(dark: np.ndarray) -> list[tuple[int, int]]:
    """(EC level bits, mask) of the valid format words within `_FORMAT_DISTANCE` of either
    copy, nearest first: two when the copies disagree (the check codewords then decide)."""
    bits = dark[_FORMAT_FLAT]  # (2, 15)
    distance = (bits[:, None, :] != _FORMAT_BITS[None]).sum(axis=2).min(axis=0)  # (32,)
    near = np.flatnonzero(distance <= _FORMAT_DISTANCE)
    return [(int(w) >> 3, int(w) & 7) for w in near[np.argsort(distance[near], kind="stable")]]


# ---- Bit stream ----

_ALPHANUMERIC = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
#: ECI assignment -> Python codec (ISO 8859-n are 4..18 less 14).
_ECI_CODECS = {1: "latin-1", 3: "latin-1", 20: "shift_jis", 26: "utf-8"} | {
    n: f"iso8859-{n - 2}" for n in range(4, 19) if n != 14
}
_PAD = b"\xec\x11" * _DATA


class _Malformed(Exception):
    """The bit stream breaks the standard (or ran out): no text is read from it."""


class _Bits:
    """A bit reader over bytes, most significant bit first."""

    def __init__(self, data: bytes) -> None:
        self.value = int.from_bytes(data, "big")
        self.size = len(data) * 8
        self.pos = 0

    def take(self, n: int) -> int:
        if self.pos + n > self.size:
            raise _Malformed
        self.pos += n
        return (self.value >> (self.size - self.pos)) & ((1 << n) - 1)


def _parse(data: bytes) -> str:
    """The text of the data codewords (both blocks, in order); raises `_Malformed`."""
    bits = _Bits(data)
    texts: list[str] = []
    raw = bytearray()  # consecutive byte/numeric/alphanumeric data, in the current charset
    codec = "utf-8"
    while bits.size - bits.pos >= 4:
        mode = bits.take(4)
        if mode == 0:  # terminator
            break
        if mode == 1:  # numeric: 10 bits per 3 digits, 7 for 2, 4 for 1
            count = bits.take(10)
            while count > 0:
                n = min(count, 3)
                value = bits.take(3 * n + 1)
                if value >= 10**n:
                    raise _Malformed
                raw += f"{value:0{n}d}".encode("ascii")
                count -= n
        elif mode == 2:  # alphanumeric: 11 bits per pair, 6 for a last single
            count = bits.take(9)
            while count > 0:
                if count >= 2:
                    value = bits.take(11)
                    if value >= 45 * 45:
                        raise _Malformed
                    raw += (_ALPHANUMERIC[value // 45] + _ALPHANUMERIC[value % 45]).encode("ascii")
                    count -= 2
                else:
                    value = bits.take(6)
                    if value >= 45:
                        raise _Malformed
                    raw += _ALPHANUMERIC[value].encode("ascii")
                    count -= 1
        elif mode == 4:  # bytes
            count = bits.take(8)
            raw += bits.take(8 * count).to_bytes(count, "big")
        elif mode == 8:  # Kanji: 13 bits per Shift JIS character
            count = bits.take(8)
            sjis = bytearray()
            for _ in range(count):
                value = bits.take(13)
                code = (value // 0xC0 << 8) + value % 0xC0
                code += 0x8140 if code < 0x1F00 else 0xC140
                sjis += code.to_bytes(2, "big")
            texts.append(raw.decode(codec) + sjis.decode("shift_jis"))
            raw.clear()
        elif mode == 7:  # ECI: the charset of the byte segments that follow
            first = bits.take(8)
            if first < 0x80:
                value = first
            elif first < 0xC0:
                value = (first & 0x3F) << 8 | bits.take(8)
            elif first < 0xE0:
                value = (first & 0x1F) << 16 | bits.take(16)
            else:
                raise _Malformed
            if value not in _ECI_CODECS:
                raise _Malformed
            texts.append(raw.decode(codec))
            raw.clear()
            codec = _ECI_CODECS[value]
        else:
            raise _Malformed
    texts.append(raw.decode(codec))
    # What follows the terminator: zero bits to the byte boundary, then 0xEC 0x11 ...
    if bits.take(-bits.pos % 8):
        raise _Malformed
    rest = data[bits.pos // 8 :]
    if rest != _PAD[: len(rest)]:
        raise _Malformed
    return "".join(texts)


# ---- The decoder ----

_KNOWN_FLAT = np.flatnonzero(_KNOWN_DARK | _KNOWN_LIGHT)
_KNOWN_IS_LIGHT = _KNOWN_LIGHT.ravel()[_KNOWN_FLAT]
_KNOWN_SHADE = _KNOWN_IS_LIGHT.astype(np.float64)  # 0 dark, 1 light


#: The fixed rows of `_features`: a slope down and across the symbol (uneven light), an offset.
_FIXED_FEATURES = np.vstack(
    [(np.indices((SIZE, SIZE)).reshape(2, -1) - SIZE // 2) / SIZE, np.ones((1, SIZE * SIZE))]
)
#: Rounds of decision-directed refinement (it mostly settles in two or three).
_REFINE_ROUNDS = 4


def _features(shade: np.ndarray) -> np.ndarray:
    """(10, 37 * 37): each module's shade; its neighbours' above, below, left, right; the sums
    of its two diagonal pairs (outside the symbol is the light quiet zone); the fixed rows.

    The four edge neighbours get a weight each because a grid sampled a little off the
    module centres sees more of the neighbours on one side.
    """
    grid = np.ones((SIZE + 2, SIZE + 2))
    grid[1:-1, 1:-1] = shade.reshape(SIZE, SIZE)

    def at(dr: int, dc: int) -> np.ndarray:
        return grid[1 + dr : 1 + dr + SIZE, 1 + dc : 1 + dc + SIZE].ravel()

    features = np.empty((10, SIZE * SIZE))
    features[0] = shade
    features[1], features[2], features[3], features[4] = at(-1, 0), at(1, 0), at(0, -1), at(0, 1)
    features[5] = at(-1, -1) + at(1, 1)
    features[6] = at(-1, 1) + at(1, -1)
    features[7:] = _FIXED_FEATURES
    return features


def _least_squares(features: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Weights w minimising |w features - target|, from the (10 x 10) normal equations."""
    gram = features @ features.T
    gram.flat[:: len(gram) + 1] += 1e-9  # never singular
    return np.linalg.solve(gram, features @ target)


def _equalise(shade: np.ndarray) -> np.ndarray:
    """Undo some blur: each module's shade from its own and its neighbours' (flat, 37 * 37).

    Blur greys a lone module towards its neighbours. The 3 x 3 filter (plus an offset and a
    slope across the symbol for uneven light; see `_features`) that best maps the observed
    shades to the true ones is fitted by least squares on the function modules, whose
    colours are known: it follows this image's blur and how far off-centre it was sampled.
    """
    features = _features(shade)
    return _least_squares(features[:, _KNOWN_FLAT], _KNOWN_SHADE) @ features


def _refine(shade: np.ndarray, first: np.ndarray) -> np.ndarray | None:
    """Decision-directed: re-read each module against the blur its neighbours cause.

    From the current reading (``first``; function modules as known), fit how the observed
    shade follows from a module's colour and its neighbours' colours, then read each module
    against the midpoint of its two predictions (dark or light, same neighbours); repeat.
    Unlike the equaliser this does not amplify noise. Returns shades like `_equalise`'s
    (threshold 0.5), or None when the fit says dark and light can't be told apart.
    """
    light = first >= 0.5
    light[_KNOWN_FLAT] = _KNOWN_IS_LIGHT
    for _ in range(_REFINE_ROUNDS):
        features = _features(light.astype(np.float64))
        weights = _least_squares(features, shade)
        if weights[0] <= 0:
            return None
        threshold = weights[1:] @ features[1:] + weights[0] / 2
        again = shade >= threshold
        again[_KNOWN_FLAT] = _KNOWN_IS_LIGHT
        if (again == light).all():
            break
        light = again
    return (shade - threshold) / weights[0] + 0.5


#: The sequence detector's model of a smear along one axis: each module's shade from the
#: modules up to `_SEQ_REACH` before and after it on its own line (jointly decided by
#: Viterbi) and the five nearest on each neighbouring line (from the previous decisions).
#: A hand-shaken phone photo smears 3-7 pixels one way: 2.4 modules of 2.9 pixels at most.
_SEQ_REACH = 2
_SEQ_OFFSETS = tuple((dr, dc) for dr in (0, -1, 1) for dc in range(-_SEQ_REACH, _SEQ_REACH + 1))
_SEQ_ALONG = 2 * _SEQ_REACH + 1  # the first taps of `_SEQ_OFFSETS`: the module's own line
#: Rounds of (fit the smear, decide every line); it mostly settles in three.
_SEQ_ROUNDS = 5
_KNOWN_2D = _KNOWN_DARK | _KNOWN_LIGHT
#: Every window of 2 * _SEQ_REACH + 1 modules along a line as light (1) / dark (0) bits, the
#: first module the most significant bit: (32, 5).
_WINDOWS = (np.arange(1 << _SEQ_ALONG)[:, None] >> np.arange(_SEQ_ALONG - 1, -1, -1)) & 1
_STATES = 1 << (_SEQ_ALONG - 1)


def _seq_features(light: np.ndarray) -> np.ndarray:
    """(len(_SEQ_OFFSETS) + 3, 37 * 37): each module's neighbours at `_SEQ_OFFSETS` (light 1,
    outside the symbol light), then the fixed rows. ``light`` is (37, 37) float."""
    pad = _SEQ_REACH
    grid = np.ones((SIZE + 2 * pad, SIZE + 2 * pad))
    grid[pad:-pad, pad:-pad] = light
    at = [(pad + dr, pad + dc) for dr, dc in _SEQ_OFFSETS]
    rows = [grid[r : r + SIZE, c : c + SIZE].ravel() for r, c in at]
    # Row and column slopes both enter the fit, so they serve a transposed grid as well.
    return np.vstack([*rows, _FIXED_FEATURES])


def _viterbi_lines(target: np.ndarray, taps: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """The light/dark line (each row of ``target``) that best explains it: (37, 37) bool.

    ``target`` (37, 37) is each module's shade less what the other lines contribute; along
    its line a module's shade is ``taps`` (5) applied to the window of modules around it.
    ``allowed`` (37, 41, 2): whether module column c - 2 may be dark (0) / light (1), columns
    -2 .. 38 (outside the symbol only light; function modules only their known colour).
    """
    pred = _WINDOWS @ taps  # (32,): each window's shade
    windows = np.arange(1 << _SEQ_ALONG)
    states = np.arange(_STATES)
    # A state is the last 4 modules decided: x[c-1], x[c], x[c+1], x[c+2] (first one high).
    ok = np.ones((SIZE, _STATES), bool)
    for k in range(_SEQ_ALONG - 1):
        ok &= allowed[:, k, (states >> (_SEQ_ALONG - 2 - k)) & 1]
    cost = np.where(ok, 0.0, np.inf)
    back = np.empty((SIZE, SIZE, _STATES), np.int64)
    for c in range(SIZE):
        metric = cost[:, windows >> 1] + (target[:, c, None] - pred) ** 2  # (37, 32)
        metric[~allowed[:, c + _SEQ_ALONG - 1, windows & 1]] = np.inf
        first, second = metric[:, :_STATES], metric[:, _STATES:]  # windows ending in each state
        pick = second < first
        cost = np.where(pick, second, first)
        back[c] = np.where(pick, (states + _STATES) >> 1, states >> 1)
    state = cost.argmin(axis=1)
    lines = np.arange(SIZE)
    light = np.empty((SIZE, SIZE + 2 * _SEQ_REACH), bool)
    for c in range(SIZE - 1, -1, -1):
        light[:, c + _SEQ_ALONG - 1] = state & 1
        state = back[c, lines, state]
    for k in range(_SEQ_ALONG - 1):
        light[:, k] = (state >> (_SEQ_ALONG - 2 - k)) & 1
    return light[:, _SEQ_REACH : _SEQ_REACH + SIZE]


def _sequence(shade: np.ndarray, first: np.ndarray, transpose: bool) -> np.ndarray | None:
    """Read a symbol smeared along its rows (``transpose``: along its columns) line by line.

    A smear over two or more modules (a hand-shaken phone photo) greys a module by its
    neighbours on the line as much as by itself, and at the modules' own frequency can even
    invert their contrast: no threshold, however refined, reads it. But the shades along a
    line follow from its modules by one short filter, fitted on this image (decision-directed,
    function modules as known, with the neighbouring lines' contribution and uneven light),
    and Viterbi finds the whole line that best explains them. Returns shades like `_refine`'s
    (threshold 0.5; a module is as uncertain as its shade is near the threshold given its
    neighbours' decisions), or None when the fit says dark and light can't be told apart.
    """
    sh = shade.reshape(SIZE, SIZE)
    light = first.reshape(SIZE, SIZE) >= 0.5
    known, known_light = _KNOWN_2D, _KNOWN_LIGHT
    if transpose:
        sh, light, known, known_light = sh.T, light.T, known.T, known_light.T
    sh = np.ascontiguousarray(sh).ravel()
    light = np.where(known, known_light, light)
    allowed = np.ones((SIZE, SIZE + 2 * _SEQ_REACH, 2), bool)
    allowed[:, :_SEQ_REACH, 0] = allowed[:, -_SEQ_REACH:, 0] = False
    inner = allowed[:, _SEQ_REACH:-_SEQ_REACH]
    inner[known & known_light, 0] = False
    inner[known & ~known_light, 1] = False
    for _ in range(_SEQ_ROUNDS):
        features = _seq_features(light.astype(np.float64))
        weights = _least_squares(features, sh)
        if weights[_SEQ_REACH] <= 0:
            return None
        across = weights[_SEQ_ALONG:] @ features[_SEQ_ALONG:]
        again = _viterbi_lines((sh - across).reshape(SIZE, SIZE), weights[:_SEQ_ALONG], allowed)
        if (again == light).all():
            break
        light = again
    features = _seq_features(light.astype(np.float64))
    weights = _least_squares(features, sh)
    own = weights[_SEQ_REACH]
    if own <= 0:
        return None
    threshold = weights @ features - own * features[_SEQ_REACH] + own / 2
    out = (sh - threshold) / own + 0.5
    # Viterbi's decision stands (it weighed the whole line); the shade says how sure it is.
    out = np.where(light.ravel(), np.maximum(out, 0.5), np.minimum(out, np.nextafter(0.5, 0)))
    return out.reshape(SIZE, SIZE).T.ravel() if transpose else out


def _smear_axis(shade: np.ndarray, light: np.ndarray) -> bool:
    """Whether the symbol looks smeared more along its columns than its rows (from the
    3 x 3 fit of `_refine`: the weights of the neighbours above and below against those
    left and right)."""
    weights = _least_squares(_features(light.astype(np.float64)), shade)
    return bool(weights[1] + weights[2] > weights[3] + weights[4])


class _Readings:
    """The module shades to read at threshold 0.5, in turn: as sampled, then refined for blur,
    then read line by line for a smear (`_sequence`) along the axis it seems to be, then
    along the other. Each is computed once, and only when the ones before fall short."""

    def __init__(self, shade: np.ndarray) -> None:
        self.sampled = shade
        self.computed: list[np.ndarray | None] = []

    def _make(self, k: int) -> np.ndarray | None:
        if k == 0:
            return self.sampled
        if k == 1:
            return _refine(self.sampled, _equalise(self.sampled))
        start = self.computed[1] if self.computed[1] is not None else _equalise(self.sampled)
        if k == 2:
            self.columns_first = _smear_axis(self.sampled, start >= 0.5)
        return _sequence(self.sampled, start, transpose=self.columns_first == (k == 2))

    def __iter__(self) -> Iterator[np.ndarray]:
        for k in range(4):
            if k == len(self.computed):
                self.computed.append(self._make(k))
            if self.computed[k] is not None:
                yield self.computed[k]


def _decode_block(
    received: np.ndarray, syndromes: np.ndarray, samples: np.ndarray
) -> tuple[list[int], int] | None:
    """(codewords, erasures used) of one block read from ``samples`` (67, 8 shades), or None.

    Errors only first; then the codewords holding uncertain modules become erasures, the
    least certain first, as many as can be trusted (`_MAX_ERASURES`).
    """
    if not syndromes.any():
        return received.tolist(), 0
    fixed = _correct(received, syndromes, [])
    if fixed is not None:
        return fixed, 0
    margin = np.abs(samples - 0.5).min(axis=-1)
    unsure = np.flatnonzero(margin < _UNCERTAIN)
    erasures = unsure[np.argsort(margin[unsure], kind="stable")][:_MAX_ERASURES].tolist()
    if erasures:
        fixed = _correct(received, syndromes, erasures)
        if fixed is not None:
            return fixed, len(erasures)
    return None


def _decode_masked(readings: _Readings, mask: int) -> DecodeResult | None:
    """Read both blocks under ``mask`` (each from the first reading that corrects) and parse."""
    blocks: list[list[int] | None] = [None, None]
    corrected = erased = 0
    for reading in readings:
        samples = reading[_BIT_FLAT]  # (2, 67, 8)
        received = np.packbits((samples < 0.5) ^ _MASK_BITS[mask], axis=-1)[..., 0]
        syndromes = _syndromes(received)
        for b in (0, 1):
            if blocks[b] is not None:
                continue
            result = _decode_block(received[b], syndromes[b], samples[b])
            if result is not None:
                blocks[b], erasures = result
                corrected += int((np.array(blocks[b]) != received[b]).sum())
                erased += erasures
        if blocks[0] is not None and blocks[1] is not None:
            break
    else:
        return None
    try:
        text = _parse(bytes(blocks[0][:_DATA] + blocks[1][:_DATA]))
    except (_Malformed, UnicodeDecodeError):
        return None
    return DecodeResult(text, corrected, erased)


def _shades(levels: np.ndarray) -> np.ndarray | None:
    """Each module's shade, flat (37 * 37): 0 = the finders' ink, 1 = their paper; None when
    the levels are not finite or the known dark modules are not darker than the light."""
    flat = np.asarray(levels, dtype=np.float64).ravel()
    if not np.isfinite(flat).all():
        return None
    dark = np.sort(flat[_KNOWN_DARK_FLAT])[len(_KNOWN_DARK_FLAT) // 2]  # medians
    light = np.sort(flat[_KNOWN_LIGHT_FLAT])[len(_KNOWN_LIGHT_FLAT) // 2]
    with np.errstate(all="ignore"):  # absurd levels (+-1e308) overflow, and then read as nothing
        shade = (flat - dark) / (light - dark)
    if not (light > dark and np.isfinite(shade).all()):
        return None
    # Levels far beyond ink and paper (glare, a speck) say no more than ink or paper: keep
    # them from swaying the fits. Blur alone spreads shades over about -2 .. 4.
    return np.clip(shade, -10.0, 11.0)


def decode_levels(levels: np.ndarray) -> DecodeResult | None:
    """Decode a version-5, level-M symbol from its module grey levels.

    ``levels`` is a (37, 37) array (row, column) of each module's grey level, dark ink low,
    in any unit. Returns the text and how much was corrected, or None when the symbol can't
    be read with confidence. Raises ValueError only for a wrong shape.
    """
    levels = np.asarray(levels, dtype=np.float64)
    if levels.shape != (SIZE, SIZE):
        raise ValueError(f"module levels must be {SIZE} x {SIZE}, not {levels.shape}")
    shade = _shades(levels)
    if shade is None:
        return None
    readings = _Readings(shade)
    # The format is read from each reading in turn (a smeared one can't be read plainly).
    tried: set[tuple[int, int]] = set()
    for reading in readings:
        for level, mask in _format_candidates(reading < 0.5):
            if (level, mask) in tried:
                continue
            tried.add((level, mask))
            if level == _EC_LEVEL_M and (result := _decode_masked(readings, mask)) is not None:
                return result
    return None
