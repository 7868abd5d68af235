DROP TABLE federation_state;
DROP TABLE federation_events;
ALTER TABLE licenses DROP COLUMN federation_user_data;
ALTER TABLE licenses DROP COLUMN federation_grace;
