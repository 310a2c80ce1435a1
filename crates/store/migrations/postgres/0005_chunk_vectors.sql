-- Chunk embeddings for vector retrieval: the vector as little-endian f32 and the model that
-- made it. NULL until the chunk is embedded; a model change leaves old vectors to be replaced.

ALTER TABLE knowledge_chunks ADD COLUMN embedding BYTEA;
ALTER TABLE knowledge_chunks ADD COLUMN embedding_model TEXT;
CREATE INDEX knowledge_chunks_by_model ON knowledge_chunks (tenant_id, embedding_model, document_id, ordinal);
