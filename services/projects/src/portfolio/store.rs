//! The portfolio's two statements, one over ideas and one over projects, each a single
//! grouped scan.

use chrono::NaiveDate;
use qi_platform::Error;
use sqlx::PgConnection;
use uuid::Uuid;

/// The first day of the period holding the date expression `{d}`, for `$3`: `month`,
/// `quarter`, `fy` (NHS financial years, from 1 April), or NULL for no grouping in time.
macro_rules! period_of {
    ($d:literal) => {
        concat!(
            "CASE $3::text WHEN 'month' THEN date_trunc('month', ",
            $d,
            "::timestamp)::date ",
            "WHEN 'quarter' THEN date_trunc('quarter', ",
            $d,
            "::timestamp)::date ",
            "WHEN 'fy' THEN (date_trunc('year', ",
            $d,
            "::timestamp - interval '3 months') ",
            "+ interval '3 months')::date END"
        )
    };
}

/// Ideas by site and period. `$1` sites (NULL: all), `$2`/`$4` the date range (NULL: open).
/// Two levels: one pass counts by site, day and state (one aggregate a row, in the order of
/// `idea_portfolio`, a covering index), then the days fold into periods, so the period
/// arithmetic and the per-state pivot run once a day and state, not once a row.
pub const IDEAS_SQL: &str = concat!(
    "WITH daily AS (
       SELECT site, submit_date, state, count(*) AS n
       FROM idea
       WHERE ($1::text[] IS NULL OR site = ANY($1))
         AND ($2::date IS NULL OR submit_date >= $2)
         AND ($4::date IS NULL OR submit_date < $4)
       GROUP BY site, submit_date, state
     )
     SELECT site, ",
    period_of!("submit_date"),
    " AS period,
       sum(n)::bigint AS received,
       coalesce(sum(n) FILTER (WHERE state = 'submitted'), 0)::bigint AS submitted,
       coalesce(sum(n) FILTER (WHERE state = 'under_review'), 0)::bigint AS under_review,
       coalesce(sum(n) FILTER (WHERE state = 'accepted'), 0)::bigint AS accepted,
       coalesce(sum(n) FILTER (WHERE state = 'declined'), 0)::bigint AS declined,
       coalesce(sum(n) FILTER (WHERE state = 'merged'), 0)::bigint AS merged
     FROM daily GROUP BY 1, 2"
);

/// Projects by lead site, programme and period; `$5` one programme (NULL: all).
pub const PROJECTS_SQL: &str = concat!(
    "SELECT p.lead_site AS site, g.site AS programme_site, g.id AS programme_id, ",
    period_of!("p.state_date"),
    " AS period,
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
     GROUP BY 1, 2, 3, 4"
);

/// Ideas received at a site in a period, by their state now.
#[derive(sqlx::FromRow)]
pub(super) struct IdeaCell {
    pub(super) site: String,
    pub(super) period: Option<NaiveDate>,
    pub(super) received: i64,
    pub(super) submitted: i64,
    pub(super) under_review: i64,
    pub(super) accepted: i64,
    pub(super) declined: i64,
    pub(super) merged: i64,
}

/// Projects led by a site, of a programme, that entered their state in a period.
#[derive(sqlx::FromRow)]
pub(super) struct ProjectCell {
    pub(super) site: String,
    pub(super) programme_site: Option<String>,
    pub(super) programme_id: Option<String>,
    pub(super) period: Option<NaiveDate>,
    pub(super) scoping: i64,
    pub(super) in_progress: i64,
    pub(super) completed: i64,
    pub(super) stopped: i64,
    pub(super) coproduced: i64,
}

/// Ideas by site and period, for `sites` (`None`: all), submitted from `from` and before
/// `before` (each `None`: open), in periods of `period` (`None`: no grouping in time).
pub(super) async fn ideas(
    conn: &mut PgConnection,
    sites: &Option<Vec<String>>,
    from: Option<NaiveDate>,
    period: Option<&str>,
    before: Option<NaiveDate>,
) -> Result<Vec<IdeaCell>, Error> {
    Ok(sqlx::query_as(IDEAS_SQL)
        .bind(sites)
        .bind(from)
        .bind(period)
        .bind(before)
        .fetch_all(&mut *conn)
        .await?)
}

/// Projects by lead site, programme and period, as [`ideas`] and of one programme if given.
pub(super) async fn projects(
    conn: &mut PgConnection,
    sites: &Option<Vec<String>>,
    from: Option<NaiveDate>,
    period: Option<&str>,
    before: Option<NaiveDate>,
    programme: Option<Uuid>,
) -> Result<Vec<ProjectCell>, Error> {
    Ok(sqlx::query_as(PROJECTS_SQL)
        .bind(sites)
        .bind(from)
        .bind(period)
        .bind(before)
        .bind(programme)
        .fetch_all(&mut *conn)
        .await?)
}
