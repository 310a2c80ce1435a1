-- Full-text search over chunks, so lexical candidates come best-first from an index instead of
-- a scan. Chunks get an INTEGER PRIMARY KEY first: an implicit rowid may change on VACUUM,
-- and the external-content FTS5 table below refers to chunks by rowid. Triggers keep it in step.

CREATE TABLE knowledge_chunks_new (
    id              INTEGER PRIMARY KEY,
    tenant_id       TEXT NOT NULL,
    document_id     TEXT NOT NULL,
    ordinal         INTEGER NOT NULL,
    namespace       TEXT NOT NULL,
    access_rank     INTEGER NOT NULL,
    text            TEXT NOT NULL,
    lower_text      TEXT NOT NULL,
    embedding       BLOB,
    embedding_model TEXT,
    UNIQUE (tenant_id, document_id, ordinal)
);
INSERT INTO knowledge_chunks_new
    (tenant_id, document_id, ordinal, namespace, access_rank, text, lower_text, embedding, embedding_model)
    SELECT tenant_id, document_id, ordinal, namespace, access_rank, text, lower_text, embedding, embedding_model
    FROM knowledge_chunks ORDER BY tenant_id, document_id, ordinal;
DROP TABLE knowledge_chunks;
ALTER TABLE knowledge_chunks_new RENAME TO knowledge_chunks;
CREATE INDEX knowledge_chunks_by_namespace ON knowledge_chunks (tenant_id, namespace);
CREATE INDEX knowledge_chunks_by_model ON knowledge_chunks (tenant_id, embedding_model, document_id, ordinal);

CREATE VIRTUAL TABLE knowledge_chunks_fts USING fts5(lower_text, content='knowledge_chunks', content_rowid='id');

CREATE TRIGGER knowledge_chunks_fts_insert AFTER INSERT ON knowledge_chunks BEGIN
    INSERT INTO knowledge_chunks_fts (rowid, lower_text) VALUES (new.id, new.lower_text);
END;

CREATE TRIGGER knowledge_chunks_fts_delete AFTER DELETE ON knowledge_chunks BEGIN
    INSERT INTO knowledge_chunks_fts (knowledge_chunks_fts, rowid, lower_text) VALUES ('delete', old.id, old.lower_text);
END;

CREATE TRIGGER knowledge_chunks_fts_update AFTER UPDATE OF lower_text ON knowledge_chunks BEGIN
    INSERT INTO knowledge_chunks_fts (knowledge_chunks_fts, rowid, lower_text) VALUES ('delete', old.id, old.lower_text);
    INSERT INTO knowledge_chunks_fts (rowid, lower_text) VALUES (new.id, new.lower_text);
END;

INSERT INTO knowledge_chunks_fts (knowledge_chunks_fts) VALUES ('rebuild');
