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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{day, pages, transaction};

    /// A ward programme with a plan of three monthly waves of two wards from `2026-01-05`.
    async fn planned(conn: &mut PgConnection) -> anyhow::Result<(Uuid, Plan)> {
        let uid = sqlx::query_scalar!(
            "INSERT INTO programme (uid, id, display_name, kind)
             VALUES ($1, 'wp', 'Ward programme', 'ward_programme') RETURNING uid",
            Uuid::now_v7(),
        )
        .fetch_one(&mut *conn)
        .await?;
        let plan = Plan {
            first: day("2026-01-05"),
            interval_months: 1,
            wards_per_wave: 2,
            per_site: true,
            end: day("2026-03-31"),
            target_wards: 6,
            reassessment_months: 12,
        };
        save_plan(conn, uid, &plan).await?;
        Ok((uid, plan))
    }

    /// Stores the ward `site`/`ward` and enrols it in `wave` in `stage`.
    async fn enrol(
        conn: &mut PgConnection,
        programme: Uuid,
        wave: i32,
        site: &str,
        ward: &str,
        stage: &str,
    ) -> anyhow::Result<()> {
        sqlx::query!(
            "INSERT INTO ward (site, id, display_name) VALUES ($1, $2, 'Ward')",
            site,
            ward,
        )
        .execute(&mut *conn)
        .await?;
        sqlx::query!(
            "INSERT INTO ward_enrolment (programme_uid, ward_site, ward_id, wave_number, stage,
                                         diagnostic_date, withdraw_reason)
             VALUES ($1, $2, $3, $4, $5, '2026-01-05',
                     CASE WHEN $5 = 'withdrawn' THEN 'moved' END)",
            programme,
            site,
            ward,
            wave,
            stage,
        )
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    fn counts(rows: &[WaveRow]) -> Vec<(i32, i64)> {
        rows.iter().map(|r| (r.number, r.enrolled_count)).collect()
    }

    #[tokio::test]
    async fn a_plan_lays_out_its_waves_afresh_and_keeps_the_plan() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        let (uid, mut plan) = planned(&mut conn).await?;
        let waves = all(&mut conn, uid, None).await?;
        let starts: Vec<_> = waves
            .iter()
            .map(|w| (w.number, w.start_date, w.capacity))
            .collect();
        assert_eq!(
            starts,
            [
                (1, day("2026-01-05"), 2),
                (2, day("2026-02-05"), 2),
                (3, day("2026-03-05"), 2)
            ]
        );
        assert_eq!(
            to_proto("trust/programmes/wp", &waves[1]).name,
            "trust/programmes/wp/waves/2"
        );
        plan.interval_months = 2;
        plan.wards_per_wave = 4;
        save_plan(&mut conn, uid, &plan).await?;
        assert_eq!(counts(&all(&mut conn, uid, None).await?), [(1, 0), (2, 0)]);
        assert_eq!(
            start_and_capacity(&mut conn, uid, 2).await?,
            Some((day("2026-03-05"), 4))
        );
        assert_eq!(start_and_capacity(&mut conn, uid, 3).await?, None);
        let kept = sqlx::query!(
            "SELECT interval_months, wards_per_wave, per_site, plan_end_date, target_wards,
                    reassessment_months
             FROM programme WHERE uid = $1",
            uid,
        )
        .fetch_one(&mut *conn)
        .await?;
        assert_eq!(
            (kept.interval_months, kept.wards_per_wave),
            (Some(2), Some(4))
        );
        assert_eq!(
            (kept.per_site, kept.plan_end_date),
            (true, Some(day("2026-03-31")))
        );
        assert_eq!((kept.target_wards, kept.reassessment_months), (6, 12));
        Ok(())
    }

    #[tokio::test]
    async fn waves_count_the_callers_sites_wards_not_withdrawn_page_by_page() -> anyhow::Result<()>
    {
        let mut conn = transaction().await?;
        let (uid, _) = planned(&mut conn).await?;
        enrol(&mut conn, uid, 1, "BAS", "w1", "diagnostic").await?;
        enrol(&mut conn, uid, 1, "SOU", "w1", "accredited").await?;
        enrol(&mut conn, uid, 1, "BAS", "w2", "withdrawn").await?;
        enrol(&mut conn, uid, 3, "BAS", "w3", "assessment").await?;
        assert_eq!(
            counts(&all(&mut conn, uid, None).await?),
            [(1, 2), (2, 0), (3, 1)]
        );
        let bas = Some(vec!["BAS".to_owned()]);
        assert_eq!(
            counts(&all(&mut conn, uid, bas.clone()).await?),
            [(1, 1), (2, 0), (3, 1)]
        );
        let paged = pages(2, async |page| {
            let after = page
                .after_key(0)
                .map_or(0, |k| k.parse().expect("a number"));
            list(&mut conn, uid, bas.clone(), after, &page).await
        })
        .await?;
        let paged: Vec<_> = paged.iter().map(|p| counts(p)).collect();
        assert_eq!(paged, [vec![(1, 1), (2, 0)], vec![(3, 1)]]);
        // Every stage counts towards the programme; withdrawn wards do not hold a place.
        assert_eq!(enrolled(&mut conn, uid).await?, 4);
        assert_eq!(enrolled_in_trust(&mut conn, uid).await?, 3);
        let stages = stage_counts(&mut conn, uid, bas).await?;
        assert_eq!(
            stages,
            [
                (1, "BAS".into(), "diagnostic".into(), None, 1),
                (1, "BAS".into(), "withdrawn".into(), None, 1),
                (3, "BAS".into(), "assessment".into(), None, 1),
            ]
        );
        Ok(())
    }
}
