"""Image generation providers, each through its official async SDK client (nothing here blocks
the event loop), and the ordered fallback between them.

- `imagen`: google-genai `aio.models.generate_images` in Vertex AI express mode (an API key, no
  project): from google-genai 2.20 Imagen is served through Vertex only.
- `gemini`: google-genai `aio.models.generate_content` with image output (Gemini API key); one
  image per call, so `count` calls run side by side.
- `replicate`: replicate 1.0.7 `async_run` (`Prefer: wait`, then polling), outputs as files.
- `openai`: openai `AsyncOpenAI.images.generate` (b64_json).

The chain tries the configured providers in order (the caller's choice first) and moves to the
next on any error, timeout or answer without a usable image, as chat's LLM router does; when every one failed it raises
ProvidersUnavailable with what each said.
"""

from __future__ import annotations

import abc
import asyncio
import base64
import binascii
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import openai
import replicate
from google import genai
from google.genai import types as genai_types

from media_service.settings import Settings

log = logging.getLogger("media_service.providers")

PROVIDER_NAMES = ("imagen", "gemini", "replicate", "openai")
ASPECT_RATIOS = ("1:1", "3:4", "4:3", "9:16", "16:9")
# OpenAI's image sizes closest to each aspect ratio (gpt-image-1 has square, landscape, portrait).
OPENAI_SIZES = {"1:1": "1024x1024", "3:4": "1024x1536", "9:16": "1024x1536", "4:3": "1536x1024", "16:9": "1536x1024"}


@dataclass
class ProviderImage:
    data: bytes
    mime: str | None


@dataclass
class Generated:
    provider: str
    model: str
    images: list[Any]  # ProviderImage, or what the chain's `accept` made of them
    attempts: list[dict[str, Any]] = field(default_factory=list)
    latency_ms: float = 0.0


class NoImages(Exception):
    """The provider answered without images (e.g. its own safety filter dropped them)."""


class ProvidersUnavailable(Exception):
    def __init__(self, attempts: list[dict[str, Any]]):
        super().__init__("no image provider could generate the image")
        self.attempts = attempts


def describe(exc: BaseException) -> str:
    status = getattr(exc, "status_code", None) or getattr(exc, "code", None) or getattr(exc, "status", None)
    return type(exc).__name__ + (f" {status}" if isinstance(status, int) else "")


class ImageProvider(abc.ABC):
    name: str

    def __init__(self, model: str):
        self.model = model

    @abc.abstractmethod
    async def generate(self, prompt: str, *, count: int, aspect_ratio: str) -> list[ProviderImage]: ...

    async def close(self) -> None:  # noqa: B027 (a provider without connections to close)
        pass


class ImagenProvider(ImageProvider):
    name = "imagen"

    def __init__(self, api_key: str, base_url: str | None, model: str, timeout_seconds: float):
        super().__init__(model)
        options = genai_types.HttpOptions(base_url=base_url, timeout=int(timeout_seconds * 1000))
        # Kept: the aio client's connections live as long as the Client object.
        self.client = genai.Client(vertexai=True, api_key=api_key, http_options=options)

    async def generate(self, prompt, *, count, aspect_ratio):
        config = genai_types.GenerateImagesConfig(
            number_of_images=count, aspect_ratio=aspect_ratio, output_mime_type="image/png"
        )
        response = await self.client.aio.models.generate_images(model=self.model, prompt=prompt, config=config)
        return [
            ProviderImage(g.image.image_bytes, g.image.mime_type)
            for g in response.generated_images or []
            if g.image is not None and g.image.image_bytes
        ]

    async def close(self) -> None:
        await self.client.aio.aclose()


class GeminiImageProvider(ImageProvider):
    name = "gemini"

    def __init__(self, api_key: str, base_url: str | None, model: str, timeout_seconds: float):
        super().__init__(model)
        options = genai_types.HttpOptions(base_url=base_url, timeout=int(timeout_seconds * 1000))
        self.client = genai.Client(api_key=api_key, http_options=options)

    async def _one(self, prompt: str, aspect_ratio: str) -> ProviderImage:
        config = genai_types.GenerateContentConfig(
            response_modalities=["TEXT", "IMAGE"], image_config=genai_types.ImageConfig(aspect_ratio=aspect_ratio)
        )
        response = await self.client.aio.models.generate_content(model=self.model, contents=prompt, config=config)
        for candidate in response.candidates or []:
            for part in (candidate.content.parts if candidate.content else None) or []:
                if part.inline_data is not None and part.inline_data.data:
                    return ProviderImage(part.inline_data.data, part.inline_data.mime_type)
        raise NoImages("gemini answered without an image")

    async def generate(self, prompt, *, count, aspect_ratio):
        return list(await asyncio.gather(*(self._one(prompt, aspect_ratio) for _ in range(count))))

    async def close(self) -> None:
        await self.client.aio.aclose()


class ReplicateProvider(ImageProvider):
    name = "replicate"

    def __init__(self, api_token: str, base_url: str | None, model: str, timeout_seconds: float, poll: float):
        super().__init__(model)
        timeout = httpx.Timeout(timeout_seconds, connect=5.0)
        self.client = replicate.Client(api_token=api_token, base_url=base_url, timeout=timeout)
        self.client.poll_interval = poll

    async def generate(self, prompt, *, count, aspect_ratio):
        output = await self.client.async_run(
            self.model,
            input={"prompt": prompt, "num_outputs": count, "aspect_ratio": aspect_ratio, "output_format": "png"},
        )
        files = output if isinstance(output, list) else [output]
        # data: URIs decode in memory; https: outputs are fetched through the SDK's async client.
        return [ProviderImage(await f.aread(), None) for f in files if hasattr(f, "aread")]

    async def close(self) -> None:
        client = self.client._async_client  # the SDK builds it lazily and offers no close
        await client.aclose()


class OpenAIImagesProvider(ImageProvider):
    name = "openai"

    def __init__(self, client: openai.AsyncOpenAI, model: str):
        super().__init__(model)
        self.client = client

    async def generate(self, prompt, *, count, aspect_ratio):
        extra: dict[str, Any] = {}
        if self.model.startswith("dall-e"):
            extra["response_format"] = "b64_json"  # gpt-image-* always answer b64_json
        response = await self.client.images.generate(
            model=self.model, prompt=prompt, n=count, size=OPENAI_SIZES[aspect_ratio], **extra
        )
        decoded = (_strict_b64(d.b64_json) for d in response.data or [])
        return [ProviderImage(data, None) for data in decoded if data]


def _strict_b64(value: str | None) -> bytes | None:
    """The bytes of a base64 image, or None when it is not base64 (OpenAI's documented example
    carries the placeholder "...", which a lenient decode reads as an empty image)."""
    try:
        return base64.b64decode(value or "", validate=True)
    except binascii.Error:
        return None


def build_providers(settings: Settings, openai_client: openai.AsyncOpenAI | None) -> dict[str, ImageProvider]:
    """The providers whose key is configured, in MEDIA_IMAGE_PROVIDERS order."""
    s = settings
    timeout = s.media_provider_timeout_seconds
    out: dict[str, ImageProvider] = {}
    for name in s.media_image_providers:
        if name == "imagen" and s.vertex_api_key:
            out[name] = ImagenProvider(s.vertex_api_key, s.vertex_base_url, s.media_imagen_model, timeout)
        elif name == "gemini" and s.gemini_api_key:
            out[name] = GeminiImageProvider(
                s.gemini_api_key, s.gemini_genai_base_url, s.media_gemini_image_model, timeout
            )
        elif name == "replicate" and s.replicate_api_token:
            out[name] = ReplicateProvider(
                s.replicate_api_token,
                s.replicate_base_url,
                s.media_replicate_model,
                timeout,
                s.media_replicate_poll_seconds,
            )
        elif name == "openai" and openai_client is not None:
            out[name] = OpenAIImagesProvider(openai_client, s.media_openai_image_model)
    return out


class ProviderChain:
    def __init__(self, providers: dict[str, ImageProvider], timeout_seconds: float):
        self.providers = providers
        self.timeout = timeout_seconds

    def order(self, preferred: str | None) -> list[ImageProvider]:
        names = list(self.providers)
        if preferred in self.providers:
            names.remove(preferred)
            names.insert(0, preferred)
        return [self.providers[n] for n in names]

    async def generate(
        self,
        prompt: str,
        *,
        count: int,
        aspect_ratio: str,
        preferred: str | None,
        accept: Callable[[list[ProviderImage]], Awaitable[list[Any]]] | None = None,
    ) -> Generated:
        """`accept`: turns a provider's images into what the caller keeps (decoded, re-encoded),
        dropping the unusable ones; none usable counts as that provider failing."""
        attempts: list[dict[str, Any]] = []
        started = time.perf_counter()
        for provider in self.order(preferred):
            try:
                async with asyncio.timeout(self.timeout):
                    images = await provider.generate(prompt, count=count, aspect_ratio=aspect_ratio)
                images = images[:count]
                if accept is not None and images:
                    images = await accept(images)
                if not images:
                    raise NoImages(f"{provider.name} answered without a usable image")
            except Exception as exc:  # any failure of one provider: the next one is tried
                error = "Timeout" if isinstance(exc, TimeoutError) else describe(exc)
                log.warning(
                    "image provider failed, falling back",
                    extra={"provider": provider.name, "model": provider.model, "error": error},
                )
                attempts.append({"provider": provider.name, "model": provider.model, "error": error})
                continue
            return Generated(
                provider.name,
                provider.model,
                images,
                attempts,
                round((time.perf_counter() - started) * 1000, 2),
            )
        raise ProvidersUnavailable(attempts)

    async def close(self) -> None:
        for provider in self.providers.values():
            try:
                await provider.close()
            except Exception:
                log.exception("closing image provider %s failed", provider.name)
