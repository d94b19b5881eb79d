-- Media: the blob registry and the metadata of every image and audio file (docs/media.md).

-- One row per blob in the container (content-addressed names). `refs` counts the media rows that
-- point at it (kept by the trigger below); `leases` counts uploads in flight that have written or
-- are writing it, valid until `lease_until` (after that a crashed upload's lease is void). The
-- sweep deletes a blob only when refs = 0 and no lease is valid, under this row's lock.
CREATE TABLE media_blobs (
    name         TEXT PRIMARY KEY,
    content_type TEXT NOT NULL,
    bytes        BIGINT NOT NULL,
    refs         INTEGER NOT NULL DEFAULT 0 CHECK (refs >= 0),
    leases       INTEGER NOT NULL DEFAULT 0 CHECK (leases >= 0),
    lease_until  TIMESTAMPTZ,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX media_blobs_unreferenced ON media_blobs (lease_until) WHERE refs = 0;

CREATE TABLE media_metadata (
    id             UUID PRIMARY KEY,
    user_id        UUID NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('image', 'audio')),
    purpose        TEXT,
    blob_name      TEXT NOT NULL REFERENCES media_blobs (name),
    thumbnail_name TEXT REFERENCES media_blobs (name),
    mime           TEXT NOT NULL,
    bytes          BIGINT NOT NULL,
    width          INTEGER,
    height         INTEGER,
    duration_ms    INTEGER,
    provider       TEXT,
    model          TEXT,
    prompt         TEXT,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX media_metadata_user ON media_metadata (user_id, kind, created_at DESC, id DESC);

-- Registry rows are locked in name order everywhere (repositories/media.py end_leases), so two
-- transactions touching the same blobs never wait for each other in opposite orders.
CREATE FUNCTION media_blob_refs() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM 1 FROM media_blobs WHERE name IN (NEW.blob_name, NEW.thumbnail_name) ORDER BY name FOR UPDATE;
        UPDATE media_blobs SET refs = refs + 1 WHERE name IN (NEW.blob_name, NEW.thumbnail_name);
        RETURN NEW;
    END IF;
    PERFORM 1 FROM media_blobs WHERE name IN (OLD.blob_name, OLD.thumbnail_name) ORDER BY name FOR UPDATE;
    UPDATE media_blobs SET refs = refs - 1 WHERE name IN (OLD.blob_name, OLD.thumbnail_name);
    RETURN OLD;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER media_blob_refs AFTER INSERT OR DELETE ON media_metadata
    FOR EACH ROW EXECUTE FUNCTION media_blob_refs();
