//! The trust-wide course catalogue (`trust/courses/{course}`): its handlers, the rules of a
//! new course and of a change to one, and the ESR competence a course is recorded against.

pub(crate) mod store;

use qi_platform::changes::Kind;
use qi_platform::convert::{check_etag, int_in, required_text};
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
    pub(crate) esr_competence_id: String,
    pub(crate) esr_competence_name: String,
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
            esr_competence_id,
            esr_competence_name,
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
        let esr_competence_id = v.check(competence_id(&esr_competence_id));
        let esr_competence_name = v.check(competence_name(&esr_competence_name));
        v.finish()?;
        Ok(NewCourse {
            id,
            code,
            display_name,
            session_count,
            required_sessions,
            validity_months,
            esr_competence_id,
            esr_competence_name,
            request_id,
        })
    }
}

/// The longest ESR competence id taken.
const COMPETENCE_ID_MAX: usize = 30;

/// Checks an ESR competence id; empty means none. ESR's national competence library numbers
/// its competences, and trusts code local ones with their VPD code and separators such as
/// `|`: ASCII letters, digits and `-`, `_`, `.`, `|`, starting with a letter or digit, at
/// most 30. Spaces and commas are refused: the id travels in upload files. The migration's
/// CHECK holds the same rule.
fn competence_id(id: &str) -> Result<String, Error> {
    let ok = id.is_empty()
        || (id.len() <= COMPETENCE_ID_MAX
            && id.starts_with(|c: char| c.is_ascii_alphanumeric())
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '|')));
    if ok {
        Ok(id.to_owned())
    } else {
        Err(Error::invalid(
            "course.esr_competence_id",
            "use up to 30 ASCII letters, digits and `-`, `_`, `.`, `|`, starting with a letter or digit (e.g. 12345 or 123-LOCAL-QSIR)",
        ))
    }
}

/// Checks an ESR competence name; empty (or blank) means none.
fn competence_name(name: &str) -> Result<String, Error> {
    if name.trim().is_empty() {
        return Ok(String::new());
    }
    required_text("course.esr_competence_name", name, 200)
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

/// The fields UpdateCourse may change. The code and the completion rule are not among
/// them: completions already derived (and exported to ESR) were judged by them.
const UPDATABLE: &[&str] = &["display_name", "esr_competence_id", "esr_competence_name"];

/// What an UpdateCourse changes, validated (`None`: left as it is).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Changes {
    pub(crate) display_name: Option<String>,
    pub(crate) esr_competence_id: Option<String>,
    pub(crate) esr_competence_name: Option<String>,
}

impl Changes {
    /// Reads the fields `mask` names (without one, those set) from `course`. An empty
    /// competence under an explicit mask clears it.
    fn parse(course: &pb::Course, mask: Option<&prost_types::FieldMask>) -> Result<Self, Error> {
        let paths = qi_platform::update_mask::paths(mask, UPDATABLE, |p| match p {
            "display_name" => !course.display_name.is_empty(),
            "esr_competence_id" => !course.esr_competence_id.is_empty(),
            "esr_competence_name" => !course.esr_competence_name.is_empty(),
            _ => false,
        })?;
        let mut v = Violations::new();
        let mut changes = Changes::default();
        for p in paths {
            match p {
                "display_name" => {
                    changes.display_name = Some(v.check(required_text(
                        "course.display_name",
                        &course.display_name,
                        200,
                    )))
                }
                "esr_competence_id" => {
                    changes.esr_competence_id =
                        Some(v.check(competence_id(&course.esr_competence_id)))
                }
                _ => {
                    changes.esr_competence_name =
                        Some(v.check(competence_name(&course.esr_competence_name)))
                }
            }
        }
        v.finish()?;
        Ok(changes)
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
        // The catalogue is read by every caller.
        crate::feed::record(tx, COLLECTION, &course.name, Kind::Created, None, &course).await?;
        let resp = pb::CreateCourseResponse {
            course: Some(course),
        };
        Ok(resp)
    })
    .await
}

/// UpdateCourse: trust-wide, so only a trust-wide writer changes one; the row is locked
/// while its etag is checked, so two writers cannot both pass the same etag.
pub(crate) async fn update(
    api: &TrainingApi,
    ctx: AccessContext,
    req: pb::UpdateCourseRequest,
) -> Result<pb::UpdateCourseResponse, Error> {
    let pb::UpdateCourseRequest {
        course,
        update_mask,
    } = req;
    let course = course.ok_or_else(|| Error::invalid("course", "is required"))?;
    // A name under a site is no course (INVALID_ARGUMENT), as CreateCourse answers a site
    // parent; a trust-wide name is then the trust's to change.
    let id = parse_ref("course.name", &course.name)?;
    let changes = Changes::parse(&course, update_mask.as_ref())?;
    Owner::Trust.check_write(&ctx)?;
    let mut tx = qi_platform::db::begin(&api.pool).await?;
    let revision = store::lock(&mut tx, &id)
        .await?
        .ok_or_else(|| Error::not_found(&course.name))?;
    check_etag(&course.etag, revision, "the course")?;
    let updated = store::update(&mut tx, &id, &changes).await?;
    let kind = Kind::Updated;
    crate::feed::record(&mut tx, COLLECTION, &updated.name, kind, None, &updated).await?;
    tx.commit().await?;
    Ok(pb::UpdateCourseResponse {
        course: Some(updated),
    })
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
    fn an_esr_competence_is_optional_and_checked_for_shape_and_length() {
        let mut r = request();
        if let Some(c) = r.course.as_mut() {
            c.esr_competence_id = "123|LOCAL|QSIR-7".into();
            c.esr_competence_name = " 123|LOCAL|QSIR Practitioner| ".into();
        }
        let c = NewCourse::try_from(r).unwrap();
        assert_eq!(c.esr_competence_id, "123|LOCAL|QSIR-7");
        assert_eq!(c.esr_competence_name, "123|LOCAL|QSIR Practitioner|");
        assert_eq!(
            NewCourse::try_from(request()).unwrap().esr_competence_id,
            ""
        );
        for (id, name) in [
            ("QSIR Practitioner", "ok"),
            ("|starts-with-a-bar", "ok"),
            ("a,b", "ok"),
            ("1234567890123456789012345678901", "ok"),
            ("12345", &"n".repeat(201)),
            ("12345", "two\nlines"),
        ] {
            let mut r = request();
            if let Some(c) = r.course.as_mut() {
                c.esr_competence_id = id.into();
                c.esr_competence_name = name.into();
            }
            let Err(Error::InvalidArgument { violations }) = NewCourse::try_from(r) else {
                panic!("{id:?} / {name:?} was taken")
            };
            let expected = if name == "ok" {
                "course.esr_competence_id"
            } else {
                "course.esr_competence_name"
            };
            assert_eq!(violations[0].field, expected, "{id:?} / {name:?}");
        }
    }

    fn mask(paths: &[&str]) -> prost_types::FieldMask {
        prost_types::FieldMask {
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        }
    }

    #[test]
    fn an_update_changes_the_fields_set_or_masked_and_clears_with_a_mask() {
        let course = pb::Course {
            esr_competence_id: "12345".into(),
            ..Default::default()
        };
        // No mask: the fields set.
        let set = Changes::parse(&course, None).unwrap();
        assert_eq!(
            set,
            Changes {
                esr_competence_id: Some("12345".into()),
                ..Default::default()
            }
        );
        // A mask naming an empty field clears it.
        let cleared = Changes::parse(&course, Some(&mask(&["esr_competence_name"]))).unwrap();
        assert_eq!(cleared.esr_competence_name.as_deref(), Some(""));
        assert_eq!(cleared.esr_competence_id, None);
        // The title cannot be cleared; the code and the rule cannot be changed.
        let err = Changes::parse(&course, Some(&mask(&["*"]))).unwrap_err();
        let Error::InvalidArgument { violations } = err else {
            panic!("expected invalid argument")
        };
        assert_eq!(violations[0].field, "course.display_name");
        for fixed in ["code", "session_count", "validity_months", "etag"] {
            let Err(Error::InvalidArgument { violations }) =
                Changes::parse(&course, Some(&mask(&[fixed])))
            else {
                panic!("{fixed} was taken")
            };
            assert_eq!(violations[0].field, "update_mask");
        }
        let bad = pb::Course {
            esr_competence_id: "no spaces".into(),
            ..Default::default()
        };
        let Err(Error::InvalidArgument { violations }) = Changes::parse(&bad, None) else {
            panic!("expected invalid argument")
        };
        assert_eq!(violations[0].field, "course.esr_competence_id");
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
