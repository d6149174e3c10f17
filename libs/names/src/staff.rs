//! A person's name: `staff/{employee_number}`, rooted at the trust and stable for as long as
//! they work there. Their site is a field of their record, not part of the name, so a move
//! between sites renames nothing (AIP-122). The v1 form `sites/{site}/staff/{number}` (and
//! `sites/-/staff/{number}`) is read as an alias: its site is not checked against the
//! person's, and answers carry the canonical name.

use crate::clip;
use crate::employee::EmployeeNumber;
use crate::name::NameError;
use crate::site::SiteCode;

/// The collection of people.
pub const STAFF: &str = "staff";

/// Who a staff name points at.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Person {
    /// `staff/me`: the caller, by the employee number their token carries.
    Me,
    /// One person.
    Employee(EmployeeNumber),
}

impl Person {
    /// Parses `staff/{employee_number}`, `staff/me`, or the v1 aliases
    /// `sites/{site}/staff/{employee_number}` and `sites/-/staff/{employee_number}`.
    pub fn parse(field: &str, value: &str) -> Result<Person, NameError> {
        let bad = || {
            NameError::new(
                field,
                format!(
                    "`{}` is not a staff name: `staff/{{employee_number}}` or `staff/me`",
                    clip(value)
                ),
            )
        };
        let number = match value.strip_prefix("staff/") {
            Some("me") => return Ok(Person::Me),
            Some(number) => number,
            None => {
                let rest = value.strip_prefix("sites/").ok_or_else(bad)?;
                let (site, number) = rest.split_once("/staff/").ok_or_else(bad)?;
                if site != "-" {
                    SiteCode::parse(site).map_err(|e| NameError::new(field, e))?;
                }
                number
            }
        };
        EmployeeNumber::parse(number)
            .map(Person::Employee)
            .map_err(|e| NameError::new(field, e))
    }
}

/// The canonical name of the person with `number`.
pub fn staff_name(number: &EmployeeNumber) -> String {
    format!("{STAFF}/{number}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn employee(n: &str) -> Person {
        Person::Employee(EmployeeNumber::parse(n).unwrap())
    }

    #[test]
    fn the_canonical_name_and_the_v1_aliases_name_the_same_person() {
        for name in [
            "staff/40000001",
            "sites/BAS/staff/40000001",
            "sites/-/staff/40000001",
        ] {
            assert_eq!(
                Person::parse("f", name).unwrap(),
                employee("40000001"),
                "{name}"
            );
        }
        assert_eq!(Person::parse("f", "staff/me").unwrap(), Person::Me);
        assert_eq!(
            staff_name(&EmployeeNumber::parse("40000001").unwrap()),
            "staff/40000001"
        );
    }

    #[test]
    fn anything_else_is_refused_naming_the_field() {
        for bad in [
            "",
            "staff/",
            "staff/12ab",
            "staff/40000001/completions/x",
            "sites/me/staff/40000001",
            "sites/bas/staff/40000001",
            "sites/BAS/staff/me",
            "trust/staff/40000001",
            "people/40000001",
        ] {
            let err = Person::parse("member.staff", bad).unwrap_err();
            assert_eq!(err.field, "member.staff", "{bad}");
        }
    }
}
