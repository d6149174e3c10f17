//! ExplainSignal: what happened before a metric's special cause began. The run is found on
//! the metric's chart as the caller's sites' measurements draw it (so a one-site caller
//! explains its own chart); the events are those of the projects in scope that measure
//! the metric or work on one of its wards: PDSA cycles adopted, state changes, and the
//! cohorts their team members trained in.

use chrono::{Months, NaiveDate};
use qi_platform::convert::calendar_date;
use qi_platform::names::parse_accessible;
use qi_platform::{AccessContext, Error};
use qi_proto::insights as pb;
use qi_proto::projects as ppb;

use crate::InsightsApi;
use crate::readings::{Part, Series, reading_of};

/// Answers ExplainSignal.
pub(crate) async fn explain(
    api: &InsightsApi,
    ctx: AccessContext,
    req: pb::ExplainSignalRequest,
) -> Result<pb::ExplainSignalResponse, Error> {
    let pb::ExplainSignalRequest {
        metric,
        period,
        window_months,
    } = req;
    parse_accessible(&ctx, "metric", &metric, "metrics", false)?;
    let Some(period) = period.as_ref().and_then(calendar_date) else {
        return Err(Error::invalid(
            "period",
            "required: the first day of a period of the metric's chart",
        ));
    };
    let window = match window_months {
        0 => 6,
        n @ 1..=36 => n.unsigned_abs(),
        n => {
            return Err(Error::invalid(
                "window_months",
                format!("must be 1 to 36 (got {n}), or 0 for 6"),
            ));
        }
    };
    // The caller's sites: a site's metric is one of them (checked above).
    let sites: Vec<String> = match ctx.sites.sql_filter() {
        Some(held) => held,
        None => api.sites.iter().map(|s| s.as_str().to_owned()).collect(),
    };

    let mut tx = qi_platform::db::begin(&api.pool).await?;
    let names = [metric.clone()];
    let metrics = crate::readings::metrics(&mut tx, &names).await?;
    let Some(m) = metrics.get(&metric) else {
        return Err(Error::not_found(&metric));
    };
    let series = Series::read(&mut tx, &names, Some(&sites), false).await?;
    let Some((periods, chart)) = series.chart(m, Part::Seen) else {
        return Err(Error::FailedPrecondition {
            reason: "NOT_ENOUGH_DATA",
            message: format!("{metric} has too little data for an SPC chart"),
        });
    };
    let Some(at) = periods.iter().position(|p| *p == period) else {
        return Err(Error::invalid(
            "period",
            format!(
                "{metric}'s chart has no period {period} (its periods run from {} to {})",
                periods.first().copied().unwrap_or(period),
                periods.last().copied().unwrap_or(period),
            ),
        ));
    };
    let reading = reading_of(chart.points[at].point_type);
    if reading == pb::SpcReading::CommonCause {
        return Err(Error::FailedPrecondition {
            reason: "NO_SPECIAL_CAUSE",
            message: format!("period: {metric}'s point at {period} is common cause"),
        });
    }
    // The run: the neighbouring points that read the same way.
    let same = |i: usize| reading_of(chart.points[i].point_type) == reading;
    let first = (0..at).rev().take_while(|i| same(*i)).last().unwrap_or(at);
    let last = (at + 1..periods.len())
        .take_while(|i| same(*i))
        .last()
        .unwrap_or(at);
    let start = periods[first];
    let window_start = start
        .checked_sub_months(Months::new(window))
        .unwrap_or(start);

    // The projects in scope that measure the metric or work on one of its wards.
    let projects: Vec<String> = sqlx::query_scalar!(
        r#"WITH wards AS (
               SELECT ward FROM metric WHERE name = $1 AND ward <> ''
               UNION
               SELECT DISTINCT ward FROM measurement
               WHERE metric = $1 AND ward <> '' AND split_part(ward, '/', 2) = ANY($2))
           SELECT p.name AS "name!" FROM project p
           WHERE p.sites && $2
             AND (EXISTS (SELECT 1 FROM measure x WHERE x.project = p.name AND x.metric = $1)
                  OR p.wards && ARRAY(SELECT ward FROM wards))
           ORDER BY p.name"#,
        metric,
        &sites,
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut events = Vec::new();
    let mut event = |kind: pb::SignalEventKind,
                     date: NaiveDate,
                     project: String,
                     resource: String,
                     description: String| {
        events.push(pb::SignalEvent {
            kind: kind as i32,
            date: Some(qi_platform::convert::date(date)),
            days_before: i32::try_from((start - date).num_days()).unwrap_or(i32::MAX),
            project,
            resource,
            description,
        });
    };
    for c in sqlx::query!(
        r#"SELECT name, project, change_idea, coalesce(end_date, start_date) AS "on!"
           FROM pdsa_cycle
           WHERE project = ANY($1) AND decision = $2
             AND coalesce(end_date, start_date) BETWEEN $3 AND $4"#,
        &projects,
        ppb::PdsaDecision::Adopt as i32,
        window_start,
        start,
    )
    .fetch_all(&mut *tx)
    .await?
    {
        event(
            pb::SignalEventKind::PdsaAdopted,
            c.on,
            c.project,
            c.name,
            c.change_idea,
        );
    }
    for p in sqlx::query!(
        "SELECT name, title, state, start_date, end_date FROM project
         WHERE name = ANY($1)
           AND (start_date BETWEEN $2 AND $3 OR end_date BETWEEN $2 AND $3)",
        &projects,
        window_start,
        start,
    )
    .fetch_all(&mut *tx)
    .await?
    {
        let within = |d: Option<NaiveDate>| d.filter(|d| (window_start..=start).contains(d));
        if let Some(d) = within(p.start_date) {
            let (n, t) = (p.name.clone(), p.title.clone());
            event(pb::SignalEventKind::ProjectStarted, d, n.clone(), n, t);
        }
        let ended = match ppb::ProjectState::try_from(p.state) {
            Ok(ppb::ProjectState::Completed) => Some(pb::SignalEventKind::ProjectCompleted),
            Ok(ppb::ProjectState::Stopped) => Some(pb::SignalEventKind::ProjectStopped),
            _ => None,
        };
        if let (Some(kind), Some(d)) = (ended, within(p.end_date)) {
            event(kind, d, p.name.clone(), p.name, p.title);
        }
    }
    // Cohorts of the trust or of the sites in scope that the projects' team members
    // completed, dated by the cohort's start.
    for c in sqlx::query!(
        r#"SELECT t.project, co.name, co.display_name, co.start_date AS "start_date!",
                  count(DISTINCT t.staff) AS "members!"
           FROM team_member t
           JOIN completion c ON c.staff = t.staff
           JOIN cohort co ON co.name = c.cohort
           WHERE t.project = ANY($1) AND co.start_date BETWEEN $2 AND $3
             AND (co.site = '' OR co.site = ANY($4))
           GROUP BY 1, 2, 3, 4"#,
        &projects,
        window_start,
        start,
        &sites,
    )
    .fetch_all(&mut *tx)
    .await?
    {
        let trained = if c.members == 1 {
            "1 team member trained".to_owned()
        } else {
            format!("{} team members trained", c.members)
        };
        event(
            pb::SignalEventKind::CohortTrained,
            c.start_date,
            c.project,
            c.name,
            format!("{}: {trained}", c.display_name),
        );
    }
    tx.commit().await?;
    events.sort_by(|a, b| {
        (a.days_before, &a.resource, &a.project, a.kind).cmp(&(
            b.days_before,
            &b.resource,
            &b.project,
            b.kind,
        ))
    });
    Ok(pb::ExplainSignalResponse {
        metric,
        run: Some(pb::SignalRun {
            start_period: Some(qi_platform::convert::date(start)),
            end_period: Some(qi_platform::convert::date(periods[last])),
            reading: reading as i32,
            points: i32::try_from(last - first + 1).unwrap_or(i32::MAX),
        }),
        window_start: Some(qi_platform::convert::date(window_start)),
        events,
        projects,
    })
}
