//! Resource names as the services use them: [`qi_names`] parses them, with the parser the
//! gateway reads names with, and its types ([`Owner`], [`ListParent`]) are the services'.
//! What needs the platform is added here: the platform's [`Error`] for its refusals, the
//! caller's access checks ([`OwnerAccess`], [`ListParentScope`]), stored site columns, the
//! List scope for SQL, and new ids.

use qi_names::NameError;
pub use qi_names::{ListParent, Owner, clip};

use crate::SiteCode;
use crate::access::AccessContext;
use crate::error::Error;

impl From<NameError> for Error {
    fn from(e: NameError) -> Error {
        Error::invalid(e.field, e.description)
    }
}

/// What the services add to an [`Owner`]: the caller's access to its resources, and the
/// stored `site` column (NULL for the trust).
pub trait OwnerAccess: Sized {
    /// Reads a site column back.
    fn from_column(site: Option<String>) -> Result<Self, Error>;

    /// Whether the caller may read this owner's resources (trust-wide ones are readable by
    /// every caller with the role).
    fn check_read(&self, ctx: &AccessContext) -> Result<(), Error>;

    /// Whether the caller may change this owner's resources (trust-wide ones only by
    /// trust-wide callers).
    fn check_write(&self, ctx: &AccessContext) -> Result<(), Error>;

    /// Whether the caller may read this owner's resources or, with `write`, change them.
    fn check_access(&self, ctx: &AccessContext, write: bool) -> Result<(), Error> {
        if write {
            self.check_write(ctx)
        } else {
            self.check_read(ctx)
        }
    }

    /// Whether the caller may create a resource under this owner, named by a Create's
    /// `parent`: a change of the owner's resources, at one of the trust's sites.
    fn check_create(&self, ctx: &AccessContext, sites: &[SiteCode]) -> Result<(), Error>;
}

impl OwnerAccess for Owner {
    fn from_column(site: Option<String>) -> Result<Owner, Error> {
        match site {
            None => Ok(Owner::Trust),
            Some(s) => SiteCode::parse(&s)
                .map(Owner::Site)
                .map_err(|e| Error::Internal(anyhow::anyhow!("stored site code: {e}"))),
        }
    }

    fn check_read(&self, ctx: &AccessContext) -> Result<(), Error> {
        match self {
            Owner::Trust => Ok(()),
            Owner::Site(s) if ctx.sites.holds(s) => Ok(()),
            Owner::Site(s) => Err(Error::denied(format!("no access to site {s}"))),
        }
    }

    fn check_write(&self, ctx: &AccessContext) -> Result<(), Error> {
        match self {
            Owner::Trust if ctx.sites.is_trust_wide() => Ok(()),
            Owner::Trust => Err(Error::denied(
                "trust-wide resources are changed only by trust-wide callers",
            )),
            Owner::Site(_) => self.check_read(ctx),
        }
    }

    fn check_create(&self, ctx: &AccessContext, sites: &[SiteCode]) -> Result<(), Error> {
        self.check_write(ctx)?;
        Ok(self.check_known("parent", sites)?)
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

/// What the services add to a [`ListParent`]: the rows it covers for the caller.
pub trait ListParentScope {
    /// The rows this parent covers for this caller; another site's parent is refused.
    fn scope(&self, ctx: &AccessContext) -> Result<ListScope, Error>;
}

impl ListParentScope for ListParent {
    fn scope(&self, ctx: &AccessContext) -> Result<ListScope, Error> {
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

/// A List parent that names every resource of a collection (AIP-159's `-`):
/// `sites/{site}/{collection}/-`, `sites/-/{collection}/-` or `trust/{collection}/-`, read
/// as the List of that collection under the same owner would read it. `None` when `value`
/// is not such a wildcard (then it names one resource, for the List to read as it does).
pub fn wildcard_parent(
    field: &str,
    value: &str,
    collection: &str,
) -> Result<Option<ListParent>, Error> {
    match value
        .strip_suffix("/-")
        .and_then(|v| v.strip_suffix(collection))
        .and_then(|v| v.strip_suffix('/'))
    {
        Some(owner) => Ok(Some(ListParent::parse(field, owner)?)),
        None => Ok(None),
    }
}

/// The SQL condition of a [`ListScope`] bound as `$1` (trust) and `$2` (sites), on a
/// nullable `site` column.
pub const LIST_SCOPE_SQL: &str = "CASE WHEN $1 THEN site IS NULL \
     ELSE site IS NOT NULL AND ($2::text[] IS NULL OR site = ANY($2)) END";

/// Parses a parent: `sites/{site}` or `trust` ([`qi_names::parse_parent`]).
pub fn parse_parent(field: &str, value: &str) -> Result<Owner, Error> {
    Ok(qi_names::parse_parent(field, value)?)
}

/// Parses a resource name `sites/{site}/{collection}/{id}` or `trust/{collection}/{id}`
/// ([`qi_names::parse_name`]).
pub fn parse_name(field: &str, value: &str, collection: &str) -> Result<(Owner, String), Error> {
    Ok(qi_names::parse_name(field, value, collection)?)
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
    Ok(qi_names::parse_nested(field, value, collections)?)
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
            token_expiry: None,
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
    fn a_wildcard_parent_reads_as_its_owners_list() {
        let read = |v| wildcard_parent("parent", v, "cohorts");
        assert_eq!(
            read("sites/-/cohorts/-").unwrap(),
            Some(ListParent::AllSites)
        );
        assert_eq!(
            read("trust/cohorts/-").unwrap(),
            Some(ListParent::Owner(Owner::Trust))
        );
        assert!(matches!(
            read("sites/BAS/cohorts/-").unwrap(),
            Some(ListParent::Owner(Owner::Site(_)))
        ));
        assert_eq!(read("sites/BAS/cohorts/spring").unwrap(), None);
        assert_eq!(read("sites/BAS/projects/-").unwrap(), None);
        assert!(read("sites/bas/cohorts/-").is_err());
        assert!(read("nowhere/cohorts/-").is_err());
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
