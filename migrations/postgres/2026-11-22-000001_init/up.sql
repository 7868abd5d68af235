-- Seatkeep schema, PostgreSQL. Keep in step with ../../sqlite/ (same tables, columns, order).
-- Times are unix seconds (BIGINT) on both backends.

CREATE TABLE licenses (
    id               TEXT PRIMARY KEY,          -- the key file's lic
    issuer           TEXT NOT NULL,
    customer_id      TEXT NOT NULL,
    customer_name    TEXT NOT NULL,
    product_id       TEXT NOT NULL,
    product_name     TEXT NOT NULL,
    product_edition  BIGINT NOT NULL,
    model            TEXT NOT NULL,
    seats            BIGINT NOT NULL,           -- seats bought
    capacity         BIGINT NOT NULL,           -- seats + overage allowance: grants stop here
    in_use           BIGINT NOT NULL DEFAULT 0,
    -- in_use may exceed capacity only after a renewal lowered it; ceiling records that
    -- surplus and shrinks as seats are released, so in_use <= ceiling always holds.
    ceiling          BIGINT NOT NULL,
    seq              BIGINT NOT NULL,
    not_before       BIGINT,
    expires_at       BIGINT,
    reissue_limit    BIGINT NOT NULL,
    return_limit     BIGINT NOT NULL,
    overage_percent  BIGINT NOT NULL,
    admins           TEXT NOT NULL,             -- JSON array of email addresses
    federation_url   TEXT,
    channel          TEXT,                      -- JSON object, passed through to federation
    current_key_file TEXT NOT NULL,             -- digest of the newest key file
    status           TEXT NOT NULL DEFAULT 'active',
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    CONSTRAINT licenses_seats_positive CHECK (seats >= 1),
    CONSTRAINT licenses_capacity_covers_seats CHECK (capacity >= 1),
    CONSTRAINT licenses_in_use_bounds CHECK (in_use >= 0 AND in_use <= ceiling),
    CONSTRAINT licenses_ceiling_covers_capacity CHECK (ceiling >= capacity),
    CONSTRAINT licenses_status CHECK (status IN ('active', 'revoked'))
);

CREATE TABLE key_files (
    digest      TEXT PRIMARY KEY,               -- sha256 of the compact JWS, hex
    license_id  TEXT NOT NULL REFERENCES licenses (id),
    seq         BIGINT NOT NULL,
    jti         TEXT NOT NULL,
    kid         TEXT NOT NULL,
    raw         TEXT NOT NULL,                  -- the file as imported
    imported_at BIGINT NOT NULL,
    imported_by TEXT NOT NULL,
    CONSTRAINT key_files_one_per_seq UNIQUE (license_id, seq)
);

CREATE TABLE seats (
    id                TEXT PRIMARY KEY,
    license_id        TEXT NOT NULL REFERENCES licenses (id),
    device_id         TEXT NOT NULL,
    user_name         TEXT NOT NULL,
    state             TEXT NOT NULL,
    generation        BIGINT NOT NULL,          -- device key generation (the key's gen), +1 per reissue
    cycle             BIGINT NOT NULL,          -- activations of this seat (return token input)
    device_key        TEXT NOT NULL,
    return_token_hash TEXT NOT NULL,            -- sha256 of the return token, hex
    device_info       TEXT,
    overage           BOOLEAN NOT NULL DEFAULT FALSE,
    activated_at      BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    released_at       BIGINT,
    -- One seat row per (license, device): a device never holds two seats of a license. Its
    -- index also serves every by-license query.
    CONSTRAINT seats_one_per_device UNIQUE (license_id, device_id),
    CONSTRAINT seats_state CHECK (state IN ('active', 'retired', 'returned', 'revoked')),
    CONSTRAINT seats_gen_positive CHECK (generation >= 1)
);

CREATE TABLE audit_log (
    id         BIGSERIAL PRIMARY KEY,
    at         BIGINT NOT NULL,
    actor      TEXT NOT NULL,                   -- "device", "cli", "admin:NAME", "system"
    action     TEXT NOT NULL,                   -- e.g. seat.activated, license.renewed
    license_id TEXT,
    seat_id    TEXT,
    detail     TEXT NOT NULL                    -- JSON object
);
CREATE INDEX audit_log_by_seat ON audit_log (seat_id, action, at);
CREATE INDEX audit_log_by_license ON audit_log (license_id, at);

CREATE TABLE seat_refusals (
    id         BIGSERIAL PRIMARY KEY,
    license_id TEXT NOT NULL REFERENCES licenses (id),
    device_id  TEXT NOT NULL,
    at         BIGINT NOT NULL
);
CREATE INDEX seat_refusals_by_license ON seat_refusals (license_id, at);

CREATE TABLE admins (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL,
    password_hash TEXT NOT NULL,                -- Argon2id PHC string
    role          TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    CONSTRAINT admins_username_unique UNIQUE (username),
    CONSTRAINT admins_role CHECK (role IN ('owner', 'admin', 'viewer'))
);

CREATE TABLE server_state (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO server_state (name, value) VALUES ('clock_high_water', 0);
