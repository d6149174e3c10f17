-- Issue 25: a person's name is `staff/{employee_number}`, rooted at the trust, so a move
-- between sites renames nothing. Every stored staff reference is rewritten from the v1 form
-- `sites/{site}/staff/{n}` to it. The idempotency table's saved answers are history and
-- stay as written (a retry gets the answer it was given).

-- Under the v1 names one person could be on a team twice, once per site form. Such a team
-- keeps one membership: the earliest row (by create_time, then its UUIDv7 id), the one the
-- team recorded first, with its role; the later rows were the same person again. Only
-- staff rows can collide, so no patient partner (and no count of them) is touched.
DELETE FROM projects.team_member later
USING projects.team_member earlier
WHERE later.project_uid = earlier.project_uid
  AND regexp_replace(later.staff, '^sites/[^/]+/staff/', 'staff/')
      = regexp_replace(earlier.staff, '^sites/[^/]+/staff/', 'staff/')
  AND (earlier.create_time, earlier.id) < (later.create_time, later.id);

UPDATE projects.team_member
SET staff = regexp_replace(staff, '^sites/[^/]+/staff/', 'staff/')
WHERE staff LIKE 'sites/%';

-- A rename is nobody's edit: the trigger would bump the idea's revision (its etag) and
-- update_time, and a caller holding the etag would be refused for a change they never
-- missed. ALTER TABLE locks the table for the migration's transaction only.
ALTER TABLE projects.idea DISABLE TRIGGER idea_touch;
UPDATE projects.idea
SET submitter_staff = regexp_replace(submitter_staff, '^sites/[^/]+/staff/', 'staff/')
WHERE submitter_staff LIKE 'sites/%';
ALTER TABLE projects.idea ENABLE TRIGGER idea_touch;
