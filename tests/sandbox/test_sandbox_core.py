"""Units of the sandbox: Stripe-style form decoding, multipart, the deterministic model, audio files,
and the connection-level faults."""

from __future__ import annotations

import io
import struct
import wave

import anthropic
import httpx
import pytest

from sandbox import audio, llm
from sandbox.bodies import UploadedFile, parse_multipart, parse_stripe_form


def test_stripe_form_decoding():
    body = (
        "mode=subscription&line_items[0][price]=price_1&line_items[0][quantity]=1"
        "&line_items[1][price]=price_2&metadata[user_id]=u%201&expand[]=customer&expand[]=subscription"
        "&subscription_data[trial_period_days]=7&discounts[0][coupon]=C&metadata[gone]="
    )
    assert parse_stripe_form(body) == {
        "mode": "subscription",
        "line_items": [{"price": "price_1", "quantity": "1"}, {"price": "price_2"}],
        "metadata": {"user_id": "u 1", "gone": ""},
        "expand": ["customer", "subscription"],
        "subscription_data": {"trial_period_days": "7"},
        "discounts": [{"coupon": "C"}],
    }
    assert parse_stripe_form("expand[0]=a&expand[1]=b") == {"expand": ["a", "b"]}
    assert parse_stripe_form("items[0][id]=si_1&items[0][deleted]=true") == {
        "items": [{"id": "si_1", "deleted": "true"}]
    }


def test_multipart_parsing():
    req = httpx.Request(
        "POST",
        "http://x/",
        files={"file": ("a.wav", b"RIFF\x00\x01", "audio/wav")},
        data={"model": "whisper-1", "timestamp_granularities[]": ["word", "segment"]},
    )
    body = req.read()
    form = parse_multipart(body, req.headers["content-type"])
    assert form["model"] == "whisper-1" and form["timestamp_granularities[]"] == ["word", "segment"]
    assert form["file"] == UploadedFile("a.wav", "audio/wav", b"RIFF\x00\x01")


@pytest.mark.parametrize(
    "system,name",
    [
        ("You are Bruce Wayne, also known as Batman.", "Bruce Wayne"),
        ("Roleplay. You are Gandalf the Grey. Never break character.", "Gandalf the Grey"),
        ("You are Naruto Uzumaki from Naruto", "Naruto Uzumaki"),
        ("You are a helpful assistant.", "Assistant"),
        ("", "Assistant"),
    ],
)
def test_character_names(system, name):
    assert llm.character_name(system) == name


def test_reply_rules():
    turns = [llm.Turn("user", "first"), llm.Turn("assistant", "ok"), llm.Turn("user", "x " * 100, images=2)]
    reply = llm.compose_reply("You are Luke Skywalker.", turns)
    assert reply.startswith("Luke Skywalker here. You said: x x") and reply.endswith("I can see the 2 images you sent.")
    assert "..." in reply and len(reply) < 180
    assert llm.pieces("a b  c") == ["a ", "b  ", "c"]
    assert llm.input_tokens("one two", turns) == 2 + 1 + 1 + 100 + 2 * llm.IMAGE_TOKENS


def test_audio_files_are_well_formed():
    wav = audio.make_wav("hello there general kenobi")
    with wave.open(io.BytesIO(wav)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 24000)
        assert w.getnframes() == int(24000 * 1.6)
    assert audio.read_marker(wav) == "hello there general kenobi"
    assert audio.wav_duration(wav) == pytest.approx(1.6)

    mp3 = audio.make_mp3("é unicode ✓", seconds=1.0)
    assert audio.read_marker(mp3) == "é unicode ✓"
    tag_size = sum(b << (7 * (3 - i)) for i, b in enumerate(mp3[6:10]))
    frames = mp3[10 + tag_size :]
    assert len(frames) % 384 == 0 and frames[:4] == b"\xff\xfb\x94\xc0"
    assert audio.sniff_duration(mp3) == pytest.approx(1.0, abs=0.03)

    flac = audio.make_flac("flac words", seconds=1.0)
    assert flac[:4] == b"fLaC" and audio.read_marker(flac) == "flac words"
    assert audio.sniff_duration(flac) == pytest.approx(1.0)
    # every frame header carries a correct CRC-8, every frame a correct CRC-16
    pos = 4
    while True:
        last, size = flac[pos] & 0x80, int.from_bytes(flac[pos + 1 : pos + 4], "big")
        pos += 4 + size
        if last:
            break
    frames = 0
    while pos < len(flac):
        hdr_len = 5 if flac[pos + 2] >> 4 == 0xC else 7
        hdr = flac[pos : pos + hdr_len]
        assert audio._crc8(hdr) == flac[pos + hdr_len]
        frame = flac[pos : pos + hdr_len + 4]
        assert struct.unpack(">H", flac[pos + hdr_len + 4 : pos + hdr_len + 6])[0] == audio._crc16(frame)
        pos += hdr_len + 6
        frames += 1
    assert frames == 6  # 24000 samples in blocks of 4096
    assert len(audio.make_pcm("", seconds=0.5)) == 24000


async def test_drop_connection_faults(sandbox):
    sandbox.control.fault("anthropic", drop_connection=True)
    client = anthropic.AsyncAnthropic(api_key="k", base_url=sandbox.url("/anthropic"), max_retries=0)
    with pytest.raises(anthropic.APIConnectionError):
        await client.messages.create(
            model="claude-sonnet-4-6", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    sandbox.control.fault("anthropic", drop_connection=True, after_chunks=2)
    with pytest.raises((anthropic.APIConnectionError, httpx.HTTPError, Exception)) as e:
        async with client.messages.stream(
            model="claude-sonnet-4-6", max_tokens=100, messages=[{"role": "user", "content": "a b c d"}]
        ) as s:
            async for _ in s.text_stream:
                pass
    assert not isinstance(e.value, AssertionError)
    ok = await client.messages.create(
        model="claude-sonnet-4-6", max_tokens=10, messages=[{"role": "user", "content": "x"}]
    )
    assert ok.content[0].text
