-- voicemon: the PostgreSQL schema, cumulative, for people to read.
--
-- voicemon creates and upgrades this schema itself: at start it applies the migrations in
-- crates/voicemon-store/src/postgres/migrations/ under an advisory lock, so several
-- instances may start together. This file is the same schema in one piece, as it stands
-- after every migration (now: version 4), for DBAs to review, to create by hand, or to
-- query from Grafana. A test (crates/voicemon-store/tests/contract/schema_file.rs) checks
-- that it creates exactly what the migrations create. Run it in an empty schema:
--
--   psql "$URL" -c 'CREATE SCHEMA voicemon'
--   PGOPTIONS=-csearch_path=voicemon psql "$URL" -v ON_ERROR_STOP=1 -f schema/metrics.sql
--   DATABASE_URL="$URL?options=-csearch_path%3Dvoicemon" voicemon serve
--
-- It ends by recording versions 1 to 5 in voicemon_migrations, so voicemon then applies only the
-- migrations that come after it.
--
-- TABLES
--   Raw facts, for drill-down:   event_ids (idempotency), calls, turns, usage (+ cost_notes),
--                                provider_requests, breaker_changes, heartbeats
--   Latency rollups:             latency_minute, latency_hour, and the view latency_rollups
--   Health:                      workers (latest heartbeat), provider_minutes,
--                                provider_errors, health_samples
--   Alerting:                    alerts, notify_log, outbox, receivers, silences, alert_history
--   Access:                      api_keys (SHA-256 hashes only)
--   Bookkeeping:                 voicemon_migrations, voicemon_settings
--
-- TIME
--   Facts and rollups keep time as `timestamptz` (an instant; voicemon works in UTC):
--   `ts` on raw facts, `start_at` on rollups (the start of their minute or hour), `minute`
--   on health samples, `at` on alert history; calls have started_at, ended_at and first_at
--   (the call's earliest event: a call's cost counts at that time). The alerting engine's
--   own state (notify_log, outbox, receivers, silences, api_keys) keeps unix milliseconds
--   in `bigint` columns named `*_ms`, as the engine computes them.
--
-- PARTITIONING
--   event_ids, turns, usage, provider_requests, heartbeats and latency_minute grow with
--   traffic and are `PARTITION BY RANGE` on their time column, one partition per UTC day,
--   named <table>_pYYYYMMDD (e.g. turns_p20261127). voicemon creates each partition on
--   demand (the days a batch touches) and a few days ahead (PostgresConfig.partitions_ahead,
--   3); there is no default partition. Partitions are not in this file: they are made at
--   run time.
--   With TimescaleDB (the extension available and enabled when voicemon first migrates the
--   database), the same six tables are created without their PARTITION BY clause and turned
--   into hypertables with one-day chunks (migrations/timescale.sql). The choice is made once
--   and recorded in voicemon_settings ('partitioning' = 'native' | 'timescaledb').
--
-- RETENTION
--   voicemon's maintenance (at start, then periodically) drops the day partitions (or,
--   with TimescaleDB, the chunks, by drop_chunks) that lie wholly before now − retention
--   (PostgresConfig.retention, 400 days by default): raw facts and minute rollups go a day
--   at a time, with no DELETE. Hour rollups, calls and their cost totals, breaker changes
--   and alert history are kept. Provider minutes and errors, health samples, heartbeats and
--   provider requests are also deleted row by row past the health history's retention.
--
-- LATENCY SKETCHES
--   voicemon_sketch (zero_count, keys, counts) is a DDSketch (voicemon_core::sketch): bucket
--   k counts the values in (γ^(k−1), γ^k] ms with γ = 1.01/0.99 and answers 2·γ^k/(γ+1), so
--   every percentile read from it is within 1 % of the exact value; values below 0.01 ms
--   count in zero_count. keys ascend and counts[i] belongs to keys[i]. Counts are integers,
--   so merging sketches is exact: the merge of sixty minutes is bit for bit the hour.
--   latency_minute and latency_hour hold one sketch per series and minute (hour): tenant,
--   component (turn_e2e | stt | eou | llm_ttft | tts_ttfb), source (turn: from
--   turn.completed; usage: from stt/llm/tts usage events, with provider and model), agent.
--
-- PERCENTILES IN SQL
--   Merge the sketches of a window with the aggregate voicemon_merge, then read a quantile
--   with voicemon_quantile(sketch, q), q in 0..1; voicemon_count(sketch) is the number of
--   values. Never average per-minute percentiles: merge, then read. These give exactly the
--   API's numbers.
--
--   -- P50/P95/P99 of end-to-end turn latency per tenant over the last 24 hours:
--   SELECT tenant_id,
--          voicemon_quantile(voicemon_merge(sketch), 0.50) AS p50_ms,
--          voicemon_quantile(voicemon_merge(sketch), 0.95) AS p95_ms,
--          voicemon_quantile(voicemon_merge(sketch), 0.99) AS p99_ms,
--          voicemon_count(voicemon_merge(sketch)) AS turns
--   FROM latency_minute
--   WHERE component = 'turn_e2e' AND source = 'turn' AND start_at >= now() - interval '24 hours'
--   GROUP BY tenant_id;
--
--   -- Hourly P95 of one tenant's LLM time to first token over 30 days (a Grafana panel:
--   -- WHERE $__timeFilter(start_at)). Read one resolution at a time from the view.
--   SELECT start_at AS time, voicemon_quantile(voicemon_merge(sketch), 0.95) AS p95_ms
--   FROM latency_rollups
--   WHERE resolution = 'hour' AND component = 'llm_ttft' AND source = 'turn'
--     AND tenant_id = 'acme' AND start_at >= now() - interval '30 days'
--   GROUP BY start_at ORDER BY start_at;
--
-- MONEY
--   Integer nano-USD (bigint `cost_nano`), never floats: usd = cost_nano / 1e9. A NULL
--   usage.cost_nano is an unpriced line (its cost_notes.detail says why), never zero.
--   calls.cost_nano, usage_lines and unpriced_lines are each call's running totals.

-- Bookkeeping: which migrations ran, and choices made once (the partitioning).
CREATE TABLE IF NOT EXISTS voicemon_migrations (
    version     integer PRIMARY KEY,
    description text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS voicemon_settings (
    name  text PRIMARY KEY,
    value text NOT NULL
);

-- A latency sketch: DDSketch buckets (voicemon_core::sketch). Bucket k answers
-- 2·γ^k/(γ+1) ms with γ = 1.01/0.99; values below 0.01 ms count in zero_count.
-- keys ascend; counts[i] is the count of bucket keys[i].
CREATE TYPE voicemon_sketch AS (zero_count bigint, keys integer[], counts bigint[]);

-- Merges two sketches (either may be NULL): bucket counts add up.
CREATE FUNCTION voicemon_sketch_merge(a voicemon_sketch, b voicemon_sketch) RETURNS voicemon_sketch
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ROW(
        coalesce(a.zero_count, 0) + coalesce(b.zero_count, 0),
        coalesce(array_agg(m.k ORDER BY m.k), '{}'),
        coalesce(array_agg(m.c ORDER BY m.k), '{}')
    )::voicemon_sketch
    FROM (
        SELECT u.k, sum(u.c)::bigint AS c
        FROM (SELECT * FROM unnest(a.keys, a.counts)
              UNION ALL SELECT * FROM unnest(b.keys, b.counts)) AS u (k, c)
        GROUP BY u.k
    ) AS m
$$;

-- Aggregate state: [1] zero count, [2] the key of [3], [3..] dense bucket counts.
CREATE FUNCTION voicemon_sketch_accumulate(state bigint[], s voicemon_sketch) RETURNS bigint[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    i integer;
    k integer;
    pos integer;
BEGIN
    IF s IS NULL THEN
        RETURN state;
    END IF;
    IF state IS NULL THEN
        state := ARRAY[0, coalesce(s.keys[1], 0)]::bigint[];
    END IF;
    state[1] := state[1] + coalesce(s.zero_count, 0);
    FOR i IN 1 .. coalesce(array_length(s.keys, 1), 0) LOOP
        k := s.keys[i];
        IF k < state[2] THEN
            state := state[1:1] || ARRAY[k::bigint] || array_fill(0::bigint, ARRAY[(state[2] - k)::integer])
                     || state[3:array_length(state, 1)];
        END IF;
        pos := 3 + k - state[2]::integer;
        state[pos] := coalesce(state[pos], 0) + s.counts[i];
    END LOOP;
    RETURN state;
END
$$;

CREATE FUNCTION voicemon_sketch_combine(a bigint[], b bigint[]) RETURNS bigint[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    IF b IS NULL THEN
        RETURN a;
    END IF;
    RETURN voicemon_sketch_accumulate(a, voicemon_sketch_of_state(b));
END
$$;

-- The dense aggregate state back as a sketch (empty buckets left out).
CREATE FUNCTION voicemon_sketch_of_state(state bigint[]) RETURNS voicemon_sketch
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ROW(
        state[1],
        coalesce(array_agg((state[2] + d.i - 3)::integer ORDER BY d.i) FILTER (WHERE x.c > 0), '{}'),
        coalesce(array_agg(x.c ORDER BY d.i) FILTER (WHERE x.c > 0), '{}')
    )::voicemon_sketch
    FROM generate_subscripts(state, 1) AS d (i), LATERAL (SELECT coalesce(state[d.i], 0) AS c) AS x (c)
    WHERE state IS NOT NULL AND d.i >= 3
$$;

-- voicemon_merge(sketch): the sketch of every value in the rows aggregated. This, never
-- an average of per-bucket percentiles, is how a window's percentile is computed.
CREATE AGGREGATE voicemon_merge(voicemon_sketch) (
    SFUNC = voicemon_sketch_accumulate,
    STYPE = bigint[],
    FINALFUNC = voicemon_sketch_of_state,
    COMBINEFUNC = voicemon_sketch_combine,
    PARALLEL = SAFE
);

-- How many values a sketch holds.
CREATE FUNCTION voicemon_count(s voicemon_sketch) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(s.zero_count, 0) + coalesce((SELECT sum(c) FROM unnest(s.counts) AS c), 0)::bigint
$$;

-- The value bucket k answers, in ms: 2·γ^k/(γ+1) in double precision, γ^k raised by
-- square-and-multiply exactly as Rust's f64::powi does, so SQL and voicemon_core agree
-- to the last bit.
CREATE FUNCTION voicemon_bucket_value(k integer) RETURNS double precision
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    gamma CONSTANT double precision := (1::double precision + 0.01::double precision)
                                       / (1::double precision - 0.01::double precision);
    base double precision := gamma;
    power double precision := 1;
    n integer := abs(k);
BEGIN
    LOOP
        IF n % 2 = 1 THEN
            power := power * base;
        END IF;
        n := n / 2;
        EXIT WHEN n = 0;
        base := base * base;
    END LOOP;
    IF k < 0 THEN
        power := 1 / power;
    END IF;
    RETURN 2 * power / (gamma + 1);
END
$$;

-- The q-quantile (0..1) of a sketch in ms, within 1 % of the exact value at rank
-- floor(q·(n−1)); NULL when empty. Exactly voicemon_core::sketch::LatencySketch::quantile.
CREATE FUNCTION voicemon_quantile(s voicemon_sketch, q double precision) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    WITH total AS (SELECT voicemon_count(s) AS n),
    rank AS (SELECT greatest(0, least(1, q)) * (n - 1) AS r FROM total WHERE n > 0),
    buckets AS (
        SELECT b.k, sum(b.c) OVER (ORDER BY b.k) + coalesce(s.zero_count, 0) AS seen
        FROM unnest(s.keys, s.counts) AS b (k, c)
    )
    SELECT CASE
        WHEN coalesce(s.zero_count, 0) > (SELECT r FROM rank) THEN 0
        ELSE (SELECT voicemon_bucket_value(coalesce(min(k) FILTER (WHERE seen > (SELECT r FROM rank)), max(k)))
              FROM buckets)
    END
    FROM rank
$$;

-- Idempotency: every stored event's time and 64-bit key of tenant_id + id
-- (voicemon_core::access::event_key).
CREATE TABLE event_ids (
    ts  timestamptz NOT NULL,
    key bigint NOT NULL,
    PRIMARY KEY (ts, key)
) PARTITION BY RANGE (ts);

-- One row per call, filled by call.started and call.ended in either order.
CREATE TABLE calls (
    id             bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    tenant_id      text NOT NULL,
    call_id        text NOT NULL,
    started_at     timestamptz,
    ended_at       timestamptz,
    channel        text,
    agent_id       text,
    objective      text,
    trace_id       text,
    duration_s     double precision,
    status         text,
    ended_reason   text,
    ended_by       text,
    attributes     jsonb,
    -- The call's earliest event: cost is attributed to the call at this time.
    first_at       timestamptz,
    -- Sum of its priced usage lines (nano-USD), how many lines it has, how many unpriced.
    cost_nano      bigint NOT NULL DEFAULT 0,
    usage_lines    integer NOT NULL DEFAULT 0,
    unpriced_lines integer NOT NULL DEFAULT 0,
    UNIQUE (tenant_id, call_id)
) WITH (fillfactor = 70);  -- room for cost totals updated in place (no index touched)
CREATE INDEX calls_by_first ON calls (tenant_id, first_at);
CREATE INDEX calls_by_first_time ON calls (first_at);
CREATE INDEX calls_by_call_id ON calls (call_id);
CREATE INDEX calls_by_trace ON calls (trace_id) WHERE trace_id IS NOT NULL;
CREATE INDEX calls_by_end ON calls (tenant_id, ended_at) WHERE ended_at IS NOT NULL;
CREATE INDEX calls_by_end_time ON calls (ended_at) WHERE ended_at IS NOT NULL;
CREATE INDEX calls_by_start ON calls (tenant_id, started_at) WHERE started_at IS NOT NULL;

-- turn.completed, one row per turn; latencies in ms.
CREATE TABLE turns (
    call        bigint NOT NULL,    -- calls.id
    tenant_id   text NOT NULL,
    ts          timestamptz NOT NULL,
    turn_index  integer NOT NULL,
    e2e_ms      real NOT NULL,
    stt_ms      real,
    eou_ms      real,
    llm_ttft_ms real,
    tts_ttfb_ms real,
    interrupted boolean,
    tool_calls  integer,
    agent_id    text
) PARTITION BY RANGE (ts);
CREATE INDEX turns_by_call ON turns (call);
CREATE INDEX turns_by_tenant ON turns (tenant_id, ts);

-- Which price entry priced a usage line and its unit prices, or why it is unpriced.
CREATE TABLE cost_notes (
    id        bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    price_ref text NOT NULL,    -- '' for unpriced lines
    detail    text NOT NULL,
    UNIQUE (price_ref, detail)
);

-- stt.usage, llm.usage and tts.usage with their cost under the price book.
CREATE TABLE usage (
    id                  bigint GENERATED BY DEFAULT AS IDENTITY,
    call                bigint NOT NULL,    -- calls.id
    tenant_id           text NOT NULL,
    ts                  timestamptz NOT NULL,
    component           text NOT NULL,      -- stt | llm | tts
    provider            text NOT NULL,
    model               text,
    voice               text,
    audio_seconds       double precision,
    input_tokens        bigint,
    output_tokens       bigint,
    cached_input_tokens bigint,
    audio_input_tokens  bigint,
    audio_output_tokens bigint,
    characters          bigint,
    latency_ms          real,
    cost_nano           bigint,             -- NULL: unpriced
    cost_note           bigint NOT NULL,    -- cost_notes.id
    PRIMARY KEY (id, ts)
) PARTITION BY RANGE (ts);
CREATE INDEX usage_by_call ON usage (call);
CREATE INDEX usage_by_time ON usage (ts);

CREATE TABLE provider_requests (
    tenant_id  text NOT NULL,
    ts         timestamptz NOT NULL,
    provider   text NOT NULL,
    component  text NOT NULL,
    ok         boolean NOT NULL,
    latency_ms real,
    error      text,
    call       bigint
) PARTITION BY RANGE (ts);
CREATE INDEX provider_requests_by_time ON provider_requests (ts);
-- The call explorer reads a call's provider requests.
CREATE INDEX provider_requests_by_call ON provider_requests (call) WHERE call IS NOT NULL;

-- Few rows (one per change): not partitioned, so a breaker's state is never forgotten.
CREATE TABLE breaker_changes (
    tenant_id text NOT NULL,
    ts        timestamptz NOT NULL,
    breaker   text NOT NULL,
    state     text NOT NULL
);
CREATE INDEX breaker_changes_by_time ON breaker_changes (ts);
CREATE INDEX breaker_changes_by_breaker ON breaker_changes (tenant_id, breaker, ts);

CREATE TABLE heartbeats (
    tenant_id          text NOT NULL,
    ts                 timestamptz NOT NULL,
    worker_id          text NOT NULL,
    memory_used_bytes  bigint NOT NULL,
    memory_limit_bytes bigint NOT NULL,
    cpu_percent        double precision NOT NULL,
    active_calls       integer NOT NULL
) PARTITION BY RANGE (ts);
CREATE INDEX heartbeats_by_time ON heartbeats (ts);

-- Per-minute latency sketches per series, merged on conflict (voicemon_sketch_merge).
-- source: turn (turn.completed) | usage (the providers' usage events, with provider and
-- model). agent_id, provider and model are '' when none.
CREATE TABLE latency_minute (
    tenant_id text NOT NULL,
    component text NOT NULL,    -- turn_e2e | stt | eou | llm_ttft | tts_ttfb
    source    text NOT NULL,
    start_at  timestamptz NOT NULL,
    agent_id  text NOT NULL,
    provider  text NOT NULL,
    model     text NOT NULL,
    sketch    voicemon_sketch NOT NULL,
    PRIMARY KEY (tenant_id, component, source, start_at, agent_id, provider, model)
) PARTITION BY RANGE (start_at);
CREATE INDEX latency_minute_by_time ON latency_minute (component, source, start_at);

-- The same per hour, for long ranges; each row equals the merge of its sixty minutes.
CREATE TABLE latency_hour (
    tenant_id text NOT NULL,
    component text NOT NULL,
    source    text NOT NULL,
    start_at  timestamptz NOT NULL,
    agent_id  text NOT NULL,
    provider  text NOT NULL,
    model     text NOT NULL,
    sketch    voicemon_sketch NOT NULL,
    PRIMARY KEY (tenant_id, component, source, start_at, agent_id, provider, model)
);
CREATE INDEX latency_hour_by_time ON latency_hour (component, source, start_at);

-- Both rollups in one relation for dashboards: pick `resolution` 'hour' only when the
-- step is whole hours (an hour never straddles two steps), 'minute' otherwise.
CREATE VIEW latency_rollups AS
    SELECT 'minute'::text AS resolution, * FROM latency_minute
    UNION ALL
    SELECT 'hour'::text AS resolution, * FROM latency_hour;

-- Each worker's latest heartbeat.
CREATE TABLE workers (
    tenant_id          text NOT NULL,
    worker_id          text NOT NULL,
    last_at            timestamptz NOT NULL,
    memory_used_bytes  bigint NOT NULL,
    memory_limit_bytes bigint NOT NULL,
    cpu_percent        double precision NOT NULL,
    active_calls       integer NOT NULL,
    PRIMARY KEY (tenant_id, worker_id)
);

-- provider.request outcomes per minute with a latency sketch, and errors by kind.
CREATE TABLE provider_minutes (
    tenant_id text NOT NULL,
    provider  text NOT NULL,
    start_at  timestamptz NOT NULL,
    requests  bigint NOT NULL,
    errors    bigint NOT NULL,
    sketch    voicemon_sketch NOT NULL,
    PRIMARY KEY (tenant_id, provider, start_at)
);
CREATE INDEX provider_minutes_by_time ON provider_minutes (start_at);
CREATE TABLE provider_errors (
    tenant_id text NOT NULL,
    provider  text NOT NULL,
    start_at  timestamptz NOT NULL,
    error     text NOT NULL,
    count     bigint NOT NULL,
    PRIMARY KEY (tenant_id, provider, start_at, error)
);
CREATE INDEX provider_errors_by_time ON provider_errors (start_at);

-- One health summary (JSON) per minute and tenant ('' for all tenants). `json`, not
-- `jsonb`: a sample is read back exactly as it was written.
CREATE TABLE health_samples (
    tenant_id text NOT NULL,
    minute    timestamptz NOT NULL,
    sample    json NOT NULL,
    PRIMARY KEY (tenant_id, minute)
);
CREATE INDEX health_samples_by_time ON health_samples (minute);

-- Alerting: active alerts, the notification log, the outbox, receivers, silences, history.
CREATE TABLE alerts (
    fingerprint text PRIMARY KEY,
    alert       jsonb NOT NULL    -- voicemon_core::alerting::evaluator::Alert
);
CREATE TABLE notify_log (
    fingerprint       text PRIMARY KEY,
    rule              text NOT NULL,
    first_notified_ms bigint NOT NULL,
    last_notified_ms  bigint NOT NULL
);
CREATE TABLE outbox (
    id              bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    receiver        text NOT NULL,
    rule            text NOT NULL,
    payload         text NOT NULL,
    created_ms      bigint NOT NULL,
    next_attempt_ms bigint NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    status          text NOT NULL DEFAULT 'pending',   -- pending | sent | failed
    last_error      text,
    done_ms         bigint,
    -- the instance sending it claims it until then (FOR UPDATE SKIP LOCKED)
    claimed_until_ms bigint
);
CREATE INDEX outbox_due ON outbox (next_attempt_ms) WHERE status = 'pending';
CREATE TABLE receivers (
    name         text PRIMARY KEY,
    broken       boolean NOT NULL DEFAULT false,
    last_error   text,
    last_sent_ms bigint
);
CREATE TABLE silences (
    id      text PRIMARY KEY,
    silence jsonb NOT NULL,    -- voicemon_core::alerting::silence::Silence
    ends_ms bigint NOT NULL
);
-- Every alert transition and delivery: pending, fired, resolved, notified, …
CREATE TABLE alert_history (
    id          bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL,
    kind        text NOT NULL,
    fingerprint text NOT NULL,
    rule        text NOT NULL,
    tenant_id   text,
    labels      jsonb NOT NULL,
    value       double precision,
    detail      text
);
CREATE INDEX alert_history_by_time ON alert_history (at);

CREATE TABLE api_keys (
    id         bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    name       text NOT NULL,
    role       text NOT NULL,
    tenant_id  text,
    prefix     text NOT NULL,
    key_hash   text NOT NULL UNIQUE,   -- sha-256 of the secret; the secret is never stored
    created_ms bigint NOT NULL,
    revoked_ms bigint
);

-- Derived data off the commit path: each group commit journals what it adds to the
-- rollups, provider minutes, call totals and workers; the instance that wrote a row
-- folds it into those tables and deletes it. `owner` names that instance, which holds an
-- advisory lock on it while it lives, so the rows of one that died are folded by another.
CREATE TABLE derived_journal (
    seq   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner text NOT NULL,
    body  bytea NOT NULL
);
CREATE INDEX derived_journal_by_owner ON derived_journal (owner, seq);

-- Scale-out: the duties that run once among the instances sharing this database (alert
-- evaluation, health sampling, maintenance) are leased to one instance until `expires_ms`
-- (its own clock), renewed well before.
CREATE TABLE leases (
    role       text PRIMARY KEY,
    holder     text NOT NULL,
    expires_ms bigint NOT NULL
);

-- This schema is migrations 1 to 4, with native partitioning.
INSERT INTO voicemon_migrations (version, description) VALUES (1, 'initial schema');
INSERT INTO voicemon_migrations (version, description) VALUES (2, 'derived data journal');
INSERT INTO voicemon_migrations (version, description) VALUES (3, 'leases and outbox claims');
INSERT INTO voicemon_migrations (version, description) VALUES (4, 'call explorer');
INSERT INTO voicemon_migrations (version, description) VALUES (5, 'calls updated in place');
INSERT INTO voicemon_settings (name, value) VALUES ('partitioning', 'native');
