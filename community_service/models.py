"""Request bodies (pydantic, strict about shape and size) and the answers' shapes.

The schemas say every rule pydantic checks, so a client (or a generator working from the document) that follows
them is not refused: stored strings exclude U+0000 (shared.openapi.stored_text), a PATCH field that cannot be
cleared may be omitted but not null (omittable), and "give exactly one of" rules are `oneOf` over the required fields.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.openapi import exactly_one_of, omittable, stored_text

Name = stored_text(min_length=1, max_length=120, not_blank=True)
ShortText = stored_text(max_length=2000)
LongText = stored_text(max_length=8000)
Visibility = Literal["private", "public"]
ItemId = Annotated[str, Field(min_length=1, max_length=64)]  # an id of ours; a malformed one is a 404


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Changes(Body):
    """A PATCH body: at least one field."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    @model_validator(mode="after")
    def _something(self):
        if not self.model_fields_set:
            raise ValueError("nothing to change")
        return self


# Characters, universes, favourites ----------------------------------------------------------

Description = stored_text(min_length=1, max_length=2000)
Personality = stored_text(min_length=1, max_length=8000)
ImageId = stored_text(max_length=200)


class CharacterCreate(Body):
    name: Name
    series: Name | None = None
    universe_id: ItemId | None = None
    description: Description
    personality: Personality
    greeting: ShortText | None = None
    example_dialogue: LongText | None = None
    avatar_image_id: ImageId | None = None
    visibility: Visibility = "private"


class CharacterUpdate(Changes):
    # null clears series, universe_id, greeting, example_dialogue and avatar_image_id; the rest cannot be cleared.
    name: omittable(Name) = None
    series: Name | None = None
    universe_id: ItemId | None = None
    description: omittable(Description) = None
    personality: omittable(Personality) = None
    greeting: ShortText | None = None
    example_dialogue: LongText | None = None
    avatar_image_id: ImageId | None = None
    visibility: omittable(Visibility) = None


class UniverseCreate(Body):
    name: Name
    description: stored_text(max_length=4000) = ""
    visibility: Visibility = "private"


# Scenarios ----------------------------------------------------------------------------------

Theme = stored_text(min_length=1, max_length=60)
Themes = Annotated[list[Theme], Field(max_length=10)]
Setting = stored_text(min_length=1, max_length=4000)
Tone = stored_text(min_length=1, max_length=60)


class ScenarioCharacter(Body):
    """A character by name (and series), or one of the library's by character_id."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=exactly_one_of("name", "character_id"))
    name: omittable(Name) = None
    series: Name | None = None
    character_id: omittable(ItemId) = None

    @model_validator(mode="after")
    def _one_kind(self):
        if (self.character_id is None) == (self.name is None):
            raise ValueError("give either name (and series) or character_id")
        return self


ScenarioCharacters = Annotated[list[ScenarioCharacter], Field(max_length=5)]


class ScenarioCreate(Body):
    title: Name
    setting: Setting
    tone: Tone
    themes: Themes = []
    characters: ScenarioCharacters = []
    opening_line: ShortText | None = None
    visibility: Visibility = "private"


class ScenarioUpdate(Changes):
    # null clears opening_line; the rest cannot be cleared.
    title: omittable(Name) = None
    setting: omittable(Setting) = None
    tone: omittable(Tone) = None
    themes: omittable(Themes) = None
    characters: omittable(ScenarioCharacters) = None
    opening_line: ShortText | None = None
    visibility: omittable(Visibility) = None


# Stories ------------------------------------------------------------------------------------


class StoryCreate(Body):
    from_conversation_id: ItemId | None = None


class TmdbRef(Body):
    type: Literal["movie", "tv"]
    id: Annotated[int, Field(ge=1, le=2**31 - 1)]


class CustomUniverse(Body):
    name: Name
    description: stored_text(max_length=4000) = ""


class UniverseStep(Body):
    model_config = ConfigDict(extra="forbid", json_schema_extra=exactly_one_of("tmdb", "universe_id", "custom"))
    tmdb: omittable(TmdbRef) = None
    universe_id: omittable(ItemId) = None
    custom: omittable(CustomUniverse) = None

    @model_validator(mode="after")
    def _exactly_one(self):
        if sum(x is not None for x in (self.tmdb, self.universe_id, self.custom)) != 1:
            raise ValueError("give exactly one of tmdb, universe_id, custom")
        return self


class CharactersStep(Body):
    # A story has 1 to 5 characters: the document says so, and the service answers its own code for a list
    # outside it (TOO_MANY_CHARACTERS, 422 like the validation error); pydantic only bounds the body.
    characters: Annotated[
        list[ScenarioCharacter], Field(max_length=50, json_schema_extra={"minItems": 1, "maxItems": 5})
    ]


class ScenarioStep(Body):
    setting: Setting
    tone: Tone
    themes: Themes = []
    scenario_id: omittable(ItemId) = None


class GenerateRequest(Body):
    length: Literal["short", "medium", "long"] = "medium"
    instructions: stored_text(max_length=2000) | None = None


class StoryEdit(Changes):
    title: omittable(stored_text(max_length=200)) = None
    body: omittable(stored_text(max_length=200_000)) = None


class PublishRequest(Body):
    visibility: Literal["public", "unlisted"] = "public"


# Votes, reports -----------------------------------------------------------------------------


class VoteRequest(Body):
    target_type: Literal["story", "scenario", "character", "room"]
    target_id: str = Field(..., max_length=64)
    value: Literal[1, -1]


class ReportRequest(Body):
    target_type: Literal["story", "scenario", "character", "room", "post"]  # post: a room's discussion post
    target_id: str = Field(..., max_length=64)
    reason: stored_text(min_length=1, max_length=1000)


def iso(value) -> str | None:
    return value.isoformat() if value is not None else None


def counts(row, my_vote: int | None) -> dict[str, Any]:
    return {"score": row["score"], "up": row["up"], "down": row["down"], "my_vote": my_vote or 0}
