//! Projects (`sites/{lead_site}/projects/{id}`): led by one site, possibly spanning others.
//! A caller holding any of a project's sites may read it — by its name when they hold the
//! lead site, by `sites/-/projects/{id}` otherwise — and only a caller holding the lead site
//! may change it or anything under it. Lifecycle: scoping → in progress → completed |
//! stopped, with dates and reasons; the SMART aim, wards, programme and cohort; the outcome
//! and benefits recorded at completion.

use chrono::NaiveDate;
use qi_platform::calendar::{not_future, today};
use qi_platform::convert::{
    check_etag, date, etag, long_text, optional_date, optional_text, required_date, required_text,
    timestamp,
};
use qi_platform::names::{self, Owner};
use qi_platform::paging::Page;
use qi_platform::{AccessContext, Error, SiteCode, Violations, idempotency};
use qi_proto::projects as pb;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::ProjectsApi;
use crate::foreign;
use crate::stored::{Column, enum_field, from_optional, required_enum, unexpected};

/// The collection id in project names.
pub(crate) const COLLECTION: &str = "projects";

crate::stored::column_enum!(ProjectState, "project state", {
    Scoping => "scoping",
    InProgress => "in_progress",
    Completed => "completed",
    Stopped => "stopped",
});
crate::stored::column_enum!(PatientInvolvement, "patient involvement", {
    None => "none",
    Informing => "informing",
    Consulting => "consulting",
    Engaging => "engaging",
    CoDesigning => "co_designing",
    CoProducing => "co_producing",
});
crate::stored::column_enum!(BenefitKind, "benefit kind", {
    BedDaysSaved => "bed_days_saved",
    ComplaintsAvoided => "complaints_avoided",
    StaffHoursReleased => "staff_hours_released",
    CostSaved => "cost_saved",
    HarmEventsAvoided => "harm_events_avoided",
    Other => "other",
});

/// Where a project name says the project is: under its lead site, or `sites/-` (any site
/// the caller holds, as lead or participant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ProjectSite {
    Lead(SiteCode),
    Any,
}

/// A parsed name of a project or of something under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProjectPath {
    pub(crate) site: ProjectSite,
    pub(crate) project: String,
    /// The ids after the project, one per child collection asked for.
    pub(crate) children: Vec<String>,
}

/// Parses `sites/{site|-}/projects/{project}` followed by `/{collection}/{id}` for each of
/// `children`.
pub(crate) fn parse_path(
    field: &str,
    value: &str,
    children: &[&str],
) -> Result<ProjectPath, Error> {
    let pattern: String = children.iter().map(|c| format!("/{c}/{{id}}")).collect();
    let bad = || {
        Error::invalid(
            field,
            format!(
                "`{}` is not a name of the form `sites/{{site}}/projects/{{project}}{pattern}`",
                names::clip(value)
            ),
        )
    };
    let rest = value.strip_prefix("sites/").ok_or_else(bad)?;
    let (site, rest) = rest.split_once('/').ok_or_else(bad)?;
    let site = if site == "-" {
        ProjectSite::Any
    } else {
        ProjectSite::Lead(SiteCode::parse(site).map_err(|e| Error::invalid(field, e))?)
    };
    let parts: Vec<&str> = rest.split('/').collect();
    if parts.len() != 2 + children.len() * 2 || parts[0] != COLLECTION {
        return Err(bad());
    }
    names::validate_id(field, parts[1])?;
    let mut ids = Vec::with_capacity(children.len());
    for (pair, collection) in parts[2..].chunks(2).zip(children) {
        if pair[0] != *collection || pair[1].is_empty() {
            return Err(bad());
        }
        ids.push(pair[1].to_owned());
    }
    Ok(ProjectPath {
        site,
        project: parts[1].to_owned(),
        children: ids,
    })
}

/// What other modules need to know of a project they act on.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct ProjectRef {
    pub(crate) uid: Uuid,
    pub(crate) lead_site: String,
    pub(crate) id: String,
    pub(crate) state: String,
    pub(crate) revision: i64,
    pub(crate) participating_sites: Vec<String>,
    pub(crate) start_date: Option<NaiveDate>,
    pub(crate) has_aim: bool,
}

impl ProjectRef {
    /// The project's resource name (under its lead site).
    pub(crate) fn name(&self) -> String {
        format!("sites/{}/{COLLECTION}/{}", self.lead_site, self.id)
    }

    pub(crate) fn state(&self) -> Result<pb::ProjectState, Error> {
        pb::ProjectState::from_column(&self.state)
    }

    /// Refuses changes under a completed or stopped project.
    pub(crate) fn require_open(&self) -> Result<(), Error> {
        match self.state()? {
            pb::ProjectState::Scoping | pb::ProjectState::InProgress => Ok(()),
            s @ (pb::ProjectState::Completed
            | pb::ProjectState::Stopped
            | pb::ProjectState::Unspecified) => Err(Error::FailedPrecondition {
                reason: "PROJECT_CLOSED",
                message: format!(
                    "{} is {}: it no longer changes",
                    self.name(),
                    s.column().unwrap_or("closed")
                ),
            }),
        }
    }

    /// Whether the caller holds the lead site or a participating one.
    fn readable_by(&self, ctx: &AccessContext) -> bool {
        std::iter::once(&self.lead_site)
            .chain(&self.participating_sites)
            .filter_map(|s| SiteCode::parse(s).ok())
            .any(|s| ctx.sites.holds(&s))
    }
}

const REF_COLUMNS: &str = "uid, lead_site, id, state, revision, participating_sites, start_date, \
     aim_statement IS NOT NULL AS has_aim";

/// Finds the project a path names, as the caller may: to write, the name must be under the
/// lead site and the caller must hold it (the row is locked, so changes under one project
/// serialize); to read, holding the lead site or any participating site suffices.
/// Authorization comes before existence: a caller holding none of the named site's
/// projects' sites is refused whether or not the project exists.
pub(crate) async fn find(
    conn: &mut PgConnection,
    ctx: &AccessContext,
    field: &str,
    path: &ProjectPath,
    write: bool,
) -> Result<ProjectRef, Error> {
    let not_found = || {
        Error::not_found(format!(
            "sites/{}/{COLLECTION}/{}",
            site_text(&path.site),
            path.project
        ))
    };
    match (&path.site, write) {
        (ProjectSite::Any, true) => Err(Error::invalid(
            field,
            "changes name the project under its lead site: `sites/{lead_site}/projects/{project}`",
        )),
        (ProjectSite::Lead(site), true) => {
            Owner::Site(site.clone()).check_write(ctx)?;
            let row: Option<ProjectRef> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {REF_COLUMNS} FROM project WHERE lead_site = $1 AND id = $2 FOR UPDATE"
            )))
            .bind(site.as_str())
            .bind(&path.project)
            .fetch_optional(&mut *conn)
            .await?;
            row.ok_or_else(not_found)
        }
        (ProjectSite::Lead(site), false) => {
            let row: Option<ProjectRef> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {REF_COLUMNS} FROM project WHERE lead_site = $1 AND id = $2"
            )))
            .bind(site.as_str())
            .bind(&path.project)
            .fetch_optional(&mut *conn)
            .await?;
            if ctx.sites.holds(site) {
                return row.ok_or_else(not_found);
            }
            // A participating site's caller may read it under its lead site's name.
            row.filter(|p| p.readable_by(ctx))
                .ok_or_else(|| Error::denied(format!("no access to site {site}")))
        }
        (ProjectSite::Any, false) => {
            let row: Option<ProjectRef> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {REF_COLUMNS} FROM project
                 WHERE id = $1
                   AND ($2::text[] IS NULL OR lead_site = ANY($2) OR participating_sites && $2)"
            )))
            .bind(&path.project)
            .bind(ctx.sites.sql_filter())
            .fetch_optional(&mut *conn)
            .await?;
            row.ok_or_else(not_found)
        }
    }
}

fn site_text(site: &ProjectSite) -> &str {
    match site {
        ProjectSite::Lead(s) => s.as_str(),
        ProjectSite::Any => "-",
    }
}

/// Parses a project name (nothing under it) and finds the project.
pub(crate) async fn resolve(
    conn: &mut PgConnection,
    ctx: &AccessContext,
    field: &str,
    name: &str,
    write: bool,
) -> Result<ProjectRef, Error> {
    let path = parse_path(field, name, &[])?;
    find(conn, ctx, field, &path, write).await
}

/// A project's fields as validated, ready to store.
#[derive(Debug, Default)]
pub(crate) struct Fields {
    title: String,
    description: String,
    aim: Option<AimFields>,
    participating_sites: Vec<String>,
    wards: Vec<String>,
    programme: Option<(Owner, String)>,
    cohort: Option<String>,
    patient_involvement: Option<&'static str>,
}

#[derive(Debug, Default)]
struct AimFields {
    statement: String,
    measure: String,
    metric: Option<String>,
    baseline: f64,
    target: f64,
    unit: String,
    target_date: Option<NaiveDate>,
}

/// Validates an aim: a statement, a measure, baseline and target, a unit and a date.
fn validate_aim(aim: &pb::Aim, v: &mut Violations) -> AimFields {
    let pb::Aim {
        statement,
        measure,
        metric,
        baseline,
        target,
        unit,
        target_date,
    } = aim;
    let number = |field: &str, x: &Option<f64>| -> Result<f64, Error> {
        match x {
            None => Err(Error::invalid(field, "is required")),
            Some(x) if !x.is_finite() => Err(Error::invalid(field, "is not a finite number")),
            Some(x) => Ok(*x),
        }
    };
    AimFields {
        statement: v.check(required_text("project.aim.statement", statement, 500)),
        measure: v.check(required_text("project.aim.measure", measure, 200)),
        metric: if metric.is_empty() {
            None
        } else {
            Some(v.check(foreign::name("project.aim.metric", metric, "metrics")))
        },
        baseline: v.check(number("project.aim.baseline", baseline)),
        target: v.check(number("project.aim.target", target)),
        unit: v.check(required_text("project.aim.unit", unit, 50)),
        target_date: v
            .check(required_date("project.aim.target_date", target_date.as_ref()).map(Some)),
    }
}

/// Checks a project's writable fields (the output-only ones are ignored), naming each bad
/// field under `project.`: participating sites must be configured and differ from the lead,
/// wards must belong to the lead or a participating site, a programme must be trust-wide or
/// the lead site's.
pub(crate) fn validate(
    p: &pb::Project,
    lead: &SiteCode,
    known: &[SiteCode],
    v: &mut Violations,
) -> Fields {
    let pb::Project {
        name: _,
        title,
        description,
        idea: _,
        aim,
        participating_sites,
        wards,
        programme,
        cohort,
        state: _,
        start_date: _,
        end_date: _,
        stop_reason: _,
        progress_score: _,
        patient_involvement,
        patient_partner_count: _,
        engagement_activity_count: _,
        coproduced: _,
        outcome: _,
        create_time: _,
        update_time: _,
        etag: _,
    } = p;
    let mut f = Fields {
        title: v.check(required_text("project.title", title, 200)),
        description: v.check(optional_text("project.description", description, 5000)),
        aim: aim.as_ref().map(|a| validate_aim(a, v)),
        ..Fields::default()
    };
    // How many sites, wards and benefits: the contract's bounds, counted before decoding.
    for (i, s) in participating_sites.iter().enumerate() {
        let field = format!("project.participating_sites[{i}]");
        match crate::sites::parse_name(&field, s) {
            Err(e) => {
                v.check::<()>(Err(e));
            }
            Ok(code) if &code == lead => v.add(field, "the lead site is not also a participant"),
            Ok(code) if !known.contains(&code) => {
                v.add(field, format!("{code} is not one of the trust's sites"))
            }
            Ok(code) if f.participating_sites.contains(&code.to_string()) => {
                v.add(field, "is listed twice")
            }
            Ok(code) => f.participating_sites.push(code.to_string()),
        }
    }
    for (i, w) in wards.iter().enumerate() {
        let field = format!("project.wards[{i}]");
        match names::parse_name(&field, w, crate::wards::COLLECTION) {
            Err(e) => {
                v.check::<()>(Err(e));
            }
            Ok((Owner::Trust, _)) => v.add(field, "wards belong to a site"),
            Ok((Owner::Site(site), _))
                if &site != lead && !f.participating_sites.contains(&site.to_string()) =>
            {
                v.add(
                    field,
                    format!(
                        "{w} is a ward of {site}, which is neither the lead site nor a participating site"
                    ),
                )
            }
            Ok(_) if f.wards.contains(w) => v.add(field, "is listed twice"),
            Ok(_) => f.wards.push(w.clone()),
        }
    }
    if !programme.is_empty() {
        match names::parse_name(
            "project.programme",
            programme,
            crate::programmes::COLLECTION,
        ) {
            Err(e) => {
                v.check::<()>(Err(e));
            }
            Ok((Owner::Site(s), _)) if &s != lead => v.add(
                "project.programme",
                format!(
                    "a project joins a trust-wide programme or one of its lead site, not {s}'s"
                ),
            ),
            Ok(found) => f.programme = Some(found),
        }
    }
    if !cohort.is_empty() {
        f.cohort = Some(v.check(foreign::name("project.cohort", cohort, "cohorts")));
    }
    f.patient_involvement = v
        .check(enum_field::<pb::PatientInvolvement>(
            "project.patient_involvement",
            *patient_involvement,
        ))
        .and_then(Column::column);
    f
}

/// Checks the wards and programme the fields name exist; returns the programme's uid.
/// Completes the cohort from a training-wrapped programme when none is given.
pub(crate) async fn check_references(
    conn: &mut PgConnection,
    f: &mut Fields,
    v: &mut Violations,
) -> Result<Option<Uuid>, Error> {
    if !f.wards.is_empty() {
        let missing: Vec<String> = sqlx::query_scalar(
            "SELECT w FROM unnest($1::text[]) AS w
             WHERE NOT EXISTS (SELECT 1 FROM ward
                               WHERE 'sites/' || ward.site || '/wards/' || ward.id = w)",
        )
        .bind(&f.wards)
        .fetch_all(&mut *conn)
        .await?;
        for (i, w) in f.wards.iter().enumerate() {
            if missing.contains(w) {
                v.add(format!("project.wards[{i}]"), format!("{w} does not exist"));
            }
        }
    }
    let Some((owner, id)) = &f.programme else {
        return Ok(None);
    };
    match crate::programmes::store::uid_and_cohort(conn, owner, id).await? {
        None => {
            v.add(
                "project.programme",
                format!(
                    "{} does not exist",
                    owner.child(crate::programmes::COLLECTION, id)
                ),
            );
            Ok(None)
        }
        Some((uid, cohort)) => {
            if f.cohort.is_none() {
                f.cohort = cohort;
            }
            Ok(Some(uid))
        }
    }
}

/// A project to create, validated (its references are checked in the transaction).
#[derive(Debug)]
pub(crate) struct NewProject {
    lead: SiteCode,
    id: String,
    fields: Fields,
    request_id: String,
}

impl NewProject {
    fn parse(req: pb::CreateProjectRequest, known: &[SiteCode]) -> Result<Self, Error> {
        let pb::CreateProjectRequest {
            parent,
            project_id,
            project,
            request_id,
        } = req;
        let mut v = Violations::new();
        let lead = v.check(crate::sites::parse_name("parent", &parent).map(Some));
        if let Some(lead) = &lead
            && !known.contains(lead)
        {
            v.add("parent", format!("{lead} is not one of the trust's sites"));
        }
        let id = v.check(names::id_or_new("project_id", &project_id));
        v.check(idempotency::validate_request_id(&request_id));
        let Some(project) = project else {
            return Err(v.missing("project"));
        };
        let Some(lead) = lead else {
            v.finish()?;
            return Err(Error::invalid("parent", "is required"));
        };
        let fields = validate(&project, &lead, known, &mut v);
        v.finish()?;
        Ok(NewProject {
            lead,
            id,
            fields,
            request_id,
        })
    }
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
    let aim = f.aim.as_ref();
    let row: Option<ProjectRef> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO project (uid, lead_site, id, title, description, participating_sites, wards,
                              programme_uid, cohort, aim_statement, aim_measure, aim_metric,
                              aim_baseline, aim_target, aim_unit, aim_date, patient_involvement,
                              idea_uid)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
         ON CONFLICT (id) DO NOTHING
         RETURNING {REF_COLUMNS}"
    )))
    .bind(Uuid::now_v7())
    .bind(lead.as_str())
    .bind(id)
    .bind(&f.title)
    .bind(&f.description)
    .bind(&f.participating_sites)
    .bind(&f.wards)
    .bind(programme_uid)
    .bind(&f.cohort)
    .bind(aim.map(|a| &a.statement))
    .bind(aim.map(|a| &a.measure))
    .bind(aim.and_then(|a| a.metric.as_ref()))
    .bind(aim.map(|a| a.baseline))
    .bind(aim.map(|a| a.target))
    .bind(aim.map(|a| &a.unit))
    .bind(aim.and_then(|a| a.target_date))
    .bind(f.patient_involvement)
    .bind(idea_uid)
    .fetch_optional(&mut *conn)
    .await?;
    // The id may be taken at a site the caller cannot see: say only that it is taken.
    row.ok_or_else(|| Error::AlreadyExists {
        name: format!("project id `{id}` (project ids are unique across the trust)"),
    })
}

#[derive(sqlx::FromRow)]
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
    patient_partner_count: i32,
    engagement_count: i32,
    create_time: chrono::DateTime<chrono::Utc>,
    update_time: chrono::DateTime<chrono::Utc>,
    revision: i64,
}

const COLUMNS: &str = "p.uid, p.lead_site, p.id, p.title, p.description, p.participating_sites, \
     p.wards, p.cohort, g.site AS programme_site, g.id AS programme_id, i.site AS idea_site, \
     i.id AS idea_id, p.aim_statement, p.aim_measure, p.aim_metric, p.aim_baseline, p.aim_target, \
     p.aim_unit, p.aim_date, p.state, p.start_date, p.end_date, p.stop_reason, p.outcome_summary, \
     p.progress_score, p.patient_involvement, p.patient_partner_count, p.engagement_count, \
     p.create_time, p.update_time, p.revision";

const FROM: &str = "project p LEFT JOIN programme g ON g.uid = p.programme_uid \
     LEFT JOIN idea i ON i.uid = p.idea_uid";

#[derive(sqlx::FromRow)]
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
        sqlx::query_as(
            "SELECT project_uid, kind, value, unit, description FROM benefit
             WHERE project_uid = ANY($1) ORDER BY project_uid, position",
        )
        .bind(&completed)
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
pub(crate) async fn get(conn: &mut PgConnection, uid: Uuid) -> Result<pb::Project, Error> {
    let row: ProjectRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM {FROM} WHERE p.uid = $1"
    )))
    .bind(uid)
    .fetch_one(&mut *conn)
    .await?;
    assemble(conn, vec![row])
        .await?
        .pop()
        .ok_or_else(|| unexpected("project", "vanished"))
}

/// The fields UpdateProject may change.
const UPDATABLE: &[&str] = &[
    "title",
    "description",
    "aim",
    "participating_sites",
    "wards",
    "programme",
    "cohort",
    "patient_involvement",
];

/// Validates and applies a benefit list.
fn validate_outcome(
    o: &pb::Outcome,
    v: &mut Violations,
) -> (String, Vec<(String, f64, String, String)>) {
    let pb::Outcome { summary, benefits } = o;
    let summary = v.check(long_text("outcome.summary", summary, 5000));
    let mut out = Vec::new();
    for (i, b) in benefits.iter().enumerate() {
        let pb::Benefit {
            kind,
            value,
            unit,
            description,
        } = b;
        let field = |f: &str| format!("outcome.benefits[{i}].{f}");
        let kind = v.check(required_enum::<pb::BenefitKind>(&field("kind"), *kind).map(Some));
        if !value.is_finite() || *value < 0.0 {
            v.add(field("value"), "must be a number, 0 or more");
        }
        let unit = match kind {
            Some(pb::BenefitKind::BedDaysSaved) => "bed days".to_owned(),
            Some(pb::BenefitKind::ComplaintsAvoided) => "complaints".to_owned(),
            Some(pb::BenefitKind::StaffHoursReleased) => "hours".to_owned(),
            Some(pb::BenefitKind::CostSaved) => "GBP".to_owned(),
            Some(pb::BenefitKind::HarmEventsAvoided) => "events".to_owned(),
            Some(pb::BenefitKind::Other) => v.check(required_text(&field("unit"), unit, 50)),
            Some(pb::BenefitKind::Unspecified) | None => String::new(),
        };
        let description = v.check(optional_text(&field("description"), description, 500));
        out.push((
            kind.and_then(Column::column).unwrap_or_default().to_owned(),
            *value,
            unit,
            description,
        ));
    }
    (summary, out)
}

impl ProjectsApi {
    pub(crate) async fn create_project(
        &self,
        ctx: &AccessContext,
        req: pb::CreateProjectRequest,
    ) -> Result<pb::CreateProjectResponse, Error> {
        let mut new = NewProject::parse(req.clone(), &self.sites)?;
        Owner::Site(new.lead.clone()).check_write(ctx)?;
        let mut tx = qi_platform::db::begin(&self.pool).await?;
        if let Some(saved) = idempotency::claim(&mut tx, ctx, &new.request_id, &req).await? {
            return Ok(saved);
        }
        let mut v = Violations::new();
        let programme = check_references(&mut tx, &mut new.fields, &mut v).await?;
        v.finish()?;
        let made = insert(&mut tx, &new.lead, &new.id, &new.fields, programme, None).await?;
        let resp = pb::CreateProjectResponse {
            project: Some(get(&mut tx, made.uid).await?),
        };
        idempotency::record(&mut tx, ctx, &new.request_id, &resp).await?;
        tx.commit().await?;
        Ok(resp)
    }

    pub(crate) async fn get_project(
        &self,
        ctx: &AccessContext,
        req: pb::GetProjectRequest,
    ) -> Result<pb::GetProjectResponse, Error> {
        let pb::GetProjectRequest { name } = req;
        let mut conn = qi_platform::db::begin(&self.pool).await?;
        let found = resolve(&mut conn, ctx, "name", &name, false).await?;
        Ok(pb::GetProjectResponse {
            project: Some(get(&mut conn, found.uid).await?),
        })
    }

    pub(crate) async fn list_projects(
        &self,
        ctx: &AccessContext,
        req: pb::ListProjectsRequest,
    ) -> Result<pb::ListProjectsResponse, Error> {
        let pb::ListProjectsRequest {
            parent,
            state,
            programme,
            page_size,
            page_token,
        } = req;
        let sites = crate::sites::list_scope(ctx, "parent", &parent)?;
        let mut v = Violations::new();
        let state = v.check(enum_field::<pb::ProjectState>("state", state));
        let programme_key = if programme.is_empty() {
            None
        } else {
            // A programme of a site the caller does not hold is refused, as its name would be.
            v.check(
                names::parse_name("programme", &programme, crate::programmes::COLLECTION).and_then(
                    |(o, id)| {
                        o.check_read(ctx)?;
                        Ok(Some((o.site_column().map(str::to_owned), id)))
                    },
                ),
            )
        };
        v.finish()?;
        let page = Page::parse(
            page_size,
            &page_token,
            &format!(
                "{parent}|{}|{programme}",
                state.and_then(Column::column).unwrap_or("")
            ),
        )?;
        let after: Option<Uuid> = page
            .after_key(0)
            .map(str::parse)
            .transpose()
            .map_err(|_| Error::invalid("page_token", "not a token this list returned"))?;
        let mut conn = qi_platform::db::begin(&self.pool).await?;
        let rows: Vec<ProjectRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM {FROM}
             WHERE ($1::text[] IS NULL OR p.lead_site = ANY($1) OR p.participating_sites && $1)
               AND ($2::text IS NULL OR p.state = $2)
               AND ($3::boolean IS NOT TRUE OR (coalesce(g.site, '') = coalesce($4, '') AND g.id = $5))
               AND ($6::uuid IS NULL OR p.uid < $6)
             ORDER BY p.uid DESC
             LIMIT $7"
        )))
        .bind(sites)
        .bind(state.and_then(Column::column))
        .bind(programme_key.is_some())
        .bind(programme_key.as_ref().and_then(|(s, _)| s.clone()))
        .bind(programme_key.as_ref().map(|(_, id)| id.clone()))
        .bind(after)
        .bind(page.limit())
        .fetch_all(&mut *conn)
        .await?;
        let (rows, next_page_token) = page.finish(rows, |r| vec![r.uid.to_string()]);
        Ok(pb::ListProjectsResponse {
            projects: assemble(&mut conn, rows).await?,
            next_page_token,
        })
    }

    pub(crate) async fn update_project(
        &self,
        ctx: &AccessContext,
        req: pb::UpdateProjectRequest,
    ) -> Result<pb::UpdateProjectResponse, Error> {
        let pb::UpdateProjectRequest {
            project,
            update_mask,
        } = req;
        let project = project.ok_or_else(|| Error::invalid("project", "is required"))?;
        let paths =
            qi_platform::update_mask::paths(update_mask.as_ref(), UPDATABLE, |p| match p {
                "title" => !project.title.is_empty(),
                "description" => !project.description.is_empty(),
                "aim" => project.aim.is_some(),
                "participating_sites" => !project.participating_sites.is_empty(),
                "wards" => !project.wards.is_empty(),
                "programme" => !project.programme.is_empty(),
                "cohort" => !project.cohort.is_empty(),
                "patient_involvement" => project.patient_involvement != 0,
                _ => false,
            })?;
        let mut tx = qi_platform::db::begin(&self.pool).await?;
        let found = resolve(&mut tx, ctx, "project.name", &project.name, true).await?;
        check_etag(&project.etag, found.revision, "the project")?;
        found.require_open()?;
        // The stored project with the masked fields replaced, validated whole.
        let mut merged = get(&mut tx, found.uid).await?;
        for p in &paths {
            match *p {
                "title" => merged.title = project.title.clone(),
                "description" => merged.description = project.description.clone(),
                "aim" => merged.aim = project.aim.clone(),
                "participating_sites" => {
                    merged.participating_sites = project.participating_sites.clone()
                }
                "wards" => merged.wards = project.wards.clone(),
                "programme" => merged.programme = project.programme.clone(),
                "cohort" => merged.cohort = project.cohort.clone(),
                _ => merged.patient_involvement = project.patient_involvement,
            }
        }
        let lead = SiteCode::parse(&found.lead_site).map_err(|e| unexpected("site", &e))?;
        let mut v = Violations::new();
        if merged.aim.is_none() && found.state()? != pb::ProjectState::Scoping {
            v.add(
                "project.aim",
                "a project under way keeps its aim: change it rather than remove it",
            );
        }
        let mut f = validate(&merged, &lead, &self.sites, &mut v);
        let programme = check_references(&mut tx, &mut f, &mut v).await?;
        v.finish()?;
        let aim = f.aim.as_ref();
        sqlx::query(
            "UPDATE project SET title = $2, description = $3, participating_sites = $4, wards = $5,
                    programme_uid = $6, cohort = $7, aim_statement = $8, aim_measure = $9,
                    aim_metric = $10, aim_baseline = $11, aim_target = $12, aim_unit = $13,
                    aim_date = $14, patient_involvement = $15
             WHERE uid = $1",
        )
        .bind(found.uid)
        .bind(&f.title)
        .bind(&f.description)
        .bind(&f.participating_sites)
        .bind(&f.wards)
        .bind(programme)
        .bind(&f.cohort)
        .bind(aim.map(|a| &a.statement))
        .bind(aim.map(|a| &a.measure))
        .bind(aim.and_then(|a| a.metric.as_ref()))
        .bind(aim.map(|a| a.baseline))
        .bind(aim.map(|a| a.target))
        .bind(aim.map(|a| &a.unit))
        .bind(aim.and_then(|a| a.target_date))
        .bind(f.patient_involvement)
        .execute(&mut *tx)
        .await?;
        let project = get(&mut tx, found.uid).await?;
        tx.commit().await?;
        Ok(pb::UpdateProjectResponse {
            project: Some(project),
        })
    }

    pub(crate) async fn start_project(
        &self,
        ctx: &AccessContext,
        req: pb::StartProjectRequest,
    ) -> Result<pb::StartProjectResponse, Error> {
        let pb::StartProjectRequest {
            name,
            start_date,
            etag,
        } = req;
        let start = optional_date("start_date", start_date.as_ref())?.unwrap_or_else(today);
        not_future("start_date", start)?;
        let mut tx = qi_platform::db::begin(&self.pool).await?;
        let found = resolve(&mut tx, ctx, "name", &name, true).await?;
        check_etag(&etag, found.revision, "the project")?;
        let from = found.state()?;
        if from != pb::ProjectState::Scoping {
            return Err(illegal(&found, from, "start"));
        }
        if !found.has_aim {
            return Err(Error::FailedPrecondition {
                reason: "AIM_REQUIRED",
                message: format!(
                    "{}: set a SMART aim (a measure from a baseline to a target, by a date) before starting",
                    found.name()
                ),
            });
        }
        sqlx::query(
            "UPDATE project SET state = 'in_progress', start_date = $2, state_date = $2 WHERE uid = $1",
        )
        .bind(found.uid)
        .bind(start)
        .execute(&mut *tx)
        .await?;
        let project = get(&mut tx, found.uid).await?;
        tx.commit().await?;
        Ok(pb::StartProjectResponse {
            project: Some(project),
        })
    }

    pub(crate) async fn complete_project(
        &self,
        ctx: &AccessContext,
        req: pb::CompleteProjectRequest,
    ) -> Result<pb::CompleteProjectResponse, Error> {
        let pb::CompleteProjectRequest {
            name,
            end_date,
            outcome,
            etag,
        } = req;
        let mut v = Violations::new();
        let end = v.check(optional_date("end_date", end_date.as_ref()));
        let Some(outcome) = outcome else {
            return Err(v.missing("outcome"));
        };
        let (summary, benefits) = validate_outcome(&outcome, &mut v);
        v.finish()?;
        let end = not_future("end_date", end.unwrap_or_else(today))?;
        let mut tx = qi_platform::db::begin(&self.pool).await?;
        let found = resolve(&mut tx, ctx, "name", &name, true).await?;
        check_etag(&etag, found.revision, "the project")?;
        let from = found.state()?;
        if from != pb::ProjectState::InProgress {
            return Err(illegal(&found, from, "complete"));
        }
        check_end(&found, end)?;
        sqlx::query(
            "UPDATE project SET state = 'completed', end_date = $2, state_date = $2,
                    outcome_summary = $3
             WHERE uid = $1",
        )
        .bind(found.uid)
        .bind(end)
        .bind(&summary)
        .execute(&mut *tx)
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
        sqlx::query(
            "INSERT INTO benefit (project_uid, position, kind, value, unit, description)
             SELECT $1, b.ord, b.kind, b.value, b.unit, b.description
             FROM unnest($2::text[], $3::float8[], $4::text[], $5::text[])
                  WITH ORDINALITY AS b(kind, value, unit, description, ord)",
        )
        .bind(found.uid)
        .bind(&kinds)
        .bind(&values)
        .bind(&units)
        .bind(&descriptions)
        .execute(&mut *tx)
        .await?;
        let project = get(&mut tx, found.uid).await?;
        tx.commit().await?;
        Ok(pb::CompleteProjectResponse {
            project: Some(project),
        })
    }

    pub(crate) async fn stop_project(
        &self,
        ctx: &AccessContext,
        req: pb::StopProjectRequest,
    ) -> Result<pb::StopProjectResponse, Error> {
        let pb::StopProjectRequest {
            name,
            reason,
            end_date,
            etag,
        } = req;
        let mut v = Violations::new();
        let reason = v.check(long_text("reason", &reason, 1000));
        let end = v.check(optional_date("end_date", end_date.as_ref()));
        v.finish()?;
        let end = not_future("end_date", end.unwrap_or_else(today))?;
        let mut tx = qi_platform::db::begin(&self.pool).await?;
        let found = resolve(&mut tx, ctx, "name", &name, true).await?;
        check_etag(&etag, found.revision, "the project")?;
        let from = found.state()?;
        if !matches!(
            from,
            pb::ProjectState::Scoping | pb::ProjectState::InProgress
        ) {
            return Err(illegal(&found, from, "stop"));
        }
        check_end(&found, end)?;
        sqlx::query(
            "UPDATE project SET state = 'stopped', end_date = $2, state_date = $2, stop_reason = $3
             WHERE uid = $1",
        )
        .bind(found.uid)
        .bind(end)
        .bind(&reason)
        .execute(&mut *tx)
        .await?;
        let project = get(&mut tx, found.uid).await?;
        tx.commit().await?;
        Ok(pb::StopProjectResponse {
            project: Some(project),
        })
    }
}

fn illegal(p: &ProjectRef, from: pb::ProjectState, verb: &str) -> Error {
    Error::FailedPrecondition {
        reason: "PROJECT_STATE",
        message: format!(
            "{} is {}: it cannot {verb} (scoping → in_progress → completed | stopped)",
            p.name(),
            from.column().unwrap_or("unspecified")
        ),
    }
}

fn check_end(p: &ProjectRef, end: NaiveDate) -> Result<(), Error> {
    match p.start_date {
        Some(start) if end < start => Err(Error::invalid(
            "end_date",
            format!("{end} is before the project started ({start})"),
        )),
        Some(_) | None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qi_proto::google::r#type::Date;

    fn sites() -> Vec<SiteCode> {
        ["BAS", "BRM", "SOU"]
            .iter()
            .map(|s| SiteCode::parse(s).unwrap())
            .collect()
    }

    #[test]
    fn project_paths_take_a_lead_site_or_any_site_and_children() {
        let p = parse_path(
            "name",
            "sites/-/projects/falls/pdsaCycles/3",
            &["pdsaCycles"],
        )
        .unwrap();
        assert_eq!(p.site, ProjectSite::Any);
        assert_eq!((p.project.as_str(), p.children[0].as_str()), ("falls", "3"));
        let p = parse_path("name", "sites/BAS/projects/falls", &[]).unwrap();
        assert_eq!(p.site, ProjectSite::Lead(SiteCode::parse("BAS").unwrap()));
        for bad in [
            "trust/projects/x",
            "sites/BAS/ideas/x",
            "sites/BAS/projects/X",
            "sites/BAS/projects/x/pdsaCycles",
            "sites/bas/projects/x",
        ] {
            assert!(parse_path("name", bad, &[]).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_aim_needs_a_measure_and_a_date_and_wards_belong_to_the_projects_sites() {
        let p = pb::Project {
            title: "Falls".into(),
            aim: Some(pb::Aim {
                statement: "Fewer falls".into(),
                baseline: Some(8.0),
                target: Some(4.0),
                unit: "falls per month".into(),
                ..Default::default()
            }),
            participating_sites: vec!["sites/SOU".into(), "sites/BAS".into()],
            wards: vec!["sites/SOU/wards/cedar".into(), "sites/BRM/wards/oak".into()],
            patient_involvement: 42,
            ..Default::default()
        };
        let mut v = Violations::new();
        validate(&p, &SiteCode::parse("BAS").unwrap(), &sites(), &mut v);
        let Err(Error::InvalidArgument { violations }) = v.finish() else {
            panic!("expected violations")
        };
        let fields: Vec<_> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "project.aim.measure",
                "project.aim.target_date",
                "project.participating_sites[1]",
                "project.wards[1]",
                "project.patient_involvement"
            ]
        );
    }

    #[test]
    fn a_whole_aim_passes() {
        let p = pb::Project {
            title: "Falls".into(),
            aim: Some(pb::Aim {
                statement: "Fewer falls".into(),
                measure: "Falls per 1,000 bed days".into(),
                baseline: Some(8.0),
                target: Some(4.0),
                unit: "falls".into(),
                target_date: Some(Date {
                    year: 2027,
                    month: 12,
                    day: 31,
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut v = Violations::new();
        let f = validate(&p, &SiteCode::parse("BAS").unwrap(), &sites(), &mut v);
        v.finish().unwrap();
        assert!(f.aim.is_some());
    }
}
