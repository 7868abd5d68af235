-- The journal (DESIGN §6, §7): every change of a license takes the next number of a gapless
-- per-license counter, kept on the license row that the change locks, and its audit row
-- carries that number. Federation events will use the same number.
ALTER TABLE licenses ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE audit_log ADD COLUMN license_seq BIGINT;
CREATE UNIQUE INDEX audit_log_license_seq ON audit_log (license_id, license_seq);
