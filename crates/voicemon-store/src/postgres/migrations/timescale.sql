-- TimescaleDB only (run once, right after migration 1, when the extension is enabled):
-- the raw fact tables and the minute rollups become hypertables with `{chunk}` chunks.
-- create_hypertable and drop_chunks are Apache-licensed; compression policies (set up
-- separately, see docs/postgres.md) need the TimescaleDB community licence (TSL).
SELECT create_hypertable('event_ids', 'ts', chunk_time_interval => INTERVAL '{chunk}');
SELECT create_hypertable('turns', 'ts', chunk_time_interval => INTERVAL '{chunk}');
SELECT create_hypertable('usage', 'ts', chunk_time_interval => INTERVAL '{chunk}');
SELECT create_hypertable('provider_requests', 'ts', chunk_time_interval => INTERVAL '{chunk}');
SELECT create_hypertable('heartbeats', 'ts', chunk_time_interval => INTERVAL '{chunk}');
SELECT create_hypertable('latency_minute', 'start_at', chunk_time_interval => INTERVAL '{chunk}');
