-- Background work. The durable job queue: a job moves pending -> running -> completed | failed
-- | cancelled, each step one conditional UPDATE, so two processes never run one job at once; a
-- running job is held under a lease its worker renews, and one whose lease ran out goes back
-- to pending (or fails once its attempts are used up). At most one job per tenant carries a
-- given idempotency key (a schedule's planned run, a client's retry). The cron schedules that
-- enqueue jobs (each firing advanced by a compare-and-set on next_run_at), and the equipment
-- each tenant has switched off.
CREATE TABLE jobs (
    tenant_id         TEXT NOT NULL REFERENCES tenants(id),
    id                TEXT NOT NULL,
    kind              TEXT NOT NULL,
    payload           TEXT NOT NULL,
    state             TEXT NOT NULL,
    attempts          INTEGER NOT NULL,
    max_attempts      INTEGER NOT NULL,
    run_at            INTEGER NOT NULL,
    lease_owner       TEXT,
    lease_until       INTEGER,
    cancel_requested  INTEGER NOT NULL,
    last_error        TEXT,
    result            TEXT,
    schedule_id       TEXT,
    idempotency_key   TEXT,
    created_by        TEXT NOT NULL,
    created_at        INTEGER NOT NULL,
    started_at        INTEGER,
    finished_at       INTEGER,
    updated_at        INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX jobs_by_idempotency_key ON jobs (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX jobs_to_claim ON jobs (state, run_at);
CREATE INDEX jobs_by_lease ON jobs (state, lease_until);
CREATE INDEX jobs_by_tenant ON jobs (tenant_id, state, created_at);

CREATE TABLE schedules (
    tenant_id    TEXT NOT NULL REFERENCES tenants(id),
    id           TEXT NOT NULL,
    name         TEXT NOT NULL,
    cron         TEXT NOT NULL,
    timezone     TEXT NOT NULL,
    kind         TEXT NOT NULL,
    payload      TEXT NOT NULL,
    enabled      INTEGER NOT NULL,
    missed       TEXT NOT NULL,
    next_run_at  INTEGER,
    last_run_at  INTEGER,
    created_by   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, name)
);
CREATE INDEX schedules_due ON schedules (enabled, next_run_at);

CREATE TABLE equipment_settings (
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    name        TEXT NOT NULL,
    enabled     INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, name)
);
