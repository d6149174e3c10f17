-- Metric definitions grow (scope, frequency, value type, inequality dimensions, target);
-- measurements, annotations and rebase points.

ALTER TABLE metrics.metric
    -- A compact internal key the child tables refer to (names stay (site, id)).
    ADD COLUMN uid                bigint GENERATED ALWAYS AS IDENTITY,
    ADD COLUMN description        text             NOT NULL DEFAULT '',
    ADD COLUMN target             double precision,
    ADD COLUMN frequency          text             NOT NULL DEFAULT 'month'
        CHECK (frequency IN ('day', 'week', 'month', 'quarter')),
    ADD COLUMN value_type         text             NOT NULL DEFAULT 'mean'
        CHECK (value_type IN ('count', 'mean', 'rate')),
    ADD COLUMN rate_per           double precision NOT NULL DEFAULT 1 CHECK (rate_per > 0),
    -- A ward's metric: the ward id (its site is the metric's). A project's: `sites/S/projects/P`.
    ADD COLUMN ward               text,
    ADD COLUMN project            text,
    ADD COLUMN location_breakdown text             NOT NULL DEFAULT 'none'
        CHECK (location_breakdown IN ('none', 'site', 'ward')),
    -- Dimension codes in the order given: 'imd', 'ethnicity', 'age', 'sex'.
    ADD COLUMN dimensions         text[]           NOT NULL DEFAULT '{}',
    ADD COLUMN imd_edition        text CHECK (imd_edition IN ('imd2019', 'imd2025')),
    ADD COLUMN age_bands          text[]           NOT NULL DEFAULT '{}',
    ADD CONSTRAINT metric_scope CHECK (ward IS NULL OR project IS NULL),
    ADD CONSTRAINT metric_site_scope CHECK (site IS NOT NULL OR (ward IS NULL AND project IS NULL));
ALTER TABLE metrics.metric ADD CONSTRAINT metric_uid UNIQUE (uid);

-- One value of a metric for one period, place and stratum. The key columns hold '' for
-- "not broken down" so the primary key (the idempotency key of ingest) has no NULLs; they
-- use the C collation, which compares bytes (the labels are ASCII codes).
-- No foreign key to metric: a referential check per row would double the cost of bulk
-- ingest, and the service writes measurements only inside a transaction that holds the
-- metric's row locked (metrics are never deleted).
CREATE TABLE metrics.measurement (
    metric_uid   bigint           NOT NULL,
    period       date             NOT NULL,
    site         text COLLATE "C" NOT NULL DEFAULT '',
    ward         text COLLATE "C" NOT NULL DEFAULT '',
    imd_quintile text COLLATE "C" NOT NULL DEFAULT '',
    ethnicity    text COLLATE "C" NOT NULL DEFAULT '',
    age_band     text COLLATE "C" NOT NULL DEFAULT '',
    sex          text COLLATE "C" NOT NULL DEFAULT '',
    -- COUNT and MEAN metrics: the value; MEAN: its weight (NULL: weighs 1).
    value        double precision,
    count        bigint,
    -- RATE metrics.
    numerator    double precision,
    denominator  double precision CHECK (denominator > 0),
    id           bigint GENERATED ALWAYS AS IDENTITY,
    create_time  timestamptz      NOT NULL DEFAULT now(),
    update_time  timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (metric_uid, period, site, ward, imd_quintile, ethnicity, age_band, sex),
    CHECK ((value IS NULL) <> (numerator IS NULL AND denominator IS NULL))
);

-- Notes on a metric's chart.
CREATE TABLE metrics.annotation (
    metric_uid  bigint      NOT NULL REFERENCES metrics.metric (uid),
    id          text        NOT NULL,
    date        date        NOT NULL,
    text        text        NOT NULL,
    author      text        NOT NULL,
    create_time timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (metric_uid, id)
);
CREATE INDEX annotation_date ON metrics.annotation (metric_uid, date);

-- Where a metric's SPC chart starts a new group.
CREATE TABLE metrics.rebase_point (
    metric_uid  bigint      NOT NULL REFERENCES metrics.metric (uid),
    id          text        NOT NULL,
    period      date        NOT NULL,
    reason      text        NOT NULL,
    create_time timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (metric_uid, id),
    UNIQUE (metric_uid, period)
);
