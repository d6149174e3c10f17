//! Programmes (`sites/{site}/programmes/{id}` or `trust/programmes/{id}`): training-wrapped
//! (around a cohort of the training service, named), ward programmes (wards in waves, see
//! `waves`) and thematic ones. Trust-wide programmes are readable by every caller with the
//! role and changed only by trust-wide callers.

pub(crate) mod store;

use qi_platform::changes::Kind;
use qi_platform::convert::{optional_text, required_text};
use qi_platform::names::ListParentScope as _;
use qi_platform::names::OwnerAccess as _;
use qi_platform::names::{self, ListParent, Owner};
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
#[derive(Debug, Clone)]
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
    let (owner, id) = names::parse_accessible(ctx, field, name, COLLECTION, write)?;
    store::find(conn, &owner, &id, write)
        .await?
        .ok_or_else(|| Error::not_found(name))
}

/// Creates a programme of a site the caller holds, or (trust-wide callers) of the trust.
pub(crate) async fn create(
    api: &ProjectsApi,
    ctx: AccessContext,
    req: pb::CreateProgrammeRequest,
) -> Result<pb::CreateProgrammeResponse, Error> {
    let new = NewProgramme::try_from(req.clone())?;
    new.owner.check_create(&ctx, &api.sites)?;
    let tx = qi_platform::db::begin(&api.pool).await?;
    idempotency::once(tx, &ctx, &new.request_id, &req, async |tx| {
        let uid = store::insert(tx, &new)
            .await?
            .ok_or_else(|| Error::AlreadyExists {
                name: new.owner.child(COLLECTION, &new.id),
            })?;
        let programme = store::read(tx, uid).await?;
        // A site's programme is its site's to read; a trust-wide one everyone's.
        let sites = new.owner.site_column().map(|s| vec![s.to_owned()]);
        let name = &programme.name;
        crate::feed::record(tx, COLLECTION, name, Kind::Created, sites, &programme).await?;
        Ok(pb::CreateProgrammeResponse {
            programme: Some(programme),
        })
    })
    .await
}

/// Reads a programme the caller may read.
pub(crate) async fn get(
    api: &ProjectsApi,
    ctx: AccessContext,
    req: pb::GetProgrammeRequest,
) -> Result<pb::GetProgrammeResponse, Error> {
    let pb::GetProgrammeRequest { name } = req;
    let mut conn = qi_platform::db::begin(&api.pool).await?;
    let found = resolve(&mut conn, &ctx, "name", &name, false).await?;
    Ok(pb::GetProgrammeResponse {
        programme: Some(store::read(&mut conn, found.uid).await?),
    })
}

/// Lists the programmes of a parent (a site, `sites/-` or the trust), by kind.
pub(crate) async fn list(
    api: &ProjectsApi,
    ctx: AccessContext,
    req: pb::ListProgrammesRequest,
) -> Result<pb::ListProgrammesResponse, Error> {
    let pb::ListProgrammesRequest {
        parent,
        kind,
        page_size,
        page_token,
    } = req;
    let scope = ListParent::parse("parent", &parent)?.scope(&ctx)?;
    let kind = enum_field::<pb::ProgrammeKind>("kind", kind)?.and_then(Column::column);
    let page = Page::parse(
        page_size,
        &page_token,
        &format!("{parent}|{}", kind.unwrap_or("")),
    )?;
    let mut conn = qi_platform::db::begin(&api.pool).await?;
    let (programmes, next_page_token) = store::list(&mut conn, scope, kind, &page).await?;
    Ok(pb::ListProgrammesResponse {
        programmes,
        next_page_token,
    })
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
