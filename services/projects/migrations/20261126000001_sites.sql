-- The trust's sites (reference data), plus the shared per-service tables.

CREATE FUNCTION projects.touch_update_time() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.update_time := now();
    NEW.revision := OLD.revision + 1;
    RETURN NEW;
END $$;

-- Retried creates (see qi_platform::idempotency).
CREATE TABLE projects.idempotency (
    caller      text        NOT NULL,
    method      text        NOT NULL,
    request_id  text        NOT NULL,
    request     bytea       NOT NULL,
    response    bytea,
    create_time timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (caller, method, request_id)
);
CREATE INDEX idempotency_create_time ON projects.idempotency (create_time);

-- `sites/{code}`.
CREATE TABLE projects.site (
    code         text        PRIMARY KEY,
    display_name text        NOT NULL,
    create_time  timestamptz NOT NULL DEFAULT now(),
    update_time  timestamptz NOT NULL DEFAULT now(),
    revision     bigint      NOT NULL DEFAULT 1
);
CREATE TRIGGER site_touch BEFORE UPDATE ON projects.site
    FOR EACH ROW EXECUTE FUNCTION projects.touch_update_time();
