-- Who may change a seat (DESIGN §5): a seat may hold the public key its device registered at
-- activation (device_jwk, and its RFC 7638 thumbprint); reissue and return of such a seat
-- carry a proof signed by it, and each proof's jti is accepted once per seat.
ALTER TABLE seats ADD COLUMN device_jwk TEXT;
ALTER TABLE seats ADD COLUMN device_jkt TEXT;
CREATE TABLE device_proofs (
    seat_id TEXT NOT NULL REFERENCES seats (id),
    jti     TEXT NOT NULL,
    used_at BIGINT NOT NULL,
    PRIMARY KEY (seat_id, jti)
);
CREATE INDEX device_proofs_by_time ON device_proofs (used_at);
