//! The wards of a ward programme (`{programme}/wardEnrolments/{site}-{ward}`), each
//! enrolled into a wave and moving through its stages: diagnostic → assessment → accredited
//! with a Bronze/Silver/Gold rating, reassessed after an interval; or withdrawn. A site's
//! programme takes its own wards, a trust-wide one any site's; lists show a caller the wards
//! of their own sites.

mod store;

use chrono::Months;
use qi_platform::calendar::today;
use qi_platform::changes::Kind;
use qi_platform::convert::{check_etag, int_in, long_text, optional_date};
use qi_platform::names::Owner;
use qi_platform::paging::Page;
use qi_platform::{AccessContext, Error, SiteCode, Violations, idempotency};
use qi_proto::projects as pb;
use sqlx::PgConnection;

use crate::ProjectsApi;
use crate::programmes::{self, ProgrammeRef};
use crate::stored::{Column, required_enum};
use crate::waves::MAX_WAVES;
use store::{EnrolmentRow, Stage};

/// The collection id of ward enrolments.
const ENROLMENTS: &str = "wardEnrolments";

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

/// Finds an enrolment to change: the programme is resolved for writing (and locked).
async fn locate(
    conn: &mut PgConnection,
    ctx: &AccessContext,
    name: &str,
) -> Result<(ProgrammeRef, EnrolmentRow), Error> {
    let (programme_name, id) = split_child("name", name, ENROLMENTS)?;
    let (site, ward) = parse_enrolment_id("name", id)?;
    let programme = programmes::resolve(conn, ctx, "name", programme_name, true).await?;
    let row = store::read(conn, programme.uid, site.as_str(), &ward)
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

/// Enrols a ward into a planned wave with room in it.
pub(crate) async fn create(
    api: &ProjectsApi,
    ctx: AccessContext,
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
    let (site, ward) = ward.ok_or_else(|| Error::invalid("ward_enrolment.ward", "is required"))?;
    let mut tx = qi_platform::db::begin(&api.pool).await?;
    let programme = programmes::resolve(&mut tx, &ctx, "parent", &req.parent, true).await?;
    idempotency::once(tx, &ctx, &req.request_id, &req, async |tx| {
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
        if !crate::wards::store::exists(tx, &site, &ward).await? {
            return Err(Error::invalid(
                "ward_enrolment.ward",
                format!("{ward_name} does not exist"),
            ));
        }
        let wave_row = crate::waves::store::start_and_capacity(tx, programme.uid, wave).await?;
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
        let taken = store::taken(tx, &programme, wave, &site).await?;
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
        let written = store::enrol(tx, programme.uid, &site, &ward, wave, wave_start).await?;
        let name = programme.name()?;
        let row = written.ok_or_else(|| Error::AlreadyExists {
            name: format!("{name}/{ENROLMENTS}/{}", enrolment_id(site.as_str(), &ward)),
        })?;
        let enrolment = store::to_proto(&name, row)?;
        // Read by the ward's site's callers.
        let sites = Some(vec![site.to_string()]);
        let enrolled = &enrolment.name;
        crate::feed::record(tx, ENROLMENTS, enrolled, Kind::Created, sites, &enrolment).await?;
        Ok(pb::CreateWardEnrolmentResponse {
            ward_enrolment: Some(enrolment),
        })
    })
    .await
}

/// Lists a programme's enrolments in the caller's sites, by wave, site and ward.
pub(crate) async fn list(
    api: &ProjectsApi,
    ctx: AccessContext,
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
    let mut conn = qi_platform::db::begin(&api.pool).await?;
    let programme = programmes::resolve(&mut conn, &ctx, "parent", &parent, false).await?;
    let after_wave: i32 = page.after_key(0).and_then(|k| k.parse().ok()).unwrap_or(0);
    let (rows, next_page_token) = store::list(
        &mut conn,
        programme.uid,
        ctx.sites.sql_filter(),
        wave,
        after_wave,
        &page,
    )
    .await?;
    let name = programme.name()?;
    Ok(pb::ListWardEnrolmentsResponse {
        ward_enrolments: rows
            .into_iter()
            .map(|r| store::to_proto(&name, r))
            .collect::<Result<_, _>>()?,
        next_page_token,
    })
}

/// Moves a ward in diagnostic into assessment.
pub(crate) async fn start_assessment(
    api: &ProjectsApi,
    ctx: AccessContext,
    req: pb::StartWardAssessmentRequest,
) -> Result<pb::StartWardAssessmentResponse, Error> {
    let pb::StartWardAssessmentRequest {
        name,
        assessment_date,
        etag,
    } = req;
    let day = optional_date("assessment_date", assessment_date.as_ref())?.unwrap_or_else(today);
    let mut tx = qi_platform::db::begin(&api.pool).await?;
    let (programme, row) = locate(&mut tx, &ctx, &name).await?;
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
    let row = store::advance(&mut tx, programme.uid, &row, Stage::Assessment { day }).await?;
    let sites = Some(vec![row.ward_site.clone()]);
    let stored = store::to_proto(&programme.name()?, row)?;
    let kind = Kind::StateChanged("start_assessment");
    crate::feed::record(&mut tx, ENROLMENTS, &stored.name, kind, sites, &stored).await?;
    tx.commit().await?;
    Ok(pb::StartWardAssessmentResponse {
        ward_enrolment: Some(stored),
    })
}

/// Accredits a ward in assessment, or re-rates an accredited one, setting its reassessment
/// date.
pub(crate) async fn accredit(
    api: &ProjectsApi,
    ctx: AccessContext,
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
    let mut tx = qi_platform::db::begin(&api.pool).await?;
    let (programme, row) = locate(&mut tx, &ctx, &name).await?;
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
    let row = store::advance(
        &mut tx,
        programme.uid,
        &row,
        Stage::Accredited {
            rating,
            met,
            assessed,
            day,
            due,
        },
    )
    .await?;
    let sites = Some(vec![row.ward_site.clone()]);
    let stored = store::to_proto(&programme.name()?, row)?;
    let kind = Kind::StateChanged("accredit");
    crate::feed::record(&mut tx, ENROLMENTS, &stored.name, kind, sites, &stored).await?;
    tx.commit().await?;
    Ok(pb::AccreditWardResponse {
        ward_enrolment: Some(stored),
    })
}

/// Withdraws a ward from the programme, with a reason.
pub(crate) async fn withdraw(
    api: &ProjectsApi,
    ctx: AccessContext,
    req: pb::WithdrawWardEnrolmentRequest,
) -> Result<pb::WithdrawWardEnrolmentResponse, Error> {
    let pb::WithdrawWardEnrolmentRequest { name, reason, etag } = req;
    let reason = long_text("reason", &reason, 1000)?;
    let mut tx = qi_platform::db::begin(&api.pool).await?;
    let (programme, row) = locate(&mut tx, &ctx, &name).await?;
    check_etag(&etag, row.revision, "the ward enrolment")?;
    if pb::WardStage::from_column(&row.stage)? == pb::WardStage::Withdrawn {
        return Err(stage_error(&name, &row.stage, "it was withdrawn already"));
    }
    let row = store::advance(
        &mut tx,
        programme.uid,
        &row,
        Stage::Withdrawn { reason: &reason },
    )
    .await?;
    let sites = Some(vec![row.ward_site.clone()]);
    let stored = store::to_proto(&programme.name()?, row)?;
    let kind = Kind::StateChanged("withdraw");
    crate::feed::record(&mut tx, ENROLMENTS, &stored.name, kind, sites, &stored).await?;
    tx.commit().await?;
    Ok(pb::WithdrawWardEnrolmentResponse {
        ward_enrolment: Some(stored),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
