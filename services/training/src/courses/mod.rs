//! The trust-wide course catalogue (`trust/courses/{course}`): its handlers and the rules
//! of a new course.

pub(crate) mod store;

use qi_platform::convert::{int_in, required_text};
use qi_platform::names::OwnerAccess as _;
use qi_platform::names::{self, Owner};
use qi_platform::paging::Page;
use qi_platform::{AccessContext, Error, Violations, idempotency};
use qi_proto::training as pb;

use crate::TrainingApi;

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

/// Reads a course reference `trust/courses/{course}` into the course id.
pub(crate) fn parse_ref(field: &str, name: &str) -> Result<String, Error> {
    names::parse_name(field, name, COLLECTION).and_then(|(owner, id)| match owner {
        Owner::Trust => Ok(id),
        Owner::Site(_) => Err(Error::invalid(
            field,
            "courses are trust-wide: `trust/courses/{course}`",
        )),
    })
}

/// CreateCourse: trust-wide, so only a trust-wide writer adds one.
pub(crate) async fn create(
    api: &TrainingApi,
    ctx: AccessContext,
    req: pb::CreateCourseRequest,
) -> Result<pb::CreateCourseResponse, Error> {
    let new = NewCourse::try_from(req.clone())?;
    Owner::Trust.check_write(&ctx)?;
    let tx = qi_platform::db::begin(&api.pool).await?;
    idempotency::once(tx, &ctx, &new.request_id, &req, async |tx| {
        let course = store::insert(&mut *tx, &new).await?;
        let resp = pb::CreateCourseResponse {
            course: Some(course),
        };
        Ok(resp)
    })
    .await
}

/// GetCourse: any caller may read the catalogue.
pub(crate) async fn get(
    api: &TrainingApi,
    _ctx: AccessContext,
    req: pb::GetCourseRequest,
) -> Result<pb::GetCourseResponse, Error> {
    let pb::GetCourseRequest { name } = req;
    let (owner, id) = names::parse_name("name", &name, COLLECTION)?;
    if owner != Owner::Trust {
        return Err(Error::not_found(name));
    }
    let mut conn = qi_platform::db::begin(&api.pool).await?;
    let course = store::get(&mut conn, &id)
        .await?
        .ok_or_else(|| Error::not_found(&name))?;
    Ok(pb::GetCourseResponse {
        course: Some(course),
    })
}

/// ListCourses: the catalogue by code.
pub(crate) async fn list(
    api: &TrainingApi,
    _ctx: AccessContext,
    req: pb::ListCoursesRequest,
) -> Result<pb::ListCoursesResponse, Error> {
    let pb::ListCoursesRequest {
        parent,
        page_size,
        page_token,
    } = req;
    if parent != "trust" {
        return Err(Error::invalid(
            "parent",
            "courses are trust-wide: use `trust`",
        ));
    }
    let page = Page::parse(page_size, &page_token, &parent)?;
    let mut conn = qi_platform::db::begin(&api.pool).await?;
    let (courses, next_page_token) = store::list(&mut conn, &page).await?;
    Ok(pb::ListCoursesResponse {
        courses,
        next_page_token,
    })
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
