-- Refused activations are counted per license and hour instead of stored one row each, so a
-- device refused in a loop costs one row per hour, not one per request (issue 15).
CREATE TABLE refusal_counts (
    license_id TEXT NOT NULL REFERENCES licenses (id),
    bucket     BIGINT NOT NULL,                 -- start of the hour, unix seconds
    refused    BIGINT NOT NULL,
    first_at   BIGINT NOT NULL,
    last_at    BIGINT NOT NULL,
    PRIMARY KEY (license_id, bucket),
    CONSTRAINT refusal_counts_positive CHECK (refused >= 1)
);
INSERT INTO refusal_counts (license_id, bucket, refused, first_at, last_at)
    SELECT license_id, at - (at % 3600), COUNT(*), MIN(at), MAX(at)
    FROM seat_refusals GROUP BY license_id, at - (at % 3600);
DROP TABLE seat_refusals;
