"""Request bodies (pydantic, strict about shape and size) and the answers' shapes."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Name = Annotated[str, Field(min_length=1, max_length=120, pattern=r"\S")]
ShortText = Annotated[str, Field(max_length=2000)]
LongText = Annotated[str, Field(max_length=8000)]
Visibility = Literal["private", "public"]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Characters, universes, favourites ----------------------------------------------------------


class CharacterCreate(Body):
    name: Name
    series: Name | None = None
    universe_id: str | None = Field(None, max_length=64)
    description: Annotated[str, Field(min_length=1, max_length=2000)]
    personality: Annotated[str, Field(min_length=1, max_length=8000)]
    greeting: ShortText | None = None
    example_dialogue: LongText | None = None
    avatar_image_id: str | None = Field(None, max_length=200)
    visibility: Visibility = "private"


def _changes_only(model: BaseModel, nullable: frozenset[str]):
    """A PATCH body: at least one field, and null only where null means "clear it"."""
    if not model.model_fields_set:
        raise ValueError("nothing to change")
    for name in model.model_fields_set:
        if getattr(model, name) is None and name not in nullable:
            raise ValueError(f"{name} cannot be null")
    return model


class CharacterUpdate(Body):
    NULLABLE: ClassVar[frozenset[str]] = frozenset(
        {"series", "universe_id", "greeting", "example_dialogue", "avatar_image_id"}
    )
    name: Name | None = None
    series: Name | None = None
    universe_id: str | None = Field(None, max_length=64)
    description: Annotated[str, Field(min_length=1, max_length=2000)] | None = None
    personality: Annotated[str, Field(min_length=1, max_length=8000)] | None = None
    greeting: ShortText | None = None
    example_dialogue: LongText | None = None
    avatar_image_id: str | None = Field(None, max_length=200)
    visibility: Visibility | None = None

    @model_validator(mode="after")
    def _something(self):
        return _changes_only(self, self.NULLABLE)


class UniverseCreate(Body):
    name: Name
    description: Annotated[str, Field(max_length=4000)] = ""
    visibility: Visibility = "private"


# Scenarios ----------------------------------------------------------------------------------

Theme = Annotated[str, Field(min_length=1, max_length=60)]


class ScenarioCharacter(Body):
    name: Name | None = None
    series: Name | None = None
    character_id: str | None = Field(None, max_length=64)

    @model_validator(mode="after")
    def _one_kind(self):
        if (self.character_id is None) == (self.name is None):
            raise ValueError("give either name (and series) or character_id")
        return self


class ScenarioCreate(Body):
    title: Name
    setting: Annotated[str, Field(min_length=1, max_length=4000)]
    tone: Annotated[str, Field(min_length=1, max_length=60)]
    themes: Annotated[list[Theme], Field(max_length=10)] = []
    characters: Annotated[list[ScenarioCharacter], Field(max_length=5)] = []
    opening_line: ShortText | None = None
    visibility: Visibility = "private"


class ScenarioUpdate(Body):
    NULLABLE: ClassVar[frozenset[str]] = frozenset({"opening_line"})
    title: Name | None = None
    setting: Annotated[str, Field(min_length=1, max_length=4000)] | None = None
    tone: Annotated[str, Field(min_length=1, max_length=60)] | None = None
    themes: Annotated[list[Theme], Field(max_length=10)] | None = None
    characters: Annotated[list[ScenarioCharacter], Field(max_length=5)] | None = None
    opening_line: ShortText | None = None
    visibility: Visibility | None = None

    @model_validator(mode="after")
    def _something(self):
        return _changes_only(self, self.NULLABLE)


# Stories ------------------------------------------------------------------------------------


class StoryCreate(Body):
    from_conversation_id: str | None = Field(None, max_length=64)


class TmdbRef(Body):
    type: Literal["movie", "tv"]
    id: Annotated[int, Field(ge=1, le=2**31 - 1)]


class CustomUniverse(Body):
    name: Name
    description: Annotated[str, Field(max_length=4000)] = ""


class UniverseStep(Body):
    tmdb: TmdbRef | None = None
    universe_id: str | None = Field(None, max_length=64)
    custom: CustomUniverse | None = None

    @model_validator(mode="after")
    def _exactly_one(self):
        if sum(x is not None for x in (self.tmdb, self.universe_id, self.custom)) != 1:
            raise ValueError("give exactly one of tmdb, universe_id, custom")
        return self


class CharactersStep(Body):
    # The 1-5 rule answers TOO_MANY_CHARACTERS (the service checks it); this only bounds the body.
    characters: Annotated[list[ScenarioCharacter], Field(max_length=50)]


class ScenarioStep(Body):
    setting: Annotated[str, Field(min_length=1, max_length=4000)]
    tone: Annotated[str, Field(min_length=1, max_length=60)]
    themes: Annotated[list[Theme], Field(max_length=10)] = []
    scenario_id: str | None = Field(None, max_length=64)


class GenerateRequest(Body):
    length: Literal["short", "medium", "long"] = "medium"
    instructions: Annotated[str, Field(max_length=2000)] | None = None


class StoryEdit(Body):
    title: Annotated[str, Field(max_length=200)] | None = None
    body: Annotated[str, Field(max_length=200_000)] | None = None

    @model_validator(mode="after")
    def _something(self):
        if self.title is None and self.body is None:
            raise ValueError("give title or body")
        return self


class PublishRequest(Body):
    visibility: Literal["public", "unlisted"] = "public"


# Votes, reports -----------------------------------------------------------------------------


class VoteRequest(Body):
    target_type: Literal["story", "scenario", "character"]
    target_id: str = Field(..., max_length=64)
    value: Literal[1, -1]


class ReportRequest(Body):
    target_type: Literal["story", "scenario", "character"]
    target_id: str = Field(..., max_length=64)
    reason: Annotated[str, Field(min_length=1, max_length=1000)]


def iso(value) -> str | None:
    return value.isoformat() if value is not None else None


def counts(row, my_vote: int | None) -> dict[str, Any]:
    return {"score": row["score"], "up": row["up"], "down": row["down"], "my_vote": my_vote or 0}
