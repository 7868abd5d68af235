DROP TABLE server_state;
DROP TABLE admins;
DROP TABLE seat_refusals;
DROP TABLE audit_log;
DROP TABLE seats;
DROP TABLE key_files;
DROP TABLE licenses;
