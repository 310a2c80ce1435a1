-- Which process drives a run, and when each process last showed it is alive, so a restarting
-- process resumes only runs whose owner is gone.

ALTER TABLE runs ADD COLUMN owner TEXT;

CREATE TABLE instances (
    id            TEXT PRIMARY KEY NOT NULL,
    heartbeat_at  INTEGER NOT NULL
);
