DROP TABLE notifications;
ALTER TABLE licenses DROP COLUMN exhaust_episode;
