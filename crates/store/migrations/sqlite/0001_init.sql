-- Nexus schema, SQLite. Times are microseconds since the Unix epoch (INTEGER).

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    budget_usd  REAL NOT NULL,
    settings    TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    is_active   INTEGER NOT NULL
);

CREATE TABLE users (
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    id          TEXT NOT NULL,
    name        TEXT NOT NULL,
    level       INTEGER NOT NULL,
    role        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE api_keys (
    id              TEXT PRIMARY KEY NOT NULL,
    tenant_id       TEXT NOT NULL REFERENCES tenants(id),
    user_id         TEXT,
    name            TEXT NOT NULL,
    key_hash        TEXT NOT NULL UNIQUE,
    display_prefix  TEXT NOT NULL,
    access_level    INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    last_used_at    INTEGER,
    revoked_at      INTEGER
);
CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id);

CREATE TABLE personas (
    tenant_id         TEXT NOT NULL REFERENCES tenants(id),
    id                TEXT NOT NULL,
    name              TEXT NOT NULL,
    description       TEXT NOT NULL,
    allowed_tools     TEXT NOT NULL,
    resource_scopes   TEXT NOT NULL,
    intent_patterns   TEXT NOT NULL,
    max_ttl_seconds   INTEGER NOT NULL,
    risk_tolerance    TEXT NOT NULL,
    trust_tier        TEXT NOT NULL,
    intent_threshold  REAL NOT NULL,
    version           INTEGER NOT NULL,
    is_active         INTEGER NOT NULL,
    created_at        INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, name)
);

-- The ledger: one append-only log per tenant. No foreign key: the log must outlive anything it
-- mentions, and nothing may block an append.
CREATE TABLE ledger_entries (
    tenant_id           TEXT NOT NULL,
    idx                 INTEGER NOT NULL,
    kind                TEXT NOT NULL,
    chain_id            TEXT,
    ts                  INTEGER NOT NULL,
    payload             TEXT NOT NULL,
    parent_fingerprint  TEXT NOT NULL,
    fingerprint         TEXT NOT NULL,
    leaf_hash           BLOB NOT NULL,
    PRIMARY KEY (tenant_id, idx)
) WITHOUT ROWID;
CREATE INDEX ledger_entries_by_chain ON ledger_entries (tenant_id, chain_id, idx);

CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE ON ledger_entries
BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;
CREATE TRIGGER ledger_entries_no_delete BEFORE DELETE ON ledger_entries
BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;

CREATE TABLE ledger_checkpoints (
    tenant_id    TEXT NOT NULL,
    size         INTEGER NOT NULL,
    root_hash    BLOB NOT NULL,
    signed_note  TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, size)
);

CREATE TABLE cost_records (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id      TEXT NOT NULL,
    chain_id       TEXT,
    seal_id        TEXT,
    model          TEXT NOT NULL,
    input_tokens   INTEGER NOT NULL,
    output_tokens  INTEGER NOT NULL,
    cost_usd       REAL NOT NULL,
    ts             INTEGER NOT NULL
);
CREATE INDEX cost_records_by_tenant_time ON cost_records (tenant_id, ts);
