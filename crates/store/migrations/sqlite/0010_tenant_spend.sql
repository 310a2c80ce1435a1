-- Running cost totals per tenant and month (the month's first microsecond, UTC), added to in
-- the transaction of every cost record, so a budget check reads one row instead of summing
-- the month's records.
CREATE TABLE tenant_spend (
    tenant_id   TEXT NOT NULL,
    month       BIGINT NOT NULL,
    cost_usd    REAL NOT NULL,
    PRIMARY KEY (tenant_id, month)
);

INSERT INTO tenant_spend (tenant_id, month, cost_usd)
SELECT tenant_id,
       CAST(strftime('%s', datetime(ts / 1000000, 'unixepoch', 'start of month')) AS INTEGER) * 1000000,
       SUM(cost_usd)
FROM cost_records
GROUP BY 1, 2;
