-- Knowledge documents and their chunks, per tenant and namespace. The same content is stored
-- once per namespace (by hash).

CREATE TABLE knowledge_documents (
    tenant_id     TEXT NOT NULL,
    id            TEXT NOT NULL,
    namespace     TEXT NOT NULL,
    source        TEXT NOT NULL,
    content       TEXT NOT NULL,
    content_hash  TEXT NOT NULL,
    access_level  TEXT NOT NULL,
    metadata      TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, namespace, content_hash)
);

CREATE TABLE knowledge_chunks (
    tenant_id     TEXT NOT NULL,
    document_id   TEXT NOT NULL,
    ordinal       BIGINT NOT NULL,
    namespace     TEXT NOT NULL,
    access_rank   BIGINT NOT NULL,
    text          TEXT NOT NULL,
    lower_text    TEXT NOT NULL,
    PRIMARY KEY (tenant_id, document_id, ordinal)
);
CREATE INDEX knowledge_chunks_by_namespace ON knowledge_chunks (tenant_id, namespace);
