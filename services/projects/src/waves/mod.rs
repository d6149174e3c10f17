//! The ward programme: waves (`{programme}/waves/{number}`) planned as N wards every M
//! months until an end date, wards enrolled into waves
//! (`{programme}/wardEnrolments/{site}-{ward}`), each ward's stage (diagnostic → assessment →
//! accredited with a Bronze/Silver/Gold rating, reassessed after an interval; or withdrawn),
//! and the progress view. A site's programme takes its own wards; a trust-wide one any
//! site's, and lists and the progress view show a caller the wards of their own sites.

use chrono::{Months, NaiveDate};
use qi_platform::calendar::today;
use qi_platform::convert::{
    check_etag, date, etag, int_in, long_text, optional_date, required_date, timestamp,
};
use qi_platform::names::Owner;
use qi_platform::paging::Page;
use qi_platform::{AccessContext, Error, SiteCode, Violations, idempotency};
use qi_proto::projects as pb;
use sqlx::PgConnection;

use crate::ProjectsApi;
use crate::programmes::{self, ProgrammeRef};
use crate::stored::{Column, from_optional, required_enum, unexpected};

crate::stored::column_enum!(WardStage, "ward stage", {
    Diagnostic => "diagnostic",
    Assessment => "assessment",
    Accredited => "accredited",
    Withdrawn => "withdrawn",
});
crate::stored::column_enum!(AccreditationRating, "rating", {
    Bronze => "bronze",
    Silver => "silver",
    Gold => "gold",
});

/// The collection id of waves.
const WAVES: &str = "waves";
/// The collection id of ward enrolments.
const ENROLMENTS: &str = "wardEnrolments";
/// The most waves one plan may lay out.
const MAX_WAVES: usize = 200;

/// A validated wave plan.
#[derive(Debug, Clone, PartialEq)]
struct Plan {
    first: NaiveDate,
    interval_months: i32,
    wards_per_wave: i32,
    per_site: bool,
    end: NaiveDate,
    target_wards: i32,
    reassessment_months: i32,
}

impl Plan {
    fn parse(p: &pb::WavePlan) -> Result<Plan, Error> {
        let pb::WavePlan {
            first_wave_date,
            interval_months,
            wards_per_wave,
            per_site,
            end_date,
            target_wards,
            reassessment_months,
        } = p;
        let mut v = Violations::new();
        let first =
            v.check(required_date("wave_plan.first_wave_date", first_wave_date.as_ref()).map(Some));
        let interval = v.check(int_in(
            "wave_plan.interval_months",
            *interval_months,
            1..=24,
        ));
        let size = v.check(int_in("wave_plan.wards_per_wave", *wards_per_wave, 1..=100));
        let end = v.check(required_date("wave_plan.end_date", end_date.as_ref()).map(Some));
        let target = v.check(int_in("wave_plan.target_wards", *target_wards, 0..=10_000));
        let reassess = if *reassessment_months == 0 {
            6
        } else {
            v.check(int_in(
                "wave_plan.reassessment_months",
                *reassessment_months,
                1..=60,
            ))
        };
        if let (Some(f), Some(e)) = (first, end)
            && e < f
        {
            v.add(
                "wave_plan.end_date",
                format!("{e} is before the first wave ({f})"),
            );
        }
        v.finish()?;
        let (Some(first), Some(end)) = (first, end) else {
            return Err(Error::invalid("wave_plan", "is incomplete"));
        };
        let plan = Plan {
            first,
            interval_months: interval,
            wards_per_wave: size,
            per_site: *per_site,
            end,
            target_wards: target,
            reassessment_months: reassess,
        };
        if plan.dates().len() > MAX_WAVES {
            return Err(Error::invalid(
                "wave_plan.end_date",
                format!("the plan would make more than {MAX_WAVES} waves"),
            ));
        }
        Ok(plan)
    }

    /// The waves' start dates: the first, then every interval, while not after the end.
    fn dates(&self) -> Vec<NaiveDate> {
        let step = self.interval_months.unsigned_abs();
        (0u32..)
            .map_while(|k| {
                self.first
                    .checked_add_months(Months::new(step * k))
                    .filter(|d| *d <= self.end)
            })
            .take(MAX_WAVES + 1)
            .collect()
    }
}

/// Parses `{programme}/{collection}/{id}` into the programme's name and the id.
fn split_child<'a>(
    field: &str,
    name: &'a str,
    collection: &str,
) -> Result<(&'a str, &'a str), Error> {
    let marker = format!("/{collection}/");
    name.rsplit_once(&marker)
        .filter(|(_, id)| !id.is_empty() && !id.contains('/'))
        .ok_or_else(|| {
            Error::invalid(
                field,
                format!(
                    "`{}` is not a name of the form `{{programme}}/{collection}/{{id}}`",
                    qi_platform::names::clip(name)
                ),
            )
        })
}

/// An enrolment id: the ward's site in lower case, a hyphen, the ward's code.
fn enrolment_id(site: &str, ward: &str) -> String {
    format!("{}-{ward}", site.to_ascii_lowercase())
}

fn parse_enrolment_id(field: &str, id: &str) -> Result<(SiteCode, String), Error> {
    let (site, ward) = id.split_once('-').ok_or_else(|| {
        Error::invalid(
            field,
            "an enrolment id is `{site}-{ward}`, e.g. `bas-cedar`",
        )
    })?;
    let site = SiteCode::parse(&site.to_ascii_uppercase()).map_err(|e| Error::invalid(field, e))?;
    qi_platform::names::validate_id(field, ward)?;
    Ok((site, ward.to_owned()))
}

#[derive(sqlx::FromRow)]
struct WaveRow {
    number: i32,
    start_date: NaiveDate,
    capacity: i32,
    enrolled_count: i64,
}

fn wave_proto(programme: &str, r: &WaveRow) -> pb::Wave {
    pb::Wave {
        name: format!("{programme}/{WAVES}/{}", r.number),
        number: r.number,
        start_date: Some(date(r.start_date)),
        capacity: r.capacity,
        enrolled_count: i32::try_from(r.enrolled_count).unwrap_or(i32::MAX),
    }
}

/// Waves with their wards enrolled, counted within the caller's sites as every list and
/// summary is (a one-site caller of a trust-wide programme must not learn how many wards
/// other sites have put in a wave). `sites` is the placeholder of the caller's site filter.
fn wave_select(sites: &str) -> String {
    format!(
        "SELECT w.number, w.start_date, w.capacity,
           (SELECT count(*) FROM ward_enrolment e WHERE e.programme_uid = w.programme_uid
              AND e.wave_number = w.number AND e.stage <> 'withdrawn'
              AND ({sites}::text[] IS NULL OR e.ward_site = ANY({sites}))) AS enrolled_count
        FROM wave w"
    )
}

#[derive(sqlx::FromRow)]
struct EnrolmentRow {
    ward_site: String,
    ward_id: String,
    wave_number: i32,
    stage: String,
    rating: Option<String>,
    standards_met: Option<i32>,
    standards_assessed: Option<i32>,
    diagnostic_date: NaiveDate,
    assessment_date: Option<NaiveDate>,
    accredited_date: Option<NaiveDate>,
    reassessment_due: Option<NaiveDate>,
    withdraw_reason: Option<String>,
    create_time: chrono::DateTime<chrono::Utc>,
    update_time: chrono::DateTime<chrono::Utc>,
    revision: i64,
}

const ENROLMENT_COLUMNS: &str = "ward_site, ward_id, wave_number, stage, rating, standards_met, \
     standards_assessed, diagnostic_date, assessment_date, accredited_date, reassessment_due, \
     withdraw_reason, create_time, update_time, revision";

fn enrolment_proto(programme: &str, r: EnrolmentRow) -> Result<pb::WardEnrolment, Error> {
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

async fn read_enrolment(
    conn: &mut PgConnection,
    programme: &ProgrammeRef,
    site: &str,
    ward: &str,
) -> Result<Option<EnrolmentRow>, Error> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ENROLMENT_COLUMNS} FROM ward_enrolment
         WHERE programme_uid = $1 AND ward_site = $2 AND ward_id = $3"
    )))
    .bind(programme.uid)
    .bind(site)
    .bind(ward)
    .fetch_optional(&mut *conn)
    .await?)
}

/// Finds an enrolment to change: the programme is resolved for writing (and locked).
async fn locate_enrolment(
    conn: &mut PgConnection,
    ctx: &AccessContext,
    name: &str,
) -> Result<(ProgrammeRef, EnrolmentRow), Error> {
    let (programme_name, id) = split_child("name", name, ENROLMENTS)?;
    let (site, ward) = parse_enrolment_id("name", id)?;
    let programme = programmes::resolve(conn, ctx, "name", programme_name, true).await?;
    let row = read_enrolment(conn, &programme, site.as_str(), &ward)
        .await?
        .ok_or_else(|| Error::not_found(name))?;
    Ok((programme, row))
}

fn stage_error(name: &str, stage: &str, what: &str) -> Error {
    Error::FailedPrecondition {
        reason: "WARD_STAGE",
        message: format!("{name} is in {stage}: {what} (diagnostic → assessment → accredited)"),
    }
}

impl ProjectsApi {
    pub(crate) async fn plan_waves(
        &self,
        ctx: &AccessContext,
        req: pb::PlanWavesRequest,
    ) -> Result<pb::PlanWavesResponse, Error> {
        let pb::PlanWavesRequest {
            programme,
            wave_plan,
            etag,
        } = req;
        let plan =
            Plan::parse(&wave_plan.ok_or_else(|| Error::invalid("wave_plan", "is required"))?)?;
        let mut tx = qi_platform::db::begin(&self.pool).await?;
        let found = programmes::resolve(&mut tx, ctx, "programme", &programme, true).await?;
        check_etag(&etag, found.revision, "the programme")?;
        found.require_ward_programme()?;
        let enrolled: i64 =
            sqlx::query_scalar("SELECT count(*) FROM ward_enrolment WHERE programme_uid = $1")
                .bind(found.uid)
                .fetch_one(&mut *tx)
                .await?;
        if enrolled > 0 {
            return Err(Error::FailedPrecondition {
                reason: "WARDS_ENROLLED",
                message: format!(
                    "{}: {enrolled} wards are enrolled; the wave plan is fixed once wards join",
                    found.name()?
                ),
            });
        }
        sqlx::query("DELETE FROM wave WHERE programme_uid = $1")
            .bind(found.uid)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO wave (programme_uid, number, start_date, capacity)
             SELECT $1, d.n, d.start_date, $3
             FROM unnest($2::date[]) WITH ORDINALITY AS d(start_date, n)",
        )
        .bind(found.uid)
        .bind(plan.dates())
        .bind(plan.wards_per_wave)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE programme SET first_wave_date = $2, interval_months = $3, wards_per_wave = $4,
                    per_site = $5, plan_end_date = $6, target_wards = $7, reassessment_months = $8
             WHERE uid = $1",
        )
        .bind(found.uid)
        .bind(plan.first)
        .bind(plan.interval_months)
        .bind(plan.wards_per_wave)
        .bind(plan.per_site)
        .bind(plan.end)
        .bind(plan.target_wards)
        .bind(plan.reassessment_months)
        .execute(&mut *tx)
        .await?;
        let name = found.name()?;
        let waves: Vec<WaveRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{} WHERE w.programme_uid = $1 ORDER BY w.number",
            wave_select("$2")
        )))
        .bind(found.uid)
        .bind(ctx.sites.sql_filter())
        .fetch_all(&mut *tx)
        .await?;
        let resp = pb::PlanWavesResponse {
            programme: Some(programmes::store::read(&mut tx, found.uid).await?),
            waves: waves.iter().map(|w| wave_proto(&name, w)).collect(),
        };
        tx.commit().await?;
        Ok(resp)
    }

    pub(crate) async fn list_waves(
        &self,
        ctx: &AccessContext,
        req: pb::ListWavesRequest,
    ) -> Result<pb::ListWavesResponse, Error> {
        let pb::ListWavesRequest {
            parent,
            page_size,
            page_token,
        } = req;
        let page = Page::parse(page_size, &page_token, &parent)?;
        let mut conn = qi_platform::db::begin(&self.pool).await?;
        let found = programmes::resolve(&mut conn, ctx, "parent", &parent, false).await?;
        let after: i32 = page.after_key(0).and_then(|k| k.parse().ok()).unwrap_or(0);
        let rows: Vec<WaveRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{} WHERE w.programme_uid = $1 AND w.number > $2 ORDER BY w.number LIMIT $3",
            wave_select("$4")
        )))
        .bind(found.uid)
        .bind(after)
        .bind(page.limit())
        .bind(ctx.sites.sql_filter())
        .fetch_all(&mut *conn)
        .await?;
        let (rows, next_page_token) = page.finish(rows, |r| vec![r.number.to_string()]);
        let name = found.name()?;
        Ok(pb::ListWavesResponse {
            waves: rows.iter().map(|w| wave_proto(&name, w)).collect(),
            next_page_token,
        })
    }

    pub(crate) async fn create_ward_enrolment(
        &self,
        ctx: &AccessContext,
        req: pb::CreateWardEnrolmentRequest,
    ) -> Result<pb::CreateWardEnrolmentResponse, Error> {
        let mut v = Violations::new();
        v.check(idempotency::validate_request_id(&req.request_id));
        let Some(enrolment) = req.ward_enrolment.as_ref() else {
            return Err(v.missing("ward_enrolment"));
        };
        let pb::WardEnrolment {
            name: _,
            ward,
            wave,
            stage: _,
            rating: _,
            standards_met: _,
            standards_assessed: _,
            diagnostic_date: _,
            assessment_date: _,
            accredited_date: _,
            reassessment_due_date: _,
            withdraw_reason: _,
            create_time: _,
            update_time: _,
            etag: _,
        } = enrolment;
        let ward = v.check(crate::wards::parse_name("ward_enrolment.ward", ward).map(Some));
        let wave = v.check(int_in("ward_enrolment.wave", *wave, 1..=(MAX_WAVES as i32)));
        v.finish()?;
        let (site, ward) =
            ward.ok_or_else(|| Error::invalid("ward_enrolment.ward", "is required"))?;
        let mut tx = qi_platform::db::begin(&self.pool).await?;
        let programme = programmes::resolve(&mut tx, ctx, "parent", &req.parent, true).await?;
        if let Some(saved) = idempotency::claim(&mut tx, ctx, &req.request_id, &req).await? {
            return Ok(saved);
        }
        programme.require_ward_programme()?;
        let ward_name = format!("sites/{site}/{}/{ward}", crate::wards::COLLECTION);
        if let Owner::Site(own) = programme.owner()?
            && own != site
        {
            return Err(Error::invalid(
                "ward_enrolment.ward",
                format!(
                    "{ward_name} is a ward of {site}; a {own} programme takes {own} wards (use a trust-wide programme across sites)"
                ),
            ));
        }
        if !crate::wards::store::exists(&mut tx, &site, &ward).await? {
            return Err(Error::invalid(
                "ward_enrolment.ward",
                format!("{ward_name} does not exist"),
            ));
        }
        let wave_row: Option<(NaiveDate, i32)> = sqlx::query_as(
            "SELECT start_date, capacity FROM wave WHERE programme_uid = $1 AND number = $2",
        )
        .bind(programme.uid)
        .bind(wave)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((wave_start, capacity)) = wave_row else {
            return Err(Error::invalid(
                "ward_enrolment.wave",
                format!(
                    "{} has no wave {wave}; plan the waves first",
                    programme.name()?
                ),
            ));
        };
        // The programme's row is locked, so these counts hold until commit.
        let taken: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM ward_enrolment
             WHERE programme_uid = $1 AND wave_number = $2 AND stage <> 'withdrawn'
               AND (NOT $3 OR ward_site = $4)",
        )
        .bind(programme.uid)
        .bind(wave)
        .bind(programme.per_site)
        .bind(site.as_str())
        .fetch_one(&mut *tx)
        .await?;
        if taken >= i64::from(capacity) {
            return Err(Error::FailedPrecondition {
                reason: "WAVE_FULL",
                message: format!(
                    "wave {wave} of {} takes {capacity} wards{}; it is full",
                    programme.name()?,
                    if programme.per_site {
                        format!(" per site, and has {capacity} from {site}")
                    } else {
                        String::new()
                    }
                ),
            });
        }
        // A withdrawn ward may join again; anyone else is enrolled already.
        let written = sqlx::query(
            "INSERT INTO ward_enrolment (programme_uid, ward_site, ward_id, wave_number, diagnostic_date)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (programme_uid, ward_site, ward_id) DO UPDATE
                 SET wave_number = EXCLUDED.wave_number, stage = 'diagnostic',
                     diagnostic_date = EXCLUDED.diagnostic_date, assessment_date = NULL,
                     accredited_date = NULL, reassessment_due = NULL, rating = NULL,
                     standards_met = NULL, standards_assessed = NULL, withdraw_reason = NULL
                 WHERE ward_enrolment.stage = 'withdrawn'",
        )
        .bind(programme.uid)
        .bind(site.as_str())
        .bind(&ward)
        .bind(wave)
        .bind(wave_start)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let name = programme.name()?;
        if written == 0 {
            return Err(Error::AlreadyExists {
                name: format!("{name}/{ENROLMENTS}/{}", enrolment_id(site.as_str(), &ward)),
            });
        }
        let row = read_enrolment(&mut tx, &programme, site.as_str(), &ward)
            .await?
            .ok_or_else(|| unexpected("ward enrolment", "vanished"))?;
        let resp = pb::CreateWardEnrolmentResponse {
            ward_enrolment: Some(enrolment_proto(&name, row)?),
        };
        idempotency::record(&mut tx, ctx, &req.request_id, &resp).await?;
        tx.commit().await?;
        Ok(resp)
    }

    pub(crate) async fn list_ward_enrolments(
        &self,
        ctx: &AccessContext,
        req: pb::ListWardEnrolmentsRequest,
    ) -> Result<pb::ListWardEnrolmentsResponse, Error> {
        let pb::ListWardEnrolmentsRequest {
            parent,
            wave,
            page_size,
            page_token,
        } = req;
        let wave = if wave == 0 {
            None
        } else {
            Some(int_in("wave", wave, 1..=(MAX_WAVES as i32))?)
        };
        let page = Page::parse(page_size, &page_token, &format!("{parent}|{wave:?}"))?;
        let mut conn = qi_platform::db::begin(&self.pool).await?;
        let programme = programmes::resolve(&mut conn, ctx, "parent", &parent, false).await?;
        let after_wave: i32 = page.after_key(0).and_then(|k| k.parse().ok()).unwrap_or(0);
        let rows: Vec<EnrolmentRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ENROLMENT_COLUMNS} FROM ward_enrolment
             WHERE programme_uid = $1
               AND ($2::text[] IS NULL OR ward_site = ANY($2))
               AND ($3::int IS NULL OR wave_number = $3)
               AND (wave_number, ward_site, ward_id) > ($4, $5, $6)
             ORDER BY wave_number, ward_site, ward_id LIMIT $7"
        )))
        .bind(programme.uid)
        .bind(ctx.sites.sql_filter())
        .bind(wave)
        .bind(after_wave)
        .bind(page.after_key(1).unwrap_or(""))
        .bind(page.after_key(2).unwrap_or(""))
        .bind(page.limit())
        .fetch_all(&mut *conn)
        .await?;
        let (rows, next_page_token) = page.finish(rows, |r| {
            vec![
                r.wave_number.to_string(),
                r.ward_site.clone(),
                r.ward_id.clone(),
            ]
        });
        let name = programme.name()?;
        Ok(pb::ListWardEnrolmentsResponse {
            ward_enrolments: rows
                .into_iter()
                .map(|r| enrolment_proto(&name, r))
                .collect::<Result<_, _>>()?,
            next_page_token,
        })
    }

    pub(crate) async fn start_ward_assessment(
        &self,
        ctx: &AccessContext,
        req: pb::StartWardAssessmentRequest,
    ) -> Result<pb::StartWardAssessmentResponse, Error> {
        let pb::StartWardAssessmentRequest {
            name,
            assessment_date,
            etag,
        } = req;
        let day = optional_date("assessment_date", assessment_date.as_ref())?.unwrap_or_else(today);
        let mut tx = qi_platform::db::begin(&self.pool).await?;
        let (programme, row) = locate_enrolment(&mut tx, ctx, &name).await?;
        check_etag(&etag, row.revision, "the ward enrolment")?;
        let stage = pb::WardStage::from_column(&row.stage)?;
        if stage != pb::WardStage::Diagnostic {
            return Err(stage_error(
                &name,
                &row.stage,
                "only a ward in diagnostic starts assessment",
            ));
        }
        if day < row.diagnostic_date {
            return Err(Error::invalid(
                "assessment_date",
                format!(
                    "{day} is before the diagnostic began ({})",
                    row.diagnostic_date
                ),
            ));
        }
        sqlx::query(
            "UPDATE ward_enrolment SET stage = 'assessment', assessment_date = $4
             WHERE programme_uid = $1 AND ward_site = $2 AND ward_id = $3",
        )
        .bind(programme.uid)
        .bind(&row.ward_site)
        .bind(&row.ward_id)
        .bind(day)
        .execute(&mut *tx)
        .await?;
        let row = read_enrolment(&mut tx, &programme, &row.ward_site, &row.ward_id)
            .await?
            .ok_or_else(|| unexpected("ward enrolment", "vanished"))?;
        let resp = pb::StartWardAssessmentResponse {
            ward_enrolment: Some(enrolment_proto(&programme.name()?, row)?),
        };
        tx.commit().await?;
        Ok(resp)
    }

    pub(crate) async fn accredit_ward(
        &self,
        ctx: &AccessContext,
        req: pb::AccreditWardRequest,
    ) -> Result<pb::AccreditWardResponse, Error> {
        let pb::AccreditWardRequest {
            name,
            rating,
            standards_met,
            standards_assessed,
            accredited_date,
            etag,
        } = req;
        let mut v = Violations::new();
        let rating = v.check(required_enum::<pb::AccreditationRating>("rating", rating));
        let assessed = v.check(int_in("standards_assessed", standards_assessed, 1..=50));
        let met = v.check(int_in(
            "standards_met",
            standards_met,
            0..=standards_assessed.max(0),
        ));
        let day = v.check(optional_date("accredited_date", accredited_date.as_ref()));
        v.finish()?;
        let day = day.unwrap_or_else(today);
        let mut tx = qi_platform::db::begin(&self.pool).await?;
        let (programme, row) = locate_enrolment(&mut tx, ctx, &name).await?;
        check_etag(&etag, row.revision, "the ward enrolment")?;
        let stage = pb::WardStage::from_column(&row.stage)?;
        if !matches!(stage, pb::WardStage::Assessment | pb::WardStage::Accredited) {
            return Err(stage_error(
                &name,
                &row.stage,
                "a ward is accredited from assessment, or re-rated once accredited",
            ));
        }
        let since = row
            .accredited_date
            .or(row.assessment_date)
            .unwrap_or(row.diagnostic_date);
        if day < since {
            return Err(Error::invalid(
                "accredited_date",
                format!("{day} is before the ward's last stage began ({since})"),
            ));
        }
        let due = day
            .checked_add_months(Months::new(programme.reassessment_months.unsigned_abs()))
            .ok_or_else(|| Error::invalid("accredited_date", "too far in the future"))?;
        sqlx::query(
            "UPDATE ward_enrolment SET stage = 'accredited', rating = $4, standards_met = $5,
                    standards_assessed = $6, accredited_date = $7, reassessment_due = $8
             WHERE programme_uid = $1 AND ward_site = $2 AND ward_id = $3",
        )
        .bind(programme.uid)
        .bind(&row.ward_site)
        .bind(&row.ward_id)
        .bind(rating.column())
        .bind(met)
        .bind(assessed)
        .bind(day)
        .bind(due)
        .execute(&mut *tx)
        .await?;
        let row = read_enrolment(&mut tx, &programme, &row.ward_site, &row.ward_id)
            .await?
            .ok_or_else(|| unexpected("ward enrolment", "vanished"))?;
        let resp = pb::AccreditWardResponse {
            ward_enrolment: Some(enrolment_proto(&programme.name()?, row)?),
        };
        tx.commit().await?;
        Ok(resp)
    }

    pub(crate) async fn withdraw_ward_enrolment(
        &self,
        ctx: &AccessContext,
        req: pb::WithdrawWardEnrolmentRequest,
    ) -> Result<pb::WithdrawWardEnrolmentResponse, Error> {
        let pb::WithdrawWardEnrolmentRequest { name, reason, etag } = req;
        let reason = long_text("reason", &reason, 1000)?;
        let mut tx = qi_platform::db::begin(&self.pool).await?;
        let (programme, row) = locate_enrolment(&mut tx, ctx, &name).await?;
        check_etag(&etag, row.revision, "the ward enrolment")?;
        if pb::WardStage::from_column(&row.stage)? == pb::WardStage::Withdrawn {
            return Err(stage_error(&name, &row.stage, "it was withdrawn already"));
        }
        sqlx::query(
            "UPDATE ward_enrolment SET stage = 'withdrawn', withdraw_reason = $4
             WHERE programme_uid = $1 AND ward_site = $2 AND ward_id = $3",
        )
        .bind(programme.uid)
        .bind(&row.ward_site)
        .bind(&row.ward_id)
        .bind(&reason)
        .execute(&mut *tx)
        .await?;
        let row = read_enrolment(&mut tx, &programme, &row.ward_site, &row.ward_id)
            .await?
            .ok_or_else(|| unexpected("ward enrolment", "vanished"))?;
        let resp = pb::WithdrawWardEnrolmentResponse {
            ward_enrolment: Some(enrolment_proto(&programme.name()?, row)?),
        };
        tx.commit().await?;
        Ok(resp)
    }

    pub(crate) async fn get_ward_programme_progress(
        &self,
        ctx: &AccessContext,
        req: pb::GetWardProgrammeProgressRequest,
    ) -> Result<pb::GetWardProgrammeProgressResponse, Error> {
        let pb::GetWardProgrammeProgressRequest { programme } = req;
        let mut conn = qi_platform::db::begin(&self.pool).await?;
        let found = programmes::resolve(&mut conn, ctx, "programme", &programme, false).await?;
        found.require_ward_programme()?;
        let name = found.name()?;
        let waves: Vec<WaveRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{} WHERE w.programme_uid = $1 ORDER BY w.number",
            wave_select("$2")
        )))
        .bind(found.uid)
        .bind(ctx.sites.sql_filter())
        .fetch_all(&mut *conn)
        .await?;
        // One set-based count: wards per wave, site, stage and rating in the caller's sites.
        let cells: Vec<(i32, String, String, Option<String>, i64)> = sqlx::query_as(
            "SELECT wave_number, ward_site, stage, rating, count(*) FROM ward_enrolment
             WHERE programme_uid = $1 AND ($2::text[] IS NULL OR ward_site = ANY($2))
             GROUP BY 1, 2, 3, 4 ORDER BY 1, 2",
        )
        .bind(found.uid)
        .bind(ctx.sites.sql_filter())
        .fetch_all(&mut *conn)
        .await?;
        let trust_enrolled: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM ward_enrolment WHERE programme_uid = $1 AND stage <> 'withdrawn'",
        )
        .bind(found.uid)
        .fetch_one(&mut *conn)
        .await?;
        let mut totals = pb::StageCounts::default();
        let mut progress: Vec<pb::WaveProgress> = waves
            .iter()
            .map(|w| {
                // The wave's own count is limited to the caller's sites, like the rest.
                let mut wave = wave_proto(&name, w);
                wave.enrolled_count = 0;
                pb::WaveProgress {
                    wave: Some(wave),
                    sites: Vec::new(),
                }
            })
            .collect();
        for (wave, site, stage, rating, n) in cells {
            let n = i32::try_from(n).unwrap_or(i32::MAX);
            let stage = pb::WardStage::from_column(&stage)?;
            let rating = rating
                .as_deref()
                .map(pb::AccreditationRating::from_column)
                .transpose()?;
            let Some(wp) = progress
                .iter_mut()
                .find(|p| p.wave.as_ref().is_some_and(|w| w.number == wave))
            else {
                continue;
            };
            let site_name = format!("sites/{site}");
            let idx = match wp.sites.iter().position(|s| s.site == site_name) {
                Some(i) => i,
                None => {
                    wp.sites.push(pb::SiteStageCounts {
                        site: site_name,
                        counts: Some(pb::StageCounts::default()),
                    });
                    wp.sites.len() - 1
                }
            };
            let counts = wp.sites[idx].counts.get_or_insert_with(Default::default);
            for c in [counts, &mut totals] {
                add_stage(c, stage, rating, n);
            }
            if stage != pb::WardStage::Withdrawn
                && let Some(w) = wp.wave.as_mut()
            {
                w.enrolled_count += n;
            }
        }
        let today = today();
        let started = waves.iter().filter(|w| w.start_date <= today).count();
        let planned = waves.len();
        let to_i32 = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
        let sites = match ctx.sites.sql_filter() {
            Some(s) => s,
            None => self.sites.iter().map(ToString::to_string).collect(),
        };
        Ok(pb::GetWardProgrammeProgressResponse {
            programme: Some(programmes::store::read(&mut conn, found.uid).await?),
            waves: progress,
            waves_planned: to_i32(planned),
            waves_started: to_i32(started),
            waves_remaining: to_i32(planned - started),
            wards_enrolled: totals.enrolled,
            target_wards: found.target_wards,
            wards_to_target: (i64::from(found.target_wards) - trust_enrolled).max(0) as i32,
            totals: Some(totals),
            sites: sites.into_iter().map(|s| format!("sites/{s}")).collect(),
        })
    }
}

fn add_stage(
    c: &mut pb::StageCounts,
    stage: pb::WardStage,
    rating: Option<pb::AccreditationRating>,
    n: i32,
) {
    match stage {
        pb::WardStage::Diagnostic => c.diagnostic += n,
        pb::WardStage::Assessment => c.assessment += n,
        pb::WardStage::Accredited => {
            c.accredited += n;
            match rating {
                Some(pb::AccreditationRating::Bronze) => c.bronze += n,
                Some(pb::AccreditationRating::Silver) => c.silver += n,
                Some(pb::AccreditationRating::Gold) => c.gold += n,
                Some(pb::AccreditationRating::Unspecified) | None => {}
            }
        }
        pb::WardStage::Withdrawn => c.withdrawn += n,
        pb::WardStage::Unspecified => {}
    }
    if stage != pb::WardStage::Withdrawn {
        c.enrolled += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qi_proto::google::r#type::Date;

    fn d(y: i32, m: i32, day: i32) -> Option<Date> {
        Some(Date {
            year: y,
            month: m,
            day,
        })
    }

    #[test]
    fn five_wards_every_three_months_until_december_2024_makes_twelve_waves() {
        let plan = Plan::parse(&pb::WavePlan {
            first_wave_date: d(2022, 1, 31),
            interval_months: 3,
            wards_per_wave: 5,
            per_site: false,
            end_date: d(2024, 12, 31),
            target_wards: 60,
            reassessment_months: 0,
        })
        .unwrap();
        let dates = plan.dates();
        assert_eq!(dates.len(), 12);
        assert_eq!(dates[1].to_string(), "2022-04-30", "month ends clamp");
        assert_eq!(dates[11].to_string(), "2024-10-31");
        assert_eq!(plan.reassessment_months, 6);
    }

    #[test]
    fn bad_plans_name_their_fields() {
        let Err(Error::InvalidArgument { violations }) = Plan::parse(&pb::WavePlan {
            first_wave_date: d(2024, 1, 1),
            interval_months: 0,
            wards_per_wave: 101,
            end_date: d(2023, 1, 1),
            ..Default::default()
        }) else {
            panic!("expected violations")
        };
        let fields: Vec<_> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "wave_plan.interval_months",
                "wave_plan.wards_per_wave",
                "wave_plan.end_date"
            ]
        );
    }

    #[test]
    fn enrolment_ids_join_site_and_ward() {
        assert_eq!(enrolment_id("BAS", "cedar-2"), "bas-cedar-2");
        let (site, ward) = parse_enrolment_id("name", "bas-cedar-2").unwrap();
        assert_eq!((site.as_str(), ward.as_str()), ("BAS", "cedar-2"));
        assert!(parse_enrolment_id("name", "cedar").is_err());
        let (p, id) = split_child(
            "name",
            "trust/programmes/wards/wardEnrolments/bas-cedar",
            ENROLMENTS,
        )
        .unwrap();
        assert_eq!((p, id), ("trust/programmes/wards", "bas-cedar"));
    }
}
