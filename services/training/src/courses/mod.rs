//! The trust-wide course catalogue (`trust/courses/{course}`).

use qi_platform::convert::{etag, int_in, required_text, timestamp};
use qi_platform::names::{self, Owner};
use qi_platform::paging::Page;
use qi_platform::{Error, Violations};
use qi_proto::training as pb;
use sqlx::PgConnection;

/// The collection id in course names.
pub(crate) const COLLECTION: &str = "courses";

/// A course to create, validated.
#[derive(Debug)]
pub(crate) struct NewCourse {
    pub(crate) id: String,
    pub(crate) code: String,
    pub(crate) display_name: String,
    pub(crate) session_count: i32,
    pub(crate) required_sessions: i32,
    pub(crate) validity_months: i32,
    pub(crate) request_id: String,
}

impl TryFrom<pb::CreateCourseRequest> for NewCourse {
    type Error = Error;

    fn try_from(req: pb::CreateCourseRequest) -> Result<Self, Error> {
        let pb::CreateCourseRequest {
            parent,
            course_id,
            course,
            request_id,
        } = req;
        let mut v = Violations::new();
        if parent != "trust" {
            v.add("parent", "courses are trust-wide: use `trust`");
        }
        let id = v.check(names::validate_id("course_id", &course_id).map(|()| course_id));
        v.check(qi_platform::idempotency::validate_request_id(&request_id));
        let Some(course) = course else {
            return Err(v.missing("course"));
        };
        // Output-only fields (name, times, etag) are ignored, as AIP-203 asks.
        let pb::Course {
            name: _,
            code,
            display_name,
            session_count,
            required_sessions,
            validity_months,
            create_time: _,
            update_time: _,
            etag: _,
        } = course;
        let code = v.check(course_code(&code));
        let display_name = v.check(required_text("course.display_name", &display_name, 200));
        let session_count = v.check(int_in("course.session_count", session_count, 1..=52));
        let required_sessions = v.check(int_in(
            "course.required_sessions",
            required_sessions,
            0..=session_count,
        ));
        let validity_months = v.check(int_in("course.validity_months", validity_months, 0..=600));
        v.finish()?;
        Ok(NewCourse {
            id,
            code,
            display_name,
            session_count,
            required_sessions,
            validity_months,
            request_id,
        })
    }
}

fn course_code(code: &str) -> Result<String, Error> {
    let ok = (2..=20).contains(&code.len())
        && code.starts_with(|c: char| c.is_ascii_uppercase())
        && code
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(code.to_owned())
    } else {
        Err(Error::invalid(
            "course.code",
            "use 2 to 20 upper case letters, digits and hyphens, starting with a letter (e.g. QSIR-PRAC)",
        ))
    }
}

#[derive(sqlx::FromRow)]
struct CourseRow {
    id: String,
    code: String,
    display_name: String,
    session_count: i32,
    required_sessions: i32,
    validity_months: i32,
    create_time: chrono::DateTime<chrono::Utc>,
    update_time: chrono::DateTime<chrono::Utc>,
    revision: i64,
}

impl From<CourseRow> for pb::Course {
    fn from(r: CourseRow) -> Self {
        pb::Course {
            name: Owner::Trust.child(COLLECTION, &r.id),
            code: r.code,
            display_name: r.display_name,
            session_count: r.session_count,
            required_sessions: r.required_sessions,
            validity_months: r.validity_months,
            create_time: Some(timestamp(r.create_time)),
            update_time: Some(timestamp(r.update_time)),
            etag: etag(r.revision),
        }
    }
}

const COLUMNS: &str = "id, code, display_name, session_count, required_sessions, validity_months, create_time, update_time, revision";

/// Inserts a course; `AlreadyExists` if the id or the code is taken.
pub(crate) async fn insert(conn: &mut PgConnection, c: &NewCourse) -> Result<pb::Course, Error> {
    let row: Option<CourseRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO course (id, code, display_name, session_count, required_sessions, validity_months)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT DO NOTHING
         RETURNING {COLUMNS}"
    )))
    .bind(&c.id)
    .bind(&c.code)
    .bind(&c.display_name)
    .bind(c.session_count)
    .bind(c.required_sessions)
    .bind(c.validity_months)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(Into::into).ok_or_else(|| Error::AlreadyExists {
        name: format!(
            "{} (code {})",
            Owner::Trust.child(COLLECTION, &c.id),
            c.code
        ),
    })
}

/// Reads one course by id.
pub(crate) async fn get(conn: &mut PgConnection, id: &str) -> Result<Option<pb::Course>, Error> {
    let row: Option<CourseRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM course WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(Into::into))
}

/// One page of the catalogue, ordered by code.
pub(crate) async fn list(
    conn: &mut PgConnection,
    page: &Page,
) -> Result<(Vec<pb::Course>, String), Error> {
    let rows: Vec<CourseRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM course WHERE code > $1 ORDER BY code LIMIT $2"
    )))
    .bind(page.after_key(0).unwrap_or(""))
    .bind(page.limit())
    .fetch_all(&mut *conn)
    .await?;
    let (rows, next) = page.finish(rows, |r| vec![r.code.clone()]);
    Ok((rows.into_iter().map(Into::into).collect(), next))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> pb::CreateCourseRequest {
        pb::CreateCourseRequest {
            parent: "trust".into(),
            course_id: "qsir-lead".into(),
            course: Some(pb::Course {
                code: "QSIR-LEAD".into(),
                display_name: "QSIR for leaders".into(),
                session_count: 2,
                ..Default::default()
            }),
            request_id: String::new(),
        }
    }

    #[test]
    fn a_valid_course_request_converts() {
        let c = NewCourse::try_from(request()).unwrap();
        assert_eq!(
            (c.id.as_str(), c.code.as_str(), c.session_count),
            ("qsir-lead", "QSIR-LEAD", 2)
        );
    }

    #[test]
    fn every_bad_field_is_named() {
        let mut r = request();
        r.parent = "sites/BAS".into();
        r.course_id = "Bad Id".into();
        if let Some(c) = r.course.as_mut() {
            c.code = "qsir".into();
            c.session_count = 0;
            c.required_sessions = 3;
        }
        let Err(Error::InvalidArgument { violations }) = NewCourse::try_from(r) else {
            panic!("expected invalid argument")
        };
        let fields: Vec<_> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "parent",
                "course_id",
                "course.code",
                "course.session_count",
                "course.required_sessions"
            ]
        );
    }

    #[test]
    fn a_missing_course_is_named() {
        let mut r = request();
        r.course = None;
        let Err(Error::InvalidArgument { violations }) = NewCourse::try_from(r) else {
            panic!("expected invalid argument")
        };
        assert_eq!(violations[0].field, "course");
    }
}
