//! The lenient reading of a name, as the gateway takes it: only where it points (a site,
//! the trust, or every site the caller holds), from its first segments. The gateway
//! authorizes by that alone; the rest of the name is the service's to parse, so a malformed
//! name is refused by the service with an `INVALID_ARGUMENT` naming the field.

/// Where a name or parent points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    /// `sites/{site}…`: the site segment as written (not yet a valid [`crate::SiteCode`]).
    Site(&'a str),
    /// `trust` or `trust/…`.
    Trust,
    /// `sites/-`: every site the caller holds.
    CallersSites,
    /// Anything else.
    Unrecognised,
}

/// Where `name` points. Agrees with the strict parser ([`crate::parse_nested`],
/// [`crate::ListParent::parse`]) on every name that parses.
pub fn scope(name: &str) -> Scope<'_> {
    if name == "trust" || name.starts_with("trust/") {
        return Scope::Trust;
    }
    match name.strip_prefix("sites/") {
        Some(rest) => match rest.split('/').next().unwrap_or_default() {
            "-" => Scope::CallersSites,
            "" => Scope::Unrecognised,
            code => Scope::Site(code),
        },
        None => Scope::Unrecognised,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ListParent, Owner, parse_nested};

    #[test]
    fn a_name_points_at_its_first_segments() {
        assert_eq!(scope("sites/BAS/cohorts/x"), Scope::Site("BAS"));
        assert_eq!(scope("sites/bas"), Scope::Site("bas"));
        assert_eq!(scope("sites/-"), Scope::CallersSites);
        assert_eq!(scope("trust"), Scope::Trust);
        assert_eq!(scope("trust/courses/c"), Scope::Trust);
        for other in ["", "sites/", "sites//x", "trusted", "elsewhere/BAS"] {
            assert_eq!(scope(other), Scope::Unrecognised, "{other}");
        }
    }

    #[test]
    fn the_lenient_reading_agrees_with_the_strict_one() {
        let names: [(&str, &[&str]); 4] = [
            ("sites/BAS/cohorts/x", &["cohorts"]),
            ("trust/courses/qsir", &["courses"]),
            (
                "sites/SOU/cohorts/spring/sessions/3",
                &["cohorts", "sessions"],
            ),
            (
                "trust/cohorts/c/enrolments/1234",
                &["cohorts", "enrolments"],
            ),
        ];
        for (name, collections) in names {
            let (owner, _) = parse_nested("name", name, collections).unwrap();
            agree(ListParent::Owner(owner), scope(name), name);
        }
        for parent in ["sites/BRM", "trust", "sites/-"] {
            agree(
                ListParent::parse("parent", parent).unwrap(),
                scope(parent),
                parent,
            );
        }
    }

    fn agree(strict: ListParent, lenient: Scope<'_>, name: &str) {
        match (&strict, lenient) {
            (ListParent::Owner(Owner::Site(code)), Scope::Site(s)) => {
                assert_eq!(code.as_str(), s, "{name}")
            }
            (ListParent::Owner(Owner::Trust), Scope::Trust)
            | (ListParent::AllSites, Scope::CallersSites) => {}
            (strict, lenient) => panic!("{name}: {strict:?} but {lenient:?}"),
        }
    }
}
