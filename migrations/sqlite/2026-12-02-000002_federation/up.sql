-- Federation (DESIGN §7). Every change of a license writes one event in the journal's
-- transaction, numbered by the license's change counter (so seq is gapless per license).
-- Raw device ids and user names stay on the site: a batch carries them only when the key
-- file's federation.user_data says so, otherwise the hash of §7, computed when sending.
-- Events are never deleted; federation_state.acked_seq says how far the provider holds them.
ALTER TABLE licenses ADD COLUMN federation_grace BIGINT;
ALTER TABLE licenses ADD COLUMN federation_user_data BOOLEAN NOT NULL DEFAULT FALSE;
CREATE TABLE federation_events (
    license_id   TEXT NOT NULL REFERENCES licenses (id),
    seq          BIGINT NOT NULL,
    kind         TEXT NOT NULL,          -- license.imported, seat.activated, ...
    at           BIGINT NOT NULL,
    seat_id      TEXT,
    device_id    TEXT,
    user_name    TEXT,
    in_use       BIGINT NOT NULL,
    seats        BIGINT NOT NULL,
    overage      BOOLEAN NOT NULL,
    key_file_seq BIGINT NOT NULL,
    PRIMARY KEY (license_id, seq)
);
-- One row per license once anything was pushed, acked or leased. The lease (owner, until)
-- lets one instance push a license at a time; attempts/next_attempt_at are the backoff.
CREATE TABLE federation_state (
    license_id      TEXT PRIMARY KEY REFERENCES licenses (id),
    acked_seq       BIGINT NOT NULL DEFAULT 0,
    acked_at        BIGINT,
    lease_owner     TEXT,
    lease_until     BIGINT NOT NULL DEFAULT 0,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL DEFAULT 0,
    last_error      TEXT
);
