-- Running cost totals per tenant and month (the month's first microsecond, UTC), added to in
-- the transaction of every cost record, so a budget check reads one row instead of summing
-- the month's records.
CREATE TABLE tenant_spend (
    tenant_id   TEXT NOT NULL,
    month       BIGINT NOT NULL,
    cost_usd    DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (tenant_id, month)
);

INSERT INTO tenant_spend (tenant_id, month, cost_usd)
SELECT tenant_id,
       (EXTRACT(EPOCH FROM date_trunc('month', to_timestamp(ts / 1000000.0) AT TIME ZONE 'UTC')) * 1000000)::BIGINT,
       SUM(cost_usd)
FROM cost_records
GROUP BY 1, 2;
