"""Image bytes in, safe image bytes out: sniffing by content, decoding under a pixel limit,
re-encoding without metadata, thumbnails. Pure functions, CPU-bound: the service runs them in a
bounded thread pool, never on the event loop.

What is accepted is decided by the bytes alone (magic numbers), never by the filename or the
Content-Type the client sent. Anything that is also something else (a zip appended to a PNG, HTML
or script inside a GIF comment) is refused as a polyglot, although re-encoding would drop it
anyway: a client sending one is not uploading a picture.
"""

from __future__ import annotations

import io
import re
import struct
import zlib
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

# format name (Pillow) -> (mime, extension of the stored original)
FORMATS = {
    "PNG": ("image/png", "png"),
    "JPEG": ("image/jpeg", "jpg"),
    "GIF": ("image/gif", "gif"),
    "WEBP": ("image/webp", "webp"),
}
THUMBNAIL_MIME = "image/webp"
THUMBNAIL_EXTENSION = "webp"

# Encoder speed over the last few percent of size (docs/benchmarks.md "Media generation"):
# zlib level 1 writes a PNG ~4-6x faster than the default 6 for a file 10-30% larger; WebP
# method 2 is ~2x faster than 4 within 1-2% of its size, method 0 for the small thumbnails.
PNG_COMPRESS_LEVEL = 1
WEBP_METHOD = 2
THUMBNAIL_WEBP_METHOD = 0
# Thumbnails: a box reduce() to within 2x of the target, then LANCZOS (Image.thumbnail's way):
# ~2.5x faster than LANCZOS from the full size and visually the same at 256 px.
REDUCING_GAP = 2.0

# Markup or code in an image file: HTML, SVG, scripts, PHP. Seven bytes or more, so random
# compressed pixel data matches one of them about once in 2^50 bytes.
_MARKUP = re.compile(rb"<(?:script|html|svg|iframe|object|embed|\?php|body|head)[\s>/]", re.IGNORECASE)
_ZIP_END = b"PK\x05\x06"


class Unsupported(Exception):
    """Not an image format we take (415)."""


class Invalid(Exception):
    """Claims to be an image we take, but is corrupt, truncated, empty or too large to decode (422)."""


@dataclass(frozen=True)
class ProcessedImage:
    data: bytes
    mime: str
    extension: str
    width: int
    height: int
    thumbnail: bytes
    # Content addresses (storage.py), set by service.process_image in the worker thread, so
    # hashing the outputs does not hold the event loop.
    original_name: str = ""
    thumbnail_name: str = ""


def sniff(data: bytes) -> str:
    """The Pillow format name of `data`, from its first bytes only; raises Unsupported."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    raise Unsupported("The file is not a PNG, JPEG, GIF or WebP image.")


def _zip_inside(data) -> bool:
    """A zip archive's end-of-central-directory record whose comment length reaches exactly the
    end of the file: what makes a file (also) a valid zip, e.g. a GIFAR or a PNG+zip polyglot.
    `data`: any bytes-like object (only its last 64 KiB are copied)."""
    tail = bytes(data[max(0, len(data) - 65557) :])
    at = tail.rfind(_ZIP_END)
    while at != -1:
        if at + 22 <= len(tail):
            (comment_length,) = struct.unpack_from("<H", tail, at + 20)
            if at + 22 + comment_length == len(tail):
                return True
        at = tail.rfind(_ZIP_END, 0, at)
    return False


def check_not_polyglot(data) -> None:
    if _MARKUP.search(data) or _zip_inside(data):
        raise Unsupported("The file is also markup, script or an archive; only plain images are accepted.")


Source = bytes | io.BytesIO


def decode(source: Source, *, max_pixels: int, draft_size: int | None = None) -> tuple[Image.Image, str]:
    """Sniff, check and decode one image under the pixel limit, EXIF orientation applied; returns
    the decoded image and its format. A BytesIO `source` is closed once the pixels are decoded: the
    raw file is freed before anything is encoded (an upload is then held once, not as bytes, copy
    and output at the same time). `draft_size`: a JPEG may be decoded at a reduced scale (1/2..1/8)
    no smaller than this, which is all a downscaled copy needs."""
    if isinstance(source, io.BytesIO):
        stream, view = source, source.getbuffer()  # a view, not a copy (the stream was written to)
    else:
        stream, view = io.BytesIO(source), memoryview(source)  # BytesIO(bytes) shares the bytes
    size = len(view)
    try:
        try:
            if not size:
                raise Invalid("The file is empty.")
            fmt = sniff(bytes(view[:12]))
            check_not_polyglot(view)
        finally:
            view.release()
        # No warnings.catch_warnings() here: it swaps process-wide state and this runs in several
        # threads at once. Pillow raises DecompressionBombError itself beyond twice its own limit;
        # below that, the check on the header's size does the refusing.
        try:
            image = Image.open(stream, formats=[fmt])
            # The header alone gives the size: a bomb is refused before a single pixel is decoded.
            width, height = image.size
            if width <= 0 or height <= 0 or width * height > max_pixels:
                raise Invalid(f"The image is {width}x{height} pixels; at most {max_pixels} pixels are accepted.")
            if draft_size and fmt == "JPEG":
                image.draft("RGB", (draft_size, draft_size))
            # The whole file to the decoder in one call (the bytes are in memory already). Pillow
            # reads 64 KiB at a time and gives the GIL up and takes it back for each block; while
            # the event loop's thread runs Python, every take-back may wait out a switch interval,
            # and a 2 MB JPEG decoded ~3x slower in a CPU thread beside a busy one (docs/media.md).
            image.decodermaxblock = max(image.decodermaxblock, size)
            image.load()
            # Keep the orientation EXIF described (in place: no second copy of the pixels).
            ImageOps.exif_transpose(image, in_place=True)
        except Invalid:
            raise
        except Image.DecompressionBombError as exc:
            # Pillow's own check in open(), from the header too, beyond twice its MAX_IMAGE_PIXELS.
            raise Invalid(f"The image has too many pixels to decode: {exc}") from None
        except UnidentifiedImageError as exc:
            raise Invalid(f"The image cannot be decoded: {exc}") from None
        except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
            # Pillow's "image file is truncated", broken chunks, bad Huffman tables, ...
            raise Invalid(f"The image is corrupt or truncated: {exc}") from None
    finally:
        stream.close()
    return image, fmt


def prepare(
    source: Source, *, max_pixels: int, jpeg_quality: int = 88, keep_clean_png: bool = False
) -> tuple[Image.Image, bytes, str, str]:
    """Sniff, check and decode one image, and make the file to store: (the decoded image, the
    file, its mime type, its extension). `keep_clean_png` (generated images): a PNG that holds its
    image and nothing else (`is_clean_png`) is kept as it is instead of re-encoded, which would
    only change its compression; everything else is re-encoded as always."""
    image, fmt = decode(source, max_pixels=max_pixels)
    if keep_clean_png and fmt == "PNG" and isinstance(source, bytes) and is_clean_png(source):
        data_out, (mime, extension) = source, FORMATS["PNG"]
    else:
        data_out, mime, extension = _reencode(image, fmt, jpeg_quality)
    return image, data_out, mime, extension


def make_thumbnail(image: Image.Image, thumbnail_size: int) -> bytes:
    """The WebP thumbnail of a decoded image. Resized straight from it (a copy first would hold
    the pixels twice); a small image is its own thumbnail (contain() would enlarge it)."""
    thumb = image
    if max(image.size) > thumbnail_size:
        size = _contained(image.size, thumbnail_size)
        thumb = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=REDUCING_GAP)
    if thumb.mode not in ("RGB", "RGBA"):
        thumb = thumb.convert("RGBA" if _has_alpha(thumb) else "RGB")
    out = io.BytesIO()
    thumb.save(out, "WEBP", quality=80, method=THUMBNAIL_WEBP_METHOD)
    return out.getvalue()


def process(
    source: Source, *, max_pixels: int, thumbnail_size: int, jpeg_quality: int = 88, keep_clean_png: bool = False
) -> ProcessedImage:
    """`prepare` and `make_thumbnail` in one go (uploads: one job of the CPU pool per upload, so
    that at most as many decoded images are held as the pool has threads)."""
    image, data_out, mime, extension = prepare(
        source, max_pixels=max_pixels, jpeg_quality=jpeg_quality, keep_clean_png=keep_clean_png
    )
    return ProcessedImage(data_out, mime, extension, image.width, image.height, make_thumbnail(image, thumbnail_size))


# PNG chunks that are the image itself; any other (text, EXIF, time, ICC profile, private) makes a
# PNG "not clean". Channels per colour type, for the size of the decompressed rows.
_PNG_IMAGE_CHUNKS = frozenset({b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND"})
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def is_clean_png(data: bytes) -> bool:
    """A PNG that carries nothing but its pixels, so storing it as it is strips nothing: only the
    chunks IHDR, PLTE, tRNS, IDAT (consecutive), IEND; every CRC right; nothing after IEND; not
    interlaced; and its one zlib stream ends exactly at the end of the IDAT data, decompressing to
    exactly the image's rows (no bytes hidden after the stream or after the last row). Call it
    after `decode` accepted the file (the pixel limit bounds the decompression here)."""
    if not data.startswith(_PNG_SIGNATURE):
        return False
    at, end = len(_PNG_SIGNATURE), len(data)
    types: list[bytes] = []
    idat: list[memoryview] = []
    view = memoryview(data)
    while at + 12 <= end:
        (length,) = struct.unpack_from(">I", data, at)
        kind = bytes(view[at + 4 : at + 8])
        body_end = at + 8 + length
        if kind not in _PNG_IMAGE_CHUNKS or body_end + 4 > end:
            return False
        if zlib.crc32(view[at + 4 : body_end]) != struct.unpack_from(">I", data, body_end)[0]:
            return False
        if kind == b"IDAT":
            if types and types[-1] != b"IDAT" and b"IDAT" in types:
                return False  # IDAT chunks split by another chunk
            idat.append(view[at + 8 : body_end])
        types.append(kind)
        at = body_end + 4
        if kind == b"IEND":
            break
    if at != end or not types or types[0] != b"IHDR" or types[-1] != b"IEND" or not idat:
        return False
    if types.count(b"IHDR") != 1 or struct.unpack_from(">I", data, 8)[0] != 13:
        return False
    width, height, depth, color, _compression, _filter, interlace = struct.unpack_from(">IIBBBBB", data, 16)
    if interlace or color not in _PNG_CHANNELS:
        return False
    expected = height * (1 + (width * depth * _PNG_CHANNELS[color] + 7) // 8)
    inflater = zlib.decompressobj()
    produced = 0
    try:
        for i, chunk in enumerate(idat):
            pending: bytes | memoryview = chunk
            while pending:
                produced += len(inflater.decompress(pending, 1 << 20))
                if produced > expected:
                    return False
                pending = inflater.unconsumed_tail
                if inflater.eof:
                    if pending or inflater.unused_data or any(len(c) for c in idat[i + 1 :]):
                        return False
                    break
    except zlib.error:  # e.g. a wrong checksum after the last row, which a decoder may never read
        return False
    return inflater.eof and produced == expected


def for_vision(source: Source, *, max_pixels: int, max_side: int) -> tuple[bytes, str]:
    """A copy to show a vision model: the same checks as an upload, at most `max_side` px on its
    longest side (providers downscale larger images anyway), no metadata; JPEG, or PNG when the
    image has transparency. Returns (bytes, mime)."""
    image, _ = decode(source, max_pixels=max_pixels, draft_size=max_side)
    if max(image.size) > max_side:
        image = ImageOps.contain(image, (max_side, max_side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    if _has_alpha(image):
        image.convert("RGBA").save(out, "PNG")
        return out.getvalue(), "image/png"
    image.convert("RGB").save(out, "JPEG", quality=85)
    return out.getvalue(), "image/jpeg"


def _contained(size: tuple[int, int], box: int) -> tuple[int, int]:
    """The size of `size` scaled down to fit a `box` x `box` square, aspect ratio kept (ImageOps.contain's)."""
    width, height = size
    if width >= height:
        return box, max(1, round(height * box / width))
    return max(1, round(width * box / height)), box


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)


def _reencode(image: Image.Image, fmt: str, jpeg_quality: int) -> tuple[bytes, str, str]:
    """A fresh file from the decoded pixels only: no EXIF (GPS, camera), no text chunks, no
    comments, nothing appended. GIFs become PNGs of their first frame (animation is not kept)."""
    out = io.BytesIO()
    if fmt == "JPEG":
        if image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        image.save(out, "JPEG", quality=jpeg_quality, optimize=False)
    elif fmt == "WEBP":
        if image.mode not in ("RGB", "RGBA"):
            image = image.convert("RGBA" if _has_alpha(image) else "RGB")
        image.save(out, "WEBP", quality=jpeg_quality, method=WEBP_METHOD)
    else:  # PNG, and GIF's first frame
        if image.mode not in ("RGB", "RGBA", "L", "LA", "P"):
            image = image.convert("RGBA" if _has_alpha(image) else "RGB")
        image.save(out, "PNG", optimize=False, compress_level=PNG_COMPRESS_LEVEL)
        fmt = "PNG"
    mime, extension = FORMATS[fmt]
    return out.getvalue(), mime, extension
