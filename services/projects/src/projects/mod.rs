//! Projects (`sites/{lead_site}/projects/{id}`): led by one site, possibly spanning others.
//! A caller holding any of a project's sites may read it, by its name or by
//! `sites/-/projects/{id}`; its team's editors, and `improvement_team` holding any of its
//! sites, change it and everything under it ([`find`]). Lifecycle: scoping → in progress → completed |
//! stopped, with dates and reasons; the SMART aim, wards, programme and cohort; the outcome
//! and benefits recorded at completion.

mod filter;
pub(crate) mod store;

use chrono::NaiveDate;
use qi_platform::calendar::{not_future, today};
use qi_platform::changes::Kind;
use qi_platform::convert::{
    check_etag, long_text, optional_date, optional_text, required_date, required_text,
};
use qi_platform::extract::{self, Order};
use qi_platform::names::OwnerAccess as _;
use qi_platform::names::{self, Owner};
use qi_platform::paging::Page;
use qi_platform::{AccessContext, Error, SiteCode, Violations, idempotency};
use qi_proto::projects as pb;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::ProjectsApi;
use crate::feed::project_sites;
use crate::foreign;
use crate::stored::{Column, enum_field, required_enum, unexpected};

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
crate::stored::column_enum!(QsirPhase, "QSIR phase", {
    StartOut => "start_out",
    DefineAndScope => "define_and_scope",
    MeasureAndUnderstand => "measure_and_understand",
    DesignAndPlan => "design_and_plan",
    PilotAndImplement => "pilot_and_implement",
    SustainAndShare => "sustain_and_share",
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
#[derive(Debug, Clone)]
pub(crate) struct ProjectRef {
    pub(crate) uid: Uuid,
    pub(crate) lead_site: String,
    pub(crate) id: String,
    pub(crate) state: String,
    pub(crate) revision: i64,
    pub(crate) participating_sites: Vec<String>,
    pub(crate) start_date: Option<NaiveDate>,
    pub(crate) has_aim: bool,
    /// Whether it has a problem statement, or predates the charter (exempt from needing
    /// one to start).
    pub(crate) has_problem: bool,
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

/// Finds the project a path names, as the caller may. Holding its lead site or any
/// participating site lets a caller read it (by its lead site's name or `sites/-`); a change
/// also needs the per-project rule ([`crate::team::check_edit`]), and the name under the lead
/// site, and locks the row, so changes under one project serialize. Authorization comes
/// before existence: a caller holding none of a project's sites is refused whether or not
/// it exists.
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
    match &path.site {
        ProjectSite::Any if write => Err(Error::invalid(
            field,
            "changes name the project under its lead site: `sites/{lead_site}/projects/{project}`",
        )),
        ProjectSite::Any => store::find_in(conn, &path.project, ctx.sites.sql_filter())
            .await?
            .ok_or_else(not_found),
        ProjectSite::Lead(site) => {
            let row = store::find(conn, site, &path.project, write).await?;
            let project = if ctx.sites.holds(site) {
                row.ok_or_else(not_found)?
            } else {
                // The gateway lets another site's caller through (the policy's
                // `shared_across_sites`): only a participating site admits them.
                row.filter(|p| p.readable_by(ctx))
                    .ok_or_else(|| Error::denied(format!("no access to site {site}")))?
            };
            if write {
                crate::team::check_edit(conn, ctx, &project).await?;
            }
            Ok(project)
        }
    }
}

fn site_text(site: &ProjectSite) -> &str {
    match site {
        ProjectSite::Lead(s) => s.as_str(),
        ProjectSite::Any => "-",
    }
}

/// Parses the name of a project's child whose id is a UUID (`{project}/{collection}/{uuid}`).
pub(crate) fn parse_child(
    field: &str,
    name: &str,
    collection: &str,
) -> Result<(ProjectPath, Uuid), Error> {
    let path = parse_path(field, name, &[collection])?;
    let id = path.children[0]
        .parse()
        .map_err(|_| Error::invalid(field, format!("the id after `{collection}/` is a UUID")))?;
    Ok((path, id))
}

/// Deletes the child `name` (`{project}/{collection}/{uuid}`) of an open project the caller
/// may change, with `delete` (`false`: no such child, NOT_FOUND), and records the deletion.
pub(crate) async fn delete_child(
    api: &ProjectsApi,
    ctx: &AccessContext,
    name: &str,
    collection: &'static str,
    delete: impl AsyncFnOnce(&mut PgConnection, &ProjectRef, Uuid) -> Result<bool, Error>,
) -> Result<(), Error> {
    let (path, id) = parse_child("name", name, collection)?;
    let mut tx = qi_platform::db::begin(&api.pool).await?;
    let project = find(&mut tx, ctx, "name", &path, true).await?;
    project.require_open()?;
    if !delete(&mut tx, &project, id).await? {
        return Err(Error::not_found(name));
    }
    // By its canonical name, whichever form of the uuid the request wrote.
    let deleted = format!("{}/{collection}/{id}", project.name());
    crate::feed::record_deleted(&mut tx, collection, &deleted, project_sites(&project)).await?;
    tx.commit().await?;
    Ok(())
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
    problem_statement: String,
    scope_in: String,
    scope_out: String,
    stakeholders: Vec<String>,
    expected_benefits: Vec<String>,
    qsir_phase: Option<&'static str>,
    theme: String,
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
        problem_statement,
        scope_in,
        scope_out,
        stakeholders,
        expected_benefits,
        qsir_phase,
        theme,
    } = p;
    let mut f = Fields {
        title: v.check(required_text("project.title", title, 200)),
        description: v.check(optional_text("project.description", description, 5000)),
        aim: aim.as_ref().map(|a| validate_aim(a, v)),
        problem_statement: v.check(optional_text(
            "project.problem_statement",
            problem_statement,
            2000,
        )),
        scope_in: v.check(optional_text("project.scope_in", scope_in, 2000)),
        scope_out: v.check(optional_text("project.scope_out", scope_out, 2000)),
        qsir_phase: v
            .check(enum_field::<pb::QsirPhase>(
                "project.qsir_phase",
                *qsir_phase,
            ))
            .and_then(Column::column),
        theme: v.check(optional_text("project.theme", theme, 100)),
        ..Fields::default()
    };
    for (i, s) in stakeholders.iter().enumerate() {
        let field = format!("project.stakeholders[{i}]");
        let s = v.check(required_text(&field, s, 200));
        if f.stakeholders.contains(&s) {
            v.add(field, "is listed twice");
        } else if !s.is_empty() {
            f.stakeholders.push(s);
        }
    }
    for (i, k) in expected_benefits.iter().enumerate() {
        let field = format!("project.expected_benefits[{i}]");
        let kind = v
            .check(required_enum::<pb::BenefitKind>(&field, *k).map(Some))
            .and_then(Column::column);
        match kind {
            Some(k) if f.expected_benefits.iter().any(|e| e == k) => {
                v.add(field, "is listed twice")
            }
            Some(k) => f.expected_benefits.push(k.to_owned()),
            None => {}
        }
    }
    // How many sites, wards and benefits: the contract's bounds, counted before decoding.
    for (i, s) in participating_sites.iter().enumerate() {
        let field = format!("project.participating_sites[{i}]");
        match crate::sites::parse_name(&field, s) {
            Err(e) => {
                v.check::<(), _>(Err(e));
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
                v.check::<(), _>(Err(e));
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
                v.check::<(), _>(Err(e));
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
        let missing = crate::wards::store::missing(conn, &f.wards).await?;
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
    "problem_statement",
    "scope_in",
    "scope_out",
    "stakeholders",
    "expected_benefits",
    "qsir_phase",
    "theme",
];

/// A benefit as validated: its kind's stored form, value, unit and description.
type Benefit = (String, f64, String, String);

/// Validates an outcome: its summary and its benefits.
fn validate_outcome(o: &pb::Outcome, v: &mut Violations) -> (String, Vec<Benefit>) {
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

/// Creates a project in scoping, led by a site the caller holds.
pub(crate) async fn create(
    api: &ProjectsApi,
    ctx: AccessContext,
    req: pb::CreateProjectRequest,
) -> Result<pb::CreateProjectResponse, Error> {
    let mut new = NewProject::parse(req.clone(), &api.sites)?;
    Owner::Site(new.lead.clone()).check_write(&ctx)?;
    let tx = qi_platform::db::begin(&api.pool).await?;
    idempotency::once(tx, &ctx, &new.request_id, &req, async |tx| {
        let mut v = Violations::new();
        let programme = check_references(tx, &mut new.fields, &mut v).await?;
        v.finish()?;
        let made = store::insert(tx, &new.lead, &new.id, &new.fields, programme, None).await?;
        let project = store::read(tx, made.uid).await?;
        let sites = project_sites(&made);
        let kind = Kind::Created;
        crate::feed::record(tx, COLLECTION, &project.name, kind, sites, &project).await?;
        Ok(pb::CreateProjectResponse {
            project: Some(project),
        })
    })
    .await
}

/// Reads a project the caller may read (see [`find`]).
pub(crate) async fn get(
    api: &ProjectsApi,
    ctx: AccessContext,
    req: pb::GetProjectRequest,
) -> Result<pb::GetProjectResponse, Error> {
    let pb::GetProjectRequest { name } = req;
    let mut conn = qi_platform::db::begin(&api.pool).await?;
    let found = resolve(&mut conn, &ctx, "name", &name, false).await?;
    Ok(pb::GetProjectResponse {
        project: Some(store::read(&mut conn, found.uid).await?),
    })
}

/// Lists the projects the caller's sites lead or take part in, newest first, by state,
/// programme, team member and the charter's `filter`.
pub(crate) async fn list(
    api: &ProjectsApi,
    ctx: AccessContext,
    req: pb::ListProjectsRequest,
) -> Result<pb::ListProjectsResponse, Error> {
    let pb::ListProjectsRequest {
        parent,
        state,
        programme,
        page_size,
        page_token,
        member,
        filter,
        order_by,
    } = req;
    let mut sites = crate::sites::list_scope(&ctx, "parent", &parent)?;
    let mut v = Violations::new();
    let state = v
        .check(enum_field::<pb::ProjectState>("state", state))
        .and_then(Column::column);
    let programme_key = if programme.is_empty() {
        None
    } else {
        // A programme of a site the caller does not hold is refused, as its name would be.
        v.check(
            names::parse_name("programme", &programme, crate::programmes::COLLECTION).and_then(
                |(o, id)| {
                    o.check_read(&ctx)?;
                    Ok(Some((o.site_column().map(str::to_owned), id)))
                },
            ),
        )
    };
    // Stored by the canonical name whichever form named them, so compared by it.
    let member_staff = v.check(foreign::person_filter(&ctx, "member", &member));
    let mut terms = v.check(filter::parse(&ctx, &filter));
    let order = v.check(extract::order(&order_by));
    // The older fields say what the filter's terms say: one place or the other.
    if state.is_some() && terms.state.is_some() {
        v.add(
            "filter",
            "`state` is given both as a field and in the filter",
        );
    }
    if programme_key.is_some() && terms.programme.is_some() {
        v.add(
            "filter",
            "`programme` is given both as a field and in the filter",
        );
    }
    v.finish()?;
    terms.state = terms.state.or(state);
    terms.programme = terms.programme.or(programme_key);
    if let Some(site) = &terms.site {
        sites = Some(extract::only_site(sites, site));
    }
    let mut params = format!("{parent}|{}|{programme}", state.unwrap_or(""));
    // Only when set: a token issued before the filter existed still reads the same.
    if !member.is_empty() {
        params = format!("{params}|{member}");
    }
    if !filter.is_empty() {
        params = format!("{params}|{filter}");
    }
    if order != Order::Default {
        params = format!("{params}|{order_by}");
    }
    let page = Page::parse(page_size, &page_token, &params)?;
    let after: Option<Uuid> = page.parsed_key(0)?;
    let after_time = order.after_time(&page)?;
    let mut conn = qi_platform::db::begin(&api.pool).await?;
    let filter = store::ListFilter {
        sites,
        terms,
        member: member_staff,
        order,
    };
    let (projects, next_page_token) =
        store::list(&mut conn, &filter, (after, after_time), &page).await?;
    Ok(pb::ListProjectsResponse {
        projects,
        next_page_token,
    })
}

/// Changes the fields in the mask of an open project; the result is validated whole.
pub(crate) async fn update(
    api: &ProjectsApi,
    ctx: AccessContext,
    req: pb::UpdateProjectRequest,
) -> Result<pb::UpdateProjectResponse, Error> {
    let pb::UpdateProjectRequest {
        project,
        update_mask,
    } = req;
    let project = project.ok_or_else(|| Error::invalid("project", "is required"))?;
    let mut tx = qi_platform::db::begin(&api.pool).await?;
    let found = resolve(&mut tx, &ctx, "project.name", &project.name, true).await?;
    let paths = qi_platform::update_mask::paths(update_mask.as_ref(), UPDATABLE, |p| match p {
        "title" => !project.title.is_empty(),
        "description" => !project.description.is_empty(),
        "aim" => project.aim.is_some(),
        "participating_sites" => !project.participating_sites.is_empty(),
        "wards" => !project.wards.is_empty(),
        "programme" => !project.programme.is_empty(),
        "cohort" => !project.cohort.is_empty(),
        "patient_involvement" => project.patient_involvement != 0,
        "problem_statement" => !project.problem_statement.is_empty(),
        "scope_in" => !project.scope_in.is_empty(),
        "scope_out" => !project.scope_out.is_empty(),
        "stakeholders" => !project.stakeholders.is_empty(),
        "expected_benefits" => !project.expected_benefits.is_empty(),
        "qsir_phase" => project.qsir_phase != 0,
        "theme" => !project.theme.is_empty(),
        _ => false,
    })?;
    check_etag(&project.etag, found.revision, "the project")?;
    found.require_open()?;
    // The stored project with the masked fields replaced, validated whole.
    let mut merged = store::read(&mut tx, found.uid).await?;
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
            "patient_involvement" => merged.patient_involvement = project.patient_involvement,
            "problem_statement" => merged.problem_statement = project.problem_statement.clone(),
            "scope_in" => merged.scope_in = project.scope_in.clone(),
            "scope_out" => merged.scope_out = project.scope_out.clone(),
            "stakeholders" => merged.stakeholders = project.stakeholders.clone(),
            "expected_benefits" => merged.expected_benefits = project.expected_benefits.clone(),
            "qsir_phase" => merged.qsir_phase = project.qsir_phase,
            _ => merged.theme = project.theme.clone(),
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
    let mut f = validate(&merged, &lead, &api.sites, &mut v);
    let programme = check_references(&mut tx, &mut f, &mut v).await?;
    v.finish()?;
    store::update(&mut tx, found.uid, &f, programme).await?;
    let project = store::read(&mut tx, found.uid).await?;
    // Seen from its sites as they now are; a site it left sees it go.
    let lost: Vec<String> = (found.participating_sites.iter())
        .filter(|s| !f.participating_sites.contains(s))
        .cloned()
        .collect();
    let now = ProjectRef {
        participating_sites: f.participating_sites.clone(),
        ..found
    };
    let sites = project_sites(&now);
    let kept = sites.clone().unwrap_or_default();
    let kind = Kind::Updated;
    crate::feed::record(&mut tx, COLLECTION, &project.name, kind, sites, &project).await?;
    qi_platform::changes::record_hidden(&mut tx, COLLECTION, &project.name, &lost, &kept).await?;
    tx.commit().await?;
    Ok(pb::UpdateProjectResponse {
        project: Some(project),
    })
}

/// Starts a project in scoping that has its SMART aim.
pub(crate) async fn start(
    api: &ProjectsApi,
    ctx: AccessContext,
    req: pb::StartProjectRequest,
) -> Result<pb::StartProjectResponse, Error> {
    let pb::StartProjectRequest {
        name,
        start_date,
        etag,
    } = req;
    let mut tx = qi_platform::db::begin(&api.pool).await?;
    let found = resolve(&mut tx, &ctx, "name", &name, true).await?;
    let start = optional_date("start_date", start_date.as_ref())?.unwrap_or_else(today);
    not_future("start_date", start)?;
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
    if !found.has_problem {
        return Err(Error::FailedPrecondition {
            reason: "PROBLEM_STATEMENT_REQUIRED",
            message: format!(
                "{}: write the charter's problem statement (what is wrong now, for whom) before starting",
                found.name()
            ),
        });
    }
    store::start(&mut tx, found.uid, start).await?;
    let project = store::read(&mut tx, found.uid).await?;
    let sites = project_sites(&found);
    let kind = Kind::StateChanged("start");
    crate::feed::record(&mut tx, COLLECTION, &project.name, kind, sites, &project).await?;
    tx.commit().await?;
    Ok(pb::StartProjectResponse {
        project: Some(project),
    })
}

/// Completes a project in progress, with its outcome and benefits.
pub(crate) async fn complete(
    api: &ProjectsApi,
    ctx: AccessContext,
    req: pb::CompleteProjectRequest,
) -> Result<pb::CompleteProjectResponse, Error> {
    let pb::CompleteProjectRequest {
        name,
        end_date,
        outcome,
        etag,
    } = req;
    let mut tx = qi_platform::db::begin(&api.pool).await?;
    let found = resolve(&mut tx, &ctx, "name", &name, true).await?;
    let mut v = Violations::new();
    let end = v.check(optional_date("end_date", end_date.as_ref()));
    let Some(outcome) = outcome else {
        return Err(v.missing("outcome"));
    };
    let (summary, benefits) = validate_outcome(&outcome, &mut v);
    v.finish()?;
    let end = not_future("end_date", end.unwrap_or_else(today))?;
    check_etag(&etag, found.revision, "the project")?;
    let from = found.state()?;
    if from != pb::ProjectState::InProgress {
        return Err(illegal(&found, from, "complete"));
    }
    check_end(&found, end)?;
    store::complete(&mut tx, found.uid, end, &summary, benefits).await?;
    let project = store::read(&mut tx, found.uid).await?;
    let sites = project_sites(&found);
    let kind = Kind::StateChanged("complete");
    crate::feed::record(&mut tx, COLLECTION, &project.name, kind, sites, &project).await?;
    tx.commit().await?;
    Ok(pb::CompleteProjectResponse {
        project: Some(project),
    })
}

/// Stops a project in scoping or in progress, with a reason.
pub(crate) async fn stop(
    api: &ProjectsApi,
    ctx: AccessContext,
    req: pb::StopProjectRequest,
) -> Result<pb::StopProjectResponse, Error> {
    let pb::StopProjectRequest {
        name,
        reason,
        end_date,
        etag,
    } = req;
    let mut tx = qi_platform::db::begin(&api.pool).await?;
    let found = resolve(&mut tx, &ctx, "name", &name, true).await?;
    let mut v = Violations::new();
    let reason = v.check(long_text("reason", &reason, 1000));
    let end = v.check(optional_date("end_date", end_date.as_ref()));
    v.finish()?;
    let end = not_future("end_date", end.unwrap_or_else(today))?;
    check_etag(&etag, found.revision, "the project")?;
    let from = found.state()?;
    if !matches!(
        from,
        pb::ProjectState::Scoping | pb::ProjectState::InProgress
    ) {
        return Err(illegal(&found, from, "stop"));
    }
    check_end(&found, end)?;
    store::stop(&mut tx, found.uid, end, &reason).await?;
    let project = store::read(&mut tx, found.uid).await?;
    let sites = project_sites(&found);
    let kind = Kind::StateChanged("stop");
    crate::feed::record(&mut tx, COLLECTION, &project.name, kind, sites, &project).await?;
    tx.commit().await?;
    Ok(pb::StopProjectResponse {
        project: Some(project),
    })
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
