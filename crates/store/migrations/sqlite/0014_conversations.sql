-- Chat conversations, per owner (a principal's subject: user:<id> or key:<id>), and their
-- messages numbered within each conversation.
CREATE TABLE conversations (
    tenant_id   TEXT NOT NULL,
    id          TEXT NOT NULL,
    owner       TEXT NOT NULL,
    title       TEXT NOT NULL,
    target      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX conversations_by_owner ON conversations (tenant_id, owner, updated_at);

CREATE TABLE chat_messages (
    tenant_id        TEXT NOT NULL,
    conversation_id  TEXT NOT NULL,
    seq              INTEGER NOT NULL,
    role             TEXT NOT NULL,
    content          TEXT NOT NULL,
    chain_id         TEXT,
    model            TEXT,
    created_at       INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, conversation_id, seq),
    FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations (tenant_id, id) ON DELETE CASCADE
);
