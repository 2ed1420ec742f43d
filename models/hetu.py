"""Finnish personal identity codes (henkilötunnus), ``DDMMYYCZZZQ``.

Pure functions: validation with the check character, and construction (for the
synthetic registers).

Examples
--------
>>> is_valid("131052-308T")
True
>>> is_valid("131052-308U")
False
>>> birth_date("010594Y9032").isoformat()
'1994-05-01'
>>> make(__import__("datetime").date(2010, 2, 28), 123)
'280210A1237'
"""

from __future__ import annotations

import datetime as dt
import re

CHECK_CHARS = "0123456789ABCDEFHJKLMNPRSTUVWXY"
CENTURY = {
    "+": 1800,
    "-": 1900,
    "Y": 1900,
    "X": 1900,
    "W": 1900,
    "V": 1900,
    "U": 1900,
    "A": 2000,
    "B": 2000,
    "C": 2000,
    "D": 2000,
    "E": 2000,
    "F": 2000,
}
_PATTERN = re.compile(r"^(\d{2})(\d{2})(\d{2})([-+ABCDEFYXWVU])(\d{3})([0-9A-Y])$")


def check_char(ddmmyy: str, individual: str) -> str:
    """The check character for the nine digits ``DDMMYY`` + ``ZZZ``."""
    return CHECK_CHARS[int(ddmmyy + individual) % 31]


def parse(code: str) -> dt.date:
    """The birth date of a valid code; ``ValueError`` saying why otherwise."""
    if not isinstance(code, str):
        raise ValueError("identity code must be a string")
    m = _PATTERN.match(code)
    if not m:
        raise ValueError("identity code is not of the form DDMMYYCZZZQ")
    dd, mm, yy, sign, zzz, q = m.groups()
    try:
        born = dt.date(CENTURY[sign] + int(yy), int(mm), int(dd))
    except ValueError as exc:
        raise ValueError("identity code does not hold a real date") from exc
    if int(zzz) < 2:
        raise ValueError("identity code has an individual number below 002")
    if check_char(dd + mm + yy, zzz) != q:
        raise ValueError("identity code has a wrong check character")
    return born


def is_valid(code: str) -> bool:
    try:
        parse(code)
    except ValueError:
        return False
    return True


def birth_date(code: str) -> dt.date:
    return parse(code)


def make(born: dt.date, individual: int, sign: str | None = None) -> str:
    """A valid code for ``born`` with individual number 2..899."""
    if not 2 <= individual <= 999:
        raise ValueError("individual number must be 2..999")
    if sign is None:
        sign = {1800: "+", 1900: "-", 2000: "A"}[born.year // 100 * 100]
    ddmmyy = born.strftime("%d%m") + f"{born.year % 100:02d}"
    zzz = f"{individual:03d}"
    return f"{ddmmyy}{sign}{zzz}{check_char(ddmmyy, zzz)}"
