-- Email notifications (DESIGN §8): an outbox written in the same transaction as the change
-- that causes it. The unique dedupe key is what makes "once" true across instances.
-- exhaust_episode counts the license's seats_exhausted episodes: a release or a renewal that
-- raised the seats starts a new one (the change locks the license row anyway); refusals only
-- read it, so counters and outbox rows stay last in every lock order.
ALTER TABLE licenses ADD COLUMN exhaust_episode BIGINT NOT NULL DEFAULT 1;
CREATE TABLE notifications (
    id              BIGSERIAL PRIMARY KEY,
    kind            TEXT NOT NULL,              -- seats_exhausted, threshold, expiring, ...
    license_id      TEXT,
    recipients      TEXT NOT NULL,              -- JSON array of mailboxes
    subject         TEXT NOT NULL,              -- rendered, one line
    body_text       TEXT NOT NULL,
    body_html       TEXT NOT NULL,
    dedupe_key      TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending',
    attempts        BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,            -- also the lease of a claimed row
    sent_at         BIGINT,
    last_error      TEXT,
    CONSTRAINT notifications_once UNIQUE (dedupe_key),
    CONSTRAINT notifications_state CHECK (state IN ('pending', 'sent', 'failed'))
);
CREATE INDEX notifications_due ON notifications (state, next_attempt_at);
