DROP INDEX audit_log_license_seq;
ALTER TABLE audit_log DROP COLUMN license_seq;
ALTER TABLE licenses DROP COLUMN change_seq;
