//! Site codes (`BAS`): the root of every site's resource names.

use crate::clip;

/// A validated site code such as `BAS`: 2 to 10 upper case letters or digits, starting
/// with a letter.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SiteCode(String);

impl SiteCode {
    /// Parses a site code; the refusal is a sentence for the caller, naming the value.
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok = (2..=10).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_uppercase())
            && s.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
        if ok {
            Ok(SiteCode(s.to_owned()))
        } else {
            Err(format!(
                "`{}` is not a site code (2 to 10 upper case letters or digits, starting with a letter)",
                clip(s)
            ))
        }
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<SiteCode> for String {
    fn from(s: SiteCode) -> String {
        s.0
    }
}

impl std::fmt::Display for SiteCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_codes_are_short_upper_case_words() {
        assert!(SiteCode::parse("BAS").is_ok());
        assert!(SiteCode::parse("S1").is_ok());
        for bad in ["", "B", "bas", "1AB", "BAS-1", "ABCDEFGHIJK"] {
            assert!(SiteCode::parse(bad).is_err(), "{bad}");
        }
    }
}
