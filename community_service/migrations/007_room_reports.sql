-- Rooms and their discussion posts are user content: reportable and removable by moderators like
-- stories, scenarios and characters. A removed room or post keeps its row (the audit names it)
-- and leaves every list and read.

ALTER TABLE rooms ADD COLUMN status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'removed'));
ALTER TABLE room_posts ADD COLUMN status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'removed'));

ALTER TABLE reports DROP CONSTRAINT reports_target_type_check;
ALTER TABLE reports ADD CONSTRAINT reports_target_type_check
    CHECK (target_type IN ('story', 'scenario', 'character', 'room', 'post'));

-- The public listing's index covers active rooms only (removed ones are never listed).
DROP INDEX rooms_public_new;
CREATE INDEX rooms_public_new ON rooms (created_at DESC, id DESC) WHERE visibility = 'public' AND status = 'active';

-- Erasure deletes a user's reports by reporter.
CREATE INDEX IF NOT EXISTS reports_reporter ON reports (reporter_id);
