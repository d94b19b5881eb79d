-- A generated image's thumbnail is made after the answer (docs/media.md "Generation"): its row is
-- written with thumbnail_name NULL (the thumbnail URL serves the original meanwhile) and set once
-- the thumbnail's blob is written under a lease (repositories/media.py set_thumbnail).

-- The refs trigger now also counts a thumbnail set (or changed) on an existing row. Registry rows
-- are still locked in name order (001's comment); an UPDATE touches only the thumbnails' rows.
CREATE OR REPLACE FUNCTION media_blob_refs() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM 1 FROM media_blobs WHERE name IN (NEW.blob_name, NEW.thumbnail_name) ORDER BY name FOR UPDATE;
        UPDATE media_blobs SET refs = refs + 1 WHERE name IN (NEW.blob_name, NEW.thumbnail_name);
        RETURN NEW;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        PERFORM 1 FROM media_blobs WHERE name IN (OLD.thumbnail_name, NEW.thumbnail_name) ORDER BY name FOR UPDATE;
        UPDATE media_blobs SET refs = refs - 1 WHERE name = OLD.thumbnail_name;
        UPDATE media_blobs SET refs = refs + 1 WHERE name = NEW.thumbnail_name;
        RETURN NEW;
    END IF;
    PERFORM 1 FROM media_blobs WHERE name IN (OLD.blob_name, OLD.thumbnail_name) ORDER BY name FOR UPDATE;
    UPDATE media_blobs SET refs = refs - 1 WHERE name IN (OLD.blob_name, OLD.thumbnail_name);
    RETURN OLD;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER media_blob_refs_thumbnail AFTER UPDATE OF thumbnail_name ON media_metadata
    FOR EACH ROW WHEN (OLD.thumbnail_name IS DISTINCT FROM NEW.thumbnail_name)
    EXECUTE FUNCTION media_blob_refs();

-- The periodic pass that makes thumbnails left pending by a process that stopped.
CREATE INDEX media_metadata_thumbnail_pending ON media_metadata (created_at)
    WHERE kind = 'image' AND thumbnail_name IS NULL;
