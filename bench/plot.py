"""A small line chart as a PNG, in pure Python (zlib for the compression): the autoscale
section's replicas against the load over time. Axes with ticks and labels in a 3x5 pixel font,
one or more series on a left axis and one on a right axis, a legend."""

from __future__ import annotations

import itertools
import math
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

RGB = tuple[int, int, int]
WHITE, BLACK, GREY = (255, 255, 255), (0, 0, 0), (215, 215, 215)
BLUE, ORANGE, GREEN = (31, 119, 180), (255, 127, 14), (44, 160, 44)

# 3x5 glyphs, rows top to bottom, "#" set
_FONT_ROWS = {
    "0": "### #.# #.# #.# ###", "1": ".#. ##. .#. .#. ###", "2": "### ..# ### #.. ###",
    "3": "### ..# .## ..# ###", "4": "#.# #.# ### ..# ..#", "5": "### #.. ### ..# ###",
    "6": "### #.. ### #.# ###", "7": "### ..# .#. .#. .#.", "8": "### #.# ### #.# ###",
    "9": "### #.# ### ..# ###", "a": ".#. #.# ### #.# #.#", "b": "##. #.# ##. #.# ##.",
    "c": "### #.. #.. #.. ###", "d": "##. #.# #.# #.# ##.", "e": "### #.. ##. #.. ###",
    "f": "### #.. ##. #.. #..", "g": "### #.. #.# #.# ###", "h": "#.# #.# ### #.# #.#",
    "i": "### .#. .#. .#. ###", "j": "..# ..# ..# #.# ###", "k": "#.# #.# ##. #.# #.#",
    "l": "#.. #.. #.. #.. ###", "m": "#.# ### ### #.# #.#", "n": "##. #.# #.# #.# #.#",
    "o": "### #.# #.# #.# ###", "p": "### #.# ### #.. #..", "q": "### #.# #.# ### ..#",
    "r": "##. #.# ##. #.# #.#", "s": "### #.. ### ..# ###", "t": "### .#. .#. .#. .#.",
    "u": "#.# #.# #.# #.# ###", "v": "#.# #.# #.# #.# .#.", "w": "#.# #.# ### ### #.#",
    "x": "#.# #.# .#. #.# #.#", "y": "#.# #.# .#. .#. .#.", "z": "### ..# .#. #.. ###",
    "/": "..# ..# .#. #.. #..", ".": "... ... ... ... .#.", "-": "... ... ### ... ...",
    " ": "... ... ... ... ...", "(": ".#. #.. #.. #.. .#.", ")": ".#. ..# ..# ..# .#.",
    ":": "... .#. ... .#. ...",
}  # fmt: skip
FONT = {ch: [row for row in rows.split()] for ch, rows in _FONT_ROWS.items()}


@dataclass
class Series:
    label: str
    points: Sequence[tuple[float, float]]
    color: RGB
    right: bool = False  # on the right-hand axis
    step: bool = False  # a step function (a count), not a line between points


@dataclass
class Canvas:
    width: int
    height: int
    pixels: bytearray = field(init=False)

    def __post_init__(self) -> None:
        self.pixels = bytearray(WHITE * (self.width * self.height))

    def dot(self, x: int, y: int, color: RGB) -> None:
        if 0 <= x < self.width and 0 <= y < self.height:
            i = 3 * (y * self.width + x)
            self.pixels[i : i + 3] = bytes(color)

    def line(self, x0: float, y0: float, x1: float, y1: float, color: RGB, width: int = 1) -> None:
        steps = max(1, int(max(abs(x1 - x0), abs(y1 - y0))))
        for k in range(steps + 1):
            x, y = x0 + (x1 - x0) * k / steps, y0 + (y1 - y0) * k / steps
            for dx in range(width):
                for dy in range(width):
                    self.dot(round(x) + dx, round(y) + dy, color)

    def text(self, x: int, y: int, text: str, color: RGB = BLACK, scale: int = 2) -> int:
        """Draw `text` from (x, y), its top left; return the x after it."""
        for ch in text.lower():
            for r, row in enumerate(FONT.get(ch, FONT[" "])):
                for c, bit in enumerate(row):
                    if bit == "#":
                        for dx in range(scale):
                            for dy in range(scale):
                                self.dot(x + c * scale + dx, y + r * scale + dy, color)
            x += 4 * scale
        return x

    def png(self) -> bytes:
        raw = b"".join(
            b"\x00" + bytes(self.pixels[3 * y * self.width : 3 * (y + 1) * self.width])
            for y in range(self.height)
        )

        def chunk(kind: bytes, data: bytes) -> bytes:
            body = kind + data
            return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return b"".join(
            [b"\x89PNG\r\n\x1a\n", chunk(b"IHDR", header),
             chunk(b"IDAT", zlib.compress(raw, 9)), chunk(b"IEND", b"")]
        )  # fmt: skip


def _nice(top: float) -> tuple[float, float]:
    """An axis maximum and tick step for values up to `top`."""
    if top <= 0:
        return 1.0, 1.0
    raw = top / 5
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    return step * math.ceil(top / step), step


def _label(value: float) -> str:
    return f"{value:g}" if value < 1000 else f"{value:.0f}"


def chart(
    series: Sequence[Series],
    *,
    title: str,
    x_label: str,
    left_label: str,
    right_label: str,
    width: int = 960,
    height: int = 480,
) -> bytes:
    """The PNG of `series` over time (x), with a left and a right axis."""
    c = Canvas(width, height)
    left, right, top, bottom = 70, width - 70, 50, height - 50
    xs = [x for s in series for x, _ in s.points] or [0.0, 1.0]
    x_max, x_step = _nice(max(xs))
    l_max, l_step = _nice(max([y for s in series if not s.right for _, y in s.points] or [1]))
    r_max, r_step = _nice(max([y for s in series if s.right for _, y in s.points] or [1]))

    def px(x: float) -> float:
        return left + (right - left) * x / x_max

    def py(y: float, on_right: bool) -> float:
        return bottom - (bottom - top) * y / (r_max if on_right else l_max)

    for k in range(round(l_max / l_step) + 1):
        y = py(k * l_step, False)
        c.line(left, y, right, y, GREY)
        c.text(left - 8 - 8 * len(_label(k * l_step)), round(y) - 5, _label(k * l_step))
    for k in range(round(r_max / r_step) + 1):
        c.text(right + 8, round(py(k * r_step, True)) - 5, _label(k * r_step), ORANGE)
    for k in range(round(x_max / x_step) + 1):
        x = px(k * x_step)
        c.line(x, bottom, x, bottom + 5, BLACK)
        c.text(round(x) - 4 * len(_label(k * x_step)), bottom + 10, _label(k * x_step))
    c.line(left, top, left, bottom, BLACK)
    c.line(left, bottom, right, bottom, BLACK)
    c.line(right, top, right, bottom, BLACK)
    for s in series:
        pts = [(px(x), py(y, s.right)) for x, y in s.points]
        for (x0, y0), (x1, y1) in itertools.pairwise(pts):
            if s.step:
                c.line(x0, y0, x1, y0, s.color, 2)
                c.line(x1, y0, x1, y1, s.color, 2)
            else:
                c.line(x0, y0, x1, y1, s.color, 2)
    c.text(left, 12, title, scale=3)
    c.text((left + right) // 2 - 4 * len(x_label), height - 22, x_label)
    c.text(4, top - 20, left_label)
    c.text(right - 8 * len(right_label) + 60, top - 20, right_label, ORANGE)
    x = left + 8
    for s in series:
        c.line(x, top + 12, x + 20, top + 12, s.color, 3)
        x = c.text(x + 26, top + 7, s.label) + 18
    return c.png()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
