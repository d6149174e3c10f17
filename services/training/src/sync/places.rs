//! Where the ESR mapping places a row, read once per sync: its own `site` when it carries
//! one, else its location's mapped site, else its organisation's; its ward that of the
//! first of those two mappings at that site which names one. And a small interning of the
//! (site, ward) pairs, so each stored person's place is a number to compare.

use std::collections::HashMap;

use super::store::Mapping;

/// The mapping, by code of each kind, and the places seen.
#[derive(Debug, Default)]
pub(super) struct Places {
    /// (site, ward) by location code.
    locations: HashMap<String, (String, String)>,
    /// (site, ward) by organisation code.
    organisations: HashMap<String, (String, String)>,
    /// Place numbers, by site then ward (looked up by `&str`, no key built per row).
    ids: HashMap<String, HashMap<String, u32>>,
    count: u32,
}

impl Places {
    /// The mapping as stored.
    pub(super) fn new(mapping: Vec<Mapping>) -> Self {
        let mut p = Places::default();
        for (kind, code, site, ward) in mapping {
            let by = if kind == "location" {
                &mut p.locations
            } else {
                &mut p.organisations
            };
            by.insert(code, (site, ward));
        }
        p
    }

    /// The site and ward a row is placed at; `None` when it names no site and neither of
    /// its codes is mapped.
    pub(super) fn place<'a>(
        &'a self,
        site: &'a str,
        location: &str,
        organisation: &str,
    ) -> Option<(&'a str, &'a str)> {
        let l = self.locations.get(location);
        let o = self.organisations.get(organisation);
        let site = if site.is_empty() {
            l.or(o).map(|(s, _)| s.as_str())?
        } else {
            site
        };
        let ward = [l, o]
            .into_iter()
            .flatten()
            .find(|(s, w)| s == site && !w.is_empty())
            .map_or("", |(_, w)| w.as_str());
        Some((site, ward))
    }

    /// A number for the place (site, ward), the same for the same pair in one sync.
    pub(super) fn id(&mut self, site: &str, ward: &str) -> u32 {
        if let Some(id) = self.ids.get(site).and_then(|w| w.get(ward)) {
            return *id;
        }
        let id = self.count;
        self.count += 1;
        self.ids
            .entry(site.to_owned())
            .or_default()
            .insert(ward.to_owned(), id);
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn places() -> Places {
        let m = |kind: &str, code: &str, site: &str, ward: &str| {
            (kind.into(), code.into(), site.into(), ward.into())
        };
        Places::new(vec![
            m("location", "BAS-MAIN", "BAS", ""),
            m("organisation", "CC-ASH", "BAS", "sites/BAS/wards/ash"),
            m("organisation", "CC-ELM", "SOU", "sites/SOU/wards/elm"),
        ])
    }

    #[test]
    fn a_site_then_the_location_then_the_organisation_place_a_row() {
        let p = places();
        let ash = Some(("BAS", "sites/BAS/wards/ash"));
        assert_eq!(p.place("", "BAS-MAIN", "CC-ASH"), ash);
        // An organisation's ward at another site than the location's is not taken.
        assert_eq!(p.place("", "BAS-MAIN", "CC-ELM"), Some(("BAS", "")));
        assert_eq!(
            p.place("", "", "CC-ELM"),
            Some(("SOU", "sites/SOU/wards/elm"))
        );
        // An explicit site wins; a ward of it still comes from the codes.
        assert_eq!(p.place("BRM", "BAS-MAIN", "CC-ASH"), Some(("BRM", "")));
        assert_eq!(p.place("BAS", "", "CC-ASH"), ash);
        // An unmapped location falls back to the organisation; nothing mapped, no place.
        assert_eq!(p.place("", "NOWHERE", "CC-ASH"), ash);
        assert_eq!(p.place("", "NOWHERE", "NOPE"), None);
        assert_eq!(p.place("", "", ""), None);
    }

    #[test]
    fn a_place_has_one_number() {
        let mut p = places();
        let a = p.id("BAS", "");
        let b = p.id("BAS", "sites/BAS/wards/ash");
        assert_ne!(a, b);
        assert_eq!(p.id("BAS", ""), a);
        assert_eq!(p.id("BAS", "sites/BAS/wards/ash"), b);
    }
}
