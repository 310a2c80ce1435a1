-- Memory: what the assistant remembers of each person, as append-only versions. A change is a
-- new version, a deletion a version with `deleted` (its content kept, so it can be restored), a
-- restore a new version with an earlier content. `content_hash` finds exact duplicates;
-- `provenance` (JSON) says which run, message or source a version came from.
CREATE TABLE memory_versions (
    tenant_id     TEXT NOT NULL,
    id            TEXT NOT NULL,
    version       BIGINT NOT NULL,
    owner         TEXT NOT NULL,
    content       TEXT NOT NULL,
    content_hash  TEXT NOT NULL,
    trust         TEXT NOT NULL,
    provenance    TEXT NOT NULL,
    deleted       BOOLEAN NOT NULL,
    created_at    BIGINT NOT NULL,
    created_by    TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id, version)
);
CREATE INDEX memory_versions_owner ON memory_versions (tenant_id, owner, created_at);
CREATE INDEX memory_versions_hash ON memory_versions (tenant_id, owner, content_hash);
