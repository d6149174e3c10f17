-- Metric definitions, plus the shared per-service tables.

CREATE FUNCTION metrics.touch_update_time() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.update_time := now();
    NEW.revision := OLD.revision + 1;
    RETURN NEW;
END $$;

-- Retried creates (see qi_platform::idempotency).
CREATE TABLE metrics.idempotency (
    caller      text        NOT NULL,
    method      text        NOT NULL,
    request_id  text        NOT NULL,
    request     bytea       NOT NULL,
    response    bytea,
    create_time timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (caller, method, request_id)
);
CREATE INDEX idempotency_create_time ON metrics.idempotency (create_time);

-- `sites/{site}/metrics/{id}`, or `trust/metrics/{id}` when site is NULL.
CREATE TABLE metrics.metric (
    site         text,
    id           text        NOT NULL,
    display_name text        NOT NULL,
    unit         text        NOT NULL DEFAULT '',
    kind         text        NOT NULL CHECK (kind IN ('outcome', 'process', 'balancing', 'qms')),
    direction    text        NOT NULL CHECK (direction IN ('increase', 'decrease', 'neither')),
    create_time  timestamptz NOT NULL DEFAULT now(),
    update_time  timestamptz NOT NULL DEFAULT now(),
    revision     bigint      NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX metric_name ON metrics.metric (coalesce(site, ''), id);
CREATE TRIGGER metric_touch BEFORE UPDATE ON metrics.metric
    FOR EACH ROW EXECUTE FUNCTION metrics.touch_update_time();
