//! The gateway's access decision for one call, from the method's policy, the caller and the
//! request's resource field (the shared design's access model, summarised in the README's Access section): role, then trust-wide-only, then
//! the site the request names. The site is read as [`qi_names::scope`] reads it, from the
//! name's first segments; the services parse the whole name with the same crate and apply the
//! same scope again in their SQL.

use qi_names::{Scope, SiteCode, clip, scope};
use qi_platform::Error;
use tonic::Status;

use crate::auth::Principal;
use crate::policy::{Mode, Policy};
use crate::wire::{self, WireError};

/// Decides whether `principal` may make this call with this message.
#[cfg(test)]
pub(crate) fn authorize(
    policy: &Policy,
    principal: &Principal,
    message: &[u8],
) -> Result<(), Status> {
    admit(policy, principal)?;
    check_message(policy, principal, message).map(|_| ())
}

/// What needs no message: the role and the trust-wide rule.
pub(crate) fn admit(policy: &Policy, principal: &Principal) -> Result<(), Status> {
    if !principal.has_any_role(&policy.roles) {
        return Err(Error::denied(format!(
            "this method needs one of the roles: {}",
            if policy.roles.is_empty() {
                "admin".to_owned()
            } else {
                policy.roles.join(", ")
            }
        ))
        .into());
    }
    if policy.trust_wide_only && !principal.sites.is_trust_wide() {
        return Err(Error::denied("this method is for trust-wide callers only").into());
    }
    Ok(())
}

/// The site rule on one message: the resource or parent it names must be the caller's,
/// unless the policy says the resource is shared across sites (then its service decides).
pub(crate) fn check_message(
    policy: &Policy,
    principal: &Principal,
    message: &[u8],
) -> Result<Option<String>, Status> {
    if policy.resource_path.is_empty() {
        return Ok(None);
    }
    let value = wire::find_string(message, &policy.resource_path).map_err(|e| match e {
        WireError::Malformed => Error::invalid("request", "not a valid message"),
        WireError::NotUtf8 => Error::invalid(&policy.resource_field, "not valid UTF-8"),
    })?;
    let value = value.unwrap_or_default();
    let decision = match scope(&value) {
        Scope::Site(code) => {
            let held = match &principal.sites {
                qi_platform::SiteScope::TrustWide => true,
                qi_platform::SiteScope::Sites(sites) => sites.iter().any(|s| s.as_str() == code),
            };
            // A shared resource's other sites are data only its service holds.
            if held || policy.shared_across_sites {
                Ok(())
            } else {
                Err(Error::denied(format!(
                    "{}: no access to site {}",
                    policy.resource_field,
                    clip(code)
                )))
            }
        }
        Scope::Trust if policy.mode == Mode::Write && !principal.sites.is_trust_wide() => Err(
            Error::denied("trust-wide resources are changed only by trust-wide callers"),
        ),
        // `sites/-` lists are scoped by the service; malformed names get the service's
        // INVALID_ARGUMENT naming the field.
        Scope::Trust | Scope::CallersSites | Scope::Unrecognised => Ok(()),
    };
    decision.map(|()| Some(value)).map_err(Status::from)
}

/// A read naming a site the trust does not have finds nothing: `NOT_FOUND`, rather than an
/// empty list that reads as "none yet". Writes are left to the service, which names the
/// field of an unknown site in its `INVALID_ARGUMENT`. Runs after [`check_message`], so a
/// caller who does not hold the site has already been refused whether or not it exists.
pub(crate) fn check_known_site(
    policy: &Policy,
    resource: Option<&str>,
    known: &[SiteCode],
) -> Result<(), Status> {
    if policy.mode != Mode::Read {
        return Ok(());
    }
    match resource.map(scope) {
        Some(Scope::Site(code)) if !known.iter().any(|k| k.as_str() == code) => {
            // NOT_FOUND names the site, so its ErrorInfo carries it as `name`.
            Err(Error::not_found(format!("sites/{}", clip(code))).into())
        }
        Some(Scope::Site(_) | Scope::Trust | Scope::CallersSites | Scope::Unrecognised) | None => {
            Ok(())
        }
    }
}

/// The site a resource name is under, for the audit trail.
pub(crate) fn site_of(name: &str) -> Option<String> {
    match scope(name) {
        Scope::Site(code) => Some(clip(code)),
        Scope::Trust | Scope::CallersSites | Scope::Unrecognised => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use qi_platform::SiteScope;
    use qi_proto::training as pb;
    use tonic::Code;

    fn policy(roles: &[&str], mode: Mode) -> Policy {
        Policy {
            roles: roles.iter().map(|r| r.to_string()).collect(),
            resource_path: vec![1],
            resource_field: "parent".into(),
            mode,
            trust_wide_only: false,
            shared_across_sites: false,
        }
    }

    fn caller(roles: &[&str], sites: &[&str]) -> Principal {
        Principal {
            subject: "t".into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            sites: SiteScope::from_claim(&sites.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap(),
            employee: None,
            expires: u64::MAX,
        }
    }

    fn list(parent: &str) -> Vec<u8> {
        pb::ListCohortsRequest {
            parent: parent.into(),
            ..Default::default()
        }
        .encode_to_vec()
    }

    fn code(r: Result<(), Status>) -> Code {
        r.err().map_or(Code::Ok, |s| s.code())
    }

    #[test]
    fn a_read_under_a_site_the_trust_lacks_is_not_found() {
        let known = [SiteCode::parse("BAS").unwrap()];
        let read = policy(&["viewer"], Mode::Read);
        let err = check_known_site(&read, Some("sites/ZZZ/cohorts/x"), &known).unwrap_err();
        assert_eq!(err.code(), Code::NotFound);
        assert_eq!(err.message(), "sites/ZZZ not found");
        let info = tonic_types::StatusExt::get_details_error_info(&err).unwrap();
        assert_eq!(info.metadata["name"], "sites/ZZZ");
        for fine in [
            "sites/BAS/cohorts/x",
            "sites/-",
            "trust/courses/c",
            "nonsense",
        ] {
            assert!(
                check_known_site(&read, Some(fine), &known).is_ok(),
                "{fine}"
            );
        }
        let write = policy(&["viewer"], Mode::Write);
        assert!(check_known_site(&write, Some("sites/ZZZ"), &known).is_ok());
    }

    #[test]
    fn the_site_rule_applies_to_the_named_site() {
        let read = policy(&["viewer"], Mode::Read);
        let bas = caller(&["viewer"], &["BAS"]);
        assert_eq!(code(authorize(&read, &bas, &list("sites/BAS"))), Code::Ok);
        assert_eq!(
            code(authorize(&read, &bas, &list("sites/BRM"))),
            Code::PermissionDenied
        );
        assert_eq!(
            code(authorize(&read, &bas, &list("sites/BRM/cohorts/x"))),
            Code::PermissionDenied
        );
        assert_eq!(code(authorize(&read, &bas, &list("sites/-"))), Code::Ok);
        assert_eq!(code(authorize(&read, &bas, &list("trust"))), Code::Ok);
        let trust = caller(&["viewer"], &["*"]);
        assert_eq!(code(authorize(&read, &trust, &list("sites/SOU"))), Code::Ok);
    }

    #[test]
    fn a_shared_resource_under_another_site_is_left_to_its_service() {
        let mut shared = policy(&["viewer"], Mode::Read);
        shared.shared_across_sites = true;
        let bas = caller(&["viewer"], &["BAS"]);
        assert_eq!(
            code(authorize(&shared, &bas, &list("sites/SOU/projects/p"))),
            Code::Ok
        );
        // The role is still the gateway's to check.
        let hr = caller(&["hr_sync"], &["BAS"]);
        assert_eq!(
            code(authorize(&shared, &hr, &list("sites/SOU/projects/p"))),
            Code::PermissionDenied
        );
    }

    #[test]
    fn trust_wide_resources_are_written_only_by_trust_wide_callers() {
        let write = policy(&["improvement_team"], Mode::Write);
        let bas = caller(&["improvement_team"], &["BAS"]);
        assert_eq!(
            code(authorize(&write, &bas, &list("trust"))),
            Code::PermissionDenied
        );
        let trust = caller(&["improvement_team"], &["*"]);
        assert_eq!(code(authorize(&write, &trust, &list("trust"))), Code::Ok);
    }

    #[test]
    fn roles_are_checked_first_and_admin_holds_all() {
        let read = policy(&["viewer"], Mode::Read);
        let hr = caller(&["hr_sync"], &["*"]);
        assert_eq!(
            code(authorize(&read, &hr, &list("sites/BAS"))),
            Code::PermissionDenied
        );
        let admin = caller(&["admin"], &["BAS"]);
        assert_eq!(code(authorize(&read, &admin, &list("sites/BAS"))), Code::Ok);
        let admin_only = policy(&[], Mode::Write);
        let team = caller(&["improvement_team"], &["*"]);
        assert_eq!(
            code(authorize(&admin_only, &team, &list("trust"))),
            Code::PermissionDenied
        );
    }

    #[test]
    fn a_malformed_message_is_invalid_not_forwarded() {
        let read = policy(&["viewer"], Mode::Read);
        let bas = caller(&["viewer"], &["BAS"]);
        assert_eq!(
            code(authorize(&read, &bas, &[0x0a, 0x05])),
            Code::InvalidArgument
        );
    }
}
