//! The `portfolio` scenario: `GetPortfolioSummary` over 10,000 ideas and 2,000 projects,
//! through the gateway, one call at a time (service time, not queueing), against two
//! baselines measured in the same run: the summary's two SQL statements run straight on the
//! database from the bench, and a cheap read of the same service (`GetSite`) through the
//! gateway — so the figure splits into what PostgreSQL needs, what any call through the
//! gateway costs, and what the service adds.
//!
//! The fixture is loaded set-based inside PostgreSQL (`INSERT … SELECT FROM
//! generate_series` into the projects schema), not through the API: it takes well under a
//! second, where 10,000 `CreateIdea`s with their triage and 2,000 projects walked through
//! their states would be some 30,000 calls — a minute of load measuring writes (the
//! `database` scenario's job) before the read this scenario is about. The rows keep every
//! constraint of the schema, and the summary's totals are checked against the tables, so
//! the service reads exactly what was loaded.

use std::time::Instant;

use anyhow::Context as _;
use chrono::NaiveDate;
use qi_proto::projects as pb;
use qi_proto::projects::project_service_client::ProjectServiceClient;
use serde_json::{Map, json};

use super::headers::{bearer, with_header};
use super::peers::{PORTFOLIO_IDEAS_SQL, PORTFOLIO_PROJECTS_SQL};
use super::rounds::service_time;
use super::{Deployment, Effort, Outcome, Target};

/// The fixture, in order, with what each statement's parameters count ([`Size`]). Ids start with
/// `bench-` so a rerun against a kept database replaces its own rows only. Every fifth
/// idea is accepted into its own project while projects last, as ideas become projects;
/// every fifth is merged into the submitted idea before it; the rest are submitted, under
/// review or declined. Dates spread over five financial years, sites and programmes evenly.
const FIXTURE: [(&str, &[Size]); 7] = [
    ("INSERT INTO projects.site (code, display_name)
     VALUES ('BAS', 'Basildon'), ('BRM', 'Broomfield'), ('SOU', 'Southend')
     ON CONFLICT DO NOTHING", &[]),
    ("INSERT INTO projects.programme (uid, id, display_name, kind, theme)
     SELECT md5('bench-programme-' || n)::uuid, 'bench-programme-' || n, 'Programme ' || n,
            'thematic', 'Theme ' || n
     FROM generate_series(1, 20) n", &[]),
    ("INSERT INTO projects.project (uid, lead_site, id, title, state, state_date, start_date,
                                   end_date, stop_reason, outcome_summary, programme_uid,
                                   patient_partner_count, engagement_count)
     SELECT md5('bench-project-' || n)::uuid, (ARRAY['BAS', 'BRM', 'SOU'])[1 + n % 3],
            'bench-project-' || n, 'Project ' || n, s.state, s.d,
            CASE WHEN s.state <> 'scoping' THEN s.d END,
            CASE WHEN s.state IN ('completed', 'stopped') THEN s.d END,
            CASE WHEN s.state = 'stopped' THEN 'Stopped by the bench' END,
            CASE WHEN s.state = 'completed' THEN 'Completed by the bench' END,
            CASE WHEN n % 4 = 0 THEN md5('bench-programme-' || (1 + n % 20))::uuid END,
            (n % 5 = 0)::int, (n % 7 = 0)::int
     FROM generate_series(1, $1::int) n,
          LATERAL (SELECT (ARRAY['scoping', 'in_progress', 'completed', 'stopped'])[1 + n % 4] AS state,
                          date '2021-04-01' + (n * 7 % 1826) AS d) s",
     &[Size::Projects]),
    ("INSERT INTO projects.idea (uid, site, id, title, submitter, state, decline_reason,
                                project_uid, decision_time, submit_date)
     SELECT md5('bench-idea-' || n)::uuid, (ARRAY['BAS', 'BRM', 'SOU'])[1 + n % 3],
            'bench-idea-' || n, 'Idea ' || n, 'bench', s.state,
            CASE WHEN s.state = 'declined' THEN 'Declined by the bench' END,
            CASE WHEN s.state = 'accepted' THEN md5('bench-project-' || (n / 5 + 1))::uuid END,
            CASE WHEN s.state IN ('accepted', 'declined') THEN now() END,
            date '2021-04-01' + (n * 3 % 1826)
     FROM generate_series(0, $2::int - 1) n,
          LATERAL (SELECT CASE n % 5 WHEN 0 THEN 'submitted' WHEN 1 THEN 'under_review'
                                     WHEN 2 THEN 'declined'
                                     WHEN 3 THEN CASE WHEN n / 5 + 1 <= $1 THEN 'accepted'
                                                      ELSE 'under_review' END
                   END AS state) s
     WHERE n % 5 <> 4", &[Size::Projects, Size::Ideas]),
    ("INSERT INTO projects.idea (uid, site, id, title, submitter, state, merged_idea_uid,
                                decision_time, submit_date)
     SELECT md5('bench-idea-' || n)::uuid, (ARRAY['BAS', 'BRM', 'SOU'])[1 + n % 3],
            'bench-idea-' || n, 'Idea ' || n, 'bench', 'merged',
            md5('bench-idea-' || (n - 4))::uuid, now(), date '2021-04-01' + (n * 3 % 1826)
     FROM generate_series(0, $1::int - 1) n
     WHERE n % 5 = 4", &[Size::Ideas]),
    ("UPDATE projects.project p SET idea_uid = i.uid
     FROM projects.idea i WHERE i.project_uid = p.uid AND i.id LIKE 'bench-%'", &[]),
    // What autovacuum would do soon after a load this size: the planner sees real counts.
    ("ANALYZE projects.idea, projects.project, projects.programme", &[]),
];

/// A fixture statement's parameter.
#[derive(Clone, Copy)]
enum Size {
    Projects,
    Ideas,
}

/// Removes a previous run's fixture (only its own rows).
const CLEAR: [&str; 4] = [
    "UPDATE projects.project SET idea_uid = NULL WHERE id LIKE 'bench-%'",
    "DELETE FROM projects.idea WHERE id LIKE 'bench-%'",
    "DELETE FROM projects.project WHERE id LIKE 'bench-%'",
    "DELETE FROM projects.programme WHERE id LIKE 'bench-%'",
];

/// The summary's variants, lightest to heaviest: the target is judged on the heaviest.
const VARIANTS: [(&str, pb::PortfolioPeriod, Option<&str>); 3] = [
    ("whole range", pb::PortfolioPeriod::Unspecified, None),
    ("by quarter", pb::PortfolioPeriod::Quarter, Some("quarter")),
    ("by month", pb::PortfolioPeriod::Month, Some("month")),
];

/// `GetPortfolioSummary` over the fixture, against the raw SQL and a cheap read.
pub(super) async fn portfolio(d: &Deployment, effort: Effort) -> anyhow::Result<Outcome> {
    let (ideas, projects) = effort.portfolio;
    // Unqualified names, as the service's statements are: its schema on the search path.
    let raw = super::raw_pool(d, 2, Some("projects")).await?;
    eprintln!("  loading {ideas} ideas and {projects} projects…");
    let t = Instant::now();
    for sql in CLEAR {
        sqlx::query(sql).execute(&raw).await?;
    }
    let as_i32 = |n: usize| i32::try_from(n).context("fixture size");
    for (sql, sizes) in FIXTURE {
        let mut q = sqlx::query(sql).persistent(false);
        for size in sizes {
            q = q.bind(as_i32(match size {
                Size::Projects => projects,
                Size::Ideas => ideas,
            })?);
        }
        q.execute(&raw)
            .await
            .with_context(|| format!("loading the portfolio fixture: {sql}"))?;
    }
    let load_s = t.elapsed().as_secs_f64();
    let (all_ideas, all_projects): (i64, i64) =
        sqlx::query_as("SELECT (SELECT count(*) FROM idea), (SELECT count(*) FROM project)")
            .fetch_one(&raw)
            .await?;

    let token = bearer(&d.token("bench-portfolio", &["viewer"])?)?;
    let client = ProjectServiceClient::new(d.gateway.clone())
        .max_decoding_message_size(qi_platform::server::MAX_MESSAGE_BYTES);
    let summary = |period: pb::PortfolioPeriod| {
        let (client, token) = (client.clone(), token.clone());
        move || {
            let (mut c, t) = (client.clone(), token.clone());
            let req = pb::GetPortfolioSummaryRequest {
                parent: "sites/-".into(),
                period: period as i32,
                ..Default::default()
            };
            async move {
                c.get_portfolio_summary(with_header(req, "authorization", &t))
                    .await
                    .map(|_| ())
            }
        }
    };
    // The service reads what was loaded: its totals are the tables' counts.
    let totals = client
        .clone()
        .get_portfolio_summary(with_header(
            pb::GetPortfolioSummaryRequest {
                parent: "sites/-".into(),
                ..Default::default()
            },
            "authorization",
            &token,
        ))
        .await
        .context("GetPortfolioSummary")?
        .into_inner()
        .totals
        .unwrap_or_default();
    let counted = totals.projects_scoping
        + totals.projects_in_progress
        + totals.projects_completed
        + totals.projects_stopped;
    anyhow::ensure!(
        totals.ideas_received == all_ideas && counted == all_projects,
        "the summary counts {} ideas and {counted} projects; the tables hold {all_ideas} and {all_projects}",
        totals.ideas_received
    );

    let mut f = Map::new();
    f.insert("ideas".into(), json!(all_ideas));
    f.insert("projects".into(), json!(all_projects));
    f.insert("fixture load s (set-based SQL)".into(), json!(load_s));
    let cheap = {
        let (client, token) = (client.clone(), token.clone());
        move || {
            let (mut c, t) = (client.clone(), token.clone());
            async move {
                c.get_site(with_header(
                    pb::GetSiteRequest {
                        name: "sites/BAS".into(),
                    },
                    "authorization",
                    &t,
                ))
                .await
                .map(|_| ())
            }
        }
    };
    let (cheap_p50, _) =
        service_time(&mut f, "GetSite (a cheap read) via gateway", effort, cheap).await;
    let mut heaviest_p50 = f64::NAN;
    for (what, period, column) in VARIANTS {
        let (p50, _) = service_time(
            &mut f,
            &format!("GetPortfolioSummary {what} via gateway"),
            effort,
            summary(period),
        )
        .await;
        let pool = raw.clone();
        let sql = move || {
            let pool = pool.clone();
            async move {
                raw_summary(&pool, column)
                    .await
                    .map_err(|e| tonic::Status::internal(e.to_string()))
            }
        };
        let (sql_p50, _) = service_time(
            &mut f,
            &format!("raw SQL {what} (both statements)"),
            effort,
            sql,
        )
        .await;
        f.insert(format!("{what}: RPC over raw SQL ms"), json!(p50 - sql_p50));
        f.insert(
            format!("{what}: RPC over a cheap read ms"),
            json!(p50 - cheap_p50),
        );
        heaviest_p50 = p50;
    }
    for sql in CLEAR {
        sqlx::query(sql).execute(&raw).await?;
    }
    raw.close().await;
    Ok(Outcome {
        name: "portfolio",
        figures: f,
        targets: vec![Target::at_most(
            &format!(
                "portfolio summary by month over {all_ideas} ideas and {all_projects} projects, p50 (ms)"
            ),
            50.0,
            heaviest_p50,
        )],
    })
}

/// The summary's two statements, as the service runs them for a trust-wide caller.
async fn raw_summary(pool: &sqlx::PgPool, period: Option<&str>) -> Result<(), sqlx::Error> {
    #[expect(
        clippy::disallowed_methods,
        reason = "the raw-SQL baseline, outside any call"
    )]
    let mut conn = pool.acquire().await?;
    sqlx::query(PORTFOLIO_IDEAS_SQL)
        .bind(None::<Vec<String>>)
        .bind(None::<NaiveDate>)
        .bind(period)
        .bind(None::<NaiveDate>)
        .fetch_all(&mut *conn)
        .await?;
    sqlx::query(PORTFOLIO_PROJECTS_SQL)
        .bind(None::<Vec<String>>)
        .bind(None::<NaiveDate>)
        .bind(period)
        .bind(None::<NaiveDate>)
        .bind(None::<uuid::Uuid>)
        .fetch_all(&mut *conn)
        .await?;
    Ok(())
}
