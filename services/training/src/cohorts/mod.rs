//! Cohorts: scheduled runs of a course, hosted by a site (`sites/{site}/cohorts/{id}`) or
//! trust-wide (`trust/cohorts/{id}`), the norm for the cross-site five-week course. Their
//! handlers, lifecycle and the rules of a new, planned or changed cohort.

pub(crate) mod store;

use chrono::NaiveDate;
use qi_platform::changes::{Batch, Kind};
use qi_platform::convert::{check_etag, int_in, required_date, required_text};
use qi_platform::extract;
use qi_platform::names::ListParentScope as _;
use qi_platform::names::OwnerAccess as _;
use qi_platform::names::{self, ListParent, Owner};
use qi_platform::paging::Page;
use qi_platform::{AccessContext, Error, Violations, idempotency};
use qi_proto::training as pb;
use sqlx::PgConnection;

use crate::{TrainingApi, courses, enrolments, sessions, staff};

/// The collection id in cohort names.
pub(crate) const COLLECTION: &str = "cohorts";

/// A cohort's states, as a List's filter reads them.
const STATES: extract::States = extract::States {
    prefix: "COHORT_STATE_",
    stored: &["planned", "open", "running", "completed", "cancelled"],
};

/// The sites whose callers read a cohort and its sessions: its site's, or every caller's
/// (`None`) for a trust-wide cohort. Nothing in a trust-wide cohort differs by caller: its
/// counts are the trust's, for everyone (see `Cohort.enrolled_count` in the contract).
pub(crate) fn feed_sites(cohort: &CohortRef) -> Option<Vec<String>> {
    cohort.site.clone().map(|s| vec![s])
}

/// Records a change of `found`, read again as it now is (its counts move with its roster),
/// and returns it.
pub(crate) async fn record_change(
    conn: &mut PgConnection,
    found: &CohortRef,
    kind: Kind,
) -> Result<pb::Cohort, Error> {
    let cohort = store::reread(conn, found).await?;
    let sites = feed_sites(found);
    crate::feed::record(conn, COLLECTION, &cohort.name, kind, sites, &cohort).await?;
    Ok(cohort)
}

/// Records the creation of `made`, new cohorts of `owner` (with the ids `ids`), and of
/// their sessions: one read of the sessions, one statement per collection.
async fn record_created(
    conn: &mut PgConnection,
    owner: &Owner,
    made: &[pb::Cohort],
    ids: &[String],
) -> Result<(), Error> {
    let site = owner.site_column().map(str::to_owned);
    let mut cohorts = Batch::new();
    for c in made {
        cohorts.push(c.name.clone(), Kind::Created, site.clone(), Some(c));
    }
    cohorts.record(conn, COLLECTION).await?;
    let mut scheduled = Batch::new();
    for s in sessions::store::of_cohorts(conn, owner, ids).await? {
        scheduled.push(s.name.clone(), Kind::Created, site.clone(), Some(&s));
    }
    scheduled.record(conn, sessions::COLLECTION).await
}

/// A cohort to create, validated.
#[derive(Debug)]
pub(crate) struct NewCohort {
    pub(crate) owner: Owner,
    pub(crate) id: String,
    pub(crate) course_id: String,
    pub(crate) display_name: String,
    pub(crate) start_date: NaiveDate,
    pub(crate) capacity: i32,
    pub(crate) facilitators: Vec<String>,
    pub(crate) request_id: String,
}

impl TryFrom<pb::CreateCohortRequest> for NewCohort {
    type Error = Error;

    fn try_from(req: pb::CreateCohortRequest) -> Result<Self, Error> {
        let pb::CreateCohortRequest {
            parent,
            cohort_id,
            cohort,
            request_id,
        } = req;
        let mut v = Violations::new();
        let owner = v.check(names::parse_parent("parent", &parent).map(Some));
        let id = v.check(names::id_or_new("cohort_id", &cohort_id));
        v.check(qi_platform::idempotency::validate_request_id(&request_id));
        let Some(cohort) = cohort else {
            return Err(v.missing("cohort"));
        };
        let pb::Cohort {
            name: _,
            course,
            display_name,
            start_date,
            capacity,
            state: _,
            create_time: _,
            update_time: _,
            etag: _,
            facilitators,
            enrolled_count: _,
            waitlist_count: _,
            cancel_reason: _,
        } = cohort;
        let course_id = v.check(courses::parse_ref("cohort.course", &course));
        let display_name = v.check(required_text("cohort.display_name", &display_name, 200));
        let start_date = v.check(required_date("cohort.start_date", start_date.as_ref()));
        let capacity = v.check(int_in("cohort.capacity", capacity, 1..=500));
        let facilitators = v.check(validate_facilitators("cohort.facilitators", facilitators));
        v.finish()?;
        let owner = owner.ok_or_else(|| Error::invalid("parent", "is required"))?;
        Ok(NewCohort {
            owner,
            id,
            course_id,
            display_name,
            start_date,
            capacity,
            facilitators,
            request_id,
        })
    }
}

/// Checks facilitator names, each 1 to 200 characters (the contract bounds how many).
fn validate_facilitators(field: &str, names: Vec<String>) -> Result<Vec<String>, Error> {
    names
        .iter()
        .enumerate()
        .map(|(i, n)| required_text(&format!("{field}[{i}]"), n, 200))
        .collect()
}

/// A cohort's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CohortState {
    Planned,
    Open,
    Running,
    Completed,
    Cancelled,
}

impl CohortState {
    pub(crate) fn from_column(s: &str) -> Result<Self, Error> {
        match s {
            "planned" => Ok(CohortState::Planned),
            "open" => Ok(CohortState::Open),
            "running" => Ok(CohortState::Running),
            "completed" => Ok(CohortState::Completed),
            "cancelled" => Ok(CohortState::Cancelled),
            other => Err(Error::Internal(anyhow::anyhow!(
                "stored cohort state {other}"
            ))),
        }
    }

    pub(crate) fn column(self) -> &'static str {
        match self {
            CohortState::Planned => "planned",
            CohortState::Open => "open",
            CohortState::Running => "running",
            CohortState::Completed => "completed",
            CohortState::Cancelled => "cancelled",
        }
    }

    fn to_proto(self) -> pb::CohortState {
        match self {
            CohortState::Planned => pb::CohortState::Planned,
            CohortState::Open => pb::CohortState::Open,
            CohortState::Running => pb::CohortState::Running,
            CohortState::Completed => pb::CohortState::Completed,
            CohortState::Cancelled => pb::CohortState::Cancelled,
        }
    }

    /// Whether the lifecycle leads from this state to `to`: planned → open → running →
    /// completed, or cancelled from any unfinished state.
    fn can_become(self, to: CohortState) -> bool {
        match to {
            CohortState::Open => self == CohortState::Planned,
            CohortState::Running => matches!(self, CohortState::Planned | CohortState::Open),
            CohortState::Completed => self == CohortState::Running,
            CohortState::Cancelled => matches!(
                self,
                CohortState::Planned | CohortState::Open | CohortState::Running
            ),
            CohortState::Planned => false,
        }
    }

    /// The verb of the change into this state, as the change feed names it.
    fn verb(self) -> &'static str {
        match self {
            CohortState::Planned => "plan",
            CohortState::Open => "open",
            CohortState::Running => "start",
            CohortState::Completed => "complete",
            CohortState::Cancelled => "cancel",
        }
    }

    /// Whether learners may still join (and the cohort counts as unfinished).
    pub(crate) fn takes_enrolments(self) -> bool {
        matches!(self, CohortState::Planned | CohortState::Open)
    }
}

/// What other modules need to know of a cohort they act on.
#[derive(Debug, Clone)]
pub(crate) struct CohortRef {
    pub(crate) uid: uuid::Uuid,
    pub(crate) site: Option<String>,
    pub(crate) id: String,
    pub(crate) course_id: String,
    pub(crate) state: String,
    pub(crate) capacity: i32,
    pub(crate) revision: i64,
}

impl CohortRef {
    pub(crate) fn owner(&self) -> Result<Owner, Error> {
        Owner::from_column(self.site.clone())
    }

    pub(crate) fn name(&self) -> Result<String, Error> {
        Ok(self.owner()?.child(COLLECTION, &self.id))
    }

    pub(crate) fn state(&self) -> Result<CohortState, Error> {
        CohortState::from_column(&self.state)
    }
}

/// The fields UpdateCohort may change.
const UPDATABLE: &[&str] = &["display_name", "capacity", "facilitators"];

/// What an UpdateCohort changes, validated (`None`: left as it is).
#[derive(Debug, Default)]
pub(crate) struct Changes {
    display_name: Option<String>,
    capacity: Option<i32>,
    facilitators: Option<Vec<String>>,
}

impl Changes {
    /// Reads the fields `mask` names (without one, those set) from `cohort`.
    fn parse(cohort: &pb::Cohort, mask: Option<&prost_types::FieldMask>) -> Result<Self, Error> {
        let paths = qi_platform::update_mask::paths(mask, UPDATABLE, |p| match p {
            "display_name" => !cohort.display_name.is_empty(),
            "capacity" => cohort.capacity != 0,
            "facilitators" => !cohort.facilitators.is_empty(),
            _ => false,
        })?;
        let mut v = Violations::new();
        let mut changes = Changes::default();
        for p in &paths {
            match *p {
                "display_name" => {
                    changes.display_name = Some(v.check(required_text(
                        "cohort.display_name",
                        &cohort.display_name,
                        200,
                    )))
                }
                "capacity" => {
                    changes.capacity =
                        Some(v.check(int_in("cohort.capacity", cohort.capacity, 1..=500)))
                }
                _ => {
                    changes.facilitators = Some(v.check(validate_facilitators(
                        "cohort.facilitators",
                        cohort.facilitators.clone(),
                    )))
                }
            }
        }
        v.finish()?;
        Ok(changes)
    }
}

/// A validated PlanCohorts request.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) owner: Owner,
    pub(crate) course_id: String,
    pub(crate) first_start: NaiveDate,
    pub(crate) count: i32,
    pub(crate) capacity: i32,
    pub(crate) facilitators: Vec<String>,
    pub(crate) request_id: String,
}

impl TryFrom<pb::PlanCohortsRequest> for Plan {
    type Error = Error;
    fn try_from(req: pb::PlanCohortsRequest) -> Result<Self, Error> {
        let pb::PlanCohortsRequest {
            parent,
            course,
            first_start_date,
            count,
            capacity,
            facilitators,
            request_id,
        } = req;
        let mut v = Violations::new();
        let owner = v.check(names::parse_parent("parent", &parent).map(Some));
        let course_id = v.check(courses::parse_ref("course", &course));
        let first_start = v.check(required_date("first_start_date", first_start_date.as_ref()));
        let count = v.check(int_in("count", count, 1..=12));
        let capacity = v.check(int_in("capacity", capacity, 1..=500));
        let facilitators = v.check(validate_facilitators("facilitators", facilitators));
        v.check(qi_platform::idempotency::validate_request_id(&request_id));
        v.finish()?;
        let owner = owner.ok_or_else(|| Error::invalid("parent", "is required"))?;
        Ok(Plan {
            owner,
            course_id,
            first_start,
            count,
            capacity,
            facilitators,
            request_id,
        })
    }
}

impl Plan {
    /// The planned cohorts: the first on the given date, the rest spaced evenly through the
    /// year in whole weeks, so every cohort starts on the same weekday.
    fn schedule(&self, title: &str) -> Vec<NewCohort> {
        let spacing = chrono::Duration::weeks(i64::from(52 / self.count));
        (0..self.count)
            .map(|i| {
                let start_date = self.first_start + spacing * i;
                NewCohort {
                    owner: self.owner.clone(),
                    id: uuid::Uuid::now_v7().to_string(),
                    course_id: self.course_id.clone(),
                    display_name: format!(
                        "{title}, {} ({} of {})",
                        start_date.format("%B %Y"),
                        i + 1,
                        self.count
                    ),
                    start_date,
                    capacity: self.capacity,
                    facilitators: self.facilitators.clone(),
                    request_id: String::new(),
                }
            })
            .collect()
    }
}

/// Parses a cohort name, checks the caller may read it (or, when `write`, change it), and
/// finds it (`NOT_FOUND` if absent), its row locked for the transaction when `lock`.
pub(crate) async fn resolve(
    conn: &mut PgConnection,
    ctx: &AccessContext,
    field: &str,
    name: &str,
    write: bool,
    lock: bool,
) -> Result<CohortRef, Error> {
    let (owner, id) = names::parse_accessible(ctx, field, name, COLLECTION, write)?;
    store::locate(conn, &owner, &id, lock)
        .await?
        .ok_or_else(|| Error::not_found(name))
}

/// CreateCohort: a site's cohort, or a trust-wide one, with its sessions.
pub(crate) async fn create(
    api: &TrainingApi,
    ctx: AccessContext,
    req: pb::CreateCohortRequest,
) -> Result<pb::CreateCohortResponse, Error> {
    let new = NewCohort::try_from(req.clone())?;
    new.owner.check_create(&ctx, &api.sites)?;
    let tx = qi_platform::db::begin(&api.pool).await?;
    idempotency::once(tx, &ctx, &new.request_id, &req, async |tx| {
        let cohort = store::insert(&mut *tx, &new).await?;
        let made = std::slice::from_ref(&cohort);
        record_created(tx, &new.owner, made, std::slice::from_ref(&new.id)).await?;
        let resp = pb::CreateCohortResponse {
            cohort: Some(cohort),
        };
        Ok(resp)
    })
    .await
}

/// PlanCohorts: a year's cohorts of a course in one call.
pub(crate) async fn plan(
    api: &TrainingApi,
    ctx: AccessContext,
    req: pb::PlanCohortsRequest,
) -> Result<pb::PlanCohortsResponse, Error> {
    let plan = Plan::try_from(req.clone())?;
    plan.owner.check_create(&ctx, &api.sites)?;
    let tx = qi_platform::db::begin(&api.pool).await?;
    idempotency::once(tx, &ctx, &plan.request_id, &req, async |tx| {
        let title = courses::store::display_name(&mut *tx, &plan.course_id)
            .await?
            .ok_or_else(|| Error::FailedPrecondition {
                reason: "COURSE_NOT_FOUND",
                message: format!(
                    "course: {} does not exist",
                    Owner::Trust.child(courses::COLLECTION, &plan.course_id)
                ),
            })?;
        let schedule = plan.schedule(&title);
        let mut cohorts = Vec::with_capacity(schedule.len());
        for new in &schedule {
            cohorts.push(store::insert(&mut *tx, new).await?);
        }
        let ids: Vec<String> = schedule.into_iter().map(|c| c.id).collect();
        record_created(tx, &plan.owner, &cohorts, &ids).await?;
        let resp = pb::PlanCohortsResponse { cohorts };
        Ok(resp)
    })
    .await
}

/// GetCohort: authorization before existence, so no answer about another site's cohorts.
pub(crate) async fn get(
    api: &TrainingApi,
    ctx: AccessContext,
    req: pb::GetCohortRequest,
) -> Result<pb::GetCohortResponse, Error> {
    let pb::GetCohortRequest { name } = req;
    let (owner, id) = names::parse_accessible(&ctx, "name", &name, COLLECTION, false)?;
    let mut conn = qi_platform::db::begin(&api.pool).await?;
    let cohort = store::get(&mut conn, &owner, &id)
        .await?
        .ok_or_else(|| Error::not_found(&name))?;
    Ok(pb::GetCohortResponse {
        cohort: Some(cohort),
    })
}

/// ListCohorts: trust-wide ones, one site's, or every site the caller holds.
pub(crate) async fn list(
    api: &TrainingApi,
    ctx: AccessContext,
    req: pb::ListCohortsRequest,
) -> Result<pb::ListCohortsResponse, Error> {
    let pb::ListCohortsRequest {
        parent,
        page_size,
        page_token,
        learner,
        filter,
        order_by,
    } = req;
    let mut v = Violations::new();
    let list_parent = v.check(ListParent::parse("parent", &parent).map(Some));
    let learner_filter = v.check(learner_filter(&ctx, &learner));
    let terms = v.check(extract::read_terms(&filter, Some(STATES), true));
    let order = v.check(extract::order(&order_by));
    v.finish()?;
    let list_parent = list_parent.ok_or_else(|| Error::invalid("parent", "is required"))?;
    // The learner only when set: a token issued before it existed still reads the same.
    let mut params = parent.clone();
    if !learner.is_empty() {
        params = format!("{params}|{learner}");
    }
    let params = extract::token_params(params, &filter, &order_by);
    let page = Page::parse(page_size, &page_token, &params)?;
    let mut conn = qi_platform::db::begin(&api.pool).await?;
    let mut scope = list_parent.scope(&ctx)?;
    if let Some(site) = &terms.site {
        if scope.trust {
            return Err(Error::invalid(
                "filter",
                "`site = …`: trust-wide cohorts are at no site (list `sites/-` instead)",
            ));
        }
        scope.sites = Some(extract::only_site(scope.sites, site));
    }
    let wanted = store::Wanted {
        learner: learner_filter.as_ref(),
        state: terms.state,
        updated: terms.updated,
        order,
    };
    let (cohorts, next_page_token) = store::list(&mut conn, &scope, &wanted, &page).await?;
    Ok(pb::ListCohortsResponse {
        cohorts,
        next_page_token,
    })
}

/// Reads ListCohorts' `learner` (empty: no filter) as every person's name is read, `staff/me`
/// included. A trust-wide cohort's roster shows a one-site caller only the learners now at
/// its sites, so the filter finds a learner there only as the roster would: wherever they
/// are for a trust-wide caller or the learner themselves, else at the caller's sites.
fn learner_filter(
    ctx: &AccessContext,
    learner: &str,
) -> Result<Option<store::LearnerFilter>, Error> {
    if learner.is_empty() {
        return Ok(None);
    }
    let number = staff::number_of(ctx, staff::parse_name("learner", learner)?)?;
    let own = ctx.employee.as_ref() == Some(&number);
    Ok(Some(store::LearnerFilter {
        roster_sites: if own { None } else { ctx.sites.sql_filter() },
        number: number.into(),
    }))
}

/// UpdateCohort: raising the capacity promotes waitlisted learners; it never drops below
/// the learners enrolled.
pub(crate) async fn update(
    api: &TrainingApi,
    ctx: AccessContext,
    req: pb::UpdateCohortRequest,
) -> Result<pb::UpdateCohortResponse, Error> {
    let pb::UpdateCohortRequest {
        cohort,
        update_mask,
    } = req;
    let cohort = cohort.ok_or_else(|| Error::invalid("cohort", "is required"))?;
    let mut tx = qi_platform::db::begin(&api.pool).await?;
    let found = resolve(&mut tx, &ctx, "cohort.name", &cohort.name, true, true).await?;
    check_etag(&cohort.etag, found.revision, "the cohort")?;
    let changes = Changes::parse(&cohort, update_mask.as_ref())?;
    if let Some(new) = changes.capacity {
        let enrolled = enrolments::store::enrolled_count(&mut tx, found.uid).await?;
        if i64::from(new) < enrolled {
            return Err(Error::FailedPrecondition {
                reason: "CAPACITY_BELOW_ENROLLED",
                message: format!(
                    "cohort.capacity: {enrolled} learners are enrolled; withdraw some before lowering it to {new}"
                ),
            });
        }
    }
    store::update(&mut tx, found.uid, &changes).await?;
    let promoted = if changes.capacity.is_some() {
        enrolments::store::fill_places(&mut tx, found.uid).await?
    } else {
        Vec::new()
    };
    let updated = record_change(&mut tx, &found, Kind::Updated).await?;
    enrolments::record_promotions(&mut tx, &found, &promoted).await?;
    tx.commit().await?;
    Ok(pb::UpdateCohortResponse {
        cohort: Some(updated),
    })
}

/// OpenCohort: planned → open.
pub(crate) async fn open(
    api: &TrainingApi,
    ctx: AccessContext,
    req: pb::OpenCohortRequest,
) -> Result<pb::OpenCohortResponse, Error> {
    let pb::OpenCohortRequest { name, etag } = req;
    let cohort = transition(api, &ctx, &name, &etag, CohortState::Open, None).await?;
    Ok(pb::OpenCohortResponse {
        cohort: Some(cohort),
    })
}

/// StartCohort: planned or open → running.
pub(crate) async fn start(
    api: &TrainingApi,
    ctx: AccessContext,
    req: pb::StartCohortRequest,
) -> Result<pb::StartCohortResponse, Error> {
    let pb::StartCohortRequest { name, etag } = req;
    let cohort = transition(api, &ctx, &name, &etag, CohortState::Running, None).await?;
    Ok(pb::StartCohortResponse {
        cohort: Some(cohort),
    })
}

/// CompleteCohort: running → completed.
pub(crate) async fn complete(
    api: &TrainingApi,
    ctx: AccessContext,
    req: pb::CompleteCohortRequest,
) -> Result<pb::CompleteCohortResponse, Error> {
    let pb::CompleteCohortRequest { name, etag } = req;
    let cohort = transition(api, &ctx, &name, &etag, CohortState::Completed, None).await?;
    Ok(pb::CompleteCohortResponse {
        cohort: Some(cohort),
    })
}

/// CancelCohort: any unfinished state → cancelled, with the reason kept.
pub(crate) async fn cancel(
    api: &TrainingApi,
    ctx: AccessContext,
    req: pb::CancelCohortRequest,
) -> Result<pb::CancelCohortResponse, Error> {
    let pb::CancelCohortRequest { name, reason, etag } = req;
    let reason = required_text("reason", &reason, 500)?;
    let to = CohortState::Cancelled;
    let cohort = transition(api, &ctx, &name, &etag, to, Some(&reason)).await?;
    Ok(pb::CancelCohortResponse {
        cohort: Some(cohort),
    })
}

/// Moves the named cohort along its lifecycle, if the caller may change it, the etag is
/// current and the lifecycle allows it; returns the cohort as it now is.
async fn transition(
    api: &TrainingApi,
    ctx: &AccessContext,
    name: &str,
    etag: &str,
    to: CohortState,
    reason: Option<&str>,
) -> Result<pb::Cohort, Error> {
    let mut tx = qi_platform::db::begin(&api.pool).await?;
    let found = resolve(&mut tx, ctx, "name", name, true, true).await?;
    check_etag(etag, found.revision, "the cohort")?;
    let from = found.state()?;
    if !from.can_become(to) {
        return Err(Error::FailedPrecondition {
            reason: "COHORT_STATE",
            message: format!(
                "{} is {}: it cannot become {}",
                found.name()?,
                from.column(),
                to.column()
            ),
        });
    }
    store::set_state(&mut tx, found.uid, to, reason).await?;
    let cohort = record_change(&mut tx, &found, Kind::StateChanged(to.verb())).await?;
    tx.commit().await?;
    Ok(cohort)
}

#[cfg(test)]
mod tests {
    use super::*;
    use qi_proto::google::r#type::Date;

    fn request() -> pb::CreateCohortRequest {
        pb::CreateCohortRequest {
            parent: "sites/BAS".into(),
            cohort_id: String::new(),
            cohort: Some(pb::Cohort {
                course: "trust/courses/qsir-prac".into(),
                display_name: "Spring 2027".into(),
                start_date: Some(Date {
                    year: 2027,
                    month: 3,
                    day: 4,
                }),
                capacity: 24,
                ..Default::default()
            }),
            request_id: "6f1c2f0e-5f0a-4c39-9a57-0f4f7f2e9d11".into(),
        }
    }

    #[test]
    fn a_valid_cohort_gets_an_assigned_id() {
        let c = NewCohort::try_from(request()).unwrap();
        assert_eq!(c.course_id, "qsir-prac");
        assert!(uuid::Uuid::parse_str(&c.id).is_ok());
        assert_eq!(c.owner.parent_name(), "sites/BAS");
    }

    #[test]
    fn every_bad_field_is_named() {
        let mut r = request();
        r.parent = "sites/bas".into();
        r.request_id = "x".repeat(65);
        if let Some(c) = r.cohort.as_mut() {
            c.course = "sites/BAS/courses/x".into();
            c.display_name = " ".into();
            c.start_date = Some(Date {
                year: 2027,
                month: 2,
                day: 30,
            });
            c.capacity = 0;
        }
        let Err(Error::InvalidArgument { violations }) = NewCohort::try_from(r) else {
            panic!("expected invalid argument")
        };
        let fields: Vec<_> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "parent",
                "request_id",
                "cohort.course",
                "cohort.display_name",
                "cohort.start_date",
                "cohort.capacity"
            ]
        );
    }

    #[test]
    fn the_lifecycle_runs_one_way_and_cancels_until_finished() {
        use CohortState::*;
        assert!(Planned.can_become(Open) && Planned.can_become(Running));
        assert!(Open.can_become(Running) && Running.can_become(Completed));
        assert!(Running.can_become(Cancelled));
        assert!(!Open.can_become(Completed) && !Running.can_become(Open));
        assert!(!Completed.can_become(Cancelled) && !Cancelled.can_become(Planned));
    }

    #[test]
    fn a_plan_spaces_its_cohorts_through_the_year_on_one_weekday() {
        let plan = Plan::try_from(pb::PlanCohortsRequest {
            parent: "sites/BAS".into(),
            course: "trust/courses/qsir-prac".into(),
            first_start_date: Some(Date {
                year: 2027,
                month: 1,
                day: 7,
            }),
            count: 4,
            capacity: 20,
            facilitators: vec![],
            request_id: String::new(),
        })
        .unwrap();
        let made = plan.schedule("QSIR Practitioner");
        let starts: Vec<_> = made.iter().map(|c| c.start_date.to_string()).collect();
        assert_eq!(
            starts,
            ["2027-01-07", "2027-04-08", "2027-07-08", "2027-10-07"]
        );
        assert_eq!(
            made[1].display_name,
            "QSIR Practitioner, April 2027 (2 of 4)"
        );
    }
}
