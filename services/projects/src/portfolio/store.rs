//! The portfolio's two statements, one over ideas and one over projects, each a single
//! grouped scan, each in a `.sql` file beside this one: the service runs them checked at
//! build time, and the bench's raw-SQL peer runs the same text.

use chrono::NaiveDate;
use qi_platform::Error;
use sqlx::PgConnection;
use uuid::Uuid;

/// Ideas by site and period (`ideas.sql`). `$1` sites (NULL: all), `$2`/`$4` the date range
/// (NULL: open), `$3` the period: `month`, `quarter`, `fy` (NHS financial years, from 1
/// April), or NULL for no grouping in time. Two levels: one pass counts by site, day and
/// state (one aggregate a row, in the order of `idea_portfolio`, a covering index), then the
/// days fold into periods, so the period arithmetic and the per-state pivot run once a day
/// and state, not once a row.
pub const IDEAS_SQL: &str = include_str!("ideas.sql");

/// Projects by lead site, programme and period (`projects.sql`), the parameters as
/// [`IDEAS_SQL`]'s and `$5` one programme (NULL: all).
pub const PROJECTS_SQL: &str = include_str!("projects.sql");

/// Ideas received at a site in a period, by their state now.
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
    // The file IDEAS_SQL holds; the macros take a path, not a const.
    Ok(sqlx::query_file_as!(
        IdeaCell,
        "src/portfolio/ideas.sql",
        sites.as_deref(),
        from,
        period,
        before,
    )
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
    // The file PROJECTS_SQL holds.
    Ok(sqlx::query_file_as!(
        ProjectCell,
        "src/portfolio/projects.sql",
        sites.as_deref(),
        from,
        period,
        before,
        programme,
    )
    .fetch_all(&mut *conn)
    .await?)
}
