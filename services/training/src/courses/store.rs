//! The course table: its SQL and row mapping.

use qi_platform::Error;
use qi_platform::convert::{etag, timestamp};
use qi_platform::names::Owner;
use qi_platform::paging::Page;
use qi_proto::training as pb;
use sqlx::PgConnection;

use super::{COLLECTION, NewCourse};

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

/// `query_as!` into [`CourseRow`] of `$head`, the course's columns, then `$tail`: the columns
/// are written once, and every statement is still checked at build time.
macro_rules! course_rows {
    ($head:literal, $tail:literal, $($arg:expr),+ $(,)?) => {
        sqlx::query_as!(
            CourseRow,
            $head
                + "id, code, display_name, session_count, required_sessions, validity_months, \
                   create_time, update_time, revision"
                + $tail,
            $($arg),+
        )
    };
}

/// Inserts a course; `AlreadyExists` if the id or the code is taken.
pub(crate) async fn insert(conn: &mut PgConnection, c: &NewCourse) -> Result<pb::Course, Error> {
    let row = course_rows!(
        "INSERT INTO course (id, code, display_name, session_count, required_sessions, validity_months)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT DO NOTHING
         RETURNING ",
        "",
        c.id,
        c.code,
        c.display_name,
        c.session_count,
        c.required_sessions,
        c.validity_months,
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
