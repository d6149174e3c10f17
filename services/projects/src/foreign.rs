//! Names of other services' resources (staff, cohorts, metrics), checked by form only: this
//! service stores them and never reads the other services' schemas.

use qi_names::Person;
use qi_platform::{AccessContext, Error};

/// Checks a resource name of another service, `sites/{site}/{collection}/{id}` or
/// `trust/{collection}/{id}`, by form only.
pub(crate) fn name(field: &str, value: &str, collection: &str) -> Result<String, Error> {
    qi_platform::names::parse_name(field, value, collection).map(|_| value.to_owned())
}

/// Reads a person a write names (issue 25) into the name stored and answered: always the
/// canonical `staff/{employee_number}`, whichever form the caller sent (the v1 alias
/// `sites/{site}/staff/{n}` included), so one person is one reference after a move and
/// `UNIQUE (project_uid, staff)` means one membership each. `staff/me` is the caller, which
/// needs the employee number in their token (`FAILED_PRECONDITION` naming the claim).
pub(crate) fn person(ctx: &AccessContext, field: &str, value: &str) -> Result<String, Error> {
    match Person::parse(field, value)? {
        Person::Employee(n) => Ok(qi_names::staff_name(&n)),
        Person::Me => ctx.employee().map(qi_names::staff_name),
    }
}

/// Reads a List's filter by person (`member`, `submitter`): `None` when empty, else the
/// canonical name, as [`person`] reads it (the rows store that form, so the filter is an
/// equality on it).
pub(crate) fn person_filter(
    ctx: &AccessContext,
    field: &str,
    value: &str,
) -> Result<Option<String>, Error> {
    if value.is_empty() {
        Ok(None)
    } else {
        person(ctx, field, value).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::caller;

    #[test]
    fn every_form_of_a_person_is_stored_as_the_canonical_name() {
        let ctx = caller(Some("00123456"));
        for form in [
            "staff/12345678",
            "sites/BAS/staff/12345678",
            "sites/-/staff/12345678",
        ] {
            assert_eq!(person(&ctx, "f", form).unwrap(), "staff/12345678", "{form}");
        }
        assert_eq!(person(&ctx, "f", "staff/me").unwrap(), "staff/00123456");
    }

    #[test]
    fn staff_me_without_the_claim_is_a_failed_precondition_naming_it() {
        let err = person(&caller(None), "team_member.staff", "staff/me").unwrap_err();
        let Error::FailedPrecondition { message, .. } = err else {
            panic!("{err:?}")
        };
        assert!(message.contains("`employee_number`"), "{message}");
    }

    #[test]
    fn a_filter_by_person_is_none_when_empty_and_the_canonical_name_otherwise() {
        let ctx = caller(Some("00123456"));
        assert_eq!(person_filter(&ctx, "member", "").unwrap(), None);
        for (form, stored) in [
            ("staff/me", "staff/00123456"),
            ("sites/SOU/staff/12345678", "staff/12345678"),
        ] {
            assert_eq!(
                person_filter(&ctx, "member", form).unwrap().as_deref(),
                Some(stored)
            );
        }
        assert!(matches!(
            person_filter(&caller(None), "submitter", "staff/me"),
            Err(Error::FailedPrecondition { .. })
        ));
        let Err(Error::InvalidArgument { violations }) = person_filter(&ctx, "submitter", "me")
        else {
            panic!("`me` alone was accepted")
        };
        assert_eq!(violations[0].field, "submitter");
    }

    #[test]
    fn anything_else_is_invalid_naming_the_field() {
        let ctx = caller(Some("00123456"));
        for bad in [
            "",
            "staff/12ab",
            "staff/1234",
            "sites/BAS/staff/me",
            "sites/bas/staff/12345678",
            "trust/staff/12345678",
        ] {
            let Err(Error::InvalidArgument { violations }) = person(&ctx, "team_member.staff", bad)
            else {
                panic!("{bad} was accepted")
            };
            assert_eq!(violations[0].field, "team_member.staff", "{bad}");
        }
    }
}
