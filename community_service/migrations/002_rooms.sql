-- Fandom rooms: members with roles, discussion posts, and the room's collaborative document
-- (Yjs updates, compacted to one row when the last editor leaves).

CREATE TABLE rooms (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id    text NOT NULL,
    name        text NOT NULL,
    description text NOT NULL DEFAULT '',
    -- The story the room co-edits (the owner's); the room stays when the story is deleted.
    story_id    uuid REFERENCES stories (id) ON DELETE SET NULL,
    -- The story version the room's document last matched (seeded from or saved as): a story
    -- edited outside the room since then gives a reopened document the story's text.
    doc_story_version integer,
    visibility  text NOT NULL CHECK (visibility IN ('public', 'invite')),
    invite_code text NOT NULL UNIQUE,
    -- Counters ready for votes on rooms (the votes route does not take rooms yet).
    up          integer NOT NULL DEFAULT 0,
    down        integer NOT NULL DEFAULT 0,
    score       integer NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rooms_public_new ON rooms (created_at DESC, id DESC) WHERE visibility = 'public';
CREATE INDEX rooms_owner ON rooms (owner_id);

CREATE TABLE room_members (
    room_id     uuid NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id     text NOT NULL,
    role        text NOT NULL CHECK (role IN ('owner', 'editor', 'viewer')),
    -- Who referred this member when they joined through a referral code (Auth recorded it).
    referred_by text,
    joined_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX room_members_user ON room_members (user_id, joined_at DESC, room_id);

CREATE TABLE room_posts (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    room_id    uuid NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    author_id  text NOT NULL,
    body       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX room_posts_room ON room_posts (room_id, created_at DESC, id DESC);
CREATE INDEX room_posts_author ON room_posts (author_id);

CREATE TABLE room_doc_updates (
    room_id    uuid NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    seq        bigint GENERATED ALWAYS AS IDENTITY,
    body       bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (room_id, seq)
);
