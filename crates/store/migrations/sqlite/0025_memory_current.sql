-- The current version of each memory item, kept with every append (in its transaction), so
-- reading items as they stand is an index scan instead of a latest-version subquery per row.
-- `updated_at` is the current version's `created_at`; `deleted` is whether it is a tombstone.
CREATE TABLE memory_current (
    tenant_id   TEXT NOT NULL,
    id          TEXT NOT NULL,
    owner       TEXT NOT NULL,
    version     BIGINT NOT NULL,
    deleted     BOOLEAN NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX memory_current_owner ON memory_current (tenant_id, owner, updated_at);
INSERT INTO memory_current (tenant_id, id, owner, version, deleted, updated_at)
SELECT m.tenant_id, m.id, m.owner, m.version, m.deleted, m.created_at FROM memory_versions m
WHERE m.version = (SELECT MAX(x.version) FROM memory_versions x WHERE x.tenant_id = m.tenant_id AND x.id = m.id);
