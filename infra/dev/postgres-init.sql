-- docker-compose.dev.yml: the service databases next to the core one (as dokku-postgres gives
-- chat-db, media-db, community-db and analytics-db in production).
CREATE DATABASE chat;
CREATE DATABASE media;
CREATE DATABASE community;
CREATE DATABASE analytics;
