-- Scale-out: the duties that run once among the instances sharing this database (alert
-- evaluation, health sampling, maintenance) are leased to one instance until `expires_ms`
-- (its own clock), renewed well before; the outbox's messages are claimed by the instance
-- sending them (`FOR UPDATE SKIP LOCKED`) until `claimed_until_ms`.
CREATE TABLE leases (
    role       text PRIMARY KEY,
    holder     text NOT NULL,
    expires_ms bigint NOT NULL
);
ALTER TABLE outbox ADD COLUMN claimed_until_ms bigint;
