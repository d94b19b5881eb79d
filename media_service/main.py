"""uvicorn media_service.main:app"""

import asyncio
import logging

import openai
from azure.core.exceptions import AzureError
from fastapi import FastAPI

from media_service.events import erase_user, handlers
from media_service.generation import GenerationService
from media_service.providers import ProviderChain, build_providers
from media_service.recognition import ContentSearch, Recognizer
from media_service.routers import audio, generation, images, recognition
from media_service.service import MediaService
from media_service.settings import Settings
from media_service.storage import BlobStore
from shared import fleet
from shared.app import create_app, lazy_app
from shared.llm import LLMRouter
from shared.quota import QuotaClient
from shared.settings import load_settings
from shared.tiers import TierResolver

SERVICE = fleet.get("media")
log = logging.getLogger("media_service")


def build_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings(Settings)

    async def startup(app: FastAPI) -> None:
        store = BlobStore(
            settings.azure_storage_connection_string,
            settings.azure_storage_container,
            sas_ttl_seconds=settings.media_sas_ttl_seconds,
        )
        app.state.blobs = store
        try:
            await asyncio.wait_for(store.ensure_container(), 10)
        except (AzureError, TimeoutError) as exc:
            # Start anyway: /health/ready says "not ready" (and creates the container once storage
            # answers) instead of the process crash-looping while storage is away.
            log.error("blob storage unavailable at start-up", extra={"error": repr(exc)})
        app.state.media = MediaService(settings, app.state.db, store)
        app.state.media.start()
        state = app.state
        # One quota client and tier resolver for generation and recognition.
        state.quota = QuotaClient(state.core_db, state.redis, state.keys)
        state.tier_resolver = TierResolver(state.redis, state.keys, state.core_db)
        state.generation = build_generation(settings, app)
        state.generation.start()
        state.vision_llm = LLMRouter(settings, vision_model=settings.media_vision_model)
        state.vision_llm.announce(log, "POST /images/recognize answers 503 LLM_UNAVAILABLE until then.")
        state.recognizer = Recognizer(
            settings,
            state.media,
            state.vision_llm,
            state.quota,
            state.tier_resolver,
            ContentSearch(settings.content_service_url, settings.media_content_timeout_seconds),
        )

    async def shutdown(app: FastAPI) -> None:
        if getattr(app.state, "generation", None) is not None:
            await app.state.generation.close()
        if getattr(app.state, "media", None) is not None:
            await app.state.media.close()
        if getattr(app.state, "recognizer", None) is not None:
            await app.state.recognizer.content.close()
            await app.state.vision_llm.close()
        if getattr(app.state, "blobs", None) is not None:
            await app.state.blobs.close()

    return create_app(
        service=SERVICE.name,
        settings=settings,
        routers=[generation.router, recognition.router, images.router, audio.router],
        legacy_prefixes=SERVICE.legacy_prefixes,
        own_database_url=settings.media_database_url,
        consumer=handlers,
        erase_user=erase_user,
        on_startup=[startup],
        on_shutdown=[shutdown],
        ready_checks={"blob_storage": lambda app: app.state.blobs.ready()},
    )


def build_generation(settings: Settings, app: FastAPI) -> GenerationService:
    """Image generation: providers with a key, moderation and OpenAI images through one OpenAI client."""
    state = app.state
    openai_client = None
    if settings.openai_api_key:
        openai_client = openai.AsyncOpenAI(
            api_key=settings.openai_api_key,
            base_url=settings.openai_base_url,
            timeout=openai.Timeout(
                settings.media_provider_timeout_seconds, connect=settings.llm_connect_timeout_seconds
            ),
            max_retries=0,  # the chain falls back to the next provider instead
            http_client=openai.DefaultAioHttpClient(),  # as shared/llm: less CPU per call than httpx
        )
    providers = build_providers(settings, openai_client)
    if not providers:
        log.error("NO IMAGE PROVIDER IS CONFIGURED: POST /images/generate answers 503 PROVIDER_UNAVAILABLE")
    return GenerationService(
        settings,
        state.db,
        state.media,
        state.quota,
        state.tier_resolver,
        ProviderChain(providers, settings.media_provider_timeout_seconds),
        openai_client,
    )


__getattr__ = lazy_app(build_app)
