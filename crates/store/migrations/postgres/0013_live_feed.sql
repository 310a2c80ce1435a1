-- The live feed: every run's events as their runtime recorded them, shared by every replica.
-- Appends take a transaction-scoped advisory lock before drawing ids, so ids commit in order
-- and a watcher resuming after the last id it saw misses nothing.
CREATE TABLE live_events (
    id          BIGSERIAL PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    chain_id    TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    event       TEXT NOT NULL
);
CREATE INDEX live_events_by_tenant ON live_events (tenant_id, id);
CREATE INDEX live_events_by_time ON live_events (created_at);
