"""OpenAI's audio endpoints as the sandbox answers them: transcriptions (multipart upload, the
real formats and errors) and speech (audio made by sandbox/audio.py in the asked format)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from . import audio
from .bodies import UploadedFile
from .core import JSON, SandboxState, sandbox_scope

VOICES = {
    "alloy",
    "ash",
    "ballad",
    "coral",
    "echo",
    "fable",
    "onyx",
    "nova",
    "sage",
    "shimmer",
    "verse",
    "marin",
    "cedar",
}
AUDIO_EXTENSIONS = ["flac", "m4a", "mp3", "mp4", "mpeg", "mpga", "oga", "ogg", "wav", "webm"]


def routes(
    state: SandboxState,
    provider: str,
    auth: Callable[[Request], Response | None],
    json_body: Callable[[Request], dict[str, Any] | Response],
    err: Callable[..., Response],
    model_known: Callable[[str, str], bool],
) -> list[Route]:
    """The two audio routes of one OpenAI-family provider, with its key check and error shape."""

    async def transcriptions(request: Request) -> Response:
        if (denied := auth(request)) is not None:
            return denied
        form = sandbox_scope(request)["parsed"]
        if not isinstance(form, dict) or not isinstance(form.get("file"), UploadedFile):
            return err(provider, 400, "Missing required parameter: 'file'.", "file", "missing_required_parameter")
        if not form.get("model"):
            return err(provider, 400, "Missing required parameter: 'model'.", "model", "missing_required_parameter")
        if not model_known(provider, str(form["model"])):
            return err(
                provider,
                404,
                f"The model `{form['model']}` does not exist or you do not have access to it.",
                code="model_not_found",
            )
        upload: UploadedFile = form["file"]
        ext = upload.filename.rsplit(".", 1)[-1].lower() if "." in upload.filename else ""
        if ext not in AUDIO_EXTENSIONS:
            return err(
                provider, 400, f"Invalid file format. Supported formats: {AUDIO_EXTENSIONS}", "file", "invalid_value"
            )
        duration = audio.sniff_duration(upload.data)
        if not upload.data or (duration is not None and duration < 0.1):
            return err(
                provider,
                400,
                "Audio file is too short. Minimum audio length is 0.1 seconds.",
                "file",
                "audio_too_short",
            )
        if state.transcripts:
            text = state.transcripts.popleft()
        else:
            text = audio.read_marker(upload.data)
            if text is None:
                if audio.wav_duration(upload.data) is not None:
                    text = audio.DEFAULT_TRANSCRIPT
                else:
                    text = f"Sandbox transcription of {upload.filename} ({len(upload.data)} bytes)."
        duration = duration if duration is not None else max(0.1, len(upload.data) / 16000)
        fmt = form.get("response_format") or "json"
        if fmt == "text":
            return PlainTextResponse(text + "\n")
        if fmt in ("srt", "vtt"):
            end = _timestamp(duration, "," if fmt == "srt" else ".")
            start = _timestamp(0.0, "," if fmt == "srt" else ".")
            cue = f"{start} --> {end}\n{text}\n"
            return PlainTextResponse(("1\n" + cue + "\n") if fmt == "srt" else ("WEBVTT\n\n" + cue + "\n"))
        if fmt == "verbose_json":
            return JSON(
                {
                    "task": "transcribe",
                    "language": form.get("language") or "english",
                    "duration": round(duration, 2),
                    "text": text,
                    "segments": [
                        {
                            "id": 0,
                            "seek": 0,
                            "start": 0.0,
                            "end": round(duration, 2),
                            "text": " " + text,
                            "tokens": [],
                            "temperature": 0.0,
                            "avg_logprob": -0.2,
                            "compression_ratio": 1.0,
                            "no_speech_prob": 0.01,
                        }
                    ],
                    "usage": {"type": "duration", "seconds": math.ceil(duration)},
                }
            )
        if fmt != "json":
            return err(
                provider,
                400,
                f"Invalid value: '{fmt}'. Supported values are: 'json', 'text', 'srt', 'verbose_json', and 'vtt'.",
                "response_format",
                "invalid_value",
            )
        return JSON({"text": text, "usage": {"type": "duration", "seconds": math.ceil(duration)}})

    async def speech(request: Request) -> Response:
        body = json_body(request)
        if isinstance(body, Response):
            return body
        for name in ("model", "input", "voice"):
            if not body.get(name):
                return err(provider, 400, f"Missing required parameter: '{name}'.", name, "missing_required_parameter")
        if not model_known(provider, str(body["model"])):
            return err(
                provider,
                404,
                f"The model `{body['model']}` does not exist or you do not have access to it.",
                code="model_not_found",
            )
        text = str(body["input"])
        if len(text) > 4096:
            return err(
                provider,
                400,
                f"'{text[:20]}...' is too long - 'input' (max 4096 characters)",
                "input",
                "string_above_max_length",
            )
        if provider == "openai" and body["voice"] not in VOICES:
            return err(
                provider,
                400,
                f"Invalid value: '{body['voice']}'. Supported values are: "
                + ", ".join(f"'{v}'" for v in sorted(VOICES))
                + ".",
                "voice",
                "invalid_value",
            )
        fmt = body.get("response_format") or "mp3"
        if fmt not in audio.FORMATS:
            if fmt in ("opus", "aac"):
                return err(
                    provider,
                    400,
                    f"The sandbox cannot encode '{fmt}'; ask for mp3, wav, flac or pcm.",
                    "response_format",
                    "unsupported_value",
                )
            return err(
                provider,
                400,
                f"Invalid value: '{fmt}'. Supported values are: 'mp3', 'opus', 'aac', 'flac', 'wav', and 'pcm'.",
                "response_format",
                "invalid_value",
            )
        content_type, make = audio.FORMATS[fmt]
        return Response(make(text), media_type=content_type, headers={"x-sandbox-provider": provider})

    return [
        Route("/audio/transcriptions", transcriptions, methods=["POST"]),
        Route("/audio/speech", speech, methods=["POST"]),
    ]


def _timestamp(seconds: float, sep: str) -> str:
    ms = int(round(seconds * 1000))
    h, rem = divmod(ms, 3600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"
