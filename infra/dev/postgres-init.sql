-- generated from shared/fleet.py by `python -m shared.fleet generate`; do not edit by hand.
-- docker-compose.dev.yml: the service databases next to the core one (as dokku-postgres gives
-- chat-db, media-db, community-db, analytics-db in production).
CREATE DATABASE chat;
CREATE DATABASE media;
CREATE DATABASE community;
CREATE DATABASE analytics;
