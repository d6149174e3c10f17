//! The `ward_enrolment` table: enrolling wards into waves, reading and paging them, and
//! the writes of their stage changes.

use chrono::NaiveDate;
use qi_platform::convert::{date, etag, timestamp};
use qi_platform::paging::Page;
use qi_platform::{Error, SiteCode};
use qi_proto::projects as pb;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{ENROLMENTS, enrolment_id};
use crate::programmes::ProgrammeRef;
use crate::stored::{Column, from_optional, unexpected};

/// A stored enrolment, as the rules of a stage change read it.
pub(super) struct EnrolmentRow {
    pub(super) ward_site: String,
    pub(super) ward_id: String,
    pub(super) wave_number: i32,
    pub(super) stage: String,
    pub(super) rating: Option<String>,
    pub(super) standards_met: Option<i32>,
    pub(super) standards_assessed: Option<i32>,
    pub(super) diagnostic_date: NaiveDate,
    pub(super) assessment_date: Option<NaiveDate>,
    pub(super) accredited_date: Option<NaiveDate>,
    pub(super) reassessment_due: Option<NaiveDate>,
    pub(super) withdraw_reason: Option<String>,
    pub(super) create_time: chrono::DateTime<chrono::Utc>,
    pub(super) update_time: chrono::DateTime<chrono::Utc>,
    pub(super) revision: i64,
}

/// `query_as!` into [`EnrolmentRow`] of the enrolment's columns and `$tail`: the columns are
/// written once, and every statement is still checked at build time.
macro_rules! enrolment_rows {
    ($tail:literal, $($arg:expr),* $(,)?) => {
        sqlx::query_as!(
            EnrolmentRow,
            "SELECT ward_site, ward_id, wave_number, stage, rating, standards_met,
                    standards_assessed, diagnostic_date, assessment_date, accredited_date,
                    reassessment_due, withdraw_reason, create_time, update_time, revision
             FROM ward_enrolment"
                + $tail,
            $($arg),*
        )
    };
}

/// The enrolment as the contract shows it, under the programme named `programme`.
pub(super) fn to_proto(programme: &str, r: EnrolmentRow) -> Result<pb::WardEnrolment, Error> {
    Ok(pb::WardEnrolment {
        name: format!(
            "{programme}/{ENROLMENTS}/{}",
            enrolment_id(&r.ward_site, &r.ward_id)
        ),
        ward: format!(
            "sites/{}/{}/{}",
            r.ward_site,
            crate::wards::COLLECTION,
            r.ward_id
        ),
        wave: r.wave_number,
        stage: pb::WardStage::from_column(&r.stage)? as i32,
        rating: from_optional::<pb::AccreditationRating>(r.rating.as_deref())?,
        standards_met: r.standards_met.unwrap_or(0),
        standards_assessed: r.standards_assessed.unwrap_or(0),
        diagnostic_date: Some(date(r.diagnostic_date)),
        assessment_date: r.assessment_date.map(date),
        accredited_date: r.accredited_date.map(date),
        reassessment_due_date: r.reassessment_due.map(date),
        withdraw_reason: r.withdraw_reason.unwrap_or_default(),
        create_time: Some(timestamp(r.create_time)),
        update_time: Some(timestamp(r.update_time)),
        etag: etag(r.revision),
    })
}

/// Reads the enrolment of a ward in a programme.
pub(super) async fn read(
    conn: &mut PgConnection,
    programme: Uuid,
    site: &str,
    ward: &str,
) -> Result<Option<EnrolmentRow>, Error> {
    Ok(enrolment_rows!(
        " WHERE programme_uid = $1 AND ward_site = $2 AND ward_id = $3",
        programme,
        site,
        ward,
    )
    .fetch_optional(&mut *conn)
    .await?)
}

/// How many places of a wave are taken: by every ward not withdrawn, or by those of `site`
/// when the programme counts its waves per site.
pub(super) async fn taken(
    conn: &mut PgConnection,
    programme: &ProgrammeRef,
    wave: i32,
    site: &SiteCode,
) -> Result<i64, Error> {
    Ok(sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM ward_enrolment
           WHERE programme_uid = $1 AND wave_number = $2 AND stage <> 'withdrawn'
             AND (NOT $3 OR ward_site = $4)"#,
        programme.uid,
        wave,
        programme.per_site,
        site.as_str(),
    )
    .fetch_one(&mut *conn)
    .await?)
}

/// Enrols a ward into a wave, in diagnostic from the wave's start, and reads the enrolment
/// back; a withdrawn ward joins again. `None` if the ward is enrolled already.
pub(super) async fn enrol(
    conn: &mut PgConnection,
    programme: Uuid,
    site: &SiteCode,
    ward: &str,
    wave: i32,
    wave_start: NaiveDate,
) -> Result<Option<EnrolmentRow>, Error> {
    let written = sqlx::query!(
        "INSERT INTO ward_enrolment (programme_uid, ward_site, ward_id, wave_number, diagnostic_date)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (programme_uid, ward_site, ward_id) DO UPDATE
             SET wave_number = EXCLUDED.wave_number, stage = 'diagnostic',
                 diagnostic_date = EXCLUDED.diagnostic_date, assessment_date = NULL,
                 accredited_date = NULL, reassessment_due = NULL, rating = NULL,
                 standards_met = NULL, standards_assessed = NULL, withdraw_reason = NULL
             WHERE ward_enrolment.stage = 'withdrawn'",
        programme,
        site.as_str(),
        ward,
        wave,
        wave_start,
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if written == 0 {
        return Ok(None);
    }
    read(conn, programme, site.as_str(), ward)
        .await?
        .ok_or_else(|| unexpected("ward enrolment", "vanished"))
        .map(Some)
}

/// One page of a programme's enrolments in the wards of `sites` (`None`: all), in `wave`
/// if given, by wave, site and ward.
pub(super) async fn list(
    conn: &mut PgConnection,
    programme: Uuid,
    sites: Option<Vec<String>>,
    wave: Option<i32>,
    after_wave: i32,
    page: &Page,
) -> Result<(Vec<EnrolmentRow>, String), Error> {
    let rows = enrolment_rows!(
        "
         WHERE programme_uid = $1
           AND ($2::text[] IS NULL OR ward_site = ANY($2))
           AND ($3::int IS NULL OR wave_number = $3)
           AND (wave_number, ward_site, ward_id) > ($4, $5, $6)
         ORDER BY wave_number, ward_site, ward_id LIMIT $7",
        programme,
        sites.as_deref(),
        wave,
        after_wave,
        page.after_key(1).unwrap_or(""),
        page.after_key(2).unwrap_or(""),
        page.limit(),
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(page.finish(rows, |r| {
        vec![
            r.wave_number.to_string(),
            r.ward_site.clone(),
            r.ward_id.clone(),
        ]
    }))
}

/// The write of one stage change.
pub(super) enum Stage<'a> {
    /// Into assessment on a day.
    Assessment { day: NaiveDate },
    /// Accredited (or re-rated) on a day, with its rating, standards and reassessment date.
    Accredited {
        rating: pb::AccreditationRating,
        met: i32,
        assessed: i32,
        day: NaiveDate,
        due: NaiveDate,
    },
    /// Withdrawn, with a reason.
    Withdrawn { reason: &'a str },
}

/// Writes a stage change of the enrolment `row` and reads it back.
pub(super) async fn advance(
    conn: &mut PgConnection,
    programme: Uuid,
    row: &EnrolmentRow,
    stage: Stage<'_>,
) -> Result<EnrolmentRow, Error> {
    let query = match stage {
        Stage::Assessment { day } => sqlx::query!(
            "UPDATE ward_enrolment SET stage = 'assessment', assessment_date = $4
             WHERE programme_uid = $1 AND ward_site = $2 AND ward_id = $3",
            programme,
            row.ward_site,
            row.ward_id,
            day,
        ),
        Stage::Accredited {
            rating,
            met,
            assessed,
            day,
            due,
        } => sqlx::query!(
            "UPDATE ward_enrolment SET stage = 'accredited', rating = $4, standards_met = $5,
                    standards_assessed = $6, accredited_date = $7, reassessment_due = $8
             WHERE programme_uid = $1 AND ward_site = $2 AND ward_id = $3",
            programme,
            row.ward_site,
            row.ward_id,
            rating.column(),
            met,
            assessed,
            day,
            due,
        ),
        Stage::Withdrawn { reason } => sqlx::query!(
            "UPDATE ward_enrolment SET stage = 'withdrawn', withdraw_reason = $4
             WHERE programme_uid = $1 AND ward_site = $2 AND ward_id = $3",
            programme,
            row.ward_site,
            row.ward_id,
            reason,
        ),
    };
    query.execute(&mut *conn).await?;
    read(conn, programme, &row.ward_site, &row.ward_id)
        .await?
        .ok_or_else(|| unexpected("ward enrolment", "vanished"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{day, everything, pages, site, transaction};
    use qi_platform::names::Owner;

    /// The start of wave `n` of every programme here: monthly from `2026-01-05`.
    fn start(n: i32) -> NaiveDate {
        day(["2026-01-05", "2026-02-05", "2026-03-05"][n as usize - 1])
    }

    /// A trust-wide ward programme `id` with three waves of two wards, counting its waves
    /// per site when `per_site`, stored directly: the programmes' and waves' stores are
    /// private to them.
    async fn programme(
        conn: &mut PgConnection,
        id: &str,
        per_site: bool,
    ) -> anyhow::Result<ProgrammeRef> {
        let uid = sqlx::query_scalar!(
            "INSERT INTO programme (uid, id, display_name, kind, per_site)
             VALUES ($1, $2, 'Ward programme', 'ward_programme', $3) RETURNING uid",
            Uuid::now_v7(),
            id,
            per_site,
        )
        .fetch_one(&mut *conn)
        .await?;
        for n in 1..=3 {
            sqlx::query!(
                "INSERT INTO wave (programme_uid, number, start_date, capacity)
                 VALUES ($1, $2, $3, 2)",
                uid,
                n,
                start(n),
            )
            .execute(&mut *conn)
            .await?;
        }
        Ok(
            crate::programmes::store::find(conn, &Owner::Trust, id, false)
                .await?
                .expect("the programme"),
        )
    }

    /// Stores the wards `site`/`id`.
    async fn wards(conn: &mut PgConnection, wards: &[(&str, &str)]) -> anyhow::Result<()> {
        for (site, ward) in wards {
            sqlx::query!(
                "INSERT INTO ward (site, id, display_name) VALUES ($1, $2, 'Ward')",
                site,
                ward,
            )
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }

    /// Enrols `site`/`ward` into wave `n` of `p` from the wave's start.
    async fn join(
        conn: &mut PgConnection,
        p: &ProgrammeRef,
        site_code: &str,
        ward: &str,
        n: i32,
    ) -> anyhow::Result<Option<EnrolmentRow>> {
        Ok(enrol(conn, p.uid, &site(site_code), ward, n, start(n)).await?)
    }

    fn key(r: &EnrolmentRow) -> (i32, String, String) {
        (r.wave_number, r.ward_site.clone(), r.ward_id.clone())
    }

    /// The keys of every page of a programme's enrolments in `sites`, two at a time, read
    /// as the handler reads a page token.
    async fn listed(
        conn: &mut PgConnection,
        programme: Uuid,
        sites: Option<Vec<String>>,
    ) -> anyhow::Result<Vec<Vec<(i32, String, String)>>> {
        let paged = pages(2, async |page| {
            let after_wave = page.after_key(0).map_or(0, |k| k.parse().expect("a wave"));
            list(conn, programme, sites.clone(), None, after_wave, &page).await
        })
        .await?;
        Ok(paged
            .into_iter()
            .map(|page| page.iter().map(key).collect())
            .collect())
    }

    #[tokio::test]
    async fn a_ward_enrols_once_moves_through_its_stages_and_rejoins_only_when_withdrawn()
    -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        let p = programme(&mut conn, "wp", false).await?;
        let other = programme(&mut conn, "wq", false).await?;
        wards(&mut conn, &[("BAS", "w1")]).await?;
        let row = join(&mut conn, &p, "BAS", "w1", 1)
            .await?
            .expect("enrolled");
        let made = to_proto("trust/programmes/wp", row)?;
        assert_eq!(made.name, "trust/programmes/wp/wardEnrolments/bas-w1");
        assert_eq!(made.ward, "sites/BAS/wards/w1");
        assert_eq!(made.wave, 1);
        assert_eq!(made.stage, pb::WardStage::Diagnostic as i32);
        assert_eq!(made.rating, 0);
        assert_eq!((made.standards_met, made.standards_assessed), (0, 0));
        assert_eq!(made.diagnostic_date, Some(date(start(1))));
        assert_eq!((made.assessment_date, made.accredited_date), (None, None));
        assert_eq!(made.reassessment_due_date, None);
        assert_eq!(made.withdraw_reason, "");
        assert_eq!(made.etag, "\"1\"");
        assert!(made.create_time.is_some() && made.update_time.is_some());
        // Enrolled already: refused, and the enrolment stays as it was.
        assert!(join(&mut conn, &p, "BAS", "w1", 2).await?.is_none());
        let row = read(&mut conn, p.uid, "BAS", "w1")
            .await?
            .expect("enrolled");
        assert_eq!(to_proto("trust/programmes/wp", row)?, made);
        assert!(read(&mut conn, other.uid, "BAS", "w1").await?.is_none());
        assert!(read(&mut conn, p.uid, "SOU", "w1").await?.is_none());
        assert!(read(&mut conn, p.uid, "BAS", "w2").await?.is_none());

        let row = read(&mut conn, p.uid, "BAS", "w1")
            .await?
            .expect("enrolled");
        let assessing = Stage::Assessment {
            day: day("2026-02-01"),
        };
        let row = advance(&mut conn, p.uid, &row, assessing).await?;
        assert_eq!(row.stage, "assessment");
        assert_eq!(row.assessment_date, Some(day("2026-02-01")));
        assert_eq!(row.revision, 2);
        let accrediting = Stage::Accredited {
            rating: pb::AccreditationRating::Silver,
            met: 12,
            assessed: 14,
            day: day("2026-03-01"),
            due: day("2027-03-01"),
        };
        let row = advance(&mut conn, p.uid, &row, accrediting).await?;
        let accredited = to_proto("trust/programmes/wp", row)?;
        assert_eq!(accredited.stage, pb::WardStage::Accredited as i32);
        assert_eq!(accredited.rating, pb::AccreditationRating::Silver as i32);
        assert_eq!(
            (accredited.standards_met, accredited.standards_assessed),
            (12, 14)
        );
        assert_eq!(accredited.assessment_date, Some(date(day("2026-02-01"))));
        assert_eq!(accredited.accredited_date, Some(date(day("2026-03-01"))));
        assert_eq!(
            accredited.reassessment_due_date,
            Some(date(day("2027-03-01")))
        );
        assert_eq!(accredited.etag, "\"3\"");
        assert!(join(&mut conn, &p, "BAS", "w1", 2).await?.is_none());

        let row = read(&mut conn, p.uid, "BAS", "w1")
            .await?
            .expect("enrolled");
        let row = advance(
            &mut conn,
            p.uid,
            &row,
            Stage::Withdrawn { reason: "Closed" },
        )
        .await?;
        assert_eq!(row.stage, "withdrawn");
        assert_eq!(row.withdraw_reason.as_deref(), Some("Closed"));
        // A withdrawn ward joins again afresh, in diagnostic from its new wave's start.
        let again = join(&mut conn, &p, "BAS", "w1", 2)
            .await?
            .expect("rejoined");
        assert_eq!((again.wave_number, again.stage.as_str()), (2, "diagnostic"));
        assert_eq!(again.diagnostic_date, start(2));
        assert_eq!((again.rating, again.withdraw_reason), (None, None));
        assert_eq!(
            (again.standards_met, again.standards_assessed),
            (None, None)
        );
        assert_eq!((again.assessment_date, again.accredited_date), (None, None));
        assert_eq!(again.reassessment_due, None);
        assert_eq!(again.revision, 5);
        Ok(())
    }

    #[tokio::test]
    async fn a_waves_places_are_taken_by_wards_not_withdrawn_per_site_when_so_counted()
    -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        let across = programme(&mut conn, "wp", false).await?;
        let per_site = programme(&mut conn, "ws", true).await?;
        wards(
            &mut conn,
            &[("BAS", "w1"), ("BAS", "w2"), ("BAS", "w3"), ("SOU", "w1")],
        )
        .await?;
        join(&mut conn, &across, "BAS", "w1", 1).await?;
        join(&mut conn, &across, "SOU", "w1", 1).await?;
        let gone = join(&mut conn, &across, "BAS", "w2", 1)
            .await?
            .expect("enrolled");
        advance(
            &mut conn,
            across.uid,
            &gone,
            Stage::Withdrawn { reason: "Moved" },
        )
        .await?;
        join(&mut conn, &across, "BAS", "w3", 2).await?;
        join(&mut conn, &per_site, "SOU", "w1", 1).await?;
        let (bas, sou) = (site("BAS"), site("SOU"));
        assert_eq!(taken(&mut conn, &across, 1, &bas).await?, 2);
        assert_eq!(taken(&mut conn, &across, 1, &sou).await?, 2);
        assert_eq!(taken(&mut conn, &across, 2, &bas).await?, 1);
        assert_eq!(taken(&mut conn, &across, 3, &bas).await?, 0);
        // Per site, only the site's wards count, and only the programme's own.
        assert_eq!(taken(&mut conn, &per_site, 1, &bas).await?, 0);
        assert_eq!(taken(&mut conn, &per_site, 1, &sou).await?, 1);
        join(&mut conn, &per_site, "BAS", "w2", 1).await?;
        assert_eq!(taken(&mut conn, &per_site, 1, &bas).await?, 1);
        assert_eq!(taken(&mut conn, &per_site, 1, &sou).await?, 1);
        Ok(())
    }

    #[tokio::test]
    async fn a_list_keeps_to_its_programme_sites_and_wave_by_wave_site_ward_page_by_page()
    -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        let p = programme(&mut conn, "wp", false).await?;
        let other = programme(&mut conn, "wq", false).await?;
        let all = [
            ("BAS", "a"),
            ("BAS", "b"),
            ("BAS", "c"),
            ("BAS", "d"),
            ("SOU", "a"),
            ("SOU", "b"),
        ];
        wards(&mut conn, &all).await?;
        for (s, w, n) in [
            ("SOU", "b", 3),
            ("BAS", "d", 2),
            ("SOU", "a", 1),
            ("BAS", "b", 2),
        ] {
            join(&mut conn, &p, s, w, n).await?;
        }
        join(&mut conn, &p, "BAS", "c", 2).await?;
        join(&mut conn, &p, "BAS", "a", 1).await?;
        join(&mut conn, &other, "BAS", "b", 1).await?;
        join(&mut conn, &other, "SOU", "b", 2).await?;
        let k = |n: i32, s: &str, w: &str| (n, s.to_owned(), w.to_owned());
        assert_eq!(
            listed(&mut conn, p.uid, None).await?,
            [
                vec![k(1, "BAS", "a"), k(1, "SOU", "a")],
                vec![k(2, "BAS", "b"), k(2, "BAS", "c")],
                vec![k(2, "BAS", "d"), k(3, "SOU", "b")],
            ]
        );
        assert_eq!(
            listed(&mut conn, p.uid, Some(vec!["BAS".into()])).await?,
            [
                vec![k(1, "BAS", "a"), k(2, "BAS", "b")],
                vec![k(2, "BAS", "c"), k(2, "BAS", "d")],
            ]
        );
        let (wave_2, next) = list(&mut conn, p.uid, None, Some(2), 0, &everything()?).await?;
        let wave_2: Vec<_> = wave_2.iter().map(key).collect();
        assert_eq!(
            wave_2,
            [k(2, "BAS", "b"), k(2, "BAS", "c"), k(2, "BAS", "d")]
        );
        assert!(next.is_empty());
        let (sou_3, _) = list(
            &mut conn,
            p.uid,
            Some(vec!["SOU".into()]),
            Some(3),
            0,
            &everything()?,
        )
        .await?;
        assert_eq!(
            sou_3.iter().map(key).collect::<Vec<_>>(),
            [k(3, "SOU", "b")]
        );
        Ok(())
    }
}
