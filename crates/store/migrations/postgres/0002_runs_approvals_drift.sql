-- Agent runs (the engine's state, saved after every step), approvals, and drift counts.

CREATE TABLE runs (
    tenant_id   TEXT NOT NULL,
    chain_id    TEXT NOT NULL,
    task        TEXT NOT NULL,
    status      TEXT NOT NULL,
    state       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, chain_id)
);
CREATE INDEX runs_by_status ON runs (status);
CREATE INDEX runs_by_tenant_time ON runs (tenant_id, created_at);

CREATE TABLE approvals (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL,
    chain_id      TEXT NOT NULL,
    step          BIGINT NOT NULL,
    tool          TEXT NOT NULL,
    params        TEXT NOT NULL,
    call_digest   TEXT NOT NULL,
    reason        TEXT NOT NULL,
    requested_by  TEXT,
    status        TEXT NOT NULL,
    decided_by    TEXT,
    decided_at    BIGINT,
    note          TEXT,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);
CREATE INDEX approvals_by_tenant_status ON approvals (tenant_id, status);

CREATE TABLE action_counts (
    tenant_id    TEXT NOT NULL,
    persona      TEXT NOT NULL,
    tool         TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    count        BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, persona, tool, fingerprint)
);
