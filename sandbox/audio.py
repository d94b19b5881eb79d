"""Real, small audio files for the speech sandbox, and how the transcription sandbox reads them.

Every file the sandbox makes carries its text in the container's own metadata
(WAV ``LIST/INFO/ICMT``, MP3 ID3v2.4 ``TXXX``, FLAC ``VORBIS_COMMENT``) as
``sandbox-tts:<byte length>:<utf-8 text>``, so ``speech -> transcription`` round-trips: the
transcription of a sandbox-made file is the text it was made from.

* :func:`make_wav` - PCM 16-bit mono 24 kHz, a quiet 400 Hz tone (tests can build uploads with it);
* :func:`make_mp3` - MPEG-1 Layer III frames (48 kHz, 128 kbit/s, mono) of silence, ID3v2.4 tag;
* :func:`make_flac` - FLAC with CONSTANT (silent) subframes, STREAMINFO and VORBIS_COMMENT;
* :func:`make_pcm` - raw signed 16-bit little-endian, 24 kHz mono (OpenAI's ``pcm`` format).

Durations follow the text: 0.4 s a word, at least 0.5 s, at most 30 s.
"""

from __future__ import annotations

import math
import re
import struct

SAMPLE_RATE = 24000
MARKER = b"sandbox-tts:"
_MARKER_RE = re.compile(rb"sandbox-tts:(\d+):")
DEFAULT_TRANSCRIPT = "Hello from the SceneXtras sandbox."


def duration_for(text: str) -> float:
    return min(30.0, max(0.5, 0.4 * len(text.split())))


def _tag(text: str) -> bytes:
    raw = text.encode("utf-8")
    return MARKER + str(len(raw)).encode() + b":" + raw


def read_marker(data: bytes) -> str | None:
    """The text a sandbox-made audio file carries, if it is one."""
    m = _MARKER_RE.search(data)
    if not m:
        return None
    n = int(m.group(1))
    return data[m.end() : m.end() + n].decode("utf-8", "replace")


# --------------------------------------------------------------------------------------- PCM/WAV


def make_pcm(text: str = "", seconds: float | None = None, tone: bool = True) -> bytes:
    seconds = duration_for(text) if seconds is None else seconds
    n = int(SAMPLE_RATE * seconds)
    if not tone:
        return b"\x00\x00" * n
    period = 60  # 24000 / 400 Hz
    one = struct.pack("<60h", *(int(1500 * math.sin(2 * math.pi * i / period)) for i in range(period)))
    reps, rest = divmod(n, period)
    return one * reps + one[: rest * 2]


def make_wav(text: str = "", seconds: float | None = None) -> bytes:
    """A valid RIFF/WAVE file; its transcription in the sandbox is ``text`` (or the default phrase)."""
    pcm = make_pcm(text, seconds)
    fmt = struct.pack("<HHIIHH", 1, 1, SAMPLE_RATE, SAMPLE_RATE * 2, 2, 16)
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt
    if text:
        comment = _tag(text) + b"\x00"
        if len(comment) % 2:
            comment += b"\x00"
        info = b"INFO" + b"ICMT" + struct.pack("<I", len(comment)) + comment
        chunks += b"LIST" + struct.pack("<I", len(info)) + info
    chunks += b"data" + struct.pack("<I", len(pcm)) + pcm
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


def wav_duration(data: bytes) -> float | None:
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    pos, byte_rate = 12, None
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        if cid == b"fmt " and size >= 16:
            byte_rate = struct.unpack("<I", data[pos + 16 : pos + 20])[0]
        if cid == b"data" and byte_rate:
            return min(size, len(data) - pos - 8) / byte_rate
        pos += 8 + size + (size % 2)
    return None


# -------------------------------------------------------------------------------------------- MP3


def _synchsafe(n: int) -> bytes:
    return bytes([(n >> 21) & 0x7F, (n >> 14) & 0x7F, (n >> 7) & 0x7F, n & 0x7F])


MP3_FRAME_SECONDS = 1152 / 48000
# MPEG-1 Layer III, no CRC | 128 kbit/s, 48 kHz, no padding | mono. Frame = 144*128000/48000 = 384 bytes.
_MP3_HEADER = bytes([0xFF, 0xFB, 0x94, 0xC0])
_MP3_FRAME = _MP3_HEADER + b"\x00" * (384 - 4)  # zero side info: no Huffman data = silence


def make_mp3(text: str = "", seconds: float | None = None) -> bytes:
    seconds = duration_for(text) if seconds is None else seconds
    frames = max(1, int(seconds / MP3_FRAME_SECONDS))
    tag = b""
    if text:
        body = b"\x03" + b"sandbox-tts\x00" + _tag(text)  # UTF-8, description, value
        frame = b"TXXX" + _synchsafe(len(body)) + b"\x00\x00" + body
        tag = b"ID3\x04\x00\x00" + _synchsafe(len(frame)) + frame
    return tag + _MP3_FRAME * frames


# ------------------------------------------------------------------------------------------- FLAC


def _crc8(data: bytes) -> int:
    crc = 0
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def _crc16(data: bytes) -> int:
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def _utf8_number(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    return chr(n).encode("utf-8") if n < 0x110000 else bytes([n & 0x7F])


def make_flac(text: str = "", seconds: float | None = None) -> bytes:
    seconds = duration_for(text) if seconds is None else seconds
    total = int(SAMPLE_RATE * seconds)
    block = 4096
    # STREAMINFO
    si = struct.pack(">HH", block, block) + b"\x00\x00\x00" + b"\x00\x00\x00"
    packed = (SAMPLE_RATE << 44) | (0 << 41) | (15 << 36) | total  # rate, channels-1, bps-1, samples
    si += packed.to_bytes(8, "big") + b"\x00" * 16
    vendor = b"sandbox"
    comments = [_tag(text).replace(b"sandbox-tts:", b"SANDBOX_TTS=sandbox-tts:", 1)] if text else []
    vc = struct.pack("<I", len(vendor)) + vendor + struct.pack("<I", len(comments))
    for c in comments:
        vc += struct.pack("<I", len(c)) + c
    out = b"fLaC"
    out += bytes([0x00]) + len(si).to_bytes(3, "big") + si
    out += bytes([0x84]) + len(vc).to_bytes(3, "big") + vc  # last metadata block, type 4
    frame_no, left = 0, total
    while left > 0:
        n = min(block, left)
        if n == block:
            hdr = bytes([0xFF, 0xF8, 0xC7, 0x08]) + _utf8_number(frame_no)  # 4096, 24 kHz, mono, 16 bit
        else:
            hdr = bytes([0xFF, 0xF8, 0x77, 0x08]) + _utf8_number(frame_no) + struct.pack(">H", n - 1)
        hdr += bytes([_crc8(hdr)])
        frame = hdr + b"\x00" + b"\x00\x00"  # CONSTANT subframe, value 0
        frame += struct.pack(">H", _crc16(frame))
        out += frame
        frame_no += 1
        left -= n
    return out


FORMATS = {
    "mp3": ("audio/mpeg", make_mp3),
    "wav": ("audio/wav", make_wav),
    "flac": ("audio/flac", make_flac),
    "pcm": ("audio/pcm", lambda text: make_pcm(text)),
}


def sniff_duration(data: bytes) -> float | None:
    d = wav_duration(data)
    if d is not None:
        return d
    if data[:3] == b"ID3" or data[:2] == b"\xff\xfb":
        return round(data.count(_MP3_HEADER) * MP3_FRAME_SECONDS, 3) or None
    if data[:4] == b"fLaC" and len(data) > 26:
        packed = int.from_bytes(data[18:26], "big")
        rate = packed >> 44
        return (packed & ((1 << 36) - 1)) / rate if rate else None
    return None
