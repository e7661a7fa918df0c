"""Real media bytes for the fakes: PNG images and WAV audio, made with the standard library.

Image models' fakes answer with a real PNG whose size follows the requested
aspect ratio (so a test can tell that ``image_config`` arrived), and the local
web serves images and audio that decode for real.
"""
from __future__ import annotations

import base64
import io
import math
import struct
import wave
import zlib

__all__ = ["IMAGE_TOKENS", "png", "png_size", "png_for_aspect", "wav", "data_uri"]

#: What Gemini 2.5 Flash Image reports (and bills) for one generated image.
IMAGE_TOKENS = 1290


def png(width: int, height: int, rgb: tuple[int, int, int] = (200, 60, 30)) -> bytes:
    """A valid ``width`` x ``height`` PNG of one colour (8-bit RGB, no interlace)."""
    row = b"\x00" + bytes(rgb) * width  # filter type 0 per scanline

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(row * height))
            + chunk(b"IEND", b""))


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    return struct.unpack(">II", data[16:24])


def png_for_aspect(aspect_ratio: str | None, *, base: int = 36) -> bytes:
    """A PNG of ``aspect_ratio`` (``"16:9"`` -> 64x36); square when not given."""
    if not aspect_ratio:
        return png(base, base)
    w, h = (int(x) for x in aspect_ratio.split(":"))
    scale = base / min(w, h)
    return png(math.ceil(w * scale), math.ceil(h * scale))


def wav(seconds: float = 0.2, rate: int = 8000) -> bytes:
    """A valid mono 16-bit WAV of a 440 Hz tone."""
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        frames = int(seconds * rate)
        w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate)))
                               for i in range(frames)))
    return out.getvalue()


def data_uri(data: bytes, mime: str) -> str:
    """``data:<mime>;base64,...``"""
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"
