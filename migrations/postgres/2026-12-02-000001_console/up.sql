-- Web console (issue 9): sessions and login throttling live in the database, so they hold
-- across instances and restarts.
CREATE TABLE console_sessions (
    id_hash    TEXT PRIMARY KEY,                -- sha256 hex of the 256-bit cookie value
    admin_id   TEXT NOT NULL REFERENCES admins (id) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,                   -- per session, compared in constant time
    created_at BIGINT NOT NULL,                 -- for the absolute lifetime
    last_seen  BIGINT NOT NULL                  -- for the idle timeout
);
CREATE INDEX console_sessions_by_admin ON console_sessions (admin_id);

-- One row per failed login; counted per user name and per client address in a window.
CREATE TABLE login_failures (
    id       BIGSERIAL PRIMARY KEY,
    username TEXT NOT NULL,
    client   TEXT NOT NULL,
    at       BIGINT NOT NULL
);
CREATE INDEX login_failures_by_user ON login_failures (username, at);
CREATE INDEX login_failures_by_client ON login_failures (client, at);

-- The console's seat list sorts by user name or activation time within a license, device id
-- breaking ties (so a late page walks the index instead of sorting).
CREATE INDEX seats_by_user ON seats (license_id, user_name, device_id);
CREATE INDEX seats_by_activation ON seats (license_id, activated_at, device_id);

-- The license page's charts count a license's seat moves per day.
CREATE INDEX audit_log_by_license_action ON audit_log (license_id, action, at);
