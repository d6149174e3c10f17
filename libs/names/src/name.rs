//! The strict reading of a name, as the services take it: its owner (a site or the
//! trust), then exactly the expected collections, each with an id.

use crate::clip;
use crate::site::SiteCode;

/// A request field holding a name, parent or id that does not parse, and what is wrong
/// with it: a field violation, in words for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameError {
    /// The request field, as the caller spells it (`cohort.name`).
    pub field: String,
    /// What is wrong, naming the value.
    pub description: String,
}

impl NameError {
    pub(crate) fn new(field: &str, description: impl Into<String>) -> Self {
        NameError {
            field: field.to_owned(),
            description: description.into(),
        }
    }
}

impl std::fmt::Display for NameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.description)
    }
}

impl std::error::Error for NameError {}

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

    /// The resource name of `id` in `collection` under this owner.
    pub fn child(&self, collection: &str, id: &str) -> String {
        format!("{}/{collection}/{id}", self.parent_name())
    }

    /// The site column value: the code, or `None` for trust-wide rows.
    pub fn site_column(&self) -> Option<&str> {
        match self {
            Owner::Site(s) => Some(s.as_str()),
            Owner::Trust => None,
        }
    }

    /// Refuses a site that is not one of the trust's configured sites (`QI_SITES`).
    pub fn check_known(&self, field: &str, sites: &[SiteCode]) -> Result<(), NameError> {
        match self {
            Owner::Site(s) if !sites.contains(s) => Err(NameError::new(
                field,
                format!("{s} is not one of the trust's sites"),
            )),
            Owner::Site(_) | Owner::Trust => Ok(()),
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
    pub fn parse(field: &str, value: &str) -> Result<Self, NameError> {
        if value == "sites/-" {
            return Ok(ListParent::AllSites);
        }
        parse_parent(field, value).map(ListParent::Owner)
    }
}

/// Parses a parent: `sites/{site}` or `trust`.
pub fn parse_parent(field: &str, value: &str) -> Result<Owner, NameError> {
    if value == "trust" {
        return Ok(Owner::Trust);
    }
    match value.strip_prefix("sites/") {
        Some(code) => SiteCode::parse(code)
            .map(Owner::Site)
            .map_err(|e| NameError::new(field, e)),
        None => Err(NameError::new(
            field,
            format!(
                "`{}` is not a parent: expected `sites/{{site}}` or `trust`",
                clip(value)
            ),
        )),
    }
}

/// Parses a resource name `sites/{site}/{collection}/{id}` or `trust/{collection}/{id}`.
pub fn parse_name(
    field: &str,
    value: &str,
    collection: &str,
) -> Result<(Owner, String), NameError> {
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
) -> Result<(Owner, Vec<String>), NameError> {
    let pattern: String = collections.iter().map(|c| format!("/{c}/{{id}}")).collect();
    let bad = || {
        NameError::new(
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
        let code = SiteCode::parse(code).map_err(|e| NameError::new(field, e))?;
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
pub fn validate_id(field: &str, id: &str) -> Result<(), NameError> {
    let chars_ok = id
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let shape_ok = (1..=63).contains(&id.len())
        && !id.ends_with('-')
        && (id.starts_with(|c: char| c.is_ascii_lowercase()) || uuid::Uuid::parse_str(id).is_ok());
    if chars_ok && shape_ok {
        Ok(())
    } else {
        Err(NameError::new(
            field,
            format!(
                "`{}` is not an id: use 1 to 63 lower case letters, digits and hyphens, starting with a letter",
                clip(id)
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bas() -> SiteCode {
        SiteCode::parse("BAS").unwrap()
    }

    #[test]
    fn names_are_rooted_at_a_site_or_the_trust() {
        let (owner, id) = parse_name("name", "sites/BAS/cohorts/spring-27", "cohorts").unwrap();
        assert_eq!(owner, Owner::Site(bas()));
        assert_eq!(id, "spring-27");
        assert_eq!(owner.child("cohorts", &id), "sites/BAS/cohorts/spring-27");
        assert_eq!(owner.site_column(), Some("BAS"));
        let (owner, _) = parse_name("name", "trust/cohorts/x", "cohorts").unwrap();
        assert_eq!(owner, Owner::Trust);
        assert_eq!(owner.site_column(), None);
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
            let e = parse_name("cohort.name", bad, "cohorts").unwrap_err();
            assert_eq!(e.field, "cohort.name", "{bad}");
        }
        let e = parse_name("cohort.name", "elsewhere/cohorts/x", "cohorts").unwrap_err();
        assert_eq!(
            e.description,
            "`elsewhere/cohorts/x` is not a name of the form `sites/{site}/cohorts/{id}` or \
             `trust/cohorts/{id}`"
        );
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
    fn parents_are_a_site_or_the_trust() {
        assert_eq!(
            parse_parent("parent", "sites/BAS").unwrap(),
            Owner::Site(bas())
        );
        assert_eq!(parse_parent("parent", "trust").unwrap(), Owner::Trust);
        let e = parse_parent("parent", "sites/BAS/cohorts").unwrap_err();
        assert!(e.description.contains("is not a site code"), "{e}");
        let e = parse_parent("parent", "trusts").unwrap_err();
        assert_eq!(
            e.to_string(),
            "parent: `trusts` is not a parent: expected `sites/{site}` or `trust`"
        );
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
    fn only_the_trusts_sites_are_known() {
        let known = [bas()];
        assert!(Owner::Site(bas()).check_known("parent", &known).is_ok());
        assert!(Owner::Trust.check_known("parent", &known).is_ok());
        let e = Owner::Site(SiteCode::parse("ZZZ").unwrap())
            .check_known("parent", &known)
            .unwrap_err();
        assert_eq!(e.to_string(), "parent: ZZZ is not one of the trust's sites");
    }

    #[test]
    fn ids_may_be_chosen_or_assigned() {
        assert!(validate_id("id", "qsir-prac").is_ok());
        assert!(validate_id("id", "0190a4b2-7c1e-7d3a-9f00-2b6c1d4e5f60").is_ok());
        assert!(validate_id("id", &"a".repeat(64)).is_err());
        assert!(validate_id("id", "9lives").is_err());
        assert!(validate_id("id", "ends-").is_err());
    }
}
