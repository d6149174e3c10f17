//! The `wave` table and the wave plan kept on the programme's row; the counts of enrolled
//! wards the progress view reads.

use chrono::NaiveDate;
use qi_platform::Error;
use qi_platform::convert::date;
use qi_platform::paging::Page;
use qi_proto::projects as pb;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{Plan, WAVES};

/// A wave and how many wards it has enrolled.
pub(super) struct WaveRow {
    pub(super) number: i32,
    pub(super) start_date: NaiveDate,
    capacity: i32,
    enrolled_count: i64,
}

/// The wave as the contract shows it, under the programme named `programme`.
pub(super) fn to_proto(programme: &str, r: &WaveRow) -> pb::Wave {
    pb::Wave {
        name: format!("{programme}/{WAVES}/{}", r.number),
        number: r.number,
        start_date: Some(date(r.start_date)),
        capacity: r.capacity,
        enrolled_count: i32::try_from(r.enrolled_count).unwrap_or(i32::MAX),
    }
}

/// `query_as!` into [`WaveRow`] of waves with their wards enrolled and `$tail`, where `$2` is
/// the caller's site filter: the wards are counted within the caller's sites as every list
/// and summary is (a one-site caller of a trust-wide programme must not learn how many
/// wards other sites have put in a wave).
macro_rules! wave_rows {
    ($tail:literal, $($arg:expr),* $(,)?) => {
        sqlx::query_as!(
            WaveRow,
            r#"SELECT w.number, w.start_date, w.capacity,
                 (SELECT count(*) FROM ward_enrolment e WHERE e.programme_uid = w.programme_uid
                    AND e.wave_number = w.number AND e.stage <> 'withdrawn'
                    AND ($2::text[] IS NULL OR e.ward_site = ANY($2))) AS "enrolled_count!"
               FROM wave w"#
                + $tail,
            $($arg),*
        )
    };
}

/// How many wards a programme has enrolled, in any stage.
pub(super) async fn enrolled(conn: &mut PgConnection, programme: Uuid) -> Result<i64, Error> {
    Ok(sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM ward_enrolment WHERE programme_uid = $1"#,
        programme,
    )
    .fetch_one(&mut *conn)
    .await?)
}

/// Lays out a programme's waves afresh from `plan` and keeps the plan on its row.
pub(super) async fn save_plan(
    conn: &mut PgConnection,
    programme: Uuid,
    plan: &Plan,
) -> Result<(), Error> {
    sqlx::query!("DELETE FROM wave WHERE programme_uid = $1", programme)
        .execute(&mut *conn)
        .await?;
    let dates = plan.dates();
    sqlx::query!(
        "INSERT INTO wave (programme_uid, number, start_date, capacity)
         SELECT $1, d.n, d.start_date, $3
         FROM unnest($2::date[]) WITH ORDINALITY AS d(start_date, n)",
        programme,
        dates.as_slice(),
        plan.wards_per_wave,
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "UPDATE programme SET first_wave_date = $2, interval_months = $3, wards_per_wave = $4,
                per_site = $5, plan_end_date = $6, target_wards = $7, reassessment_months = $8
         WHERE uid = $1",
        programme,
        plan.first,
        plan.interval_months,
        plan.wards_per_wave,
        plan.per_site,
        plan.end,
        plan.target_wards,
        plan.reassessment_months,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// All of a programme's waves in order, counting the wards of `sites` (`None`: all).
pub(super) async fn all(
    conn: &mut PgConnection,
    programme: Uuid,
    sites: Option<Vec<String>>,
) -> Result<Vec<WaveRow>, Error> {
    Ok(wave_rows!(
        " WHERE w.programme_uid = $1 ORDER BY w.number",
        programme,
        sites.as_deref(),
    )
    .fetch_all(&mut *conn)
    .await?)
}

/// One page of a programme's waves in order, after the number `after`, counting the wards
/// of `sites` (`None`: all).
pub(super) async fn list(
    conn: &mut PgConnection,
    programme: Uuid,
    sites: Option<Vec<String>>,
    after: i32,
    page: &Page,
) -> Result<(Vec<WaveRow>, String), Error> {
    let rows = wave_rows!(
        " WHERE w.programme_uid = $1 AND w.number > $3 ORDER BY w.number LIMIT $4",
        programme,
        sites.as_deref(),
        after,
        page.limit(),
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(page.finish(rows, |r| vec![r.number.to_string()]))
}

/// A wave's start date and capacity, if the programme has that wave.
pub(crate) async fn start_and_capacity(
    conn: &mut PgConnection,
    programme: Uuid,
    wave: i32,
) -> Result<Option<(NaiveDate, i32)>, Error> {
    let row = sqlx::query!(
        "SELECT start_date, capacity FROM wave WHERE programme_uid = $1 AND number = $2",
        programme,
        wave,
    )
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|r| (r.start_date, r.capacity)))
}

/// A programme's wards in the wards of `sites` (`None`: all), counted by wave, site, stage
/// and rating: one set-based count.
pub(super) async fn stage_counts(
    conn: &mut PgConnection,
    programme: Uuid,
    sites: Option<Vec<String>>,
) -> Result<Vec<(i32, String, String, Option<String>, i64)>, Error> {
    let rows = sqlx::query!(
        r#"SELECT wave_number, ward_site, stage, rating, count(*) AS "count!" FROM ward_enrolment
           WHERE programme_uid = $1 AND ($2::text[] IS NULL OR ward_site = ANY($2))
           GROUP BY 1, 2, 3, 4 ORDER BY 1, 2"#,
        programme,
        sites.as_deref(),
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.wave_number, r.ward_site, r.stage, r.rating, r.count))
        .collect())
}

/// How many wards a programme has enrolled and not withdrawn, across the trust.
pub(super) async fn enrolled_in_trust(
    conn: &mut PgConnection,
    programme: Uuid,
) -> Result<i64, Error> {
    Ok(sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM ward_enrolment
           WHERE programme_uid = $1 AND stage <> 'withdrawn'"#,
        programme,
    )
    .fetch_one(&mut *conn)
    .await?)
}
