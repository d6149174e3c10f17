//! The course table: its SQL and row mapping.

use qi_platform::Error;
use qi_platform::convert::{etag, timestamp};
use qi_platform::names::Owner;
use qi_platform::paging::Page;
use qi_proto::training as pb;
use sqlx::PgConnection;

use super::{COLLECTION, Changes, NewCourse};

struct CourseRow {
    id: String,
    code: String,
    display_name: String,
    session_count: i32,
    required_sessions: i32,
    validity_months: i32,
    esr_competence_id: String,
    esr_competence_name: String,
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
            esr_competence_id: r.esr_competence_id,
            esr_competence_name: r.esr_competence_name,
            create_time: Some(timestamp(r.create_time)),
            update_time: Some(timestamp(r.update_time)),
            etag: etag(r.revision),
        }
    }
}

/// `query_as!` into [`CourseRow`] of `$head`, the course's columns, then `$tail`: the columns
/// are written once, and every statement is still checked at build time.
macro_rules! course_rows {
    ($head:literal, $tail:literal, $($arg:expr),+ $(,)?) => {
        sqlx::query_as!(
            CourseRow,
            $head
                + "id, code, display_name, session_count, required_sessions, validity_months, \
                   esr_competence_id, esr_competence_name, create_time, update_time, revision"
                + $tail,
            $($arg),+
        )
    };
}

/// Inserts a course; `AlreadyExists` if the id or the code is taken.
pub(crate) async fn insert(conn: &mut PgConnection, c: &NewCourse) -> Result<pb::Course, Error> {
    let row = course_rows!(
        "INSERT INTO course (id, code, display_name, session_count, required_sessions,
                             validity_months, esr_competence_id, esr_competence_name)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT DO NOTHING
         RETURNING ",
        "",
        c.id,
        c.code,
        c.display_name,
        c.session_count,
        c.required_sessions,
        c.validity_months,
        c.esr_competence_id,
        c.esr_competence_name,
    )
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
    let row = course_rows!("SELECT ", " FROM course WHERE id = $1", id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.map(Into::into))
}

/// Locks a course for a change; its revision, if it exists.
pub(crate) async fn lock(conn: &mut PgConnection, id: &str) -> Result<Option<i64>, Error> {
    Ok(
        sqlx::query_scalar!("SELECT revision FROM course WHERE id = $1 FOR UPDATE", id)
            .fetch_optional(&mut *conn)
            .await?,
    )
}

/// Applies `changes` to a course (locked by [`lock`]) and returns it as stored. A change that
/// changes nothing writes nothing: its etag stays, as a retry's should.
pub(crate) async fn update(
    conn: &mut PgConnection,
    id: &str,
    changes: &Changes,
) -> Result<pb::Course, Error> {
    sqlx::query!(
        "UPDATE course SET display_name = coalesce($2, display_name),
                           esr_competence_id = coalesce($3, esr_competence_id),
                           esr_competence_name = coalesce($4, esr_competence_name)
         WHERE id = $1
           AND (display_name, esr_competence_id, esr_competence_name)
               IS DISTINCT FROM (coalesce($2, display_name),
                                 coalesce($3, esr_competence_id),
                                 coalesce($4, esr_competence_name))",
        id,
        changes.display_name,
        changes.esr_competence_id,
        changes.esr_competence_name,
    )
    .execute(&mut *conn)
    .await?;
    get(conn, id)
        .await?
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("course {id} vanished")))
}

/// One page of the catalogue, ordered by code.
pub(crate) async fn list(
    conn: &mut PgConnection,
    page: &Page,
) -> Result<(Vec<pb::Course>, String), Error> {
    let rows = course_rows!(
        "SELECT ",
        " FROM course WHERE code > $1 ORDER BY code LIMIT $2",
        page.after_key(0).unwrap_or(""),
        page.limit(),
    )
    .fetch_all(&mut *conn)
    .await?;
    let (rows, next) = page.finish(rows, |r| vec![r.code.clone()]);
    Ok((rows.into_iter().map(Into::into).collect(), next))
}

/// A course's number of sessions, if it exists.
pub(crate) async fn session_count(conn: &mut PgConnection, id: &str) -> Result<Option<i32>, Error> {
    Ok(
        sqlx::query_scalar!("SELECT session_count FROM course WHERE id = $1", id)
            .fetch_optional(&mut *conn)
            .await?,
    )
}

/// A course's title, if it exists.
pub(crate) async fn display_name(
    conn: &mut PgConnection,
    id: &str,
) -> Result<Option<String>, Error> {
    Ok(
        sqlx::query_scalar!("SELECT display_name FROM course WHERE id = $1", id)
            .fetch_optional(&mut *conn)
            .await?,
    )
}

/// A course's completion rule: (sessions, sessions required or 0 for all, months a
/// completion lasts or 0 for ever).
pub(crate) async fn completion_rule(
    conn: &mut PgConnection,
    id: &str,
) -> Result<(i32, i32, i32), Error> {
    let r = sqlx::query!(
        "SELECT session_count, required_sessions, validity_months FROM course WHERE id = $1",
        id
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok((r.session_count, r.required_sessions, r.validity_months))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::courses::Changes;
    use crate::testing::{course, new_course, page, transaction};

    fn codes(cs: &[pb::Course]) -> Vec<&str> {
        cs.iter().map(|c| c.code.as_str()).collect()
    }

    #[tokio::test]
    async fn an_insert_reads_back_and_a_taken_id_or_code_is_refused() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        let mut new = new_course("lean", 3);
        new.required_sessions = 2;
        new.validity_months = 24;
        let made = insert(&mut conn, &new).await?;
        assert_eq!(made.name, "trust/courses/lean");
        assert_eq!(
            (
                made.session_count,
                made.required_sessions,
                made.validity_months
            ),
            (3, 2, 24)
        );
        assert_eq!(get(&mut conn, "lean").await?, Some(made));
        assert_eq!(get(&mut conn, "absent").await?, None);
        let mut same_code = new_course("lean-2", 1);
        same_code.code = "LEAN".into();
        for taken in [new_course("lean", 1), same_code] {
            match insert(&mut conn, &taken).await {
                Err(Error::AlreadyExists { name }) => assert_eq!(
                    name,
                    format!("trust/courses/{} (code {})", taken.id, taken.code)
                ),
                other => panic!("expected AlreadyExists, got {other:?}"),
            }
        }
        assert_eq!(session_count(&mut conn, "lean").await?, Some(3));
        assert_eq!(session_count(&mut conn, "absent").await?, None);
        assert_eq!(
            display_name(&mut conn, "lean").await?.as_deref(),
            Some("Course lean")
        );
        assert_eq!(display_name(&mut conn, "absent").await?, None);
        assert_eq!(completion_rule(&mut conn, "lean").await?, (3, 2, 24));
        Ok(())
    }

    #[tokio::test]
    async fn a_course_keeps_its_esr_competence_and_a_change_writes_only_what_differs()
    -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        let mut new = new_course("lean", 1);
        new.esr_competence_id = "123|LOCAL-7".into();
        new.esr_competence_name = "123|LOCAL|Lean for Healthcare|".into();
        let made = insert(&mut conn, &new).await?;
        assert_eq!(
            (
                made.esr_competence_id.as_str(),
                made.esr_competence_name.as_str()
            ),
            ("123|LOCAL-7", "123|LOCAL|Lean for Healthcare|")
        );
        assert_eq!(lock(&mut conn, "lean").await?, Some(1));
        assert_eq!(lock(&mut conn, "absent").await?, None);
        // Only the competence id changes; the name and title stay.
        let renumbered = Changes {
            esr_competence_id: Some("98765".into()),
            ..Default::default()
        };
        let changed = update(&mut conn, "lean", &renumbered).await?;
        assert_eq!(changed.esr_competence_id, "98765");
        assert_eq!(changed.esr_competence_name, made.esr_competence_name);
        assert_eq!(changed.display_name, "Course lean");
        assert_ne!(changed.etag, made.etag);
        // The same change again writes nothing: the etag stays.
        let again = update(&mut conn, "lean", &renumbered).await?;
        assert_eq!(again, changed);
        // An empty value clears the competence.
        let cleared = Changes {
            esr_competence_id: Some(String::new()),
            esr_competence_name: Some(String::new()),
            ..Default::default()
        };
        let none = update(&mut conn, "lean", &cleared).await?;
        assert_eq!(
            (
                none.esr_competence_id.as_str(),
                none.esr_competence_name.as_str()
            ),
            ("", "")
        );
        assert_eq!(get(&mut conn, "lean").await?, Some(none));
        Ok(())
    }

    #[tokio::test]
    async fn the_table_refuses_a_competence_id_of_another_shape() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        course(&mut conn, "lean", 1).await?;
        // The CHECK holds the handler's rule, for whatever writes the table directly.
        let too_long = "9".repeat(31);
        for bad in ["has space", "-starts-with-hyphen", "a,b", &too_long] {
            // A savepoint each, so one refusal does not abort the rest.
            let mut attempt = sqlx::Connection::begin(&mut *conn).await?;
            let refused = sqlx::query!(
                "UPDATE course SET esr_competence_id = $1 WHERE id = 'lean'",
                bad
            )
            .execute(&mut *attempt)
            .await;
            assert!(refused.is_err(), "{bad:?} was stored");
            attempt.rollback().await?;
        }
        let long_name = "n".repeat(201);
        let refused = sqlx::query!(
            "UPDATE course SET esr_competence_name = $1 WHERE id = 'lean'",
            long_name
        )
        .execute(&mut *conn)
        .await;
        assert!(refused.is_err(), "a 201-character name was stored");
        Ok(())
    }

    #[tokio::test]
    async fn the_catalogue_pages_by_code_each_course_once() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        for id in ["zeta", "alpha", "mid"] {
            course(&mut conn, id, 1).await?;
        }
        let (first, next) = list(&mut conn, &page(2, "")?).await?;
        let (second, then) = list(&mut conn, &page(2, &next)?).await?;
        let (third, end) = list(&mut conn, &page(2, &then)?).await?;
        // The migrations' two QSIR courses are in the catalogue too.
        assert_eq!(codes(&first), ["ALPHA", "MID"]);
        assert_eq!(codes(&second), ["QSIR-FUND", "QSIR-PRAC"]);
        assert_eq!(codes(&third), ["ZETA"]);
        assert!(end.is_empty());
        Ok(())
    }
}
