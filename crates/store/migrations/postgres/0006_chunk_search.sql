-- Full-text search over chunks, so lexical candidates come best-first from an index instead of
-- a scan: a generated tsvector (the 'simple' configuration: no stemming, no stop words; the
-- ranking's own tokenizer decides what counts) with a GIN index.

ALTER TABLE knowledge_chunks
    ADD COLUMN search tsvector GENERATED ALWAYS AS (to_tsvector('simple', lower_text)) STORED;
CREATE INDEX knowledge_chunks_search ON knowledge_chunks USING GIN (search);
