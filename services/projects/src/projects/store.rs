//! The `project` and `benefit` tables: creating, finding, reading and paging projects,
//! and the writes of their updates and lifecycle moves.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use qi_platform::convert::{date, etag, timestamp};
use qi_platform::extract::Order;
use qi_platform::names::Owner;
use qi_platform::names::OwnerAccess as _;
use qi_platform::paging::Page;
use qi_platform::{Error, SiteCode};
use qi_proto::projects as pb;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{Benefit, COLLECTION, Fields, ProjectRef};
use crate::stored::{Column, fetch_optional_locked, from_optional, unexpected};

/// `query_as!` into [`ProjectRef`] of `$head`, the reference's columns, then `$tail`: the
/// columns are written once, and every statement is still checked at build time.
macro_rules! project_refs {
    ($head:literal, $tail:literal $(+ $more:literal)*, $($arg:expr),* $(,)?) => {
        sqlx::query_as!(
            ProjectRef,
            $head
                + "uid, lead_site, id, state, revision, participating_sites, start_date, \
                   aim_statement IS NOT NULL AS \"has_aim!\", \
                   (problem_statement <> '' OR charter_exempt) AS \"has_problem!\""
                + $tail $(+ $more)*,
            $($arg),*
        )
    };
}

/// Calls the query macro `$query` with its own arguments, then the project's [`Fields`]
/// `$f` (with `$programme`, the programme's uid) in the order both the insert and the
/// update write them, then `$tail`: the list is written once.
macro_rules! with_fields {
    ($($query:ident)::+!($($args:tt)*), $f:ident, $programme:expr $(, $tail:expr)* $(,)?) => {{
        let aim = $f.aim.as_ref();
        $($query)::+!(
            $($args)*
            $f.title,
            $f.description,
            $f.participating_sites.as_slice(),
            $f.wards.as_slice(),
            $programme,
            $f.cohort,
            aim.map(|a| &a.statement),
            aim.map(|a| &a.measure),
            aim.and_then(|a| a.metric.as_ref()),
            aim.map(|a| a.baseline),
            aim.map(|a| a.target),
            aim.map(|a| &a.unit),
            aim.and_then(|a| a.target_date),
            $f.patient_involvement,
            $f.problem_statement,
            $f.scope_in,
            $f.scope_out,
            $f.stakeholders.as_slice(),
            $f.expected_benefits.as_slice(),
            $f.qsir_phase,
            $f.theme,
            $($tail),*
        )
    }};
}

/// Finds a project by its lead site and id, locking its row when `lock`.
pub(super) async fn find(
    conn: &mut PgConnection,
    lead: &SiteCode,
    id: &str,
    lock: bool,
) -> Result<Option<ProjectRef>, Error> {
    Ok(fetch_optional_locked!(
        conn,
        lock,
        project_refs!(
            "SELECT ",
            " FROM project WHERE lead_site = $1 AND id = $2",
            lead.as_str(),
            id,
        )
    ))
}

/// Finds a project by its id alone, if one of `sites` (`None`: any) leads it or takes part.
pub(super) async fn find_in(
    conn: &mut PgConnection,
    id: &str,
    sites: Option<Vec<String>>,
) -> Result<Option<ProjectRef>, Error> {
    Ok(project_refs!(
        "SELECT ",
        " FROM project
         WHERE id = $1
           AND ($2::text[] IS NULL OR lead_site = ANY($2) OR participating_sites && $2)",
        id,
        sites.as_deref(),
    )
    .fetch_optional(&mut *conn)
    .await?)
}

/// The names of the projects of these uids (those not stored are left out).
pub(crate) async fn names_of(
    conn: &mut PgConnection,
    uids: &[Uuid],
) -> Result<HashMap<Uuid, String>, Error> {
    let rows = sqlx::query!(
        "SELECT uid, lead_site, id FROM project WHERE uid = ANY($1)",
        uids
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.uid,
                format!("sites/{}/{COLLECTION}/{}", r.lead_site, r.id),
            )
        })
        .collect())
}

/// The uid of the project `id` (under `lead` when given) if `site` leads it or takes part
/// in it.
pub(crate) async fn find_for_site(
    conn: &mut PgConnection,
    id: &str,
    lead: Option<&str>,
    site: &str,
) -> Result<Option<Uuid>, Error> {
    Ok(sqlx::query_scalar!(
        "SELECT uid FROM project
         WHERE id = $1 AND ($2::text IS NULL OR lead_site = $2)
           AND (lead_site = $3 OR $3 = ANY(participating_sites))",
        id,
        lead,
        site,
    )
    .fetch_optional(&mut *conn)
    .await?)
}

/// Inserts a project in SCOPING; `AlreadyExists` when the id is taken anywhere in the trust.
pub(crate) async fn insert(
    conn: &mut PgConnection,
    lead: &SiteCode,
    id: &str,
    f: &Fields,
    programme_uid: Option<Uuid>,
    idea_uid: Option<Uuid>,
) -> Result<ProjectRef, Error> {
    let row = with_fields!(
        project_refs!(
            "INSERT INTO project (uid, lead_site, id, title, description, participating_sites,
                                  wards, programme_uid, cohort, aim_statement, aim_measure,
                                  aim_metric, aim_baseline, aim_target, aim_unit, aim_date,
                                  patient_involvement, problem_statement, scope_in, scope_out,
                                  stakeholders, expected_benefits, qsir_phase, theme, idea_uid)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                     $17, $18, $19, $20, $21, $22, $23, $24, $25)
             ON CONFLICT (id) DO NOTHING
             RETURNING ",
            "",
            Uuid::now_v7(),
            lead.as_str(),
            id,
        ),
        f,
        programme_uid,
        idea_uid,
    )
    .fetch_optional(&mut *conn)
    .await?;
    // The id may be taken at a site the caller cannot see: say only that it is taken.
    row.ok_or_else(|| Error::AlreadyExists {
        name: format!("project id `{id}` (project ids are unique across the trust)"),
    })
}

struct ProjectRow {
    uid: Uuid,
    lead_site: String,
    id: String,
    title: String,
    description: String,
    participating_sites: Vec<String>,
    wards: Vec<String>,
    cohort: Option<String>,
    programme_site: Option<String>,
    programme_id: Option<String>,
    idea_site: Option<String>,
    idea_id: Option<String>,
    aim_statement: Option<String>,
    aim_measure: Option<String>,
    aim_metric: Option<String>,
    aim_baseline: Option<f64>,
    aim_target: Option<f64>,
    aim_unit: Option<String>,
    aim_date: Option<NaiveDate>,
    state: String,
    start_date: Option<NaiveDate>,
    end_date: Option<NaiveDate>,
    stop_reason: Option<String>,
    outcome_summary: Option<String>,
    progress_score: Option<f64>,
    patient_involvement: Option<String>,
    problem_statement: String,
    scope_in: String,
    scope_out: String,
    stakeholders: Vec<String>,
    expected_benefits: Vec<String>,
    qsir_phase: Option<String>,
    theme: String,
    patient_partner_count: i32,
    engagement_count: i32,
    create_time: chrono::DateTime<chrono::Utc>,
    update_time: chrono::DateTime<chrono::Utc>,
    revision: i64,
}

/// `query_as!` into [`ProjectRow`] of the project's columns (with its programme's and
/// idea's names) and `$tail`: the columns are written once, and every statement is still
/// checked at build time.
macro_rules! project_rows {
    ($tail:literal, $($arg:expr),* $(,)?) => {
        sqlx::query_as!(
            ProjectRow,
            // `?`: NULL without a programme or idea (outer joins sqlx cannot always see).
            r#"SELECT p.uid, p.lead_site, p.id, p.title, p.description, p.participating_sites,
                    p.wards, p.cohort, g.site AS "programme_site?", g.id AS "programme_id?",
                    i.site AS "idea_site?", i.id AS "idea_id?", p.aim_statement, p.aim_measure,
                    p.aim_metric, p.aim_baseline, p.aim_target, p.aim_unit, p.aim_date, p.state,
                    p.start_date, p.end_date, p.stop_reason, p.outcome_summary, p.progress_score,
                    p.patient_involvement, p.problem_statement, p.scope_in, p.scope_out,
                    p.stakeholders, p.expected_benefits, p.qsir_phase, p.theme,
                    p.patient_partner_count, p.engagement_count,
                    p.create_time, p.update_time, p.revision
             FROM project p LEFT JOIN programme g ON g.uid = p.programme_uid
                  LEFT JOIN idea i ON i.uid = p.idea_uid"#
                + $tail,
            $($arg),*
        )
    };
}

struct BenefitRow {
    project_uid: Uuid,
    kind: String,
    value: f64,
    unit: String,
    description: String,
}

fn to_proto(r: ProjectRow, benefits: Vec<pb::Benefit>) -> Result<pb::Project, Error> {
    let aim = match (r.aim_statement, r.aim_measure, r.aim_unit, r.aim_date) {
        (Some(statement), Some(measure), Some(unit), Some(target_date)) => Some(pb::Aim {
            statement,
            measure,
            metric: r.aim_metric.unwrap_or_default(),
            baseline: r.aim_baseline,
            target: r.aim_target,
            unit,
            target_date: Some(date(target_date)),
        }),
        _ => None,
    };
    let programme = match r.programme_id {
        Some(id) => Owner::from_column(r.programme_site)?.child(crate::programmes::COLLECTION, &id),
        None => String::new(),
    };
    let idea = match (r.idea_site, r.idea_id) {
        (Some(site), Some(id)) => format!("sites/{site}/{}/{id}", crate::ideas::COLLECTION),
        _ => String::new(),
    };
    Ok(pb::Project {
        name: format!("sites/{}/{COLLECTION}/{}", r.lead_site, r.id),
        title: r.title,
        description: r.description,
        idea,
        aim,
        participating_sites: r
            .participating_sites
            .iter()
            .map(|s| format!("sites/{s}"))
            .collect(),
        wards: r.wards,
        programme,
        cohort: r.cohort.unwrap_or_default(),
        state: pb::ProjectState::from_column(&r.state)? as i32,
        start_date: r.start_date.map(date),
        end_date: r.end_date.map(date),
        stop_reason: r.stop_reason.unwrap_or_default(),
        progress_score: r.progress_score.unwrap_or(0.0),
        patient_involvement: from_optional::<pb::PatientInvolvement>(
            r.patient_involvement.as_deref(),
        )?,
        patient_partner_count: r.patient_partner_count,
        engagement_activity_count: r.engagement_count,
        coproduced: r.patient_partner_count > 0 || r.engagement_count > 0,
        outcome: r
            .outcome_summary
            .map(|summary| pb::Outcome { summary, benefits }),
        create_time: Some(timestamp(r.create_time)),
        update_time: Some(timestamp(r.update_time)),
        etag: etag(r.revision),
        problem_statement: r.problem_statement,
        scope_in: r.scope_in,
        scope_out: r.scope_out,
        stakeholders: r.stakeholders,
        expected_benefits: r
            .expected_benefits
            .iter()
            .map(|k| Ok(pb::BenefitKind::from_column(k)? as i32))
            .collect::<Result<_, Error>>()?,
        qsir_phase: from_optional::<pb::QsirPhase>(r.qsir_phase.as_deref())?,
        theme: r.theme,
    })
}

/// Turns rows into projects, reading their benefits in one query.
async fn assemble(
    conn: &mut PgConnection,
    rows: Vec<ProjectRow>,
) -> Result<Vec<pb::Project>, Error> {
    let completed: Vec<Uuid> = rows
        .iter()
        .filter(|r| r.outcome_summary.is_some())
        .map(|r| r.uid)
        .collect();
    let mut benefits: Vec<BenefitRow> = if completed.is_empty() {
        Vec::new()
    } else {
        sqlx::query_as!(
            BenefitRow,
            "SELECT project_uid, kind, value, unit, description FROM benefit
             WHERE project_uid = ANY($1) ORDER BY project_uid, position",
            &completed,
        )
        .fetch_all(&mut *conn)
        .await?
    };
    rows.into_iter()
        .map(|r| {
            let mine: Vec<pb::Benefit> = benefits
                .extract_if(.., |b| b.project_uid == r.uid)
                .map(|b| {
                    Ok(pb::Benefit {
                        kind: pb::BenefitKind::from_column(&b.kind)? as i32,
                        value: b.value,
                        unit: b.unit,
                        description: b.description,
                    })
                })
                .collect::<Result<_, Error>>()?;
            to_proto(r, mine)
        })
        .collect()
}

/// Reads one project by its internal id.
pub(crate) async fn read(conn: &mut PgConnection, uid: Uuid) -> Result<pb::Project, Error> {
    let row = project_rows!(" WHERE p.uid = $1", uid)
        .fetch_one(&mut *conn)
        .await?;
    assemble(conn, vec![row])
        .await?
        .pop()
        .ok_or_else(|| unexpected("project", "vanished"))
}

/// What a page of projects is chosen by.
#[derive(Debug, Default)]
pub(super) struct ListFilter {
    /// Projects one of these sites leads or takes part in (`None`: any).
    pub(super) sites: Option<Vec<String>>,
    /// The filter's terms, with the request's `state` and `programme`.
    pub(super) terms: super::filter::Terms,
    /// Whose team holds this staff name (canonical), if given.
    pub(super) member: Option<String>,
    /// Newest first, or oldest change first.
    pub(super) order: Order,
}

/// One page of projects, newest first, as `filter` chooses them. A member's (or lead's)
/// projects are read first, by the person (`team_member_staff`), and then found by their
/// keys: an `EXISTS` under the filter's `OR` stays a subplan, run against every project in
/// turn.
pub(super) async fn list(
    conn: &mut PgConnection,
    filter: &ListFilter,
    (after, after_time): (Option<Uuid>, Option<DateTime<Utc>>),
    page: &Page,
) -> Result<(Vec<pb::Project>, String), Error> {
    let t = &filter.terms;
    let by_change = filter.order == Order::UpdateTime;
    let programme = t.programme.as_ref();
    let rows = project_rows!(
        "
         WHERE ($1::text[] IS NULL OR p.lead_site = ANY($1) OR p.participating_sites && $1)
           AND ($2::text IS NULL OR p.state = $2)
           AND ($3::boolean IS NOT TRUE OR (coalesce(g.site, '') = coalesce($4, '') AND g.id = $5))
           AND ($6::uuid IS NULL OR CASE WHEN $20 THEN (p.update_time, p.uid) > ($21, $6)
                                         ELSE p.uid < $6 END)
           AND ($22::timestamptz IS NULL OR p.update_time >= $22)
           AND ($23::timestamptz IS NULL OR p.update_time < $23)
           AND ($8::text IS NULL OR p.uid = ANY (ARRAY(
                SELECT t.project_uid FROM team_member t WHERE t.staff = $8)))
           AND ($9::text IS NULL OR p.qsir_phase = $9)
           AND NOT (coalesce(p.qsir_phase, '') = ANY($10))
           AND NOT (p.state = ANY($11))
           AND ($12::text IS NULL OR $12 = ANY(p.wards))
           AND ($13::text IS NULL OR p.uid = ANY (ARRAY(
                SELECT t.project_uid FROM team_member t WHERE t.staff = $13 AND t.role = 'lead')))
           AND ($14::text IS NULL OR lower(p.theme) = $14)
           AND NOT (lower(p.theme) = ANY($15))
           AND ($16::text IS NULL OR lower(p.title) LIKE $16 OR lower(p.description) LIKE $16
                OR lower(p.problem_statement) LIKE $16 OR lower(p.aim_statement) LIKE $16)
           AND ($17::date IS NULL OR p.start_date >= $17)
           AND ($18::date IS NULL OR p.start_date < $18)
           AND ($19::text IS NULL OR EXISTS (
                SELECT 1 FROM team_member t JOIN staff_place s ON s.staff = t.staff
                WHERE t.project_uid = p.uid AND t.role = 'lead'
                  AND CASE WHEN NOT s.active THEN $19 IN ('left', 'gone')
                           ELSE $19 IN ('moved', 'gone')
                                AND s.site <> p.lead_site
                                AND NOT s.site = ANY(p.participating_sites) END))
         ORDER BY CASE WHEN $20 THEN p.update_time END, CASE WHEN $20 THEN p.uid END,
                  p.uid DESC
         LIMIT $7",
        filter.sites.as_deref(),
        t.state,
        programme.is_some(),
        programme.and_then(|(s, _)| s.as_deref()),
        programme.map(|(_, id)| id.as_str()),
        after,
        page.limit(),
        filter.member,
        t.phase,
        t.not_phases.as_slice(),
        t.not_states.as_slice(),
        t.ward,
        t.lead,
        t.theme,
        t.not_themes.as_slice(),
        t.text,
        t.started_from,
        t.started_before,
        t.lead_status,
        by_change,
        after_time,
        t.updated.from,
        t.updated.before,
    )
    .fetch_all(&mut *conn)
    .await?;
    let (rows, next) = page.finish(rows, |r| filter.order.key(r.uid.to_string(), r.update_time));
    Ok((assemble(conn, rows).await?, next))
}

/// Writes a project's fields.
pub(super) async fn update(
    conn: &mut PgConnection,
    uid: Uuid,
    f: &Fields,
    programme_uid: Option<Uuid>,
) -> Result<(), Error> {
    with_fields!(
        sqlx::query!(
            "UPDATE project SET title = $2, description = $3, participating_sites = $4,
                    wards = $5, programme_uid = $6, cohort = $7, aim_statement = $8,
                    aim_measure = $9, aim_metric = $10, aim_baseline = $11, aim_target = $12,
                    aim_unit = $13, aim_date = $14, patient_involvement = $15,
                    problem_statement = $16, scope_in = $17, scope_out = $18,
                    stakeholders = $19, expected_benefits = $20, qsir_phase = $21, theme = $22
             WHERE uid = $1",
            uid,
        ),
        f,
        programme_uid,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Starts a project on `start`.
pub(super) async fn start(
    conn: &mut PgConnection,
    uid: Uuid,
    start: NaiveDate,
) -> Result<(), Error> {
    sqlx::query!(
        "UPDATE project SET state = 'in_progress', start_date = $2, state_date = $2 WHERE uid = $1",
        uid,
        start,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Completes a project on `end` with its outcome: a summary and its benefits, in order.
pub(super) async fn complete(
    conn: &mut PgConnection,
    uid: Uuid,
    end: NaiveDate,
    summary: &str,
    benefits: Vec<Benefit>,
) -> Result<(), Error> {
    sqlx::query!(
        "UPDATE project SET state = 'completed', end_date = $2, state_date = $2,
                outcome_summary = $3
         WHERE uid = $1",
        uid,
        end,
        summary,
    )
    .execute(&mut *conn)
    .await?;
    let (kinds, values, units, descriptions): (Vec<_>, Vec<_>, Vec<_>, Vec<_>) = benefits
        .into_iter()
        .fold(Default::default(), |mut acc, (k, val, u, d)| {
            acc.0.push(k);
            acc.1.push(val);
            acc.2.push(u);
            acc.3.push(d);
            acc
        });
    sqlx::query!(
        "INSERT INTO benefit (project_uid, position, kind, value, unit, description)
         SELECT $1, b.ord, b.kind, b.value, b.unit, b.description
         FROM unnest($2::text[], $3::float8[], $4::text[], $5::text[])
              WITH ORDINALITY AS b(kind, value, unit, description, ord)",
        uid,
        &kinds,
        &values,
        &units,
        &descriptions,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Stops a project on `end`, with a reason.
pub(super) async fn stop(
    conn: &mut PgConnection,
    uid: Uuid,
    end: NaiveDate,
    reason: &str,
) -> Result<(), Error> {
    sqlx::query!(
        "UPDATE project SET state = 'stopped', end_date = $2, state_date = $2, stop_reason = $3
         WHERE uid = $1",
        uid,
        end,
        reason,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::projects::AimFields;
    use crate::testing::{after_uid, day, everything, pages, project, site, transaction};

    fn fields(title: &str) -> Fields {
        Fields {
            title: title.to_owned(),
            description: "Fewer falls".into(),
            aim: Some(AimFields {
                statement: "Halve falls by March".into(),
                measure: "Falls per 1,000 bed days".into(),
                metric: Some("sites/BAS/metrics/falls".into()),
                baseline: 8.0,
                target: 4.0,
                unit: "per 1,000 bed days".into(),
                target_date: Some(day("2027-03-31")),
            }),
            participating_sites: vec!["SOU".into()],
            wards: vec!["sites/BAS/wards/w1".into()],
            programme: None,
            cohort: Some("sites/BAS/cohorts/c1".into()),
            patient_involvement: Some("consulting"),
            problem_statement: "Falls at night, unwitnessed".into(),
            scope_in: "Adult inpatients".into(),
            scope_out: "Day cases".into(),
            stakeholders: vec!["Night staff".into(), "Physiotherapy".into()],
            expected_benefits: vec!["harm_events_avoided".into(), "bed_days_saved".into()],
            qsir_phase: Some("define_and_scope"),
            theme: "Falls".into(),
        }
    }

    /// A trust-wide thematic programme `id`, stored directly: its own store is private to it.
    async fn programme(conn: &mut PgConnection, id: &str) -> anyhow::Result<Uuid> {
        Ok(sqlx::query_scalar!(
            "INSERT INTO programme (uid, id, display_name, kind, theme)
             VALUES ($1, $2, 'Programme', 'thematic', 'Falls') RETURNING uid",
            Uuid::now_v7(),
            id,
        )
        .fetch_one(&mut *conn)
        .await?)
    }

    fn names(ps: &[pb::Project]) -> Vec<&str> {
        ps.iter().map(|p| p.name.as_str()).collect()
    }

    #[tokio::test]
    async fn an_insert_reads_back_whole_and_a_taken_id_is_refused_at_any_site() -> anyhow::Result<()>
    {
        let mut conn = transaction().await?;
        let g = programme(&mut conn, "safety").await?;
        let made = insert(
            &mut conn,
            &site("BAS"),
            "falls",
            &fields("Falls"),
            Some(g),
            None,
        )
        .await?;
        assert_eq!(
            (made.lead_site.as_str(), made.id.as_str()),
            ("BAS", "falls")
        );
        assert_eq!((made.state.as_str(), made.revision), ("scoping", 1));
        assert!(made.has_aim && made.has_problem);
        assert_eq!(made.participating_sites, ["SOU"]);
        let got = read(&mut conn, made.uid).await?;
        assert_eq!(
            (
                got.problem_statement.as_str(),
                got.scope_in.as_str(),
                got.scope_out.as_str()
            ),
            (
                "Falls at night, unwitnessed",
                "Adult inpatients",
                "Day cases"
            )
        );
        assert_eq!(got.stakeholders, ["Night staff", "Physiotherapy"]);
        use pb::BenefitKind as B;
        let expected = [B::HarmEventsAvoided as i32, B::BedDaysSaved as i32];
        assert_eq!(got.expected_benefits, expected);
        assert_eq!(
            (got.qsir_phase(), got.theme.as_str()),
            (pb::QsirPhase::DefineAndScope, "Falls")
        );
        // Without a problem statement a new project is not ready to start.
        let bare = Fields {
            problem_statement: String::new(),
            ..fields("Bare")
        };
        let bare = insert(&mut conn, &site("BAS"), "bare", &bare, None, None).await?;
        assert!(!bare.has_problem);
        assert_eq!(got.name, "sites/BAS/projects/falls");
        assert_eq!(
            (got.title.as_str(), got.description.as_str()),
            ("Falls", "Fewer falls")
        );
        assert_eq!(got.programme, "trust/programmes/safety");
        assert_eq!(got.participating_sites, ["sites/SOU"]);
        assert_eq!(got.wards, ["sites/BAS/wards/w1"]);
        assert_eq!(got.cohort, "sites/BAS/cohorts/c1");
        assert_eq!(
            got.patient_involvement,
            pb::PatientInvolvement::Consulting as i32
        );
        let aim = got.aim.expect("an aim");
        assert_eq!((aim.baseline, aim.target), (Some(8.0), Some(4.0)));
        assert_eq!(aim.metric, "sites/BAS/metrics/falls");
        assert_eq!(aim.target_date, Some(date(day("2027-03-31"))));
        assert_eq!(got.state, pb::ProjectState::Scoping as i32);
        assert!(got.outcome.is_none() && got.idea.is_empty() && !got.coproduced);
        // Project ids are unique across the trust, whichever site leads.
        let taken = insert(
            &mut conn,
            &site("SOU"),
            "falls",
            &Fields::default(),
            None,
            None,
        )
        .await;
        match taken {
            Err(Error::AlreadyExists { name }) => assert!(name.contains("`falls`"), "{name}"),
            other => panic!("expected AlreadyExists, got {:?}", other.map(|p| p.uid)),
        }
        Ok(())
    }

    #[tokio::test]
    async fn finds_see_a_project_from_its_lead_and_its_participating_sites() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        let made = insert(&mut conn, &site("BAS"), "p1", &fields("P"), None, None).await?;
        for lock in [false, true] {
            let found = find(&mut conn, &site("BAS"), "p1", lock).await?;
            assert_eq!(found.map(|p| p.uid), Some(made.uid));
            assert!(find(&mut conn, &site("SOU"), "p1", lock).await?.is_none());
        }
        let sites = |s: &[&str]| Some(s.iter().map(|c| c.to_string()).collect());
        for seen in [None, sites(&["BAS"]), sites(&["SOU", "BRM"])] {
            let found = find_in(&mut conn, "p1", seen).await?;
            assert_eq!(found.map(|p| p.uid), Some(made.uid));
        }
        assert!(find_in(&mut conn, "p1", sites(&["BRM"])).await?.is_none());
        assert!(find_in(&mut conn, "p2", None).await?.is_none());
        assert_eq!(
            find_for_site(&mut conn, "p1", None, "SOU").await?,
            Some(made.uid)
        );
        assert_eq!(
            find_for_site(&mut conn, "p1", Some("BAS"), "BAS").await?,
            Some(made.uid)
        );
        assert_eq!(
            find_for_site(&mut conn, "p1", Some("SOU"), "SOU").await?,
            None
        );
        assert_eq!(find_for_site(&mut conn, "p1", None, "BRM").await?, None);
        Ok(())
    }

    #[tokio::test]
    async fn a_list_keeps_to_its_sites_state_and_programme_newest_first_page_by_page()
    -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        let g = programme(&mut conn, "safety").await?;
        let a = project(&mut conn, "BAS", "a").await?;
        insert(&mut conn, &site("SOU"), "b", &fields("B"), Some(g), None).await?;
        project(&mut conn, "BRM", "c").await?;
        let d = project(&mut conn, "BAS", "d").await?;
        start(&mut conn, d.uid, day("2026-01-05")).await?;
        let list_all = async |conn: &mut PgConnection, sites: Option<&[&str]>, state, programme| {
            let filter = ListFilter {
                sites: sites.map(|s| s.iter().map(|c| c.to_string()).collect()),
                terms: crate::projects::filter::Terms {
                    state,
                    programme,
                    ..Default::default()
                },
                ..ListFilter::default()
            };
            let (ps, _) = list(conn, &filter, (None, None), &everything()?).await?;
            anyhow::Ok(ps.into_iter().map(|p| p.name).collect::<Vec<_>>())
        };
        assert_eq!(
            list_all(&mut conn, Some(&["BAS"]), None, None).await?,
            ["sites/BAS/projects/d", "sites/BAS/projects/a"]
        );
        assert_eq!(
            list_all(&mut conn, Some(&["SOU"]), None, None).await?,
            ["sites/SOU/projects/b"]
        );
        assert_eq!(
            list_all(&mut conn, None, Some("in_progress"), None).await?,
            ["sites/BAS/projects/d"]
        );
        assert_eq!(
            list_all(&mut conn, None, None, Some((None, "safety".to_owned()))).await?,
            ["sites/SOU/projects/b"]
        );
        let paged = pages(3, async |page| {
            let after = after_uid(&page);
            list(&mut conn, &ListFilter::default(), (after, None), &page).await
        })
        .await?;
        let paged: Vec<Vec<&str>> = paged.iter().map(|p| names(p)).collect();
        assert_eq!(
            paged,
            [
                vec![
                    "sites/BAS/projects/d",
                    "sites/BRM/projects/c",
                    "sites/SOU/projects/b"
                ],
                vec!["sites/BAS/projects/a"],
            ]
        );
        assert_eq!(a.state, "scoping");
        Ok(())
    }

    /// Puts `staff` (or, without one, a patient partner) on the team of `project`.
    async fn on_team(
        conn: &mut PgConnection,
        project: &ProjectRef,
        staff: Option<&str>,
        role: &str,
    ) -> anyhow::Result<()> {
        sqlx::query!(
            "INSERT INTO team_member (project_uid, id, staff, display_name, role)
             VALUES ($1, $2, $3, 'Pat', $4)",
            project.uid,
            Uuid::now_v7(),
            staff,
            role,
        )
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    #[tokio::test]
    async fn a_list_by_member_holds_the_projects_whose_team_has_them_in_any_role_within_its_sites()
    -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        let led = project(&mut conn, "BAS", "led").await?;
        let coached = project(&mut conn, "BAS", "coached").await?;
        let elsewhere = project(&mut conn, "SOU", "elsewhere").await?;
        let others = project(&mut conn, "BAS", "others").await?;
        on_team(&mut conn, &led, Some("staff/12345678"), "lead").await?;
        on_team(&mut conn, &coached, Some("staff/12345678"), "coach").await?;
        on_team(&mut conn, &coached, Some("staff/87654321"), "member").await?;
        on_team(&mut conn, &elsewhere, Some("staff/12345678"), "member").await?;
        on_team(&mut conn, &others, Some("staff/87654321"), "lead").await?;
        on_team(&mut conn, &others, None, "patient_partner").await?;
        let of = async |conn: &mut PgConnection, sites: Option<&[&str]>, member: &str| {
            let filter = ListFilter {
                sites: sites.map(|s| s.iter().map(|c| c.to_string()).collect()),
                member: Some(member.to_owned()),
                ..ListFilter::default()
            };
            let (ps, _) = list(conn, &filter, (None, None), &everything()?).await?;
            anyhow::Ok(ps.into_iter().map(|p| p.name).collect::<Vec<_>>())
        };
        assert_eq!(
            of(&mut conn, None, "staff/12345678").await?,
            [
                "sites/SOU/projects/elsewhere",
                "sites/BAS/projects/coached",
                "sites/BAS/projects/led"
            ]
        );
        // Within the sites the parent allows: SOU's project is not BAS's to show.
        assert_eq!(
            of(&mut conn, Some(&["BAS"]), "staff/12345678").await?,
            ["sites/BAS/projects/coached", "sites/BAS/projects/led"]
        );
        assert_eq!(
            of(&mut conn, Some(&["BAS"]), "staff/87654321").await?,
            ["sites/BAS/projects/others", "sites/BAS/projects/coached"]
        );
        assert!(of(&mut conn, None, "staff/55555555").await?.is_empty());
        // Page by page, a member's projects still come newest first, each once.
        let mine = ListFilter {
            member: Some("staff/12345678".to_owned()),
            ..ListFilter::default()
        };
        let paged = pages(2, async |page| {
            let after = after_uid(&page);
            list(&mut conn, &mine, (after, None), &page).await
        })
        .await?;
        let paged: Vec<Vec<&str>> = paged.iter().map(|p| names(p)).collect();
        assert_eq!(
            paged,
            [
                vec!["sites/SOU/projects/elsewhere", "sites/BAS/projects/coached"],
                vec!["sites/BAS/projects/led"],
            ]
        );
        Ok(())
    }

    #[tokio::test]
    async fn the_lifecycle_writes_dates_reasons_and_the_outcome_with_its_benefits_in_order()
    -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        let p = project(&mut conn, "BAS", "p").await?;
        let other = project(&mut conn, "BAS", "o").await?;
        // A participating site sees the projects it takes part in, not only those it leads.
        let mut f = fields("Renamed");
        f.aim = None;
        update(&mut conn, p.uid, &f, None).await?;
        let got = read(&mut conn, p.uid).await?;
        assert_eq!((got.title.as_str(), got.aim), ("Renamed", None));
        assert_eq!(got.etag, etag(2));
        let sou = ListFilter {
            sites: Some(vec!["SOU".to_owned()]),
            ..ListFilter::default()
        };
        let (seen, _) = list(&mut conn, &sou, (None, None), &everything()?).await?;
        assert_eq!(names(&seen), ["sites/BAS/projects/p"]);
        assert_eq!(read(&mut conn, other.uid).await?.etag, etag(1));
        start(&mut conn, p.uid, day("2026-01-05")).await?;
        let benefits = vec![
            (
                "cost_saved".to_owned(),
                1200.0,
                "GBP".to_owned(),
                "Agency".to_owned(),
            ),
            (
                "bed_days_saved".to_owned(),
                30.0,
                "days".to_owned(),
                String::new(),
            ),
        ];
        complete(&mut conn, p.uid, day("2026-06-30"), "Halved", benefits).await?;
        let done = read(&mut conn, p.uid).await?;
        assert_eq!(done.state, pb::ProjectState::Completed as i32);
        assert_eq!(
            (done.start_date, done.end_date),
            (Some(date(day("2026-01-05"))), Some(date(day("2026-06-30"))))
        );
        let outcome = done.outcome.expect("an outcome");
        assert_eq!(outcome.summary, "Halved");
        let kinds: Vec<i32> = outcome.benefits.iter().map(|b| b.kind).collect();
        assert_eq!(
            kinds,
            [
                pb::BenefitKind::CostSaved as i32,
                pb::BenefitKind::BedDaysSaved as i32
            ]
        );
        assert_eq!(outcome.benefits[0].description, "Agency");
        let q = project(&mut conn, "SOU", "q").await?;
        stop(&mut conn, q.uid, day("2026-02-01"), "No capacity").await?;
        let stopped = read(&mut conn, q.uid).await?;
        assert_eq!(stopped.state, pb::ProjectState::Stopped as i32);
        assert_eq!(stopped.stop_reason, "No capacity");
        assert!(stopped.outcome.is_none());
        Ok(())
    }
}
