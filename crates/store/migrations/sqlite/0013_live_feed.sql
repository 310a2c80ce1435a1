-- The live feed: every run's events as their runtime recorded them, shared by every process on
-- the database. AUTOINCREMENT never reuses an id after old rows are pruned, so a watcher's
-- cursor (the last id it saw) stays meaningful. Appends hold the write lock (BEGIN IMMEDIATE),
-- so ids become visible in order.
CREATE TABLE live_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id   TEXT NOT NULL,
    chain_id    TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    event       TEXT NOT NULL
);
CREATE INDEX live_events_by_tenant ON live_events (tenant_id, id);
CREATE INDEX live_events_by_time ON live_events (created_at);
