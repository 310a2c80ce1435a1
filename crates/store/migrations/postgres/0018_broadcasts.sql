-- Broadcasts: one message to many of a tenant's channel accounts, sent by a durable queue.
-- Each recipient's row moves pending -> sending -> delivered | blocked | failed exactly once
-- (a row left in 'sending' by a crash is never sent again), so a restart resumes without
-- sending anyone a second copy.
CREATE TABLE broadcasts (
    tenant_id    TEXT NOT NULL,
    id           TEXT NOT NULL,
    channel      TEXT NOT NULL,
    body         TEXT NOT NULL,
    min_level    BIGINT NOT NULL,
    created_by   TEXT NOT NULL,
    notify_chat  TEXT,
    created_at   BIGINT NOT NULL,
    finished_at  BIGINT,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE broadcast_deliveries (
    tenant_id     TEXT NOT NULL,
    broadcast_id  TEXT NOT NULL,
    external_id   TEXT NOT NULL,
    chat_id       TEXT NOT NULL,
    status        TEXT NOT NULL,
    detail        TEXT,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, broadcast_id, external_id),
    FOREIGN KEY (tenant_id, broadcast_id) REFERENCES broadcasts (tenant_id, id)
);
CREATE INDEX broadcast_deliveries_pending ON broadcast_deliveries (tenant_id, status);
