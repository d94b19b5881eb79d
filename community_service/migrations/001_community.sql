-- Community: user-made universes and characters, favourites, the scenario library, stories (the
-- wizard's resumable drafts and their versions), votes, reports and moderation actions.
-- User ids are Auth's (text, no cross-service foreign keys); user.deleted erases by owner.

CREATE TABLE universes (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id    text NOT NULL,
    name        text NOT NULL,
    description text NOT NULL DEFAULT '',
    visibility  text NOT NULL CHECK (visibility IN ('private', 'public')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX universes_owner ON universes (owner_id, created_at DESC, id DESC);
CREATE INDEX universes_public ON universes (created_at DESC, id DESC) WHERE visibility = 'public';

-- Vote counters (up, down, score) live on each votable row and move in the vote's transaction.
CREATE TABLE characters (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id         text NOT NULL,
    name             text NOT NULL,
    series           text,
    universe_id      uuid REFERENCES universes (id) ON DELETE SET NULL,
    description      text NOT NULL,
    personality      text NOT NULL,
    greeting         text,
    example_dialogue text,
    avatar_image_id  text,
    visibility       text NOT NULL CHECK (visibility IN ('private', 'public')),
    status           text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'removed')),
    up               integer NOT NULL DEFAULT 0,
    down             integer NOT NULL DEFAULT 0,
    score            integer NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX characters_owner ON characters (owner_id, created_at DESC, id DESC);
CREATE INDEX characters_public_new ON characters (created_at DESC, id DESC)
    WHERE visibility = 'public' AND status = 'active';
CREATE INDEX characters_public_top ON characters (score DESC, id DESC)
    WHERE visibility = 'public' AND status = 'active';

-- kind 'character': a custom character's id; kind 'title': a TMDB title as "movie:603" / "tv:1399".
CREATE TABLE favorites (
    user_id    text NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('character', 'title')),
    target_id  text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, kind, target_id)
);

CREATE TABLE scenarios (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id     text NOT NULL,
    title        text NOT NULL,
    setting      text NOT NULL,
    tone         text NOT NULL,
    themes       text[] NOT NULL DEFAULT '{}',
    characters   jsonb NOT NULL DEFAULT '[]',
    opening_line text,
    visibility   text NOT NULL CHECK (visibility IN ('private', 'public')),
    status       text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'removed')),
    up           integer NOT NULL DEFAULT 0,
    down         integer NOT NULL DEFAULT 0,
    score        integer NOT NULL DEFAULT 0,
    hot          double precision NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX scenarios_owner ON scenarios (owner_id, created_at DESC, id DESC);
CREATE INDEX scenarios_public_new ON scenarios (created_at DESC, id DESC)
    WHERE visibility = 'public' AND status = 'active';

-- A story is its current version's content plus the wizard's state; every edit also writes
-- story_versions (the history). `source` is the imported chat conversation (messages copied
-- from Chat over HTTP when the draft was created).
CREATE TABLE stories (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    author_id    text NOT NULL,
    title        text NOT NULL DEFAULT '',
    body         text NOT NULL DEFAULT '',
    version      integer NOT NULL DEFAULT 1,
    step         text NOT NULL DEFAULT 'universe'
                 CHECK (step IN ('universe', 'characters', 'scenario', 'generation', 'edit')),
    status       text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'published', 'removed')),
    visibility   text NOT NULL DEFAULT 'private' CHECK (visibility IN ('private', 'public', 'unlisted')),
    universe     jsonb,
    characters   jsonb,
    scenario     jsonb,
    source       jsonb,
    share_token  text UNIQUE,
    up           integer NOT NULL DEFAULT 0,
    down         integer NOT NULL DEFAULT 0,
    score        integer NOT NULL DEFAULT 0,
    hot          double precision NOT NULL DEFAULT 0,
    published_at timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stories_author ON stories (author_id, updated_at DESC, id DESC);
-- The public feeds: only published public stories, one index per sort.
CREATE INDEX stories_feed_hot ON stories (hot DESC, id DESC) WHERE status = 'published' AND visibility = 'public';
CREATE INDEX stories_feed_new ON stories (published_at DESC, id DESC) WHERE status = 'published' AND visibility = 'public';
CREATE INDEX stories_feed_top ON stories (score DESC, id DESC) WHERE status = 'published' AND visibility = 'public';

CREATE TABLE story_versions (
    story_id   uuid NOT NULL REFERENCES stories (id) ON DELETE CASCADE,
    version    integer NOT NULL,
    title      text NOT NULL,
    body       text NOT NULL,
    step       text NOT NULL,
    universe   jsonb,
    characters jsonb,
    scenario   jsonb,
    change     text NOT NULL,  -- what made this version: created, universe, characters, scenario, edit
    editor_id  text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (story_id, version)
);

-- One vote per user and target.
CREATE TABLE votes (
    target_type text NOT NULL CHECK (target_type IN ('story', 'scenario', 'character', 'room')),
    target_id   uuid NOT NULL,
    user_id     text NOT NULL,
    value       smallint NOT NULL CHECK (value IN (-1, 1)),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (target_type, target_id, user_id)
);
CREATE INDEX votes_user ON votes (user_id);

CREATE TABLE reports (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    target_type text NOT NULL CHECK (target_type IN ('story', 'scenario', 'character')),
    target_id   uuid NOT NULL,
    reporter_id text NOT NULL,
    reason      text NOT NULL,
    status      text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'approved', 'removed')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz,
    UNIQUE (target_type, target_id, reporter_id)
);
CREATE INDEX reports_open ON reports (created_at, id) WHERE status = 'open';

-- The audit of every moderator or service action.
CREATE TABLE moderation_actions (
    id          bigserial PRIMARY KEY,
    target_type text NOT NULL,
    target_id   uuid NOT NULL,
    action      text NOT NULL CHECK (action IN ('approve', 'remove')),
    actor_id    text NOT NULL,
    actor_role  text NOT NULL,
    note        text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX moderation_actions_target ON moderation_actions (target_type, target_id, created_at);
