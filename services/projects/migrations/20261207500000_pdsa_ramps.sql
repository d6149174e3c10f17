-- PDSA ramps (#34): a cycle may follow an earlier cycle of its project, making a series of
-- tests at growing scale. `follows < number` keeps a ramp acyclic and in number order; one
-- follower per cycle keeps it a line, so it reads back in order. `scale` says how big the
-- test is ("one patient, one afternoon"); `result` is what happened, set against the
-- prediction when the cycle is studied. Existing cycles start no ramp and keep empty texts.
ALTER TABLE projects.pdsa_cycle
    ADD COLUMN follows integer,
    ADD COLUMN scale   text NOT NULL DEFAULT '',
    ADD COLUMN result  text NOT NULL DEFAULT '',
    ADD CONSTRAINT pdsa_cycle_follows_earlier CHECK (follows < number),
    ADD CONSTRAINT pdsa_cycle_follows_cycle FOREIGN KEY (project_uid, follows)
        REFERENCES projects.pdsa_cycle (project_uid, number);

CREATE UNIQUE INDEX pdsa_cycle_one_follower ON projects.pdsa_cycle (project_uid, follows)
    WHERE follows IS NOT NULL;
