-- What a run needs that does not change while it runs (its personas and tool definitions), stored
-- once per run instead of inside the state saved after every step. Runs stored before this
-- table carry it inside their state and have no row here.
CREATE TABLE run_contexts (
    tenant_id  TEXT NOT NULL,
    chain_id   TEXT NOT NULL,
    context    TEXT NOT NULL,
    PRIMARY KEY (tenant_id, chain_id)
);
