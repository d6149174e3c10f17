-- The course catalogue and cohorts, plus the shared per-service tables (idempotency, triggers).

CREATE FUNCTION training.touch_update_time() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.update_time := now();
    NEW.revision := OLD.revision + 1;
    RETURN NEW;
END $$;

-- Retried creates (see qi_platform::idempotency).
CREATE TABLE training.idempotency (
    caller      text        NOT NULL,
    method      text        NOT NULL,
    request_id  text        NOT NULL,
    request     bytea       NOT NULL,
    response    bytea,
    create_time timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (caller, method, request_id)
);
CREATE INDEX idempotency_create_time ON training.idempotency (create_time);

-- Trust-wide: `trust/courses/{id}`.
CREATE TABLE training.course (
    id                text        PRIMARY KEY,
    code              text        NOT NULL UNIQUE,
    display_name      text        NOT NULL,
    session_count     integer     NOT NULL CHECK (session_count BETWEEN 1 AND 52),
    required_sessions integer     NOT NULL DEFAULT 0
        CHECK (required_sessions BETWEEN 0 AND session_count),
    validity_months   integer     NOT NULL DEFAULT 0 CHECK (validity_months BETWEEN 0 AND 600),
    create_time       timestamptz NOT NULL DEFAULT now(),
    update_time       timestamptz NOT NULL DEFAULT now(),
    revision          bigint      NOT NULL DEFAULT 1
);
CREATE TRIGGER course_touch BEFORE UPDATE ON training.course
    FOR EACH ROW EXECUTE FUNCTION training.touch_update_time();

-- `sites/{site}/cohorts/{id}`, or `trust/cohorts/{id}` when site is NULL (cross-site).
CREATE TABLE training.cohort (
    site         text,
    id           text        NOT NULL,
    course_id    text        NOT NULL REFERENCES training.course (id),
    display_name text        NOT NULL,
    start_date   date        NOT NULL,
    capacity     integer     NOT NULL CHECK (capacity BETWEEN 1 AND 500),
    state        text        NOT NULL DEFAULT 'planned'
        CHECK (state IN ('planned', 'open', 'running', 'completed', 'cancelled')),
    create_time  timestamptz NOT NULL DEFAULT now(),
    update_time  timestamptz NOT NULL DEFAULT now(),
    revision     bigint      NOT NULL DEFAULT 1
);
-- One name per cohort: NULL (trust-wide) sites compare equal here.
CREATE UNIQUE INDEX cohort_name ON training.cohort (coalesce(site, ''), id);
-- Lists: newest first within the caller's sites.
CREATE INDEX cohort_list ON training.cohort (site, start_date DESC, id);
CREATE TRIGGER cohort_touch BEFORE UPDATE ON training.cohort
    FOR EACH ROW EXECUTE FUNCTION training.touch_update_time();
