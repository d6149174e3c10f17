-- The typed projections the answers read (qi_insights::projection): each derived from a
-- mirrored message (insights.resource) and written in the same transaction as it, keyed by
-- the resource's name. Names of other services' resources are kept as the feeds give them;
-- '' stands for "none".

-- Training.
CREATE TABLE insights.staff (
    name text PRIMARY KEY,                 -- staff/{employee_number}
    display_name text NOT NULL,
    site text NOT NULL,
    ward text NOT NULL,                    -- sites/{site}/wards/{ward}
    department text NOT NULL,
    staff_group text NOT NULL,
    active boolean NOT NULL
);
CREATE INDEX staff_by_site ON insights.staff (site) WHERE active;

CREATE TABLE insights.cohort (
    name text PRIMARY KEY,                 -- sites/{site}/cohorts/{id} or trust/cohorts/{id}
    site text NOT NULL,                    -- '' for a trust-wide cohort
    course text NOT NULL,
    display_name text NOT NULL,
    start_date date
);
CREATE INDEX cohort_by_course ON insights.cohort (course, start_date);

CREATE TABLE insights.completion (
    name text PRIMARY KEY,                 -- staff/{employee_number}/completions/{id}
    staff text NOT NULL,
    display_name text NOT NULL,
    course text NOT NULL,
    cohort text NOT NULL,
    completion_date date NOT NULL,
    expiry_date date
);
CREATE INDEX completion_by_cohort ON insights.completion (cohort);
CREATE INDEX completion_by_staff ON insights.completion (staff);

-- Projects.
CREATE TABLE insights.project (
    name text PRIMARY KEY,                 -- sites/{lead_site}/projects/{id}
    title text NOT NULL,
    sites text[] NOT NULL,                 -- the lead site, then the participating sites
    wards text[] NOT NULL,
    state integer NOT NULL,                -- qi.projects.v1.ProjectState
    start_date date,
    end_date date,
    progress_score double precision,       -- NULL before the first score
    programme text NOT NULL,
    cohort text NOT NULL
);
CREATE INDEX project_by_programme ON insights.project (programme) WHERE programme <> '';

-- Staff on teams (patient partners, who are not staff, are not projected).
CREATE TABLE insights.team_member (
    name text PRIMARY KEY,                 -- {project}/teamMembers/{id}
    project text NOT NULL,
    staff text NOT NULL,
    role integer NOT NULL,                 -- qi.projects.v1.TeamRole
    create_time timestamptz NOT NULL
);
CREATE INDEX team_member_by_staff ON insights.team_member (staff);
CREATE INDEX team_member_by_project ON insights.team_member (project);

CREATE TABLE insights.measure (
    name text PRIMARY KEY,                 -- {project}/measures/{id}
    project text NOT NULL,
    metric text NOT NULL,
    kind integer NOT NULL                  -- qi.projects.v1.MeasureKind
);
CREATE INDEX measure_by_project ON insights.measure (project);

CREATE TABLE insights.programme (
    name text PRIMARY KEY,
    display_name text NOT NULL,
    cohort text NOT NULL
);
CREATE INDEX programme_by_cohort ON insights.programme (cohort) WHERE cohort <> '';

-- Metrics.
CREATE TABLE insights.metric (
    name text PRIMARY KEY,                 -- sites/{site}/metrics/{id} or trust/metrics/{id}
    display_name text NOT NULL,
    kind integer NOT NULL,                 -- qi.metrics.v1.MetricKind
    direction integer NOT NULL,            -- qi.metrics.v1.ImprovementDirection
    target double precision,
    value_type integer NOT NULL,           -- qi.metrics.v1.MetricValueType
    rate_per double precision NOT NULL
);

CREATE TABLE insights.measurement (
    name text PRIMARY KEY,                 -- {metric}/measurements/{id}
    metric text NOT NULL,
    period date NOT NULL,
    site text NOT NULL,                    -- '' for the trust's own
    ward text NOT NULL,
    value double precision,
    numerator double precision,
    denominator double precision,
    count bigint
);
CREATE INDEX measurement_by_metric ON insights.measurement (metric, period);

CREATE TABLE insights.rebase_point (
    name text PRIMARY KEY,                 -- {metric}/rebasePoints/{id}
    metric text NOT NULL,
    period date NOT NULL
);
CREATE INDEX rebase_point_by_metric ON insights.rebase_point (metric);
