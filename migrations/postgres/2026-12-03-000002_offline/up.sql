-- Every offline exchange (DESIGN §11), by the SHA-256 of its request lines: fulfilling the
-- same request file again returns the stored response bytes, and never a second packet,
-- time token or seat.
CREATE TABLE offline_exchanges (
    request_sha256 TEXT PRIMARY KEY,   -- lowercase hex over the request's JWS lines, '\n'-joined
    response       TEXT NOT NULL,      -- the armored response file, exactly as written
    created_at     BIGINT NOT NULL,    -- unix seconds
    actor          TEXT NOT NULL       -- 'cli' or 'admin:NAME'
);
