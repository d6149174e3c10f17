//! Cohorts: scheduled runs of a course, hosted by a site (`sites/{site}/cohorts/{id}`) or
//! trust-wide (`trust/cohorts/{id}`), the norm for the cross-site five-week course.

use chrono::NaiveDate;
use qi_platform::convert::{
    check_etag, date, etag, int_in, required_date, required_text, timestamp,
};
use qi_platform::names::{self, LIST_SCOPE_SQL, ListParent, Owner};
use qi_platform::paging::Page;
use qi_platform::{AccessContext, Error, Violations};
use qi_proto::training as pb;
use sqlx::PgConnection;

/// The collection id in cohort names.
pub(crate) const COLLECTION: &str = "cohorts";

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
        let course_id = v.check(course_id("cohort.course", &course));
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
pub(crate) fn validate_facilitators(field: &str, names: Vec<String>) -> Result<Vec<String>, Error> {
    names
        .iter()
        .enumerate()
        .map(|(i, n)| required_text(&format!("{field}[{i}]"), n, 200))
        .collect()
}

#[derive(sqlx::FromRow)]
struct CohortRow {
    site: Option<String>,
    id: String,
    course_id: String,
    display_name: String,
    start_date: NaiveDate,
    capacity: i32,
    state: String,
    create_time: chrono::DateTime<chrono::Utc>,
    update_time: chrono::DateTime<chrono::Utc>,
    revision: i64,
    facilitators: Vec<String>,
    cancel_reason: Option<String>,
    enrolled_count: i64,
    waitlist_count: i64,
}

impl TryFrom<CohortRow> for pb::Cohort {
    type Error = Error;
    fn try_from(r: CohortRow) -> Result<Self, Error> {
        let state = CohortState::from_column(&r.state)?.to_proto();
        Ok(pb::Cohort {
            name: Owner::from_column(r.site)?.child(COLLECTION, &r.id),
            course: Owner::Trust.child(crate::courses::COLLECTION, &r.course_id),
            display_name: r.display_name,
            start_date: Some(date(r.start_date)),
            capacity: r.capacity,
            state: state as i32,
            create_time: Some(timestamp(r.create_time)),
            update_time: Some(timestamp(r.update_time)),
            etag: etag(r.revision),
            facilitators: r.facilitators,
            enrolled_count: i32::try_from(r.enrolled_count).unwrap_or(i32::MAX),
            waitlist_count: i32::try_from(r.waitlist_count).unwrap_or(i32::MAX),
            cancel_reason: r.cancel_reason.unwrap_or_default(),
        })
    }
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

    /// Whether learners may still join (and the cohort counts as unfinished).
    pub(crate) fn takes_enrolments(self) -> bool {
        matches!(self, CohortState::Planned | CohortState::Open)
    }
}

const COLUMNS: &str = "c.site, c.id, c.course_id, c.display_name, c.start_date, c.capacity, c.state, \
     c.create_time, c.update_time, c.revision, c.facilitators, c.cancel_reason, \
     (SELECT count(*) FROM enrolment e WHERE e.cohort_uid = c.uid AND e.state = 'enrolled') AS enrolled_count, \
     (SELECT count(*) FROM enrolment e WHERE e.cohort_uid = c.uid AND e.state = 'waitlisted') AS waitlist_count";

/// What other modules need to know of a cohort they act on.
#[derive(Debug, Clone, sqlx::FromRow)]
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

/// Finds a cohort by owner and id, locking its row for the transaction when `lock` (every
/// change to its enrolments serializes on it, which is what keeps capacity exact).
pub(crate) async fn locate(
    conn: &mut PgConnection,
    owner: &Owner,
    id: &str,
    lock: bool,
) -> Result<Option<CohortRef>, Error> {
    let sql = format!(
        "SELECT uid, site, id, course_id, state, capacity, revision FROM cohort
         WHERE coalesce(site, '') = coalesce($1, '') AND id = $2 {}",
        if lock { "FOR UPDATE" } else { "" }
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(owner.site_column())
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?)
}

/// Parses a cohort name, checks the caller may act on it, and finds it (`NOT_FOUND` if absent).
pub(crate) async fn resolve(
    conn: &mut PgConnection,
    ctx: &AccessContext,
    field: &str,
    name: &str,
    write: bool,
    lock: bool,
) -> Result<CohortRef, Error> {
    let (owner, id) = names::parse_name(field, name, COLLECTION)?;
    if write {
        owner.check_write(ctx)?;
    } else {
        owner.check_read(ctx)?;
    }
    locate(conn, &owner, &id, lock)
        .await?
        .ok_or_else(|| Error::not_found(name))
}

/// Inserts a cohort; `AlreadyExists` if the name is taken, `FailedPrecondition` if the
/// course does not exist.
pub(crate) async fn insert(conn: &mut PgConnection, c: &NewCohort) -> Result<pb::Cohort, Error> {
    let session_count: Option<i32> =
        sqlx::query_scalar("SELECT session_count FROM course WHERE id = $1")
            .bind(&c.course_id)
            .fetch_optional(&mut *conn)
            .await?;
    let Some(session_count) = session_count else {
        return Err(Error::FailedPrecondition {
            reason: "COURSE_NOT_FOUND",
            message: format!(
                "cohort.course: {} does not exist; create it first",
                Owner::Trust.child(crate::courses::COLLECTION, &c.course_id)
            ),
        });
    };
    let uid: Option<uuid::Uuid> = sqlx::query_scalar(
        "INSERT INTO cohort (site, id, course_id, display_name, start_date, capacity, facilitators)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT DO NOTHING
         RETURNING uid",
    )
    .bind(c.owner.site_column())
    .bind(&c.id)
    .bind(&c.course_id)
    .bind(&c.display_name)
    .bind(c.start_date)
    .bind(c.capacity)
    .bind(&c.facilitators)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(uid) = uid else {
        return Err(Error::AlreadyExists {
            name: c.owner.child(COLLECTION, &c.id),
        });
    };
    // The sessions, one week apart from the start date.
    sqlx::query(
        "INSERT INTO session (cohort_uid, number, date)
         SELECT $1, n, $2::date + (n - 1) * 7 FROM generate_series(1, $3) AS n",
    )
    .bind(uid)
    .bind(c.start_date)
    .bind(session_count)
    .execute(&mut *conn)
    .await?;
    get(conn, &c.owner, &c.id)
        .await?
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("the cohort just created is missing")))
}

/// Reads one cohort by owner and id, so a name whose site is not where the cohort lives
/// finds nothing.
pub(crate) async fn get(
    conn: &mut PgConnection,
    owner: &Owner,
    id: &str,
) -> Result<Option<pb::Cohort>, Error> {
    let row: Option<CohortRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM cohort c WHERE coalesce(c.site, '') = coalesce($1, '') AND c.id = $2"
    )))
    .bind(owner.site_column())
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(TryInto::try_into).transpose()
}

/// One page of cohorts under `parent`, scoped to the caller's sites, newest first.
pub(crate) async fn list(
    conn: &mut PgConnection,
    ctx: &AccessContext,
    parent: &ListParent,
    page: &Page,
) -> Result<(Vec<pb::Cohort>, String), Error> {
    // Which rows: trust-wide ones, one site's, or every site the caller holds.
    let scope = parent.scope(ctx)?;
    let after_date = page
        .after_key(0)
        .map(|d| d.parse::<NaiveDate>())
        .transpose()
        .map_err(|_| Error::invalid("page_token", "not a token this list returned"))?;
    let rows: Vec<CohortRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM cohort c
         WHERE {LIST_SCOPE_SQL}
           AND ($3::date IS NULL OR c.start_date < $3
                OR (c.start_date = $3 AND (coalesce(c.site, ''), c.id) > ($4, $5)))
         ORDER BY c.start_date DESC, coalesce(c.site, ''), c.id
         LIMIT $6"
    )))
    .bind(scope.trust)
    .bind(scope.sites)
    .bind(after_date)
    .bind(page.after_key(1).unwrap_or(""))
    .bind(page.after_key(2).unwrap_or(""))
    .bind(page.limit())
    .fetch_all(&mut *conn)
    .await?;
    let (rows, next) = page.finish(rows, |r| {
        vec![
            r.start_date.to_string(),
            r.site.clone().unwrap_or_default(),
            r.id.clone(),
        ]
    });
    rows.into_iter()
        .map(TryInto::try_into)
        .collect::<Result<Vec<_>, _>>()
        .map(|c| (c, next))
}

/// Moves a cohort along its lifecycle: planned → open → running → completed, or
/// cancelled from any unfinished state.
pub(crate) async fn transition(
    conn: &mut PgConnection,
    c: &CohortRef,
    to: CohortState,
    etag_given: &str,
    reason: Option<&str>,
) -> Result<pb::Cohort, Error> {
    check_etag(etag_given, c.revision, "the cohort")?;
    let from = c.state()?;
    let allowed = match to {
        CohortState::Open => from == CohortState::Planned,
        CohortState::Running => matches!(from, CohortState::Planned | CohortState::Open),
        CohortState::Completed => from == CohortState::Running,
        CohortState::Cancelled => matches!(
            from,
            CohortState::Planned | CohortState::Open | CohortState::Running
        ),
        CohortState::Planned => false,
    };
    if !allowed {
        return Err(Error::FailedPrecondition {
            reason: "COHORT_STATE",
            message: format!(
                "{} is {}: it cannot become {}",
                c.name()?,
                from.column(),
                to.column()
            ),
        });
    }
    sqlx::query("UPDATE cohort SET state = $2, cancel_reason = $3 WHERE uid = $1")
        .bind(c.uid)
        .bind(to.column())
        .bind(reason)
        .execute(&mut *conn)
        .await?;
    reread(conn, c).await
}

/// Reads a cohort again after a change.
pub(crate) async fn reread(conn: &mut PgConnection, c: &CohortRef) -> Result<pb::Cohort, Error> {
    get(conn, &c.owner()?, &c.id)
        .await?
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("cohort {} vanished", c.id)))
}

/// The fields UpdateCohort may change.
pub(crate) const UPDATABLE: &[&str] = &["display_name", "capacity", "facilitators"];

/// Applies an update to a locked cohort; raising the capacity promotes waitlisted learners.
pub(crate) async fn update(
    conn: &mut PgConnection,
    c: &CohortRef,
    cohort: pb::Cohort,
    mask: Option<&prost_types::FieldMask>,
) -> Result<pb::Cohort, Error> {
    check_etag(&cohort.etag, c.revision, "the cohort")?;
    let paths = qi_platform::update_mask::paths(mask, UPDATABLE, |p| match p {
        "display_name" => !cohort.display_name.is_empty(),
        "capacity" => cohort.capacity != 0,
        "facilitators" => !cohort.facilitators.is_empty(),
        _ => false,
    })?;
    let mut v = Violations::new();
    let mut display_name = None;
    let mut capacity = None;
    let mut facilitators = None;
    for p in &paths {
        match *p {
            "display_name" => {
                display_name = Some(v.check(required_text(
                    "cohort.display_name",
                    &cohort.display_name,
                    200,
                )))
            }
            "capacity" => {
                capacity = Some(v.check(int_in("cohort.capacity", cohort.capacity, 1..=500)))
            }
            _ => {
                facilitators = Some(v.check(validate_facilitators(
                    "cohort.facilitators",
                    cohort.facilitators.clone(),
                )))
            }
        }
    }
    v.finish()?;
    if let Some(new) = capacity {
        let enrolled: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM enrolment WHERE cohort_uid = $1 AND state = 'enrolled'",
        )
        .bind(c.uid)
        .fetch_one(&mut *conn)
        .await?;
        if i64::from(new) < enrolled {
            return Err(Error::FailedPrecondition {
                reason: "CAPACITY_BELOW_ENROLLED",
                message: format!(
                    "cohort.capacity: {enrolled} learners are enrolled; withdraw some before lowering it to {new}"
                ),
            });
        }
    }
    sqlx::query(
        "UPDATE cohort SET display_name = coalesce($2, display_name),
                           capacity = coalesce($3, capacity),
                           facilitators = coalesce($4, facilitators)
         WHERE uid = $1",
    )
    .bind(c.uid)
    .bind(display_name)
    .bind(capacity)
    .bind(facilitators)
    .execute(&mut *conn)
    .await?;
    if capacity.is_some() {
        crate::enrolments::fill_places(conn, c.uid).await?;
    }
    reread(conn, c).await
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
        let course_id = v.check(course_id("course", &course));
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

/// Reads a course reference `trust/courses/{course}`.
pub(crate) fn course_id(field: &str, name: &str) -> Result<String, Error> {
    names::parse_name(field, name, crate::courses::COLLECTION).and_then(|(owner, id)| match owner {
        Owner::Trust => Ok(id),
        Owner::Site(_) => Err(Error::invalid(
            field,
            "courses are trust-wide: `trust/courses/{course}`",
        )),
    })
}

/// Creates the planned cohorts: the first on the given date, the rest spaced evenly through
/// the year in whole weeks, so every cohort starts on the same weekday.
pub(crate) async fn plan(conn: &mut PgConnection, p: &Plan) -> Result<Vec<pb::Cohort>, Error> {
    let title: Option<String> = sqlx::query_scalar("SELECT display_name FROM course WHERE id = $1")
        .bind(&p.course_id)
        .fetch_optional(&mut *conn)
        .await?;
    let title = title.ok_or_else(|| Error::FailedPrecondition {
        reason: "COURSE_NOT_FOUND",
        message: format!(
            "course: {} does not exist",
            Owner::Trust.child(crate::courses::COLLECTION, &p.course_id)
        ),
    })?;
    let spacing = chrono::Duration::weeks(i64::from(52 / p.count));
    let mut made = Vec::with_capacity(p.count as usize);
    for i in 0..p.count {
        let start_date = p.first_start + spacing * i;
        let new = NewCohort {
            owner: p.owner.clone(),
            id: uuid::Uuid::now_v7().to_string(),
            course_id: p.course_id.clone(),
            display_name: format!(
                "{title}, {} ({} of {})",
                start_date.format("%B %Y"),
                i + 1,
                p.count
            ),
            start_date,
            capacity: p.capacity,
            facilitators: p.facilitators.clone(),
            request_id: String::new(),
        };
        made.push(insert(conn, &new).await?);
    }
    Ok(made)
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
}
