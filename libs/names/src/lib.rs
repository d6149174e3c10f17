//! Resource names rooted at a site (`sites/BAS/cohorts/x`) or at the trust
//! (`trust/cohorts/x`), and the identifiers in them (site codes, ESR employee numbers): the
//! one parser the gateway and the services share, so they read a name the same way. Pure
//! code, with no I/O and no RPC or database types.
#![forbid(unsafe_code)]

mod employee;
mod name;
mod scope;
mod site;
mod staff;

pub use employee::EmployeeNumber;
pub use name::{ListParent, NameError, Owner, parse_name, parse_nested, parse_parent, validate_id};
pub use scope::{Scope, scope};
pub use site::SiteCode;
pub use staff::{Person, STAFF, staff_name};

/// Cuts a caller's value for an error message, so a huge input is not echoed back whole.
pub fn clip(s: &str) -> String {
    const MAX: usize = 80;
    if s.len() <= MAX {
        return s.to_owned();
    }
    format!("{}…", &s[..s.floor_char_boundary(MAX)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_keeps_messages_short_on_any_input() {
        assert_eq!(clip(&"é".repeat(100)).chars().count(), 41);
        assert_eq!(clip("sites/BAS"), "sites/BAS");
    }
}
