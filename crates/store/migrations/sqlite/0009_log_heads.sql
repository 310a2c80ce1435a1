-- Each tenant's log head (size, right edge of the Merkle tree, last batch id), locked by every
-- append so several processes append one after another; and the tree's stored nodes (complete
-- subtrees every 8 levels), from which proofs are computed without holding the tree in memory.
-- Heads of logs written before this migration are built by the ledger writer on start.
CREATE TABLE ledger_heads (
    tenant_id   TEXT PRIMARY KEY,
    size        BIGINT NOT NULL,
    frontier    BLOB NOT NULL,
    last_batch  TEXT
);

CREATE TABLE ledger_nodes (
    tenant_id   TEXT NOT NULL,
    level       SMALLINT NOT NULL,
    idx         BIGINT NOT NULL,
    hash        BLOB NOT NULL,
    PRIMARY KEY (tenant_id, level, idx)
);
CREATE TRIGGER ledger_nodes_no_update BEFORE UPDATE ON ledger_nodes
BEGIN SELECT RAISE(ABORT, 'ledger tree nodes are append-only'); END;
CREATE TRIGGER ledger_nodes_no_delete BEFORE DELETE ON ledger_nodes
BEGIN SELECT RAISE(ABORT, 'ledger tree nodes are append-only'); END;
