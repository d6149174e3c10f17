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

/// One stage of the funnel, as [`funnel`] counts it.
pub(super) struct FunnelRow {
    pub(super) state: String,
    pub(super) entered: i64,
    pub(super) median_days: Option<f64>,
    pub(super) conversion: Option<f64>,
    pub(super) waiting: i64,
    pub(super) overdue: i64,
}

/// The idea funnel (`funnel.sql`) for `sites` (`None`: all), over the ideas submitted from
/// `from` and before `before` (each `None`: open), from their history (`idea_event`): by
/// stage, the ideas that entered it, the median days spent in it over the ideas that left
/// it, the share that went on (submitted → under review or accepted; under review →
/// accepted), those in it now, and those in it for more than `review_days` days. One
/// window pass over the history, read in the order of its primary key.
pub(super) async fn funnel(
    conn: &mut PgConnection,
    sites: &Option<Vec<String>>,
    from: Option<NaiveDate>,
    before: Option<NaiveDate>,
    review_days: u32,
) -> Result<Vec<FunnelRow>, Error> {
    let days = i32::try_from(review_days).unwrap_or(i32::MAX);
    Ok(sqlx::query_file_as!(
        FunnelRow,
        "src/portfolio/funnel.sql",
        sites.as_deref(),
        from,
        before,
        days,
    )
    .fetch_all(&mut *conn)
    .await?)
}

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
    pub(super) lead_gone: i64,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{day, transaction};

    async fn idea(
        conn: &mut PgConnection,
        site: &str,
        state: &str,
        submitted: &str,
    ) -> anyhow::Result<()> {
        sqlx::query!(
            "INSERT INTO idea (uid, site, id, title, submitter, state, decline_reason, submit_date)
             VALUES ($1, $2, $1::uuid::text, 'Idea', 'A Nurse', $3,
                     CASE WHEN $3 = 'declined' THEN 'no' END, $4)",
            Uuid::now_v7(),
            site,
            state,
            day(submitted),
        )
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// A project led by `site` that entered `state` on `on`, of `programme` if given, with a
    /// patient partner when `coproduced`.
    async fn project(
        conn: &mut PgConnection,
        site: &str,
        state: &str,
        on: &str,
        programme: Option<Uuid>,
        coproduced: bool,
    ) -> anyhow::Result<()> {
        sqlx::query!(
            "INSERT INTO project (uid, lead_site, id, title, state, state_date, start_date,
                                  stop_reason, outcome_summary, programme_uid,
                                  patient_partner_count)
             VALUES ($1, $2, $1::uuid::text, 'Project', $3, $4::date,
                     CASE WHEN $3 <> 'scoping' THEN $4 END,
                     CASE WHEN $3 = 'stopped' THEN 'r' END,
                     CASE WHEN $3 = 'completed' THEN 'o' END, $5, $6)",
            Uuid::now_v7(),
            site,
            state,
            day(on),
            programme,
            i32::from(coproduced),
        )
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    type IdeaCounts = (String, Option<NaiveDate>, [i64; 6]);

    async fn idea_cells(
        conn: &mut PgConnection,
        sites: Option<Vec<String>>,
        from: Option<&str>,
        period: Option<&str>,
        before: Option<&str>,
    ) -> anyhow::Result<Vec<IdeaCounts>> {
        let mut cells: Vec<IdeaCounts> =
            ideas(conn, &sites, from.map(day), period, before.map(day))
                .await?
                .into_iter()
                .map(|c| {
                    let counts = [
                        c.received,
                        c.submitted,
                        c.under_review,
                        c.accepted,
                        c.declined,
                        c.merged,
                    ];
                    (c.site, c.period, counts)
                })
                .collect();
        cells.sort();
        Ok(cells)
    }

    #[tokio::test]
    async fn ideas_count_by_site_and_period_in_their_state_now() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        idea(&mut conn, "BAS", "submitted", "2026-03-31").await?;
        idea(&mut conn, "BAS", "declined", "2026-03-02").await?;
        idea(&mut conn, "BAS", "under_review", "2026-04-01").await?;
        idea(&mut conn, "SOU", "submitted", "2025-12-31").await?;
        let whole = idea_cells(&mut conn, None, None, None, None).await?;
        assert_eq!(
            whole,
            [
                ("BAS".into(), None, [3, 1, 1, 0, 1, 0]),
                ("SOU".into(), None, [1, 1, 0, 0, 0, 0])
            ]
        );
        let months = idea_cells(&mut conn, None, None, Some("month"), None).await?;
        assert_eq!(
            months,
            [
                ("BAS".into(), Some(day("2026-03-01")), [2, 1, 0, 0, 1, 0]),
                ("BAS".into(), Some(day("2026-04-01")), [1, 0, 1, 0, 0, 0]),
                ("SOU".into(), Some(day("2025-12-01")), [1, 1, 0, 0, 0, 0]),
            ]
        );
        // NHS financial years begin on 1 April: March 2026 is in 2025/26, with December.
        let years = idea_cells(&mut conn, None, None, Some("fy"), None).await?;
        let periods: Vec<_> = years
            .iter()
            .map(|(s, p, c)| (s.as_str(), *p, c[0]))
            .collect();
        assert_eq!(
            periods,
            [
                ("BAS", Some(day("2025-04-01")), 2),
                ("BAS", Some(day("2026-04-01")), 1),
                ("SOU", Some(day("2025-04-01")), 1),
            ]
        );
        let quarter = idea_cells(
            &mut conn,
            Some(vec!["BAS".into()]),
            Some("2026-03-02"),
            Some("quarter"),
            Some("2026-04-01"),
        )
        .await?;
        assert_eq!(
            quarter,
            [("BAS".into(), Some(day("2026-01-01")), [2, 1, 0, 0, 1, 0])]
        );
        Ok(())
    }

    #[tokio::test]
    async fn projects_count_by_site_programme_and_state_with_those_coproduced() -> anyhow::Result<()>
    {
        let mut conn = transaction().await?;
        let g = sqlx::query_scalar!(
            "INSERT INTO programme (uid, site, id, display_name, kind, theme)
             VALUES ($1, 'BAS', 'safety', 'Safety', 'thematic', 'Falls') RETURNING uid",
            Uuid::now_v7(),
        )
        .fetch_one(&mut *conn)
        .await?;
        project(&mut conn, "BAS", "scoping", "2026-01-10", None, false).await?;
        project(&mut conn, "BAS", "in_progress", "2026-02-10", Some(g), true).await?;
        project(&mut conn, "BAS", "completed", "2026-02-11", Some(g), false).await?;
        project(&mut conn, "SOU", "stopped", "2026-05-01", None, true).await?;
        let cells = async |conn: &mut PgConnection, period, programme| {
            let mut cells: Vec<_> = projects(conn, &None, None, period, None, programme)
                .await?
                .into_iter()
                .map(|c| {
                    let counts = [c.scoping, c.in_progress, c.completed, c.stopped];
                    (c.site, c.programme_id, c.period, counts, c.coproduced)
                })
                .collect();
            cells.sort();
            anyhow::Ok(cells)
        };
        let safety = Some("safety".to_owned());
        assert_eq!(
            cells(&mut conn, None, None).await?,
            [
                ("BAS".into(), None, None, [1, 0, 0, 0], 0),
                ("BAS".into(), safety.clone(), None, [0, 1, 1, 0], 1),
                ("SOU".into(), None, None, [0, 0, 0, 1], 1),
            ]
        );
        assert_eq!(
            cells(&mut conn, Some("quarter"), Some(g)).await?,
            [(
                "BAS".into(),
                safety,
                Some(day("2026-01-01")),
                [0, 1, 1, 0],
                1
            )]
        );
        let programme_sites: Vec<_> = projects(&mut conn, &None, None, None, None, Some(g))
            .await?
            .into_iter()
            .map(|c| c.programme_site)
            .collect();
        assert_eq!(programme_sites, [Some("BAS".to_owned())]);
        let sou = Some(vec!["SOU".to_owned()]);
        let dated = projects(
            &mut conn,
            &sou,
            Some(day("2026-05-01")),
            None,
            Some(day("2026-05-02")),
            None,
        )
        .await?;
        assert_eq!(dated.iter().map(|c| c.stopped).collect::<Vec<_>>(), [1]);
        let before = projects(&mut conn, &sou, None, None, Some(day("2026-05-01")), None).await?;
        assert!(before.is_empty());
        Ok(())
    }

    /// An idea of `site` submitted on `submitted`, with its history: each (state, instant)
    /// after its submission at midday.
    async fn idea_with_history(
        conn: &mut PgConnection,
        site: &str,
        submitted: &str,
        steps: &[(&str, &str)],
    ) -> anyhow::Result<()> {
        let uid = Uuid::now_v7();
        // The funnel reads only the history: the idea's own state can stay as submitted.
        sqlx::query!(
            "INSERT INTO idea (uid, site, id, title, submitter, submit_date)
             VALUES ($1, $2, $1::uuid::text, 'Idea', 'A Nurse', $3)",
            uid,
            site,
            day(submitted),
        )
        .execute(&mut *conn)
        .await?;
        let at = format!("{submitted}T12:00:00Z");
        let all = std::iter::once(("submitted", at.as_str())).chain(steps.iter().copied());
        for (seq, (state, at)) in (1..).zip(all) {
            sqlx::query!(
                "INSERT INTO idea_event (idea_uid, seq, state, event_time, actor)
                 VALUES ($1, $2, $3, $4, 'test')",
                uid,
                seq,
                state,
                at.parse::<chrono::DateTime<chrono::Utc>>()?,
            )
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }

    #[tokio::test]
    async fn the_funnel_counts_each_stage_its_median_stay_its_conversion_and_the_overdue()
    -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        // Reviewed after 2 days, accepted after 10 more.
        let reviewed = ("under_review", "2026-03-03T12:00:00Z");
        idea_with_history(
            &mut conn,
            "BAS",
            "2026-03-01",
            &[reviewed, ("accepted", "2026-03-13T12:00:00Z")],
        )
        .await?;
        // Reviewed after 4 days, declined after 1, reopened 1 later, still under review.
        idea_with_history(
            &mut conn,
            "BAS",
            "2026-03-01",
            &[
                ("under_review", "2026-03-05T12:00:00Z"),
                ("declined", "2026-03-06T12:00:00Z"),
                ("under_review", "2026-03-07T12:00:00Z"),
            ],
        )
        .await?;
        // Declined straight after 6 days.
        idea_with_history(
            &mut conn,
            "BAS",
            "2026-03-01",
            &[("declined", "2026-03-07T12:00:00Z")],
        )
        .await?;
        // Waiting, long past any deadline; and one of SOU, not asked for below.
        idea_with_history(&mut conn, "BAS", "2026-03-02", &[]).await?;
        idea_with_history(&mut conn, "SOU", "2026-03-01", &[reviewed]).await?;
        let bas = Some(vec!["BAS".to_owned()]);
        let mut stages: Vec<_> = funnel(&mut conn, &bas, None, None, 30)
            .await?
            .into_iter()
            .map(|r| {
                let median = r.median_days.map(|d| (d * 100.0).round() / 100.0);
                let conversion = r.conversion.map(|c| (c * 100.0).round() / 100.0);
                (r.state, r.entered, median, conversion, r.waiting, r.overdue)
            })
            .collect();
        stages.sort_by(|a, b| a.0.cmp(&b.0));
        let f = |x: f64| Some(x);
        assert_eq!(
            stages,
            [
                ("accepted".to_owned(), 1, None, None, 1, 0),
                ("declined".to_owned(), 2, None, None, 1, 0),
                // Submitted: 2, 4 and 6 days (the waiting one has not left); 2 of 4 went on.
                ("submitted".to_owned(), 4, f(4.0), f(0.5), 1, 1),
                // Under review: 10 days; the reopened idea's two visits are one stay, open.
                ("under_review".to_owned(), 2, f(10.0), f(0.5), 1, 1),
            ]
        );
        // The range is the submission's: only the waiting idea was submitted on 2 March.
        let late = funnel(&mut conn, &bas, Some(day("2026-03-02")), None, 30).await?;
        let entered: Vec<_> = late.iter().map(|r| (r.state.as_str(), r.entered)).collect();
        assert_eq!(entered, [("submitted", 1)]);
        // A deadline longer than the wait: nothing overdue.
        let lenient = funnel(&mut conn, &bas, None, None, 3650).await?;
        assert!(lenient.iter().all(|r| r.overdue == 0));
        Ok(())
    }
}
