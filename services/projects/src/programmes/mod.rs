//! Programmes (`sites/{site}/programmes/{id}` or `trust/programmes/{id}`): training-wrapped
//! (around a cohort of the training service, named), ward programmes (wards in waves, see
//! `waves.rs`) and thematic ones. Trust-wide programmes are readable by every caller with the
//! role and changed only by trust-wide callers.

use chrono::NaiveDate;
use qi_platform::convert::{date, etag, optional_text, required_text, timestamp};
use qi_platform::names::{self, LIST_SCOPE_SQL, ListParent, Owner};
use qi_platform::paging::Page;
use qi_platform::{AccessContext, Error, Violations, idempotency};
use qi_proto::projects as pb;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::ProjectsApi;
use crate::stored::{Column, enum_field, required_enum};

/// The collection id in programme names.
pub(crate) const COLLECTION: &str = "programmes";

crate::stored::column_enum!(ProgrammeKind, "programme kind", {
    TrainingWrapped => "training_wrapped",
    WardProgramme => "ward_programme",
    Thematic => "thematic",
});

/// A programme to create, validated.
#[derive(Debug)]
struct NewProgramme {
    owner: Owner,
    id: String,
    display_name: String,
    description: String,
    kind: pb::ProgrammeKind,
    cohort: Option<String>,
    theme: Option<String>,
    request_id: String,
}

impl TryFrom<pb::CreateProgrammeRequest> for NewProgramme {
    type Error = Error;

    fn try_from(req: pb::CreateProgrammeRequest) -> Result<Self, Error> {
        let pb::CreateProgrammeRequest {
            parent,
            programme_id,
            programme,
            request_id,
        } = req;
        let mut v = Violations::new();
        let owner = v.check(names::parse_parent("parent", &parent).map(Some));
        let id = v.check(names::id_or_new("programme_id", &programme_id));
        v.check(idempotency::validate_request_id(&request_id));
        let Some(programme) = programme else {
            return Err(v.missing("programme"));
        };
        let pb::Programme {
            name: _,
            display_name,
            description,
            kind,
            cohort,
            theme,
            wave_plan: _,
            create_time: _,
            update_time: _,
            etag: _,
        } = programme;
        let display_name = v.check(required_text("programme.display_name", &display_name, 200));
        let description = v.check(optional_text("programme.description", &description, 5000));
        let kind = v.check(required_enum::<pb::ProgrammeKind>("programme.kind", kind));
        let training = kind == pb::ProgrammeKind::TrainingWrapped;
        let cohort = match (training, cohort.is_empty()) {
            (true, true) => {
                v.add(
                    "programme.cohort",
                    "a training-wrapped programme names the cohort it is wrapped around",
                );
                None
            }
            (true, false) => match names::parse_name("programme.cohort", &cohort, "cohorts") {
                Err(e) => v.check(Err(e)),
                Ok((Owner::Site(s), _))
                    if owner.as_ref().is_some_and(|o| *o != Owner::Site(s.clone())) =>
                {
                    v.add(
                        "programme.cohort",
                        format!(
                            "a programme wraps a trust-wide cohort or one of its own site, not {s}'s"
                        ),
                    );
                    None
                }
                Ok(_) => Some(cohort),
            },
            (false, true) => None,
            (false, false) => {
                v.add(
                    "programme.cohort",
                    "only a training-wrapped programme has a cohort",
                );
                None
            }
        };
        let thematic = kind == pb::ProgrammeKind::Thematic;
        let theme = match (thematic, theme.trim().is_empty()) {
            (true, _) => Some(v.check(required_text("programme.theme", &theme, 100))),
            (false, true) => None,
            (false, false) => {
                v.add("programme.theme", "only a thematic programme has a theme");
                None
            }
        };
        v.finish()?;
        let owner = owner.ok_or_else(|| Error::invalid("parent", "is required"))?;
        Ok(NewProgramme {
            owner,
            id,
            display_name,
            description,
            kind,
            cohort,
            theme,
            request_id,
        })
    }
}

/// What other modules need to know of a programme they act on.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct ProgrammeRef {
    pub(crate) uid: Uuid,
    pub(crate) site: Option<String>,
    pub(crate) id: String,
    pub(crate) kind: String,
    pub(crate) revision: i64,
    pub(crate) per_site: bool,
    pub(crate) target_wards: i32,
    pub(crate) reassessment_months: i32,
}

impl ProgrammeRef {
    pub(crate) fn owner(&self) -> Result<Owner, Error> {
        Owner::from_column(self.site.clone())
    }

    pub(crate) fn name(&self) -> Result<String, Error> {
        Ok(self.owner()?.child(COLLECTION, &self.id))
    }

    /// Refuses anything but a ward programme.
    pub(crate) fn require_ward_programme(&self) -> Result<(), Error> {
        if self.kind == "ward_programme" {
            Ok(())
        } else {
            Err(Error::FailedPrecondition {
                reason: "NOT_A_WARD_PROGRAMME",
                message: format!(
                    "{} is a {} programme, not a ward programme",
                    self.name()?,
                    self.kind
                ),
            })
        }
    }
}

/// Parses a programme's name, checks the caller may read or change it, and finds it
/// (locked for changes).
pub(crate) async fn resolve(
    conn: &mut PgConnection,
    ctx: &AccessContext,
    field: &str,
    name: &str,
    write: bool,
) -> Result<ProgrammeRef, Error> {
    let (owner, id) = names::parse_name(field, name, COLLECTION)?;
    if write {
        owner.check_write(ctx)?;
    } else {
        owner.check_read(ctx)?;
    }
    let sql = format!(
        "SELECT uid, site, id, kind, revision, per_site, target_wards,
                reassessment_months
         FROM programme WHERE coalesce(site, '') = coalesce($1, '') AND id = $2 {}",
        if write { "FOR UPDATE" } else { "" }
    );
    let row: Option<ProgrammeRef> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(owner.site_column())
        .bind(&id)
        .fetch_optional(&mut *conn)
        .await?;
    row.ok_or_else(|| Error::not_found(name))
}

#[derive(sqlx::FromRow)]
struct ProgrammeRow {
    site: Option<String>,
    id: String,
    display_name: String,
    description: String,
    kind: String,
    cohort: Option<String>,
    theme: Option<String>,
    first_wave_date: Option<NaiveDate>,
    interval_months: Option<i32>,
    wards_per_wave: Option<i32>,
    per_site: bool,
    plan_end_date: Option<NaiveDate>,
    target_wards: i32,
    reassessment_months: i32,
    create_time: chrono::DateTime<chrono::Utc>,
    update_time: chrono::DateTime<chrono::Utc>,
    revision: i64,
}

const COLUMNS: &str = "site, id, display_name, description, kind, cohort, theme, first_wave_date, \
     interval_months, wards_per_wave, per_site, plan_end_date, target_wards, reassessment_months, \
     create_time, update_time, revision";

impl TryFrom<ProgrammeRow> for pb::Programme {
    type Error = Error;
    fn try_from(r: ProgrammeRow) -> Result<Self, Error> {
        let wave_plan = match (
            r.first_wave_date,
            r.interval_months,
            r.wards_per_wave,
            r.plan_end_date,
        ) {
            (Some(first), Some(interval), Some(size), Some(end)) => Some(pb::WavePlan {
                first_wave_date: Some(date(first)),
                interval_months: interval,
                wards_per_wave: size,
                per_site: r.per_site,
                end_date: Some(date(end)),
                target_wards: r.target_wards,
                reassessment_months: r.reassessment_months,
            }),
            _ => None,
        };
        Ok(pb::Programme {
            name: Owner::from_column(r.site)?.child(COLLECTION, &r.id),
            display_name: r.display_name,
            description: r.description,
            kind: pb::ProgrammeKind::from_column(&r.kind)? as i32,
            cohort: r.cohort.unwrap_or_default(),
            theme: r.theme.unwrap_or_default(),
            wave_plan,
            create_time: Some(timestamp(r.create_time)),
            update_time: Some(timestamp(r.update_time)),
            etag: etag(r.revision),
        })
    }
}

/// Reads one programme by its internal id.
pub(crate) async fn get(conn: &mut PgConnection, uid: Uuid) -> Result<pb::Programme, Error> {
    let row: ProgrammeRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM programme WHERE uid = $1"
    )))
    .bind(uid)
    .fetch_one(&mut *conn)
    .await?;
    row.try_into()
}

impl ProjectsApi {
    pub(crate) async fn create_programme(
        &self,
        ctx: &AccessContext,
        req: pb::CreateProgrammeRequest,
    ) -> Result<pb::CreateProgrammeResponse, Error> {
        let new = NewProgramme::try_from(req.clone())?;
        new.owner.check_write(ctx)?;
        new.owner.check_known("parent", &self.sites)?;
        let mut tx = qi_platform::db::begin(&self.pool).await?;
        if let Some(saved) = idempotency::claim(&mut tx, ctx, &new.request_id, &req).await? {
            return Ok(saved);
        }
        let uid: Option<Uuid> = sqlx::query_scalar(
            "INSERT INTO programme (uid, site, id, display_name, description, kind, cohort, theme)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT DO NOTHING RETURNING uid",
        )
        .bind(Uuid::now_v7())
        .bind(new.owner.site_column())
        .bind(&new.id)
        .bind(&new.display_name)
        .bind(&new.description)
        .bind(new.kind.column())
        .bind(&new.cohort)
        .bind(&new.theme)
        .fetch_optional(&mut *tx)
        .await?;
        let uid = uid.ok_or_else(|| Error::AlreadyExists {
            name: new.owner.child(COLLECTION, &new.id),
        })?;
        let resp = pb::CreateProgrammeResponse {
            programme: Some(get(&mut tx, uid).await?),
        };
        idempotency::record(&mut tx, ctx, &new.request_id, &resp).await?;
        tx.commit().await?;
        Ok(resp)
    }

    pub(crate) async fn get_programme(
        &self,
        ctx: &AccessContext,
        req: pb::GetProgrammeRequest,
    ) -> Result<pb::GetProgrammeResponse, Error> {
        let pb::GetProgrammeRequest { name } = req;
        let mut conn = qi_platform::db::begin(&self.pool).await?;
        let found = resolve(&mut conn, ctx, "name", &name, false).await?;
        Ok(pb::GetProgrammeResponse {
            programme: Some(get(&mut conn, found.uid).await?),
        })
    }

    pub(crate) async fn list_programmes(
        &self,
        ctx: &AccessContext,
        req: pb::ListProgrammesRequest,
    ) -> Result<pb::ListProgrammesResponse, Error> {
        let pb::ListProgrammesRequest {
            parent,
            kind,
            page_size,
            page_token,
        } = req;
        let scope = ListParent::parse("parent", &parent)?.scope(ctx)?;
        let kind = enum_field::<pb::ProgrammeKind>("kind", kind)?.and_then(Column::column);
        let page = Page::parse(
            page_size,
            &page_token,
            &format!("{parent}|{}", kind.unwrap_or("")),
        )?;
        let mut conn = qi_platform::db::begin(&self.pool).await?;
        let rows: Vec<ProgrammeRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM programme
             WHERE {LIST_SCOPE_SQL}
               AND ($3::text IS NULL OR kind = $3)
               AND (coalesce(site, ''), id) > ($4, $5)
             ORDER BY coalesce(site, ''), id LIMIT $6"
        )))
        .bind(scope.trust)
        .bind(scope.sites)
        .bind(kind)
        .bind(page.after_key(0).unwrap_or(""))
        .bind(page.after_key(1).unwrap_or(""))
        .bind(page.limit())
        .fetch_all(&mut *conn)
        .await?;
        let (rows, next_page_token) = page.finish(rows, |r| {
            vec![r.site.clone().unwrap_or_default(), r.id.clone()]
        });
        Ok(pb::ListProgrammesResponse {
            programmes: rows
                .into_iter()
                .map(TryInto::try_into)
                .collect::<Result<_, _>>()?,
            next_page_token,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(
        parent: &str,
        kind: pb::ProgrammeKind,
        cohort: &str,
        theme: &str,
    ) -> pb::CreateProgrammeRequest {
        pb::CreateProgrammeRequest {
            parent: parent.into(),
            programme_id: "p".into(),
            programme: Some(pb::Programme {
                display_name: "Programme".into(),
                kind: kind as i32,
                cohort: cohort.into(),
                theme: theme.into(),
                ..Default::default()
            }),
            request_id: String::new(),
        }
    }

    fn fields(r: Result<NewProgramme, Error>) -> Vec<String> {
        match r {
            Err(Error::InvalidArgument { violations }) => {
                violations.into_iter().map(|v| v.field).collect()
            }
            other => panic!("expected violations, got {other:?}"),
        }
    }

    #[test]
    fn each_kind_takes_its_own_fields() {
        use pb::ProgrammeKind as K;
        assert!(
            NewProgramme::try_from(request("trust", K::TrainingWrapped, "trust/cohorts/c", ""))
                .is_ok()
        );
        assert!(
            NewProgramme::try_from(request(
                "sites/BAS",
                K::TrainingWrapped,
                "sites/BAS/cohorts/c",
                ""
            ))
            .is_ok()
        );
        assert_eq!(
            fields(NewProgramme::try_from(request(
                "sites/BAS",
                K::TrainingWrapped,
                "sites/SOU/cohorts/c",
                ""
            ))),
            ["programme.cohort"]
        );
        assert_eq!(
            fields(NewProgramme::try_from(request(
                "trust",
                K::TrainingWrapped,
                "",
                ""
            ))),
            ["programme.cohort"]
        );
        assert_eq!(
            fields(NewProgramme::try_from(request(
                "trust",
                K::Thematic,
                "trust/cohorts/c",
                ""
            ))),
            ["programme.cohort", "programme.theme"]
        );
        assert_eq!(
            fields(NewProgramme::try_from(request(
                "trust",
                K::Unspecified,
                "",
                ""
            ))),
            ["programme.kind"]
        );
    }
}
