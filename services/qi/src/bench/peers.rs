//! The services' own SQL statements that the raw-SQL baselines run, held here and nowhere
//! else in the bench: each is a copy of the service's statement until the service crate
//! exports it, when the copy gives way to a `pub(super) use` of the export (see each TODO).

// TODO(lead): replace with `pub(super) use qi_training::COHORT_READ_SQL;`
/// How the training service reads one cohort by site and id (`cohorts::get` in
/// `services/training/src/cohorts.rs`): `$1` the site (NULL: trust-wide), `$2` the id.
pub(super) const COHORT_READ_SQL: &str = "SELECT c.site, c.id, c.course_id, c.display_name, c.start_date, c.capacity, c.state, \
     c.create_time, c.update_time, c.revision, c.facilitators, c.cancel_reason, \
     (SELECT count(*) FROM enrolment e WHERE e.cohort_uid = c.uid AND e.state = 'enrolled') AS enrolled_count, \
     (SELECT count(*) FROM enrolment e WHERE e.cohort_uid = c.uid AND e.state = 'waitlisted') AS waitlist_count \
     FROM cohort c WHERE coalesce(c.site, '') = coalesce($1, '') AND c.id = $2";

// TODO(lead): replace with `pub(super) use qi_projects::PORTFOLIO_IDEAS_SQL;`
/// Ideas by site and period, as the projects service counts them for the portfolio summary
/// (`IDEAS_SQL` in `services/projects/src/portfolio.rs`).
pub(super) const PORTFOLIO_IDEAS_SQL: &str = "WITH daily AS (
       SELECT site, submit_date, state, count(*) AS n
       FROM idea
       WHERE ($1::text[] IS NULL OR site = ANY($1))
         AND ($2::date IS NULL OR submit_date >= $2)
         AND ($4::date IS NULL OR submit_date < $4)
       GROUP BY site, submit_date, state
     )
     SELECT site, CASE $3::text WHEN 'month' THEN date_trunc('month', submit_date::timestamp)::date
       WHEN 'quarter' THEN date_trunc('quarter', submit_date::timestamp)::date
       WHEN 'fy' THEN (date_trunc('year', submit_date::timestamp - interval '3 months')
         + interval '3 months')::date END AS period,
       sum(n)::bigint AS received,
       coalesce(sum(n) FILTER (WHERE state = 'submitted'), 0)::bigint AS submitted,
       coalesce(sum(n) FILTER (WHERE state = 'under_review'), 0)::bigint AS under_review,
       coalesce(sum(n) FILTER (WHERE state = 'accepted'), 0)::bigint AS accepted,
       coalesce(sum(n) FILTER (WHERE state = 'declined'), 0)::bigint AS declined,
       coalesce(sum(n) FILTER (WHERE state = 'merged'), 0)::bigint AS merged
     FROM daily GROUP BY 1, 2";

// TODO(lead): replace with `pub(super) use qi_projects::PORTFOLIO_PROJECTS_SQL;`
/// Projects by lead site, programme and period (`PROJECTS_SQL` there).
pub(super) const PORTFOLIO_PROJECTS_SQL: &str =
    "SELECT p.lead_site AS site, g.site AS programme_site, g.id AS programme_id,
       CASE $3::text WHEN 'month' THEN date_trunc('month', p.state_date::timestamp)::date
       WHEN 'quarter' THEN date_trunc('quarter', p.state_date::timestamp)::date
       WHEN 'fy' THEN (date_trunc('year', p.state_date::timestamp - interval '3 months')
         + interval '3 months')::date END AS period,
       count(*) FILTER (WHERE p.state = 'scoping') AS scoping,
       count(*) FILTER (WHERE p.state = 'in_progress') AS in_progress,
       count(*) FILTER (WHERE p.state = 'completed') AS completed,
       count(*) FILTER (WHERE p.state = 'stopped') AS stopped,
       count(*) FILTER (WHERE p.patient_partner_count > 0 OR p.engagement_count > 0) AS coproduced
     FROM project p LEFT JOIN programme g ON g.uid = p.programme_uid
     WHERE ($1::text[] IS NULL OR p.lead_site = ANY($1))
       AND ($2::date IS NULL OR p.state_date >= $2)
       AND ($4::date IS NULL OR p.state_date < $4)
       AND ($5::uuid IS NULL OR p.programme_uid = $5)
     GROUP BY 1, 2, 3, 4";
