//! Field masks of Update methods (AIP-134/161): paths are relative to the resource; `*`
//! replaces every updatable field; an omitted mask means "the fields that are set";
//! unknown or output-only paths are refused, naming `update_mask`.

use crate::error::Error;

/// The fields to change, from the request's mask. `updatable` lists the paths the method
/// allows; `is_set` says whether the request sets a field (for an omitted mask).
pub fn paths(
    mask: Option<&prost_types::FieldMask>,
    updatable: &[&'static str],
    is_set: impl Fn(&str) -> bool,
) -> Result<Vec<&'static str>, Error> {
    let chosen: Vec<&'static str> = match mask {
        None => updatable.iter().copied().filter(|p| is_set(p)).collect(),
        Some(m) if m.paths.iter().any(|p| p == "*") => {
            if m.paths.len() > 1 {
                return Err(Error::invalid("update_mask", "`*` stands alone"));
            }
            updatable.to_vec()
        }
        Some(m) => m
            .paths
            .iter()
            .map(|p| {
                updatable.iter().copied().find(|u| u == p).ok_or_else(|| {
                    Error::invalid(
                        "update_mask",
                        format!(
                            "`{}` cannot be updated; use {}",
                            crate::names::clip(p),
                            updatable.join(", ")
                        ),
                    )
                })
            })
            .collect::<Result<_, _>>()?,
    };
    if chosen.is_empty() {
        return Err(Error::invalid("update_mask", "names no field to change"));
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_types::FieldMask;

    const UPDATABLE: &[&str] = &["display_name", "capacity"];

    #[test]
    fn masks_choose_fields_explicitly_all_or_by_presence() {
        let mask = FieldMask {
            paths: vec!["capacity".into()],
        };
        assert_eq!(
            paths(Some(&mask), UPDATABLE, |_| true).unwrap(),
            ["capacity"]
        );
        let all = FieldMask {
            paths: vec!["*".into()],
        };
        assert_eq!(paths(Some(&all), UPDATABLE, |_| false).unwrap(), UPDATABLE);
        assert_eq!(
            paths(None, UPDATABLE, |p| p == "display_name").unwrap(),
            ["display_name"]
        );
    }

    #[test]
    fn unknown_paths_and_empty_masks_are_refused() {
        let mask = FieldMask {
            paths: vec!["state".into()],
        };
        assert!(paths(Some(&mask), UPDATABLE, |_| true).is_err());
        assert!(paths(None, UPDATABLE, |_| false).is_err());
    }
}
