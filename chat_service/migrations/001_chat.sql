-- Chat service's own database: conversations, messages, message_reactions (the plan's schema,
-- with what the service needs on top: the owner on every row for erasure and ownership checks,
-- a per-message token count so history is fitted to a budget without re-tokenising it, a
-- monotonic sequence for ordering within one transaction, and a share token).
CREATE TABLE IF NOT EXISTS conversations (
    id                UUID PRIMARY KEY,
    user_id           UUID NOT NULL,
    character_name    TEXT NOT NULL,
    character_series  TEXT,
    conversation_type TEXT NOT NULL DEFAULT 'single' CHECK (conversation_type IN ('single', 'group')),
    participants      JSONB,
    model             TEXT,
    token_count       INTEGER NOT NULL DEFAULT 0,
    message_count     INTEGER NOT NULL DEFAULT 0,
    share_token       TEXT UNIQUE,
    last_message_at   TIMESTAMPTZ,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_conversations_user_recent
    ON conversations (user_id, last_message_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS idx_conversations_character ON conversations (character_name);

CREATE TABLE IF NOT EXISTS messages (
    id              UUID PRIMARY KEY,
    seq             BIGINT GENERATED ALWAYS AS IDENTITY,
    conversation_id UUID NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    user_id         UUID NOT NULL,
    sender          TEXT NOT NULL,              -- 'user' or the character's name
    role            TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content         TEXT NOT NULL,
    message_type    TEXT NOT NULL DEFAULT 'text', -- text, image, audio
    metadata        JSONB NOT NULL DEFAULT '{}'::jsonb,
    token_count     INTEGER NOT NULL DEFAULT 0,
    status          TEXT NOT NULL DEFAULT 'complete' CHECK (status IN ('complete', 'incomplete')),
    pinned          BOOLEAN NOT NULL DEFAULT false,
    edited_at       TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
CREATE UNIQUE INDEX IF NOT EXISTS idx_messages_seq ON messages (seq);
CREATE INDEX IF NOT EXISTS idx_messages_conversation_seq ON messages (conversation_id, seq DESC);
CREATE INDEX IF NOT EXISTS idx_messages_pinned ON messages (conversation_id) WHERE pinned;
CREATE INDEX IF NOT EXISTS idx_messages_user ON messages (user_id);

CREATE TABLE IF NOT EXISTS message_reactions (
    id            UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    message_id    UUID NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    user_id       UUID NOT NULL,
    reaction_type TEXT NOT NULL CHECK (reaction_type IN ('like', 'dislike')),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (message_id, user_id, reaction_type)
);
CREATE INDEX IF NOT EXISTS idx_reactions_message_id ON message_reactions (message_id);
CREATE INDEX IF NOT EXISTS idx_reactions_user_id ON message_reactions (user_id);
