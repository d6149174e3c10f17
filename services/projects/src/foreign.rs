//! Names of other services' resources (staff, cohorts, metrics), checked by form only: this
//! service stores them and never reads the other services' schemas.

use qi_platform::Error;

/// Checks a resource name of another service, `sites/{site}/{collection}/{id}` or
/// `trust/{collection}/{id}`, by form only.
pub(crate) fn name(field: &str, value: &str, collection: &str) -> Result<String, Error> {
    qi_platform::names::parse_name(field, value, collection).map(|_| value.to_owned())
}

/// Checks a staff name `sites/{site}/staff/{employee_number}` (ESR employee numbers are
/// 5 to 12 digits), by form only.
pub(crate) fn staff_name(field: &str, value: &str) -> Result<String, Error> {
    let bad = || {
        Error::invalid(
            field,
            format!(
                "`{}` is not a staff name: `sites/{{site}}/staff/{{employee_number}}`",
                qi_platform::names::clip(value)
            ),
        )
    };
    let rest = value.strip_prefix("sites/").ok_or_else(bad)?;
    let (site, number) = rest.split_once("/staff/").ok_or_else(bad)?;
    qi_platform::SiteCode::parse(site).map_err(|e| Error::invalid(field, e))?;
    if (5..=12).contains(&number.len()) && number.bytes().all(|b| b.is_ascii_digit()) {
        Ok(value.to_owned())
    } else {
        Err(bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staff_names_are_checked_by_form() {
        assert!(staff_name("s", "sites/BAS/staff/12345678").is_ok());
        for bad in [
            "sites/-/staff/12345678",
            "sites/BAS/staff/12ab",
            "staff/12345678",
        ] {
            assert!(staff_name("s", bad).is_err(), "{bad}");
        }
    }
}
