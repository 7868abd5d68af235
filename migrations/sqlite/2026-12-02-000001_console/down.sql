DROP INDEX audit_log_by_license_action;
DROP INDEX seats_by_activation;
DROP INDEX seats_by_user;
DROP TABLE login_failures;
DROP TABLE console_sessions;
