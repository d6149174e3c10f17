//! Resource names rooted at the site (`sites/BAS/cohorts/x`) or at the trust
//! (`trust/cohorts/x`), parsed once here so every service reads them the same way, and the
//! site-scope checks that go with them.

use crate::access::{AccessContext, SiteCode};
use crate::error::Error;

/// Who owns a resource: one site, or the trust as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Owner {
    /// A site's resource.
    Site(SiteCode),
    /// A trust-wide resource.
    Trust,
}

impl Owner {
    /// The parent's name: `sites/{site}` or `trust`.
    pub fn parent_name(&self) -> String {
        match self {
            Owner::Site(s) => format!("sites/{s}"),
            Owner::Trust => "trust".into(),
        }
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
        match self {
            Owner::Site(s) if !sites.contains(s) => Err(Error::invalid(
                field,
                format!("{s} is not one of the trust's sites"),
            )),
            Owner::Site(_) | Owner::Trust => Ok(()),
        }
    }

    /// The resource name of `id` in `collection` under this owner.
    pub fn child(&self, collection: &str, id: &str) -> String {
        format!("{}/{collection}/{id}", self.parent_name())
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
        if value == "sites/-" {
            return Ok(ListParent::AllSites);
        }
        parse_parent(field, value).map(ListParent::Owner)
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

/// Parses a parent: `sites/{site}` or `trust`.
pub fn parse_parent(field: &str, value: &str) -> Result<Owner, Error> {
    if value == "trust" {
        return Ok(Owner::Trust);
    }
    match value.strip_prefix("sites/") {
        Some(code) => SiteCode::parse(code)
            .map(Owner::Site)
            .map_err(|e| Error::invalid(field, e)),
        None => Err(Error::invalid(
            field,
            format!(
                "`{}` is not a parent: expected `sites/{{site}}` or `trust`",
                clip(value)
            ),
        )),
    }
}

/// Parses a resource name `sites/{site}/{collection}/{id}` or `trust/{collection}/{id}`.
pub fn parse_name(field: &str, value: &str, collection: &str) -> Result<(Owner, String), Error> {
    let (owner, mut ids) = parse_nested(field, value, &[collection])?;
    let id = ids.pop().unwrap_or_default();
    validate_id(field, &id)?;
    Ok((owner, id))
}

/// Parses a nested name `{sites/{site} | trust}/{c0}/{id0}/{c1}/{id1}…` with exactly the
/// given collections, returning the owner and the ids (not yet validated: each collection
/// has its own id rules).
pub fn parse_nested(
    field: &str,
    value: &str,
    collections: &[&str],
) -> Result<(Owner, Vec<String>), Error> {
    let pattern: String = collections.iter().map(|c| format!("/{c}/{{id}}")).collect();
    let bad = || {
        Error::invalid(
            field,
            format!(
                "`{}` is not a name of the form `sites/{{site}}{pattern}` or `trust{pattern}`",
                clip(value)
            ),
        )
    };
    let (owner, rest) = if let Some(rest) = value.strip_prefix("trust/") {
        (Owner::Trust, rest)
    } else if let Some(rest) = value.strip_prefix("sites/") {
        let (code, rest) = rest.split_once('/').ok_or_else(bad)?;
        let code = SiteCode::parse(code).map_err(|e| Error::invalid(field, e))?;
        (Owner::Site(code), rest)
    } else {
        return Err(bad());
    };
    let parts: Vec<&str> = rest.split('/').collect();
    if parts.len() != collections.len() * 2 {
        return Err(bad());
    }
    let mut ids = Vec::with_capacity(collections.len());
    for (pair, collection) in parts.chunks(2).zip(collections) {
        if pair[0] != *collection || pair[1].is_empty() {
            return Err(bad());
        }
        ids.push(pair[1].to_owned());
    }
    Ok((owner, ids))
}

/// Checks a resource id: lower case letters, digits and hyphens, 1 to 63 characters,
/// starting with a letter and not ending with a hyphen (AIP-122); UUIDs (which may start
/// with a digit) are accepted too since the services assign them.
pub fn validate_id(field: &str, id: &str) -> Result<(), Error> {
    let chars_ok = id
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let shape_ok = (1..=63).contains(&id.len())
        && !id.ends_with('-')
        && (id.starts_with(|c: char| c.is_ascii_lowercase()) || uuid::Uuid::parse_str(id).is_ok());
    if chars_ok && shape_ok {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            format!(
                "`{}` is not an id: use 1 to 63 lower case letters, digits and hyphens, starting with a letter",
                clip(id)
            ),
        ))
    }
}

/// An id the caller chose, or a new time-ordered UUID when they left it empty.
pub fn id_or_new(field: &str, id: &str) -> Result<String, Error> {
    if id.is_empty() {
        Ok(uuid::Uuid::now_v7().to_string())
    } else {
        validate_id(field, id).map(|()| id.to_owned())
    }
}

/// Cuts a caller's value for an error message, so a huge input is not echoed back whole.
pub fn clip(s: &str) -> String {
    crate::error::bounded(s, 80)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_rooted_at_a_site_or_the_trust() {
        let (owner, id) = parse_name("name", "sites/BAS/cohorts/spring-27", "cohorts").unwrap();
        assert_eq!(owner, Owner::Site(SiteCode::parse("BAS").unwrap()));
        assert_eq!(id, "spring-27");
        assert_eq!(owner.child("cohorts", &id), "sites/BAS/cohorts/spring-27");
        let (owner, _) = parse_name("name", "trust/cohorts/x", "cohorts").unwrap();
        assert_eq!(owner, Owner::Trust);
    }

    #[test]
    fn malformed_names_name_the_field() {
        for bad in [
            "",
            "sites/BAS",
            "sites/bas/cohorts/x",
            "sites/BAS/courses/x",
            "sites/BAS/cohorts/",
            "sites/BAS/cohorts/X",
            "sites/BAS/cohorts/a/b",
            "trust/cohorts/-x",
            "elsewhere/cohorts/x",
        ] {
            match parse_name("cohort.name", bad, "cohorts") {
                Err(Error::InvalidArgument { violations }) => {
                    assert_eq!(violations[0].field, "cohort.name", "{bad}")
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn nested_names_yield_every_id() {
        let (owner, ids) = parse_nested(
            "session",
            "sites/BAS/cohorts/spring/sessions/3",
            &["cohorts", "sessions"],
        )
        .unwrap();
        assert_eq!(owner.parent_name(), "sites/BAS");
        assert_eq!(ids, ["spring", "3"]);
        for bad in [
            "sites/BAS/cohorts/spring",
            "sites/BAS/cohorts/spring/sessions/",
            "sites/BAS/cohorts/spring/enrolments/3",
            "sites/BAS/cohorts/spring/sessions/3/x",
        ] {
            assert!(
                parse_nested("session", bad, &["cohorts", "sessions"]).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn list_parents_include_every_site_of_the_caller() {
        assert_eq!(
            ListParent::parse("parent", "sites/-").unwrap(),
            ListParent::AllSites
        );
        assert_eq!(
            ListParent::parse("parent", "trust").unwrap(),
            ListParent::Owner(Owner::Trust)
        );
        assert!(ListParent::parse("parent", "sites/").is_err());
    }

    #[test]
    fn ids_may_be_chosen_or_assigned() {
        assert!(validate_id("id", "qsir-prac").is_ok());
        assert!(validate_id("id", &uuid::Uuid::now_v7().to_string()).is_ok());
        assert!(id_or_new("id", "").is_ok());
        assert!(validate_id("id", &"a".repeat(64)).is_err());
        assert!(validate_id("id", "9lives").is_err());
    }

    #[test]
    fn clip_keeps_messages_short_on_any_input() {
        assert_eq!(clip(&"é".repeat(100)).chars().count(), 41);
    }
}
