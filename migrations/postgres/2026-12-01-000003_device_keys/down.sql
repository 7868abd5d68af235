DROP TABLE device_proofs;
ALTER TABLE seats DROP COLUMN device_jkt;
ALTER TABLE seats DROP COLUMN device_jwk;
