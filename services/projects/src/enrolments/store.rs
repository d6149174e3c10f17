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
