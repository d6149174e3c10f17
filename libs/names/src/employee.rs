//! ESR employee numbers: the key of a person in the HR sync, in staff names, and in the
//! bearer token of a caller who is a person. One rule, so the gateway reading a token and
//! the services reading a name cannot disagree about what a number is.

use crate::clip;

/// A validated ESR employee number: 5 to 12 ASCII digits (leading zeros kept).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EmployeeNumber(String);

impl EmployeeNumber {
    /// Parses an employee number; the refusal is a sentence for the caller, naming the value.
    pub fn parse(s: &str) -> Result<Self, String> {
        if (5..=12).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(EmployeeNumber(s.to_owned()))
        } else {
            Err(format!(
                "`{}` is not an ESR employee number (5 to 12 digits)",
                clip(s)
            ))
        }
    }

    /// The number as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<EmployeeNumber> for String {
    fn from(n: EmployeeNumber) -> String {
        n.0
    }
}

impl std::fmt::Display for EmployeeNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn employee_numbers_are_five_to_twelve_digits() {
        for good in ["12345", "00012345", "123456789012"] {
            assert_eq!(EmployeeNumber::parse(good).unwrap().as_str(), good);
        }
        for bad in [
            "",
            "1234",
            "1234567890123",
            "12a45",
            "-12345",
            " 12345",
            "１２３４５",
        ] {
            let err = EmployeeNumber::parse(bad).unwrap_err();
            assert!(err.contains("ESR employee number"), "{bad}: {err}");
        }
    }
}
