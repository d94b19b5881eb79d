"""Image recognition (POST /images/recognize): a vision model describes a picture and names the
titles and characters it shows; the names are matched through the Content service's search.

1. The picture is checked exactly like an upload (sniffed, polyglots refused, pixel limit) and
   a copy at most MEDIA_VISION_MAX_SIDE px is made, all before any quota is spent. An `image_id`
   is the caller's own image (another user's answers 404), read back from blob storage.
2. One `image_recognition` unit is reserved (shared/quota.py), the model is asked through
   shared/llm (its fallback chain over vision models), the unit is settled when it answered and
   released when no model could (503 LLM_UNAVAILABLE).
3. The model is asked for one JSON object; its reply is parsed defensively (a code fence, prose
   around it, a missing or mistyped field, or no JSON at all still give an answer).
   The result is stored per user, picture (sha256 of its bytes) and version (model, prompts, size
   shown; repositories/recognitions.py): a repeat answers it with `cached: true`, without a model
   call or a charge; concurrent identical requests cause one model call (a claim in the database,
   the others wait for its result). Erased with the user's image and on user.deleted.
4. Each proposed name is searched in Content over HTTP (GET /search). When Content does not
   answer, the recognition is still returned, with `matches_available: false` and the matches
   found so far: the model's work was done and charged, and a client can retry the matching
   by recognising the stored image again later.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

import httpx
from azure.core.exceptions import AzureError, ResourceNotFoundError

from media_service import errors, imaging
from media_service.repositories import media as repo
from media_service.repositories import recognitions
from media_service.service import MediaService, parse_id
from media_service.settings import Settings
from media_service.storage import address_sha256
from shared.auth import CurrentUser
from shared.llm import ImageInput, LLMRouter, LLMUnavailable, Turn
from shared.quota import QuotaClient
from shared.tiers import TierResolver

log = logging.getLogger("media_service.recognition")

QUOTA_TYPE = "image_recognition"
MAX_NAMES = 5  # titles, and characters, searched per image
MAX_TAGS = 12
MAX_DESCRIPTION_CHARS = 2000
MAX_NAME_CHARS = 120
# Content's search results accepted as the thing named: the name itself, a name it begins, or
# a close spelling (edit distance). A substring hit ("Neo" in "Neon Genesis") is not the thing.
MAX_FUZZY_DISTANCE = 2

SYSTEM_PROMPT = (
    "You do image recognition for SceneXtras, an app for fans of films, series, anime and their "
    "characters. Look at the user's image and answer with one JSON object and nothing else:\n"
    '{"description": "<one or two sentences: what the image shows>", '
    '"tags": ["<up to 12 short lowercase tags>"], '
    '"titles": ["<films or series the image is from or clearly refers to, by their usual English title>"], '
    '"characters": ["<characters that appear, by their name in that title>"]}\n'
    "Name a title or character only when you recognise it; otherwise leave the list empty. "
    "Never name real people who are not playing a character."
)
USER_PROMPT = "What is in this image? Answer with the JSON object."


# Part of every stored result's version: changing what the model is asked recognises again.
PROMPTS_VERSION = hashlib.sha256(f"{SYSTEM_PROMPT}\n{USER_PROMPT}".encode()).hexdigest()[:12]
# Waiting for another request's result: polls back off to this interval.
CLAIM_POLL_MAX_SECONDS = 0.2


@dataclass
class Seen:
    """What the model saw, cleaned up."""

    description: str
    tags: list[str] = field(default_factory=list)
    titles: list[str] = field(default_factory=list)
    characters: list[str] = field(default_factory=list)
    model: str | None = None  # the vision model that answered

    def stored(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "tags": self.tags,
            "titles": self.titles,
            "characters": self.characters,
            "model": self.model,
        }

    @classmethod
    def from_stored(cls, value: dict[str, Any]) -> Seen:
        return cls(
            description=value["description"],
            tags=list(value["tags"]),
            titles=list(value["titles"]),
            characters=list(value["characters"]),
            model=value["model"],
        )


def _sha256(source: imaging.Source) -> str:
    if isinstance(source, bytes):
        return hashlib.sha256(source).hexdigest()
    with source.getbuffer() as view:
        return hashlib.sha256(view).hexdigest()


def _first_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in `text`: bare, in a code fence, or after some prose."""
    decoder = json.JSONDecoder()
    for tried, brace in enumerate(re.finditer(r"\{", text)):
        if tried >= 20:
            break
        try:
            value, _ = decoder.raw_decode(text, brace.start())
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def _clean(value: Any, limit: int) -> str:
    return " ".join(str(value).split())[:limit].strip()


def _names(value: Any, limit: int) -> list[str]:
    """A list of names from whatever the model put there: a list of strings (or of objects with a
    `name`/`title`), a single string, or nothing; whitespace collapsed, duplicates dropped."""
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    out: list[str] = []
    seen: set[str] = set()
    for item in items:
        if isinstance(item, dict):
            item = item.get("name") or item.get("title")
        if not isinstance(item, (str, int, float)) or isinstance(item, bool):
            continue
        name = _clean(item, MAX_NAME_CHARS)
        if name and name.casefold() not in seen:
            seen.add(name.casefold())
            out.append(name)
        if len(out) == limit:
            break
    return out


def parse_reply(text: str) -> Seen:
    """The model's reply as a Seen. Without a JSON object, the reply itself is the description."""
    obj = _first_json_object(text or "")
    if obj is None:
        return Seen(description=_clean(text or "", MAX_DESCRIPTION_CHARS))
    description = obj.get("description")
    return Seen(
        description=_clean(description, MAX_DESCRIPTION_CHARS) if isinstance(description, str) else "",
        tags=[t.lower() for t in _names(obj.get("tags"), MAX_TAGS)],
        titles=_names(obj.get("titles", obj.get("title")), MAX_NAMES),
        characters=_names(obj.get("characters", obj.get("character")), MAX_NAMES),
    )


class ContentUnavailable(Exception):
    pass


class ContentSearch:
    """The Content service's public search over HTTP (services never read each other's data)."""

    def __init__(self, base_url: str, timeout_seconds: float):
        self.timeout = timeout_seconds
        self.http = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout_seconds)

    async def find(self, name: str, kind: str) -> dict[str, str] | None:
        """The title (`kind` "title": a movie or series) or character Content knows by `name`."""
        params: dict[str, Any] = {"q": name, "mode": "auto", "limit": 10}
        if kind == "character":
            params["type"] = "character"
        try:
            r = await self.http.get("/search", params=params)
        except httpx.HTTPError as exc:
            raise ContentUnavailable(type(exc).__name__) from exc
        if r.status_code == 422:  # a name Content cannot search (no letter or digit in it)
            return None
        if r.status_code != 200:
            raise ContentUnavailable(f"content answered {r.status_code}")
        try:
            results = r.json()["results"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ContentUnavailable("content's answer is not a search result") from exc
        wanted = ("character",) if kind == "character" else ("movie", "tv")
        for hit in results:
            if not isinstance(hit, dict) or hit.get("type") not in wanted:
                continue
            how = hit.get("kind")
            if how in ("exact", "prefix") or (how == "fuzzy" and hit.get("distance", 99) <= MAX_FUZZY_DISTANCE):
                return {"type": hit["type"], "id": str(hit["id"]), "name": str(hit["name"])}
        return None

    async def match(self, seen: Seen) -> tuple[list[dict[str, str]], bool]:
        """(matches, whether Content answered every search). Titles first, then characters, in the
        model's order; one match per Content id."""
        lookups = [(n, "title") for n in seen.titles] + [(n, "character") for n in seen.characters]
        if not lookups:
            return [], True
        try:
            async with asyncio.timeout(self.timeout):
                found = await asyncio.gather(*(self.find(n, k) for n, k in lookups), return_exceptions=True)
        except TimeoutError:
            log.warning("content search timed out; recognition answered without matches")
            return [], False
        matches: list[dict[str, str]] = []
        ids: set[str] = set()
        available = True
        for result in found:
            if isinstance(result, ContentUnavailable):
                available = False
                continue
            if isinstance(result, BaseException):
                raise result
            if result is not None and result["id"] not in ids:
                ids.add(result["id"])
                matches.append(result)
        if not available:
            log.warning("content search unavailable; recognition answered without some matches")
        return matches, available

    async def close(self) -> None:
        await self.http.aclose()


class Recognizer:
    def __init__(
        self,
        settings: Settings,
        media: MediaService,
        llm: LLMRouter,
        quota: QuotaClient,
        tiers: TierResolver,
        content: ContentSearch,
    ):
        self.settings = settings
        self.media = media
        self.llm = llm
        self.quota = quota
        self.tiers = tiers
        self.content = content

    async def recognize(
        self, user: CurrentUser, *, upload: imaging.Source | None = None, image_id: str | None = None
    ) -> dict[str, Any]:
        """`upload` (a file sent with the request) or `image_id` (one of the caller's images)."""
        if upload is not None:
            image_sha256, blob_name = await self.media._in_thread(_sha256, upload), None
        else:
            row = await self._own_image(user.user_id, image_id or "")
            image_sha256, blob_name = address_sha256(row["blob_name"]), row["blob_name"]
        spec = self.llm.default_model(vision=True)
        if spec is None:
            if upload is not None:
                await self._vision_copy(upload)  # a bad file is still told so first
            raise errors.LLM_UNAVAILABLE("No vision model is configured; nothing was charged.")
        key = (user.user_id, image_sha256, self._version(spec.id))
        # A stored result means these exact bytes passed the checks below when it was made.
        seen = await self._stored_or_claim(*key)
        cached = seen is not None
        if seen is None:
            try:
                seen = await self._ask_model(user, upload if upload is not None else blob_name, spec, key)
            except BaseException:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._unclaim(*key))
                raise
        del upload
        matches, available = await self.content.match(seen)
        return {
            "description": seen.description,
            "tags": seen.tags,
            "matches": matches,
            "matches_available": available,
            "model": seen.model,
            "cached": cached,
        }

    def _version(self, model_id: str) -> str:
        """What a stored result depends on besides the picture: another model, prompt or size of
        the copy shown recognises again."""
        return f"{model_id}|{PROMPTS_VERSION}|{self.settings.media_vision_max_side}"

    async def _stored_or_claim(self, user_id: str, image_sha256: str, version: str) -> Seen | None:
        """The stored result (None: this request claimed the key and asks the model). While another
        request holds the claim, wait for its result: identical requests cause one model call and
        one charge. A claim given back without a result (that request failed) is taken over."""
        waited = 0.0
        delay = 0.02
        while True:
            async with self.media.db.acquire() as conn:
                stored = await recognitions.stored(conn, user_id, image_sha256, version)
                if stored is not None:
                    return Seen.from_stored(stored)
                if await recognitions.claim(conn, user_id, image_sha256, version, self._claim_seconds):
                    return None
            if waited > self._claim_seconds:  # a holder past its own claim: a stuck process
                raise errors.LLM_UNAVAILABLE(headers={"Retry-After": "5"})
            await asyncio.sleep(delay)
            waited += delay
            delay = min(delay * 2, CLAIM_POLL_MAX_SECONDS)

    @property
    def _claim_seconds(self) -> float:
        return self.settings.media_recognition_claim_seconds

    async def _unclaim(self, user_id: str, image_sha256: str, version: str) -> None:
        async with self.media.db.acquire() as conn:
            await recognitions.unclaim(conn, user_id, image_sha256, version)

    async def _ask_model(self, user: CurrentUser, source: imaging.Source | str, spec, key: tuple[str, ...]) -> Seen:
        """Under the claim: the checks, one quota unit, the model; the result stored before the
        unit is settled (a failure to store releases it)."""
        if isinstance(source, str):
            source = await self._blob(source)
        picture, mime = await self._vision_copy(source)
        del source  # the original (up to the upload limit) is not kept while the model thinks
        tier = await self.tiers(user)
        turn = Turn("user", USER_PROMPT, [ImageInput(media_type=mime, data_b64=base64.b64encode(picture).decode())])
        async with self.quota.reserved(user.user_id, QUOTA_TYPE):
            try:
                completion = await self.llm.complete(
                    spec,
                    SYSTEM_PROMPT,
                    [turn],
                    tier=tier,
                    max_tokens=self.settings.media_recognition_max_tokens,
                    vision=True,
                )
            except LLMUnavailable as exc:
                log.warning("recognition: no vision model answered", extra={"attempts": exc.attempts})
                raise errors.LLM_UNAVAILABLE(headers={"Retry-After": "5"}) from None
            seen = parse_reply(completion.text)
            seen.model = completion.model
            async with self.media.db.acquire() as conn:
                await recognitions.save(conn, *key, seen.stored())
        return seen

    async def _own_image(self, user_id: str, image_id: str):
        row = await repo.get_owned(self.media.db, parse_id(image_id, errors.IMAGE_NOT_FOUND), user_id, "image")
        if row is None:
            raise errors.IMAGE_NOT_FOUND()
        return row

    async def _blob(self, blob_name: str) -> bytes:
        try:
            return await self.media.store.get(blob_name)
        except ResourceNotFoundError:
            # A row's blob is written before the row and never swept while the row exists.
            log.error("image row without its blob", extra={"blob": blob_name})
            raise errors.STORAGE_UNAVAILABLE() from None
        except AzureError as exc:
            log.warning("blob read failed", extra={"error": repr(exc)})
            raise errors.STORAGE_UNAVAILABLE() from None

    async def _vision_copy(self, source: imaging.Source) -> tuple[bytes, str]:
        s = self.settings
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(
                self.media.cpu,
                lambda: imaging.for_vision(
                    source, max_pixels=s.media_image_max_pixels, max_side=s.media_vision_max_side
                ),
            )
        except imaging.Unsupported as exc:
            raise errors.UNSUPPORTED_MEDIA_TYPE(str(exc)) from None
        except imaging.Invalid as exc:
            raise errors.INVALID_IMAGE(str(exc)) from None
