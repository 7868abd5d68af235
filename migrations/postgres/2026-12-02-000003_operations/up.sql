-- Failed return tokens and device proofs, per seat (issue 14): after 5 in an hour the seat
-- answers 429 rate_limited, even for the right token, until the oldest leaves the hour.
-- Stored, so the lockout holds across instances and restarts; nothing is recorded while a
-- seat is locked, so a seat has at most 5 rows an hour (older ones are pruned).
CREATE TABLE auth_failures (
    id      BIGSERIAL PRIMARY KEY,
    seat_id TEXT NOT NULL REFERENCES seats (id),
    at      BIGINT NOT NULL
);
CREATE INDEX auth_failures_by_seat ON auth_failures (seat_id, at);
