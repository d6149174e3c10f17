//! Pagination for every List (AIP-158): a documented default and maximum page size, and
//! opaque page tokens holding the keyset position plus the other request parameters, so a
//! token reused with different parameters is refused. Tokens grant no authority: every page
//! is scoped to the caller again.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// The page size when the caller gives none.
pub const DEFAULT_PAGE_SIZE: usize = 50;
/// The largest page; larger requests are coerced down.
pub const MAX_PAGE_SIZE: usize = 500;

#[derive(Serialize, Deserialize)]
struct Token {
    /// The keyset: the sort key of the last item returned.
    k: Vec<String>,
    /// The other request parameters the token belongs to.
    p: String,
}

/// A parsed page request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// How many items to return.
    pub size: usize,
    /// The sort key of the last item of the previous page, if any.
    pub after: Option<Vec<String>>,
    params: String,
}

impl Page {
    /// Reads `page_size` and `page_token`; `params` describes the request's other parameters.
    pub fn parse(page_size: i32, page_token: &str, params: &str) -> Result<Page, Error> {
        let size = match page_size {
            n if n < 0 => return Err(Error::invalid("page_size", "must not be negative")),
            0 => DEFAULT_PAGE_SIZE,
            n => (n as usize).min(MAX_PAGE_SIZE),
        };
        let after = if page_token.is_empty() {
            None
        } else {
            let bytes = URL_SAFE_NO_PAD.decode(page_token).map_err(|_| not_ours())?;
            let token: Token = serde_json::from_slice(&bytes).map_err(|_| not_ours())?;
            if token.p != params {
                return Err(Error::invalid(
                    "page_token",
                    "belongs to a list with other parameters",
                ));
            }
            Some(token.k)
        };
        Ok(Page {
            size,
            after,
            params: params.to_owned(),
        })
    }

    /// The SQL `LIMIT`: one more than the page, to learn whether another page follows.
    pub fn limit(&self) -> i64 {
        self.size as i64 + 1
    }

    /// Trims the fetched rows to the page and returns the next token (empty at the end).
    pub fn finish<T>(&self, mut rows: Vec<T>, key: impl Fn(&T) -> Vec<String>) -> (Vec<T>, String) {
        if rows.len() <= self.size {
            return (rows, String::new());
        }
        rows.truncate(self.size);
        let next = rows.last().map_or_else(String::new, |last| {
            let token = Token {
                k: key(last),
                p: self.params.clone(),
            };
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&token).unwrap_or_default())
        });
        (rows, next)
    }

    /// The keyset value at `i`, or an empty string (sorts first) on the first page.
    pub fn after_key(&self, i: usize) -> Option<&str> {
        self.after
            .as_ref()
            .and_then(|k| k.get(i))
            .map(String::as_str)
    }

    /// The keyset value at `i` read as a `T` (a date, a number), or `None` on the first page.
    /// A value that does not parse is a token this list did not write.
    pub fn parsed_key<T: std::str::FromStr>(&self, i: usize) -> Result<Option<T>, Error> {
        self.after_key(i)
            .map(str::parse)
            .transpose()
            .map_err(|_| not_ours())
    }
}

/// A page token this list did not write.
fn not_ours() -> Error {
    Error::invalid("page_token", "not a token this list returned")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_default_and_coerce() {
        assert_eq!(Page::parse(0, "", "").unwrap().size, DEFAULT_PAGE_SIZE);
        assert_eq!(Page::parse(10_000, "", "").unwrap().size, MAX_PAGE_SIZE);
        assert!(Page::parse(-1, "", "").is_err());
    }

    #[test]
    fn a_token_resumes_after_the_last_item_and_only_for_the_same_parameters() {
        let page = Page::parse(2, "", "sites/BAS").unwrap();
        let (rows, next) = page.finish(vec!["a", "b", "c"], |r| vec![r.to_string()]);
        assert_eq!(rows, ["a", "b"]);
        let page = Page::parse(2, &next, "sites/BAS").unwrap();
        assert_eq!(page.after_key(0), Some("b"));
        assert!(Page::parse(2, &next, "sites/SOU").is_err());
        assert!(Page::parse(2, "garbage!", "sites/BAS").is_err());
        let (_, end) = page.finish(vec!["c"], |r| vec![r.to_string()]);
        assert!(end.is_empty());
    }

    #[test]
    fn a_key_that_does_not_parse_is_not_our_token() {
        let page = Page::parse(1, "", "").unwrap();
        assert_eq!(page.parsed_key::<i64>(0).unwrap(), None);
        let (_, next) = page.finish(vec!["7", "x"], |r| vec![r.to_string(), "x".into()]);
        let page = Page::parse(1, &next, "").unwrap();
        assert_eq!(page.parsed_key::<i64>(0).unwrap(), Some(7));
        let err = page.parsed_key::<i64>(1).unwrap_err();
        assert!(err.to_string().contains("page_token"), "{err}");
    }
}
