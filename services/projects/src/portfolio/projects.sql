-- Projects by lead site, programme and period: see portfolio::store::PROJECTS_SQL.
-- "?": a project without a programme has none (an outer join sqlx cannot always see).
SELECT p.lead_site AS site, g.site AS programme_site, g.id AS "programme_id?",
  -- The first day of the period of $3: month, quarter, fy (from 1 April), NULL for none.
  CASE $3::text
    WHEN 'month' THEN date_trunc('month', p.state_date::timestamp)::date
    WHEN 'quarter' THEN date_trunc('quarter', p.state_date::timestamp)::date
    WHEN 'fy' THEN (date_trunc('year', p.state_date::timestamp - interval '3 months')
                    + interval '3 months')::date
  END AS period,
  count(*) FILTER (WHERE p.state = 'scoping') AS "scoping!",
  count(*) FILTER (WHERE p.state = 'in_progress') AS "in_progress!",
  count(*) FILTER (WHERE p.state = 'completed') AS "completed!",
  count(*) FILTER (WHERE p.state = 'stopped') AS "stopped!",
  count(*) FILTER (WHERE p.patient_partner_count > 0 OR p.engagement_count > 0) AS "coproduced!",
  -- Live projects whose lead left the trust or works at none of the project's sites, as
  -- the HR sync's feed tells (projects.staff_place).
  count(*) FILTER (WHERE p.state IN ('scoping', 'in_progress') AND EXISTS (
      SELECT 1 FROM team_member t JOIN staff_place s ON s.staff = t.staff
      WHERE t.project_uid = p.uid AND t.role = 'lead'
        AND (NOT s.active
             OR (s.site <> p.lead_site AND NOT s.site = ANY(p.participating_sites)))))
    AS "lead_gone!"
FROM project p LEFT JOIN programme g ON g.uid = p.programme_uid
WHERE ($1::text[] IS NULL OR p.lead_site = ANY($1))
  AND ($2::date IS NULL OR p.state_date >= $2)
  AND ($4::date IS NULL OR p.state_date < $4)
  AND ($5::uuid IS NULL OR p.programme_uid = $5)
GROUP BY 1, 2, 3, 4
