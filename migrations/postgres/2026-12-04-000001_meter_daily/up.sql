-- Units and packets issued per metered license and UTC day, written in each packet's issuing
-- transaction (on the license row it already locks), so the console's pool charts read at
-- most 365 rows instead of grouping every packet ever issued.
CREATE TABLE meter_issued_daily (
    license_id TEXT NOT NULL REFERENCES licenses (id),
    day        BIGINT NOT NULL,                 -- unix seconds / 86,400
    units      BIGINT NOT NULL DEFAULT 0,
    packets    BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (license_id, day)
);
-- The days before this migration, from the packets.
INSERT INTO meter_issued_daily (license_id, day, units, packets)
SELECT seats.license_id, meter_packets.issued_at / 86400, SUM(meter_packets.amount), COUNT(*)
FROM meter_packets JOIN seats ON seats.id = meter_packets.seat_id
GROUP BY seats.license_id, meter_packets.issued_at / 86400;
