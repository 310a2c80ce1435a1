-- Watchers: a feed or a web page section polled on a schedule, and every item each one found.
-- An item's key depends only on the item (its guid, else its canonical link, else a hash of its
-- content), and (tenant, watcher, key) is unique, so no restart or replica posts an item twice.
CREATE TABLE watchers (
    tenant_id      TEXT NOT NULL,
    id             TEXT NOT NULL,
    name           TEXT NOT NULL,
    kind           TEXT NOT NULL,
    url            TEXT NOT NULL,
    selector       TEXT,
    target         TEXT NOT NULL,
    summarise      TEXT,
    max_posts      BIGINT NOT NULL,
    schedule_id    TEXT,
    etag           TEXT,
    last_modified  TEXT,
    seeded         BOOLEAN NOT NULL,
    last_polled_at BIGINT,
    last_error     TEXT,
    created_by     TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, name)
);
CREATE TABLE watched_items (
    tenant_id   TEXT NOT NULL,
    watcher_id  TEXT NOT NULL,
    item_key    TEXT NOT NULL,
    title       TEXT,
    link        TEXT,
    body        TEXT NOT NULL,
    digest      TEXT NOT NULL,
    status      TEXT NOT NULL,
    attempts    BIGINT NOT NULL,
    detail      TEXT,
    found_at    BIGINT NOT NULL,
    posted_at   BIGINT,
    PRIMARY KEY (tenant_id, watcher_id, item_key),
    FOREIGN KEY (tenant_id, watcher_id) REFERENCES watchers (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX watched_items_status ON watched_items (tenant_id, watcher_id, status, found_at);
