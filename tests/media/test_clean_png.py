"""A generated PNG that holds nothing but its image is stored as the provider sent it
(imaging.is_clean_png, `keep_clean_png`); anything more in it (text, EXIF, an ICC profile, bytes
after IEND or after the zlib stream, interlacing) and it is re-encoded as before. Uploads are
always re-encoded."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image, PngImagePlugin

from media_service import imaging
from sandbox.images_api import make_png

LIMITS = {"max_pixels": 10_000_000, "thumbnail_size": 256}


def chunks(data: bytes) -> list[bytes]:
    out, at = [], 8
    while at < len(data):
        (length,) = struct.unpack_from(">I", data, at)
        out.append(data[at + 4 : at + 8])
        at += 12 + length
    return out


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def with_chunk_before_iend(data: bytes, kind: bytes, body: bytes) -> bytes:
    iend = data.rindex(b"IEND") - 4
    return data[:iend] + chunk(kind, body) + data[iend:]


def photo(mode: str = "RGB", size=(300, 200), **save) -> bytes:
    image = Image.effect_noise(size, 60).convert(mode)
    out = io.BytesIO()
    image.save(out, "PNG", **save)
    return out.getvalue()


@pytest.mark.parametrize(
    "data",
    [
        make_png("a lighthouse"),
        photo(),
        photo("RGBA"),
        photo("L"),
        photo("P"),
        photo("1"),
        photo("I;16"),
    ],
    ids=["sandbox", "rgb", "rgba", "grey", "palette", "bilevel", "16-bit"],
)
def test_a_clean_png_is_kept_as_sent(data):
    assert set(chunks(data)) <= {b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND"}
    assert imaging.is_clean_png(data)
    out = imaging.process(data, keep_clean_png=True, **LIMITS)
    assert out.data is data and out.mime == "image/png" and out.extension == "png"
    # Uploads (the default) are re-encoded all the same.
    assert imaging.process(data, **LIMITS).data is not data


def reencoded(data: bytes) -> bytes:
    out = imaging.process(data, keep_clean_png=True, **LIMITS)
    assert out.data != data
    # The re-encode keeps an ICC profile (colour, not metadata), as it always did for uploads.
    assert set(chunks(out.data)) <= {b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND", b"iCCP"}
    return out.data


def test_a_png_with_text_or_exif_or_a_profile_is_reencoded():
    text = PngImagePlugin.PngInfo()
    text.add_text("Comment", "made by a provider")
    exif = Image.Exif()
    exif[0x010F] = "Camera maker"
    for data in (
        photo(pnginfo=text),
        photo(exif=exif.tobytes()),
        photo(icc_profile=b"\0" * 200),
        with_chunk_before_iend(photo(), b"caBX", b"c2pa manifest"),
    ):
        assert not imaging.is_clean_png(data)
        assert b"made by a provider" not in reencoded(data)


def test_bytes_after_iend_or_after_the_zlib_stream_are_not_kept():
    clean = photo()
    assert not imaging.is_clean_png(clean + b"hidden after IEND")
    assert b"hidden" not in reencoded(clean + b"hidden after IEND")
    # A second IDAT holding bytes after the end of the zlib stream: decoders ignore them.
    hidden = with_chunk_before_iend(clean, b"IDAT", b"hidden after the stream")
    Image.open(io.BytesIO(hidden)).load()  # still a valid image
    assert not imaging.is_clean_png(hidden)
    assert b"hidden" not in reencoded(hidden)
    # A zlib stream that decompresses to more than the image's rows.
    image = Image.open(io.BytesIO(clean))
    raw = image.tobytes()
    rows = b"".join(b"\0" + raw[y * 900 : (y + 1) * 900] for y in range(200))  # filter 0, 300 px x 3

    def png_of(stream: bytes) -> bytes:
        return clean[:8] + chunk(b"IHDR", clean[16:29]) + chunk(b"IDAT", stream) + chunk(b"IEND", b"")

    assert imaging.is_clean_png(png_of(zlib.compress(rows)))
    padded = png_of(zlib.compress(rows + b"hidden rows"))
    Image.open(io.BytesIO(padded)).load()
    assert not imaging.is_clean_png(padded)
    assert not imaging.is_clean_png(png_of(zlib.compress(rows[:-1])))  # short of the image


def test_an_interlaced_or_corrupt_png_is_not_clean():
    clean = photo()
    ihdr = bytearray(clean[16:29])
    ihdr[12] = 1  # Adam7: the rows are laid out otherwise; re-encoded rather than checked
    assert not imaging.is_clean_png(clean[:8] + chunk(b"IHDR", bytes(ihdr)) + clean[33:])
    broken_crc = clean[:-5] + bytes([clean[-5] ^ 1]) + clean[-4:]
    assert not imaging.is_clean_png(broken_crc)
    assert not imaging.is_clean_png(clean[: len(clean) // 2])
    assert not imaging.is_clean_png(b"not a png")
    # A zlib stream with a wrong checksum: not clean (and no exception out of the check).
    stream = zlib.compress(Image.open(io.BytesIO(clean)).tobytes())
    bad = clean[:8] + chunk(b"IHDR", clean[16:29]) + chunk(b"IDAT", stream[:-4] + bytes(4)) + chunk(b"IEND", b"")
    assert not imaging.is_clean_png(bad)
    # An IHDR of the wrong length, or two of them.
    assert not imaging.is_clean_png(clean[:8] + chunk(b"IHDR", clean[16:29] + b"\0") + clean[33:])
    assert not imaging.is_clean_png(clean[:33] + chunk(b"IHDR", clean[16:29]) + clean[33:])
