"""The pass's QR code: who it belongs to and which lesson, in a small versioned payload.

A pass scanned on another computer than the one that printed it must still be attributed
to the right pupil and lesson, so the code carries the identity itself, not a key into a
local database. It is kept short (bigger QR modules read better on poor scans):

    EXS1|C|17|a3f9c2|1042|Siobhán Ní Bhriain|P3B|20261123|3|Writing: adjectives

fields: version, template code, pass serial, lesson key, pupil id, pupil name, class, date,
number of criteria, lesson title. The lesson title is cut to `LESSON_BYTES` (the same cut
on every pass of a lesson, so results group by it) and the name to what is left of
`MAX_PAYLOAD_BYTES`; ``|``, ``%`` and line breaks inside fields are %-escaped.
The lesson key is a hash of everything that defines the lesson, so two lessons with the
same (shortened) title never mix.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

PREFIX = "EXS1"
#: Byte budget of the payload (UTF-8). 84 bytes is a version-5 QR at error correction M.
MAX_PAYLOAD_BYTES = 84
#: Every pass's code is a version-5 symbol (37 x 37 modules) with a 2-module quiet zone
#: inside its printed box, so the reader knows exactly where the symbol's corners are.
QR_VERSION = 5
QR_MODULES = 17 + 4 * QR_VERSION
QR_BORDER_MODULES = 2
#: Bytes of the lesson title kept in the code; the lesson key identifies the lesson anyway.
LESSON_BYTES = 20
_FIELDS = 10


class PayloadError(ValueError):
    """The text is not an exitscan pass code (or of an unknown version)."""


@dataclass(frozen=True)
class PassCode:
    template: str  # one-letter template code
    serial: int  # the pass's position in its print run (0-based); spares included
    lesson_key: str  # 6 hex digits
    student_id: str  # empty on a spare
    student_name: str  # empty on a spare; may be shortened
    class_name: str
    date: str  # YYYY-MM-DD, or empty
    n_criteria: int
    lesson: str  # may be shortened

    @property
    def is_spare(self) -> bool:
        return not self.student_id

    @property
    def identity(self) -> tuple[str, str]:
        """What makes two passes "the same pass": the lesson, and the pupil or the spare."""
        who = self.student_id if self.student_id else f"spare#{self.serial}"
        return (self.lesson_key, who)


def lesson_key(*parts: object) -> str:
    """A short stable key for a lesson from everything that defines it."""
    h = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).hexdigest()
    return h[:6]


def _esc(s: str) -> str:
    # Line breaks are escaped too (not turned into spaces), so every field comes back as it went in.
    return s.replace("%", "%25").replace("|", "%7C").replace("\n", "%0A").replace("\r", "%0D")


_UNESC = re.compile("%(25|7C|0A|0D)")


def _unesc(s: str) -> str:
    # One pass: a decoded "%" never starts another escape ("%257C" is "%7C", not "|").
    return _UNESC.sub(lambda m: chr(int(m.group(1), 16)), s)


ELLIPSIS = "\u2026"


def _shorten(s: str, max_bytes: int) -> str:
    """Cut ``s`` so that its escaped UTF-8 form fits in ``max_bytes`` (never mid-character);
    a cut text ends in an ellipsis, so a reader sees it was cut ("Maths: multipli…")."""
    if len(_esc(s).encode("utf-8")) <= max_bytes:
        return s
    room = max_bytes - len(ELLIPSIS.encode("utf-8"))
    s = s[: max(room, 0)]  # every character takes at least a byte: no need to try longer
    while s and len(_esc(s).encode("utf-8")) > room:
        s = s[:-1]
    s = s.rstrip()
    return s + ELLIPSIS if s else ""


def encode(code: PassCode) -> str:
    """The QR text of a pass; text fields shortened so the whole fits `MAX_PAYLOAD_BYTES`."""
    if len(code.template) != 1:
        raise ValueError("template code must be one letter")
    if code.student_id and "|" in code.student_id:
        raise ValueError("a pupil id may not contain '|'")
    date = code.date.replace("-", "")
    fixed = [
        PREFIX,
        code.template,
        str(code.serial),
        code.lesson_key,
        _esc(code.student_id),
        "",
        _esc(code.class_name),
        date,
        str(code.n_criteria),
        "",
    ]
    room = MAX_PAYLOAD_BYTES - len("|".join(fixed).encode("utf-8"))
    if room < 8:
        raise ValueError("pupil id and class are too long for the pass code")
    # Every pass of a lesson must carry the same title, whatever the pupil's name.
    lesson = _shorten(code.lesson, min(LESSON_BYTES, room // 2))
    room -= len(_esc(lesson).encode("utf-8"))
    name = _shorten(code.student_name, room)
    fixed[5] = _esc(name)
    fixed[9] = _esc(lesson)
    return "|".join(fixed)


def decode(text: str) -> PassCode:
    """Parse a pass's QR text. Raises `PayloadError` for anything that is not one."""
    parts = text.split("|")
    if not parts or parts[0] != PREFIX:
        if parts and parts[0].startswith("EXS"):
            raise PayloadError(f"pass code of an unknown version ({parts[0]})")
        raise PayloadError("not an exitscan pass code")
    if len(parts) != _FIELDS:
        raise PayloadError(f"damaged pass code ({len(parts)} fields instead of {_FIELDS})")
    _, tcode, serial, key, sid, name, cls, date, ncrit, lesson = parts
    try:
        serial_n = int(serial)
        ncrit_n = int(ncrit)
    except ValueError:
        raise PayloadError("damaged pass code (bad number)") from None
    if len(date) == 8 and date.isdigit():
        date = f"{date[:4]}-{date[4:6]}-{date[6:]}"
    elif date:
        raise PayloadError("damaged pass code (bad date)")
    return PassCode(
        template=tcode,
        serial=serial_n,
        lesson_key=key,
        student_id=_unesc(sid),
        student_name=_unesc(name),
        class_name=_unesc(cls),
        date=date,
        n_criteria=ncrit_n,
        lesson=_unesc(lesson),
    )
