"""uvicorn chat_service.main:app"""

from __future__ import annotations

import asyncio
import logging

from fastapi import FastAPI

from chat_service.context import ContextBuilder
from chat_service.custom_characters import CustomCharacters
from chat_service.events import erase_user, handlers
from chat_service.routers import conversations, group, messages, talk, voice
from chat_service.service import ChatEngine
from chat_service.settings import Settings
from shared.app import create_app, lazy_app
from shared.llm import LLMRouter
from shared.llm.catalogue import catalogue_from_config
from shared.llm.tokens import encoding
from shared.openapi import document_configured_limits
from shared.quota import QuotaClient
from shared.settings import load_settings
from shared.tiers import TierResolver

log = logging.getLogger("chat_service")


def build_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings(Settings)

    async def startup(app: FastAPI) -> None:
        state = app.state
        await asyncio.to_thread(encoding)  # load the tokenizer now, not on the first request
        state.tier_resolver = TierResolver(state.redis, state.keys, state.core_db)
        state.quota = QuotaClient(state.core_db, state.redis, state.keys)
        state.llm = LLMRouter(
            settings, default_model=settings.chat_default_model, vision_model=settings.chat_vision_model
        )
        state.llm.announce(log, "/talk_with and /group_chat answer 503 LLM_UNAVAILABLE until then.")
        state.contexts = ContextBuilder(settings, state.redis, state.keys)
        state.custom_characters = CustomCharacters(settings, state.redis, state.keys)
        state.engine = ChatEngine(
            settings, state.db, state.llm, state.contexts, state.quota, state.tier_resolver, state.custom_characters
        )

    async def shutdown(app: FastAPI) -> None:
        state = app.state
        if getattr(state, "engine", None) is not None:
            await state.engine.drain()
        if getattr(state, "contexts", None) is not None:
            await state.contexts.close()
        if getattr(state, "custom_characters", None) is not None:
            await state.custom_characters.close()
        if getattr(state, "llm", None) is not None:
            await state.llm.close()

    app = create_app(
        service="chat",
        settings=settings,
        routers=[talk.router, group.router, conversations.router, messages.router, voice.router],
        legacy_prefixes=["/api/chat"],
        own_database_url=settings.chat_database_url,
        consumer=handlers,
        erase_user=erase_user,
        on_startup=[startup],
        on_shutdown=[shutdown],
    )
    message = {"maxLength": settings.chat_max_message_chars}
    # The models a request may name (others are 422 UNKNOWN_MODEL): the configured catalogue.
    model = {"enum": [spec.id for spec in catalogue_from_config(settings.llm_model_catalogue)]}
    document_configured_limits(
        app,
        {
            ("TalkRequest", "message"): message,
            ("TalkRequest", "model"): model,
            ("Body_talk_with_upload_talk_with_upload_post", "model"): model,
            ("GroupChatRequest", "model"): model,
            ("TalkRequest", "attachments"): {"maxItems": settings.chat_max_attachments},
            ("Body_talk_with_upload_talk_with_upload_post", "message"): message,
            ("Body_talk_with_upload_talk_with_upload_post", "images"): {"maxItems": settings.chat_max_attachments},
            ("GroupChatRequest", "message"): message,
            ("GroupChatRequest", "characters"): {"maxItems": settings.chat_max_group_characters},
        },
    )
    return app


__getattr__ = lazy_app(build_app)
