//! Resource names as the services use them. [`qi_names`] parses them, with the parser the
//! gateway reads names with; this module gives its answers the platform's [`Error`] and adds
//! what needs the platform: the caller's access checks, stored site columns, the List scope
//! for SQL, and new ids.
//!
//! TODO(#23): `Owner` and `ListParent` are the services' forms of qi_names's, holding the
//! platform's methods as inherent ones; they go when the services import `qi_names`.

use qi_names::NameError;

use crate::SiteCode;
use crate::access::AccessContext;
use crate::error::Error;

pub use qi_names::clip;

impl From<NameError> for Error {
    fn from(e: NameError) -> Error {
        Error::invalid(e.field, e.description)
    }
}

/// Who owns a resource: one site, or the trust as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Owner {
    /// A site's resource.
    Site(SiteCode),
    /// A trust-wide resource.
    Trust,
}

impl From<qi_names::Owner> for Owner {
    fn from(owner: qi_names::Owner) -> Owner {
        match owner {
            qi_names::Owner::Site(s) => Owner::Site(s),
            qi_names::Owner::Trust => Owner::Trust,
        }
    }
}

impl Owner {
    /// The shared form, which writes names as [`qi_names`] reads them.
    fn names(&self) -> qi_names::Owner {
        match self {
            Owner::Site(s) => qi_names::Owner::Site(s.clone()),
            Owner::Trust => qi_names::Owner::Trust,
        }
    }

    /// The parent's name: `sites/{site}` or `trust`.
    pub fn parent_name(&self) -> String {
        self.names().parent_name()
    }

    /// The resource name of `id` in `collection` under this owner.
    pub fn child(&self, collection: &str, id: &str) -> String {
        self.names().child(collection, id)
    }

    /// The site column value: the code, or `None` for trust-wide rows.
    pub fn site_column(&self) -> Option<&str> {
        match self {
            Owner::Site(s) => Some(s.as_str()),
            Owner::Trust => None,
        }
    }

    /// Reads a site column back.
    pub fn from_column(site: Option<String>) -> Result<Owner, Error> {
        match site {
            None => Ok(Owner::Trust),
            Some(s) => SiteCode::parse(&s)
                .map(Owner::Site)
                .map_err(|e| Error::Internal(anyhow::anyhow!("stored site code: {e}"))),
        }
    }

    /// Refuses a site that is not one of the trust's configured sites (`QI_SITES`).
    pub fn check_known(&self, field: &str, sites: &[SiteCode]) -> Result<(), Error> {
        Ok(self.names().check_known(field, sites)?)
    }

    /// Whether the caller may read this owner's resources (trust-wide ones are readable by
    /// every caller with the role).
    pub fn check_read(&self, ctx: &AccessContext) -> Result<(), Error> {
        match self {
            Owner::Trust => Ok(()),
            Owner::Site(s) if ctx.sites.holds(s) => Ok(()),
            Owner::Site(s) => Err(Error::denied(format!("no access to site {s}"))),
        }
    }

    /// Whether the caller may read this owner's resources or, with `write`, change them.
    pub fn check_access(&self, ctx: &AccessContext, write: bool) -> Result<(), Error> {
        if write {
            self.check_write(ctx)
        } else {
            self.check_read(ctx)
        }
    }

    /// Whether the caller may create a resource under this owner, named by a Create's
    /// `parent`: a change of the owner's resources, at one of the trust's sites.
    pub fn check_create(&self, ctx: &AccessContext, sites: &[SiteCode]) -> Result<(), Error> {
        self.check_write(ctx)?;
        self.check_known("parent", sites)
    }

    /// Whether the caller may change this owner's resources (trust-wide ones only by
    /// trust-wide callers).
    pub fn check_write(&self, ctx: &AccessContext) -> Result<(), Error> {
        match self {
            Owner::Trust if ctx.sites.is_trust_wide() => Ok(()),
            Owner::Trust => Err(Error::denied(
                "trust-wide resources are changed only by trust-wide callers",
            )),
            Owner::Site(_) => self.check_read(ctx),
        }
    }
}

/// The parent of a List: one owner, or every site the caller holds (`sites/-`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListParent {
    /// One site, or the trust.
    Owner(Owner),
    /// `sites/-`: every site the caller holds.
    AllSites,
}

impl ListParent {
    /// Parses a List's `parent` field.
    pub fn parse(field: &str, value: &str) -> Result<Self, Error> {
        Ok(match qi_names::ListParent::parse(field, value)? {
            qi_names::ListParent::Owner(owner) => ListParent::Owner(owner.into()),
            qi_names::ListParent::AllSites => ListParent::AllSites,
        })
    }
}

/// Which rows a List may return, for its SQL: the trust-wide rows (`site IS NULL`), or site
/// rows limited to `sites` (`None`: every site, for trust-wide callers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListScope {
    /// Only trust-wide rows.
    pub trust: bool,
    /// The site codes allowed, or `None` for all.
    pub sites: Option<Vec<String>>,
}

impl ListParent {
    /// The rows this parent covers for this caller; another site's parent is refused.
    pub fn scope(&self, ctx: &AccessContext) -> Result<ListScope, Error> {
        match self {
            ListParent::Owner(Owner::Trust) => Ok(ListScope {
                trust: true,
                sites: None,
            }),
            ListParent::Owner(owner @ Owner::Site(s)) => {
                owner.check_read(ctx)?;
                Ok(ListScope {
                    trust: false,
                    sites: Some(vec![s.to_string()]),
                })
            }
            ListParent::AllSites => Ok(ListScope {
                trust: false,
                sites: ctx.sites.sql_filter(),
            }),
        }
    }
}

/// The SQL condition of a [`ListScope`] bound as `$1` (trust) and `$2` (sites), on a
/// nullable `site` column.
pub const LIST_SCOPE_SQL: &str = "CASE WHEN $1 THEN site IS NULL \
     ELSE site IS NOT NULL AND ($2::text[] IS NULL OR site = ANY($2)) END";

/// Parses a parent: `sites/{site}` or `trust` ([`qi_names::parse_parent`]).
pub fn parse_parent(field: &str, value: &str) -> Result<Owner, Error> {
    Ok(qi_names::parse_parent(field, value)?.into())
}

/// Parses a resource name `sites/{site}/{collection}/{id}` or `trust/{collection}/{id}`
/// ([`qi_names::parse_name`]).
pub fn parse_name(field: &str, value: &str, collection: &str) -> Result<(Owner, String), Error> {
    let (owner, id) = qi_names::parse_name(field, value, collection)?;
    Ok((owner.into(), id))
}

/// Parses a resource name as [`parse_name`] does and checks the caller may read it (or,
/// with `write`, change it). Authorization comes before existence, so the answer says
/// nothing of another site's rows.
pub fn parse_accessible(
    ctx: &AccessContext,
    field: &str,
    value: &str,
    collection: &str,
    write: bool,
) -> Result<(Owner, String), Error> {
    let (owner, id) = parse_name(field, value, collection)?;
    owner.check_access(ctx, write)?;
    Ok((owner, id))
}

/// Parses a nested name with exactly the given collections ([`qi_names::parse_nested`]).
pub fn parse_nested(
    field: &str,
    value: &str,
    collections: &[&str],
) -> Result<(Owner, Vec<String>), Error> {
    let (owner, ids) = qi_names::parse_nested(field, value, collections)?;
    Ok((owner.into(), ids))
}

/// Checks a resource id ([`qi_names::validate_id`]).
pub fn validate_id(field: &str, id: &str) -> Result<(), Error> {
    Ok(qi_names::validate_id(field, id)?)
}

/// An id the caller chose, or a new time-ordered UUID when they left it empty.
pub fn id_or_new(field: &str, id: &str) -> Result<String, Error> {
    if id.is_empty() {
        Ok(uuid::Uuid::now_v7().to_string())
    } else {
        validate_id(field, id).map(|()| id.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SiteScope;

    fn caller(sites: &[&str]) -> AccessContext {
        AccessContext {
            subject: "t".into(),
            roles: vec!["viewer".into()],
            sites: SiteScope::from_claim(&sites.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap(),
            method: "/m".into(),
            employee: None,
            employee_claim: Default::default(),
        }
    }

    #[test]
    fn a_malformed_name_is_invalid_naming_the_field() {
        match parse_name("cohort.name", "sites/bas/cohorts/x", "cohorts") {
            Err(Error::InvalidArgument { violations }) => {
                assert_eq!(violations[0].field, "cohort.name");
                assert!(violations[0].description.contains("is not a site code"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ids_may_be_chosen_or_assigned() {
        assert_eq!(id_or_new("id", "qsir-prac").unwrap(), "qsir-prac");
        let assigned = id_or_new("id", "").unwrap();
        assert!(validate_id("id", &assigned).is_ok());
        assert!(id_or_new("id", "9lives").is_err());
    }

    #[test]
    fn a_list_covers_the_callers_sites_and_refuses_another() {
        let bas = caller(&["BAS"]);
        let all = ListParent::parse("parent", "sites/-").unwrap();
        assert_eq!(all.scope(&bas).unwrap().sites.unwrap(), ["BAS"]);
        let sou = ListParent::parse("parent", "sites/SOU").unwrap();
        assert!(matches!(
            sou.scope(&bas),
            Err(Error::PermissionDenied { .. })
        ));
        let trust = ListParent::parse("parent", "trust").unwrap().scope(&bas);
        assert!(trust.unwrap().trust);
        assert!(Owner::Trust.check_read(&bas).is_ok());
        assert!(Owner::Trust.check_write(&bas).is_err());
        assert!(Owner::Trust.check_write(&caller(&["*"])).is_ok());
    }
}
