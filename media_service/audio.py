"""Audio bytes in: the type sniffed by content (mp3, m4a, ogg, wav, webm) and the duration read
from the container (mutagen; a few lines of EBML for WebM, which mutagen does not read). Pure
functions, run off the event loop. Audio is stored as uploaded (it is not re-encoded)."""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

import mutagen
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4
from mutagen.ogg import OggFileType
from mutagen.oggflac import OggFLAC
from mutagen.oggopus import OggOpus
from mutagen.oggspeex import OggSpeex
from mutagen.oggvorbis import OggVorbis
from mutagen.wave import WAVE

# kind -> (mime, extension)
KINDS = {
    "mp3": ("audio/mpeg", "mp3"),
    "m4a": ("audio/mp4", "m4a"),
    "ogg": ("audio/ogg", "ogg"),
    "wav": ("audio/wav", "wav"),
    "webm": ("audio/webm", "webm"),
}
_MP4_AUDIO_BRANDS = {b"M4A ", b"M4B ", b"mp42", b"isom", b"mp41", b"iso2", b"dash"}


class Unsupported(Exception):
    """Not an audio format we take (415)."""


class Invalid(Exception):
    """Claims to be audio we take but cannot be read (422)."""


@dataclass(frozen=True)
class AudioInfo:
    kind: str
    mime: str
    extension: str
    duration_ms: int | None


def sniff(data: bytes) -> str:
    if data.startswith(b"ID3") or (len(data) > 1 and data[0] == 0xFF and (data[1] & 0xE0) == 0xE0):
        return "mp3"
    if len(data) >= 12 and data[4:8] == b"ftyp" and data[8:12] in _MP4_AUDIO_BRANDS:
        return "m4a"
    if data.startswith(b"OggS"):
        return "ogg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "wav"
    if data.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm"
    raise Unsupported("The file is not mp3, m4a, ogg, wav or webm audio.")


def inspect(data: bytes) -> AudioInfo:
    if not data:
        raise Invalid("The file is empty.")
    kind = sniff(data)
    mime, extension = KINDS[kind]
    duration = _webm_duration_ms(data) if kind == "webm" else _mutagen_duration_ms(kind, data)
    return AudioInfo(kind, mime, extension, duration)


def _mutagen_duration_ms(kind: str, data: bytes) -> int:
    options = {
        "mp3": [MP3],
        "m4a": [MP4],
        "ogg": [OggVorbis, OggOpus, OggFLAC, OggSpeex],
        "wav": [WAVE],
    }[kind]
    try:
        parsed = mutagen.File(io.BytesIO(data), options=options)
    except (mutagen.MutagenError, ValueError, EOFError, IndexError, KeyError) as exc:
        raise Invalid(f"The {kind} file cannot be read: {exc}") from None
    if parsed is None or parsed.info is None or not getattr(parsed.info, "length", None):
        raise Invalid(f"The {kind} file has no readable audio stream.")
    if isinstance(parsed, OggFileType) and parsed.info.length < 0:
        raise Invalid("The ogg file has no readable audio stream.")
    return round(parsed.info.length * 1000)


# EBML ids (Matroska/WebM)
_EBML, _SEGMENT, _INFO, _TIMECODE_SCALE, _DURATION = 0x1A45DFA3, 0x18538067, 0x1549A966, 0x2AD7B1, 0x4489


def _vint(data: bytes, at: int, *, keep_marker: bool) -> tuple[int, int]:
    """An EBML variable-length integer at `at`: (value, length)."""
    if at >= len(data):
        raise Invalid("The webm file is truncated.")
    first = data[at]
    length = 1
    mask = 0x80
    while length <= 8 and not first & mask:
        mask >>= 1
        length += 1
    if length > 8 or at + length > len(data):
        raise Invalid("The webm file is corrupt.")
    value = first if keep_marker else first & (mask - 1)
    for b in data[at + 1 : at + length]:
        value = (value << 8) | b
    return value, length


def _elements(data: bytes, start: int, end: int):
    at = start
    while at < end:
        element_id, n = _vint(data, at, keep_marker=True)
        size, m = _vint(data, at + n, keep_marker=False)
        body = at + n + m
        unknown = size == (1 << (7 * m)) - 1  # "unknown size" (live recordings): runs to the end
        stop = end if unknown else min(end, body + size)
        yield element_id, body, stop
        at = stop


def _webm_duration_ms(data: bytes) -> int | None:
    """Segment > Info > Duration * TimecodeScale. A recording made live (MediaRecorder) often has
    no Duration: None then, rather than decoding every cluster."""
    elements = _elements(data, 0, len(data))
    first = next(elements, None)
    if first is None or first[0] != _EBML:
        raise Invalid("The webm file is corrupt.")
    for element_id, body, stop in elements:
        if element_id != _SEGMENT:
            continue
        for child_id, cbody, cstop in _elements(data, body, stop):
            if child_id != _INFO:
                continue
            scale, duration = 1_000_000, None
            for info_id, ibody, istop in _elements(data, cbody, cstop):
                raw = data[ibody:istop]
                if info_id == _TIMECODE_SCALE:
                    scale = int.from_bytes(raw, "big") or scale
                elif info_id == _DURATION and len(raw) in (4, 8):
                    duration = struct.unpack(">f" if len(raw) == 4 else ">d", raw)[0]
            return None if duration is None else round(duration * scale / 1_000_000)
        return None
    raise Invalid("The webm file has no segment.")
