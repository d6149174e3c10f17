-- The audit trail gets a retention policy: the table becomes monthly partitions by `time`,
-- so old months are dropped whole (`qi maintain`, QI_AUDIT_RETENTION_DAYS) instead of
-- deleted row by row, which would bloat the busiest table and take hours on a large one.
--
-- The primary key must hold the partition key, so it becomes (id, time); ids still come
-- from one sequence and stay unique. The indexes keep their purpose on every partition:
-- BRIN on time for time ranges, (subject, id) and (site, id) for an admin's pages newest
-- first by id (PostgreSQL merges the partitions' backward index scans).
--
-- Partitions exist from the oldest event's month to three months ahead; `qi maintain` keeps
-- creating them ahead. The default partition catches an event no month holds (a clock far
-- off, or maintenance stopped for months), so the audit writer never fails on a row;
-- maintenance moves such rows into their month's partition when it creates it.
--
-- Existing rows are copied in this migration's transaction: writes to the trail wait for
-- it, and the gateway's audit queue holds events meanwhile.
ALTER TABLE gateway.audit_event RENAME TO audit_event_unpartitioned;
ALTER INDEX gateway.audit_event_pkey RENAME TO audit_event_unpartitioned_pkey;
ALTER INDEX gateway.audit_event_time RENAME TO audit_event_unpartitioned_time;
ALTER INDEX gateway.audit_event_subject RENAME TO audit_event_unpartitioned_subject;
ALTER INDEX gateway.audit_event_site RENAME TO audit_event_unpartitioned_site;

-- An explicit sequence, not an identity column: identity columns on partitioned tables need
-- PostgreSQL 17, and `qi up` runs on whatever server the machine has (15 on ours).
CREATE SEQUENCE gateway.audit_event_id AS bigint;
SELECT setval('gateway.audit_event_id',
              coalesce((SELECT max(id) FROM gateway.audit_event_unpartitioned), 0) + 1, false);

CREATE TABLE gateway.audit_event (
    id             bigint      NOT NULL DEFAULT nextval('gateway.audit_event_id'),
    time           timestamptz NOT NULL,
    subject        text        NOT NULL,
    method         text        NOT NULL,
    site           text,
    resource       text,
    decision       text        NOT NULL CHECK (decision IN ('allow', 'deny')),
    code           text        NOT NULL,
    reason         text        NOT NULL,
    trace_id       text        NOT NULL,
    client_address text,
    count          integer     NOT NULL DEFAULT 1 CHECK (count >= 1),
    PRIMARY KEY (id, time)
) PARTITION BY RANGE (time);
ALTER SEQUENCE gateway.audit_event_id OWNED BY gateway.audit_event.id;
CREATE INDEX audit_event_time ON gateway.audit_event USING brin (time);
CREATE INDEX audit_event_subject ON gateway.audit_event (subject, id);
CREATE INDEX audit_event_site ON gateway.audit_event (site, id) WHERE site IS NOT NULL;

CREATE TABLE gateway.audit_event_default PARTITION OF gateway.audit_event DEFAULT;

-- Months in UTC, named audit_event_YYYY_MM (maintenance relies on the name for the bounds).
DO $$
DECLARE
    month timestamp := date_trunc('month', coalesce(
        (SELECT min(time) FROM gateway.audit_event_unpartitioned), now()) AT TIME ZONE 'UTC');
    last timestamp := date_trunc('month', now() AT TIME ZONE 'UTC') + interval '3 months';
BEGIN
    WHILE month <= last LOOP
        EXECUTE format(
            'CREATE TABLE gateway.%I PARTITION OF gateway.audit_event FOR VALUES FROM (%L) TO (%L)',
            'audit_event_' || to_char(month, 'YYYY_MM'),
            month AT TIME ZONE 'UTC',
            (month + interval '1 month') AT TIME ZONE 'UTC');
        month := month + interval '1 month';
    END LOOP;
END
$$;

INSERT INTO gateway.audit_event (id, time, subject, method, site, resource, decision, code,
                                 reason, trace_id, client_address, count)
SELECT id, time, subject, method, site, resource, decision, code, reason, trace_id,
       client_address, count
FROM gateway.audit_event_unpartitioned;

DROP TABLE gateway.audit_event_unpartitioned;
