-- Stored recognition results (docs/media.md "Recognition"): one per user, picture and recogniser
-- version, so a repeat is answered without a model call or a quota charge, and a new model or
-- prompt (another `version`) recognises again.
-- Per user, not per blob: a shared result would tell a second user (by `cached` or by its speed)
-- that someone else already recognised these exact bytes, and it could not be erased with the
-- first user's image; the quota is charged to whoever caused the model call.
-- `result` is null while one request holds the claim (`claimed_until`) and asks the model: other
-- requests for the same key wait for its result instead of asking again; a claim that expired
-- (its process died) may be taken over.
CREATE TABLE image_recognitions (
    user_id       UUID NOT NULL,
    image_sha256  TEXT NOT NULL,   -- sha256 of the file sent, or of the stored original (its blob name)
    version       TEXT NOT NULL,   -- the vision model asked, the prompts' hash, the size it is shown at
    result        JSONB,           -- {description, tags, titles, characters, model}
    claimed_until TIMESTAMPTZ,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, image_sha256, version)
);
