-- A vote moves its story's score and hot, both indexed, so each vote's row update is a new tuple with
-- an entry in every index of stories. The share-token uniqueness was a full index: an entry per
-- tuple, NULL tokens (nearly every story) included. Partial now, it takes entries only for shared
-- stories: one index write less per voted story (votes spread over many stories pay it per story;
-- docs/benchmarks.md). Lookups by token (`share_token = $1`) use it as before.
ALTER TABLE stories DROP CONSTRAINT IF EXISTS stories_share_token_key;
CREATE UNIQUE INDEX IF NOT EXISTS stories_share_token ON stories (share_token) WHERE share_token IS NOT NULL;
