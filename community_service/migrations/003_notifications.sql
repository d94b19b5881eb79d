-- Notifications (issue 16): in-app rows with a per-user sequence (the SSE event id), preferences,
-- Expo device tokens, the delivery queue for email and push, and the one piece of personal data
-- kept here: the address notifications are emailed to (from user.created / user.updated, erased on
-- user.deleted).

CREATE TABLE notification_recipients (
    user_id    text PRIMARY KEY,
    email      text,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The last sequence number given to each user's notifications: the row lock orders a user's
-- notifications, so they commit in sequence order (what the live stream's Last-Event-ID relies on).
CREATE TABLE notification_counters (
    user_id  text PRIMARY KEY,
    last_seq bigint NOT NULL
);

CREATE TABLE notifications (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id    text NOT NULL,
    seq        bigint NOT NULL,
    kind       text NOT NULL,
    title      text NOT NULL,
    body       text NOT NULL,
    data       jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- what makes it one notification: '<event id>' for most kinds, 'story:<id>:<milestone>' for
    -- vote milestones (one per milestone, whatever the events' order or redelivery)
    dedup_key  text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    read_at    timestamptz,
    UNIQUE (user_id, seq),
    UNIQUE (user_id, dedup_key)
);
CREATE INDEX notifications_unread ON notifications (user_id, seq) WHERE read_at IS NULL;

-- Only what differs from the defaults (notifications/kinds.py) is stored.
CREATE TABLE notification_preferences (
    user_id text NOT NULL,
    channel text NOT NULL CHECK (channel IN ('email', 'push')),
    kind    text NOT NULL,
    enabled boolean NOT NULL,
    PRIMARY KEY (user_id, channel, kind)
);

CREATE TABLE notification_devices (
    token      text PRIMARY KEY,
    user_id    text NOT NULL,
    platform   text NOT NULL CHECK (platform IN ('ios', 'android')),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notification_devices_user ON notification_devices (user_id);

-- Email and push to send: one row per notification and target (the email channel, or one device).
-- Workers claim due rows (SKIP LOCKED) with a lease; a failure moves next_attempt_at back-off later.
-- Push rows sent with a ticket wait for their receipt (receipt_due_at).
CREATE TABLE notification_deliveries (
    id              bigserial PRIMARY KEY,
    notification_id uuid NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    user_id         text NOT NULL,
    channel         text NOT NULL CHECK (channel IN ('email', 'push')),
    device_token    text,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sent', 'delivered', 'failed', 'dropped')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    ticket_id       text,
    receipt_due_at  timestamptz,
    sent_at         timestamptz,
    last_error      text,
    UNIQUE NULLS NOT DISTINCT (notification_id, channel, device_token)
);
CREATE INDEX notification_deliveries_due ON notification_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX notification_deliveries_receipts ON notification_deliveries (receipt_due_at) WHERE status = 'sent';
CREATE INDEX notification_deliveries_user ON notification_deliveries (user_id);
