-- Embeddings of memory texts for recall by meaning: one vector (little-endian f32) per owner,
-- content hash and model, so a restored or repeated text reuses its vector and a new model's
-- vectors sit beside the old ones until they are made.
CREATE TABLE memory_vectors (
    tenant_id     TEXT NOT NULL,
    owner         TEXT NOT NULL,
    content_hash  TEXT NOT NULL,
    model         TEXT NOT NULL,
    vector        BLOB NOT NULL,
    PRIMARY KEY (tenant_id, owner, content_hash, model)
);
