-- Metered usage (DESIGN §10, issue 16).
--
-- The pool lives on the license row, so a packet is one conditional UPDATE of the row every
-- change of the license already locks:
--   meter_terms  the key file's `meter` claim as JSON (NULL for other models);
--   meter_cap    what may be issued in all: units × (1 + overdraft_percent / 100) from the
--                key file in force, except that a renewal lowering it below what was already
--                issued stores meter_issued instead (the true cap is in meter_terms). So the
--                CHECK below always holds and keeps its meaning: no statement can issue past
--                meter_cap, and a lowered pool issues nothing until a top-up raises it.
--   meter_issued units issued so far (never decreases: units are consumed when issued).
ALTER TABLE licenses ADD COLUMN meter_terms TEXT;
ALTER TABLE licenses ADD COLUMN meter_cap BIGINT NOT NULL DEFAULT 0;
ALTER TABLE licenses ADD COLUMN meter_issued BIGINT NOT NULL DEFAULT 0;
ALTER TABLE licenses ADD CONSTRAINT licenses_meter_issued_bounds
    CHECK (meter_issued >= 0 AND meter_issued <= meter_cap);

-- Per seat: the last packet seq issued (gapless from 1), what the device last reported, and
-- a flag (the reason) once it reported a state that cannot be true; NULL = fine. A flagged
-- seat gets no packets until `seatkeep usage reset-device`.
ALTER TABLE seats ADD COLUMN packet_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE seats ADD COLUMN reported_last_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE seats ADD COLUMN reported_used BIGINT NOT NULL DEFAULT 0;
ALTER TABLE seats ADD COLUMN meter_flag TEXT;

-- Every packet issued, its claims frozen in the issuing transaction; the token is signed
-- after the commit and stored, so a retry after a crash signs the same claims again.
-- Packets are numbered per seat and device key: a device that was retired and activated
-- again with a new key (a reinstall) starts a new state, whose packets start at 1 again.
CREATE TABLE meter_packets (
    seat_id     TEXT NOT NULL REFERENCES seats (id),
    device_jkt  TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    request_jti TEXT NOT NULL,
    claims      TEXT NOT NULL,      -- JSON PacketClaims
    amount      BIGINT NOT NULL,
    issued_at   BIGINT NOT NULL,
    token       TEXT,               -- compact JWS, NULL until signed
    PRIMARY KEY (seat_id, device_jkt, seq),
    CONSTRAINT meter_packets_amount_positive CHECK (amount >= 1)
);

-- Every packet request answered, by (seat, jti): the idempotency record. The same body again
-- gets the same packets; another body with the same jti is refused.
CREATE TABLE packet_requests (
    seat_id     TEXT NOT NULL REFERENCES seats (id),
    jti         TEXT NOT NULL,
    body_sha256 TEXT NOT NULL,      -- lowercase hex of the request's compact JWS
    packet_seqs TEXT NOT NULL,      -- JSON array of the packet seqs of the first answer
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (seat_id, jti)
);

-- The extra facts of a usage event (usage.provisioned: amt, unit, issued, units, packet), JSON.
ALTER TABLE federation_events ADD COLUMN usage TEXT;
