"""Audio: upload (sniffing, limits, duration), read, delete."""

from __future__ import annotations

import io
import struct
import wave

import httpx

from tests.media.conftest import png


def wav(seconds: float, rate: int = 8000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\0\1" * int(rate * seconds))
    return out.getvalue()


def mp3(frames: int) -> bytes:
    """Constant-bitrate MPEG-1 Layer III frames (128 kbit/s, 44.1 kHz): 417 bytes, 1152 samples each."""
    frame = b"\xff\xfb\x90\x00" + b"\0" * 413
    return frame * frames


def webm(duration_ms: float) -> bytes:
    def element(element_id: bytes, body: bytes) -> bytes:
        assert len(body) < 127
        return element_id + bytes([0x80 | len(body)]) + body

    header = element(b"\x1a\x45\xdf\xa3", element(b"\x42\x82", b"webm"))
    info = element(
        b"\x15\x49\xa9\x66",
        element(b"\x2a\xd7\xb1", (1_000_000).to_bytes(3, "big")) + element(b"\x44\x89", struct.pack(">d", duration_ms)),
    )
    segment = b"\x18\x53\x80\x67" + b"\x01\xff\xff\xff\xff\xff\xff\xff" + info  # unknown size, as recorders write
    return header + segment


def _crc(data: bytes) -> int:
    """Ogg's page checksum (CRC-32, polynomial 0x04C11DB7, not reflected)."""
    crc = 0
    for b in data:
        crc ^= b << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) & 0xFFFFFFFF if crc & 0x80000000 else (crc << 1) & 0xFFFFFFFF
    return crc


def ogg_page(packet: bytes, *, seq: int, granule: int, flags: int) -> bytes:
    segments = [255] * (len(packet) // 255) + [len(packet) % 255]
    header = b"OggS" + struct.pack("<BBqIIIB", 0, flags, granule, 0x5EED, seq, 0, len(segments)) + bytes(segments)
    page = header + packet
    return page[:22] + struct.pack("<I", _crc(page)) + page[26:]


def ogg_opus(seconds: float) -> bytes:
    """Ogg Opus: OpusHead, OpusTags, one audio page whose granule position gives the length."""
    pre_skip = 312
    head = b"OpusHead" + struct.pack("<BBHIhB", 1, 1, pre_skip, 48000, 0, 0)
    tags = b"OpusTags" + struct.pack("<I", 4) + b"test" + struct.pack("<I", 0)
    audio = b"\xf8\xff\xfe"  # one silent 20 ms CELT frame
    return (
        ogg_page(head, seq=0, granule=0, flags=2)
        + ogg_page(tags, seq=1, granule=0, flags=0)
        + ogg_page(audio, seq=2, granule=int(48000 * seconds) + pre_skip, flags=4)
    )


def atom(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", 8 + len(body)) + kind + body


def m4a(seconds: float) -> bytes:
    """An MP4 audio file's atoms as far as a reader needs them for the duration (mdhd of a sound track)."""
    timescale = 44100
    mdhd = atom(
        b"mdhd", b"\0\0\0\0" + struct.pack(">IIII", 0, 0, timescale, int(seconds * timescale)) + b"\x55\xc4\0\0"
    )
    hdlr = atom(b"hdlr", b"\0\0\0\0" + b"\0\0\0\0" + b"soun" + b"\0" * 12 + b"SoundHandler\0")
    mvhd = atom(b"mvhd", b"\0\0\0\0" + struct.pack(">IIII", 0, 0, 1000, int(seconds * 1000)) + b"\0" * 80)
    trak = atom(b"trak", atom(b"mdia", mdhd + hdlr + atom(b"minf", atom(b"stbl", b""))))
    return atom(b"ftyp", b"M4A \0\0\0\0M4A isom") + atom(b"moov", mvhd + trak) + atom(b"mdat", b"\0" * 64)


async def upload(client, user, data: bytes, filename="voice.bin", content_type="application/octet-stream"):
    return await client.post("/audio", headers=user.headers, files={"file": (filename, data, content_type)})


async def test_wav_mp3_webm_ogg_m4a_with_duration(client, new_user):
    user = new_user()
    cases = [
        (wav(1.5), "audio/wav", 1500),
        (mp3(100), "audio/mpeg", 2612),
        (webm(2500.0), "audio/webm", 2500),
        (ogg_opus(1.25), "audio/ogg", 1250),
        (m4a(3.5), "audio/mp4", 3500),
    ]
    for data, mime, duration in cases:
        r = await upload(client, user, data)
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["mime"] == mime and body["bytes"] == len(data)
        assert abs(body["duration_ms"] - duration) <= 30, body
        async with httpx.AsyncClient() as http:
            stored = await http.get(body["url"])
        assert stored.status_code == 200 and stored.content == data
        again = await client.get(f"/audio/{body['id']}", headers=user.headers)
        assert again.status_code == 200 and again.json()["id"] == body["id"]


async def test_webm_without_duration(client, new_user):
    data = webm(0.0).replace(b"\x44\x89\x88" + struct.pack(">d", 0.0), b"")
    r = await upload(client, new_user(), data)
    assert r.status_code == 201 and r.json()["duration_ms"] is None


async def test_unsupported_and_invalid_audio(client, new_user):
    user = new_user()
    r = await upload(client, user, png(), "voice.mp3", "audio/mpeg")
    assert r.status_code == 415 and r.json()["detail"]["code"] == "UNSUPPORTED_MEDIA_TYPE"
    r = await upload(client, user, b"<html><script>alert(1)</script></html>", "voice.wav", "audio/wav")
    assert r.status_code == 415
    r = await upload(client, user, wav(1.0)[:30])  # RIFF/WAVE header, cut inside the fmt chunk
    assert r.status_code == 422 and r.json()["detail"]["code"] == "INVALID_AUDIO"
    r = await upload(client, user, b"")
    assert r.status_code == 422 and r.json()["detail"]["code"] == "INVALID_AUDIO"
    r = await upload(client, user, ogg_opus(1.0)[:40])  # an Ogg page cut short
    assert r.status_code == 422 and r.json()["detail"]["code"] == "INVALID_AUDIO"


async def test_audio_over_the_limit(client, new_user):
    r = await upload(client, new_user(), wav(70.0))  # ~1.1 MB, the tests' limit is 1 MiB
    assert r.status_code == 413 and r.json()["detail"]["code"] == "TOO_LARGE"


async def test_another_users_audio_and_delete(client, new_user, media_db):
    owner, other = new_user(), new_user()
    body = (await upload(client, owner, wav(0.25))).json()
    assert (await client.get(f"/audio/{body['id']}", headers=other.headers)).status_code == 404
    assert (await client.delete(f"/audio/{body['id']}", headers=other.headers)).status_code == 404
    # An image id is not an audio id, even for its owner.
    image = (
        await client.post("/images/upload", headers=owner.headers, files={"file": ("x.png", png(5, 5), "image/png")})
    ).json()
    assert (await client.get(f"/audio/{image['id']}", headers=owner.headers)).status_code == 404
    name = await media_db.fetchval("SELECT blob_name FROM media_metadata WHERE id = $1::uuid", body["id"])
    assert (await client.delete(f"/audio/{body['id']}", headers=owner.headers)).status_code == 204
    assert not await client.app.state.blobs.exists(name)
    r = await client.get(f"/audio/{body['id']}", headers=owner.headers)
    assert r.status_code == 404 and r.json()["detail"]["code"] == "AUDIO_NOT_FOUND"
