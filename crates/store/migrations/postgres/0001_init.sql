-- Nexus schema, PostgreSQL. Times are microseconds since the Unix epoch (BIGINT), as on SQLite,
-- so both backends order and compare identically.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    budget_usd  DOUBLE PRECISION NOT NULL,
    settings    TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    is_active   BOOLEAN NOT NULL
);

CREATE TABLE users (
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    id          TEXT NOT NULL,
    name        TEXT NOT NULL,
    level       BIGINT NOT NULL,
    role        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE api_keys (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants(id),
    user_id         TEXT,
    name            TEXT NOT NULL,
    key_hash        TEXT NOT NULL UNIQUE,
    display_prefix  TEXT NOT NULL,
    access_level    BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    last_used_at    BIGINT,
    revoked_at      BIGINT
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
    max_ttl_seconds   BIGINT NOT NULL,
    risk_tolerance    TEXT NOT NULL,
    trust_tier        TEXT NOT NULL,
    intent_threshold  DOUBLE PRECISION NOT NULL,
    version           BIGINT NOT NULL,
    is_active         BOOLEAN NOT NULL,
    created_at        BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, name)
);

CREATE TABLE ledger_entries (
    tenant_id           TEXT NOT NULL,
    idx                 BIGINT NOT NULL,
    kind                TEXT NOT NULL,
    chain_id            TEXT,
    ts                  BIGINT NOT NULL,
    payload             TEXT NOT NULL,
    parent_fingerprint  TEXT NOT NULL,
    fingerprint         TEXT NOT NULL,
    leaf_hash           BYTEA NOT NULL,
    PRIMARY KEY (tenant_id, idx)
);
CREATE INDEX ledger_entries_by_chain ON ledger_entries (tenant_id, chain_id, idx);

CREATE FUNCTION ledger_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger entries are append-only';
END;
$$;
CREATE TRIGGER ledger_entries_no_change BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_entries_append_only();

CREATE TABLE ledger_checkpoints (
    tenant_id    TEXT NOT NULL,
    size         BIGINT NOT NULL,
    root_hash    BYTEA NOT NULL,
    signed_note  TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, size)
);

CREATE TABLE cost_records (
    id             BIGSERIAL PRIMARY KEY,
    tenant_id      TEXT NOT NULL,
    chain_id       TEXT,
    seal_id        TEXT,
    model          TEXT NOT NULL,
    input_tokens   BIGINT NOT NULL,
    output_tokens  BIGINT NOT NULL,
    cost_usd       DOUBLE PRECISION NOT NULL,
    ts             BIGINT NOT NULL
);
CREATE INDEX cost_records_by_tenant_time ON cost_records (tenant_id, ts);
