//! Cohorts: scheduled runs of a course, hosted by a site (`sites/{site}/cohorts/{id}`) or
//! trust-wide (`trust/cohorts/{id}`), the norm for the cross-site five-week course.

use chrono::NaiveDate;
use qi_platform::convert::{date, etag, int_in, required_date, required_text, timestamp};
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
        } = cohort;
        let course_id = v.check(
            names::parse_name("cohort.course", &course, crate::courses::COLLECTION).and_then(
                |(owner, id)| match owner {
                    Owner::Trust => Ok(id),
                    Owner::Site(_) => Err(Error::invalid(
                        "cohort.course",
                        "courses are trust-wide: `trust/courses/{course}`",
                    )),
                },
            ),
        );
        let display_name = v.check(required_text("cohort.display_name", &display_name, 200));
        let start_date = v.check(required_date("cohort.start_date", start_date.as_ref()));
        let capacity = v.check(int_in("cohort.capacity", capacity, 1..=500));
        v.finish()?;
        let owner = owner.ok_or_else(|| Error::invalid("parent", "is required"))?;
        Ok(NewCohort {
            owner,
            id,
            course_id,
            display_name,
            start_date,
            capacity,
            request_id,
        })
    }
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
}

impl TryFrom<CohortRow> for pb::Cohort {
    type Error = Error;
    fn try_from(r: CohortRow) -> Result<Self, Error> {
        let state = match r.state.as_str() {
            "planned" => pb::CohortState::Planned,
            "open" => pb::CohortState::Open,
            "running" => pb::CohortState::Running,
            "completed" => pb::CohortState::Completed,
            "cancelled" => pb::CohortState::Cancelled,
            other => {
                return Err(Error::Internal(anyhow::anyhow!(
                    "stored cohort state {other}"
                )));
            }
        };
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
        })
    }
}

const COLUMNS: &str = "site, id, course_id, display_name, start_date, capacity, state, create_time, update_time, revision";

/// Inserts a cohort; `AlreadyExists` if the name is taken, `FailedPrecondition` if the
/// course does not exist.
pub(crate) async fn insert(conn: &mut PgConnection, c: &NewCohort) -> Result<pb::Cohort, Error> {
    let course_exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM course WHERE id = $1)")
            .bind(&c.course_id)
            .fetch_one(&mut *conn)
            .await?;
    if !course_exists {
        return Err(Error::FailedPrecondition {
            reason: "COURSE_NOT_FOUND",
            message: format!(
                "cohort.course: {} does not exist; create it first",
                Owner::Trust.child(crate::courses::COLLECTION, &c.course_id)
            ),
        });
    }
    let row: Option<CohortRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO cohort (site, id, course_id, display_name, start_date, capacity)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT DO NOTHING
         RETURNING {COLUMNS}"
    )))
    .bind(c.owner.site_column())
    .bind(&c.id)
    .bind(&c.course_id)
    .bind(&c.display_name)
    .bind(c.start_date)
    .bind(c.capacity)
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        Some(row) => row.try_into(),
        None => Err(Error::AlreadyExists {
            name: c.owner.child(COLLECTION, &c.id),
        }),
    }
}

/// Reads one cohort by owner and id, so a name whose site is not where the cohort lives
/// finds nothing.
pub(crate) async fn get(
    conn: &mut PgConnection,
    owner: &Owner,
    id: &str,
) -> Result<Option<pb::Cohort>, Error> {
    let row: Option<CohortRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM cohort WHERE site IS NOT DISTINCT FROM $1 AND id = $2"
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
        "SELECT {COLUMNS} FROM cohort
         WHERE {LIST_SCOPE_SQL}
           AND ($3::date IS NULL OR start_date < $3
                OR (start_date = $3 AND (coalesce(site, ''), id) > ($4, $5)))
         ORDER BY start_date DESC, coalesce(site, ''), id
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
