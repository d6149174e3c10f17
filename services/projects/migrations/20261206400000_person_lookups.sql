-- Issue 25's reads by person: ListProjects `member` (the projects whose team holds a person)
-- and ListIdeas `submitter` (the ideas a person submitted). Neither column led an index:
-- `UNIQUE (project_uid, staff)` answers "is this person on this project", not "which
-- projects is this person on", and ideas were indexed by site only. Partial: patient
-- partners and ideas from people who are not staff carry no staff name.
CREATE INDEX team_member_staff ON projects.team_member (staff, project_uid)
    WHERE staff IS NOT NULL;
CREATE INDEX idea_submitter ON projects.idea (submitter_staff, uid DESC)
    WHERE submitter_staff IS NOT NULL;
