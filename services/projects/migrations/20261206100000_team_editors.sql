-- Issue 25: a project is changed by its team's editors, not by any contributor of its lead
-- site. `editor` marks a member who may change it; the lead always may.
ALTER TABLE projects.team_member
    ADD COLUMN editor boolean NOT NULL DEFAULT false,
    ADD CONSTRAINT team_member_partner_not_editor CHECK (NOT (editor AND role = 'patient_partner'));

-- A project has at most one lead, so the lead role can be handed over. Before this, a team
-- could record several leads: the earliest (by create_time, then its UUIDv7 id) stays lead;
-- the later ones become editing members, keeping the edit rights they had.
UPDATE projects.team_member later
SET role = 'member', editor = true
FROM projects.team_member earlier
WHERE later.project_uid = earlier.project_uid
  AND later.role = 'lead' AND earlier.role = 'lead'
  AND (earlier.create_time, earlier.id) < (later.create_time, later.id);

CREATE UNIQUE INDEX team_member_one_lead ON projects.team_member (project_uid)
    WHERE role = 'lead';
