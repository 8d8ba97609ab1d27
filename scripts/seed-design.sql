-- The seed's design, rebuilt for comparison (issue 12): every latency measurement is a raw
-- row in ONE table, four rows a turn (component stt, llm, tts with their provider and
-- model; e2e without), written with 100-row multi-VALUES INSERTs, and percentiles are
-- computed at query time with percentile_cont over the raw rows. One index.
--
-- The seed ran this on TimescaleDB (a hypertable on ts); TimescaleDB is not packaged for
-- these machines, so this is the plain-PostgreSQL table: for inserts of recent rows a
-- hypertable chunk behaves like this table with its one index.
--
-- Run into a schema of its own, e.g.:
--   psql "$DB" -c 'CREATE SCHEMA seed_bench'
--   PGOPTIONS=-csearch_path=seed_bench psql "$DB" -v ON_ERROR_STOP=1 -f scripts/seed-design.sql
-- and load it with
--   target/release/examples/loadgen --shape live --seed-design "$DB?options=-csearch_path%3Dseed_bench"
-- (scripts/ingest-bench.sh does both).

CREATE TABLE metrics_latency (
    ts          timestamptz      NOT NULL,
    tenant_id   text             NOT NULL,
    agent_id    text,
    call_id     text             NOT NULL,
    turn_index  integer,
    component   text             NOT NULL,  -- stt | llm | tts | e2e
    provider    text,                       -- NULL for e2e
    model       text,                       -- NULL for e2e
    latency_ms  double precision NOT NULL
);

CREATE INDEX metrics_latency_tenant_ts ON metrics_latency (tenant_id, ts);

-- The latency query, per tenant over a window (loadgen times it with $1 = tenant, $2 = from):
--   SELECT percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY latency_ms), count(*)
--   FROM metrics_latency
--   WHERE tenant_id = $1 AND component = 'e2e' AND ts >= $2 AND ts <= now();
