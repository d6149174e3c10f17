-- Staff (from ESR), sessions, enrolment, attendance and the trained-staff register.

ALTER TABLE training.cohort
    ADD COLUMN uid           uuid   NOT NULL DEFAULT gen_random_uuid() UNIQUE,
    ADD COLUMN facilitators  text[] NOT NULL DEFAULT '{}',
    ADD COLUMN cancel_reason text;

-- `{cohort}/sessions/{number}`: generated one week apart when the cohort is scheduled.
CREATE TABLE training.session (
    cohort_uid     uuid        NOT NULL REFERENCES training.cohort (uid),
    number         integer     NOT NULL CHECK (number BETWEEN 1 AND 52),
    date           date        NOT NULL,
    register_taken boolean     NOT NULL DEFAULT false,
    update_time    timestamptz NOT NULL DEFAULT now(),
    revision       bigint      NOT NULL DEFAULT 1,
    PRIMARY KEY (cohort_uid, number)
);
CREATE TRIGGER session_touch BEFORE UPDATE ON training.session
    FOR EACH ROW EXECUTE FUNCTION training.touch_update_time();

-- `sites/{site}/staff/{employee_number}`, written only by the HR sync. Leavers are
-- deactivated, never deleted.
CREATE TABLE training.staff (
    employee_number    text        PRIMARY KEY,
    site               text        NOT NULL,
    assignment_number  text        NOT NULL,
    other_assignments  text[]      NOT NULL DEFAULT '{}',
    forename           text        NOT NULL,
    surname            text        NOT NULL,
    work_email         text        NOT NULL DEFAULT '',
    staff_group        text        NOT NULL DEFAULT '',
    job_role           text        NOT NULL DEFAULT '',
    occupation_code    text        NOT NULL DEFAULT '',
    area_of_work       text        NOT NULL DEFAULT '',
    position_title     text        NOT NULL DEFAULT '',
    pay_band           text        NOT NULL DEFAULT '',
    department         text        NOT NULL DEFAULT '',
    organisation       text        NOT NULL DEFAULT '',
    assignment_status  text        NOT NULL DEFAULT '',
    person_type        text        NOT NULL DEFAULT '',
    hire_date          date,
    leave_date         date,
    active             boolean     NOT NULL,
    -- A hash of the fields above, so a sync can tell a real change from a repeat.
    data_hash          bigint      NOT NULL,
    source_update_time timestamptz NOT NULL,
    extract_id         text        NOT NULL DEFAULT '',
    create_time        timestamptz NOT NULL DEFAULT now(),
    update_time        timestamptz NOT NULL DEFAULT now(),
    revision           bigint      NOT NULL DEFAULT 1
);
CREATE INDEX staff_list ON training.staff (site, surname, forename, employee_number);
CREATE TRIGGER staff_touch BEFORE UPDATE ON training.staff
    FOR EACH ROW EXECUTE FUNCTION training.touch_update_time();

-- Waitlist order across the whole suite: promotion takes the lowest.
CREATE SEQUENCE training.waitlist_seq;

-- `{cohort}/enrolments/{employee_number}`.
CREATE TABLE training.enrolment (
    cohort_uid      uuid        NOT NULL REFERENCES training.cohort (uid),
    employee_number text        NOT NULL REFERENCES training.staff (employee_number),
    course_id       text        NOT NULL REFERENCES training.course (id),
    state           text        NOT NULL CHECK (state IN ('enrolled', 'waitlisted', 'withdrawn')),
    waitlist_seq    bigint,
    create_time     timestamptz NOT NULL DEFAULT now(),
    update_time     timestamptz NOT NULL DEFAULT now(),
    revision        bigint      NOT NULL DEFAULT 1,
    PRIMARY KEY (cohort_uid, employee_number)
);
CREATE INDEX enrolment_staff ON training.enrolment (employee_number, course_id);
CREATE INDEX enrolment_waitlist ON training.enrolment (cohort_uid, waitlist_seq)
    WHERE state = 'waitlisted';
CREATE TRIGGER enrolment_touch BEFORE UPDATE ON training.enrolment
    FOR EACH ROW EXECUTE FUNCTION training.touch_update_time();

CREATE TABLE training.attendance (
    cohort_uid      uuid        NOT NULL,
    session_number  integer     NOT NULL,
    employee_number text        NOT NULL,
    status          text        NOT NULL CHECK (status IN ('attended', 'caught_up', 'absent')),
    recorded_time   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (cohort_uid, employee_number, session_number),
    FOREIGN KEY (cohort_uid, employee_number) REFERENCES training.enrolment,
    FOREIGN KEY (cohort_uid, session_number) REFERENCES training.session
);

-- The register's history position: every change to a completion takes the next value, in
-- commit order (writers serialize on an advisory lock), so HR's export can resume from it.
CREATE SEQUENCE training.register_change_seq;

-- The trained-staff register: `sites/{site}/staff/{employee_number}/completions/{id}`.
CREATE TABLE training.completion (
    id              uuid        PRIMARY KEY,
    employee_number text        NOT NULL REFERENCES training.staff (employee_number),
    course_id       text        NOT NULL REFERENCES training.course (id),
    cohort_uid      uuid        NOT NULL REFERENCES training.cohort (uid),
    completion_date date        NOT NULL,
    expiry_date     date,
    revoked         boolean     NOT NULL DEFAULT false,
    change_seq      bigint      NOT NULL,
    create_time     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (employee_number, cohort_uid)
);
CREATE INDEX completion_change ON training.completion (change_seq);
CREATE INDEX completion_date ON training.completion (completion_date DESC, id) WHERE NOT revoked;
