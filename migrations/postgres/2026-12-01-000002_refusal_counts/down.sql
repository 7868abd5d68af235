CREATE TABLE seat_refusals (
    id         BIGSERIAL PRIMARY KEY,
    license_id TEXT NOT NULL REFERENCES licenses (id),
    device_id  TEXT NOT NULL,
    at         BIGINT NOT NULL
);
CREATE INDEX seat_refusals_by_license ON seat_refusals (license_id, at);
DROP TABLE refusal_counts;
