//! Health-inequality dimensions and their stratum labels: IMD quintile, NHS Data Dictionary
//! ethnic category, age band and stated gender, each with the labels that say "not known"
//! or "not stated" (counted, so the unknown share can be reported).

use qi_platform::Error;
use qi_proto::metrics as pb;

/// The label of an IMD quintile or age band that is not known.
pub(crate) const UNKNOWN: &str = "U";

/// One inequality dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Dimension {
    /// IMD quintile, `1` most deprived to `5`, `U` not known.
    Imd,
    /// NHS Data Dictionary ethnic category, `Z` not stated, `99` not known.
    Ethnicity,
    /// The metric's age bands, `U` not known.
    Age,
    /// Person stated gender code, `X` not known.
    Sex,
}

/// The NHS Data Dictionary ethnic categories (first character) and what they mean.
const ETHNIC_CATEGORIES: [(&str, &str); 18] = [
    ("A", "White: British"),
    ("B", "White: Irish"),
    ("C", "White: any other White background"),
    ("D", "Mixed: White and Black Caribbean"),
    ("E", "Mixed: White and Black African"),
    ("F", "Mixed: White and Asian"),
    ("G", "Mixed: any other mixed background"),
    ("H", "Asian or Asian British: Indian"),
    ("J", "Asian or Asian British: Pakistani"),
    ("K", "Asian or Asian British: Bangladeshi"),
    ("L", "Asian or Asian British: any other Asian background"),
    ("M", "Black or Black British: Caribbean"),
    ("N", "Black or Black British: African"),
    ("P", "Black or Black British: any other Black background"),
    ("R", "Other ethnic groups: Chinese"),
    ("S", "Other ethnic groups: any other ethnic group"),
    ("Z", "Not stated"),
    ("99", "Not known"),
];

/// The five broad ethnic groups, by the categories they hold.
const BROAD_GROUPS: [(&str, &str, &str); 5] = [
    ("WHITE", "White", "ABC"),
    ("MIXED", "Mixed", "DEFG"),
    ("ASIAN", "Asian or Asian British", "HJKL"),
    ("BLACK", "Black or Black British", "MNP"),
    ("OTHER", "Other ethnic groups", "RS"),
];

/// The stated gender codes and what they mean.
const SEXES: [(&str, &str); 4] = [
    ("1", "Male"),
    ("2", "Female"),
    ("9", "Indeterminate"),
    ("X", "Not known"),
];

/// The default age bands.
pub(crate) const DEFAULT_AGE_BANDS: [&str; 9] = [
    "0-17", "18-24", "25-34", "35-44", "45-54", "55-64", "65-74", "75-84", "85+",
];

impl Dimension {
    /// Every dimension, in the order of the stratum fields.
    pub(crate) const ALL: [Dimension; 4] = [
        Dimension::Imd,
        Dimension::Ethnicity,
        Dimension::Age,
        Dimension::Sex,
    ];

    /// Its index in a [`Labels`] array.
    pub(crate) fn index(self) -> usize {
        match self {
            Dimension::Imd => 0,
            Dimension::Ethnicity => 1,
            Dimension::Age => 2,
            Dimension::Sex => 3,
        }
    }

    /// The measurement column holding its label.
    pub(crate) fn column(self) -> &'static str {
        match self {
            Dimension::Imd => "imd_quintile",
            Dimension::Ethnicity => "ethnicity",
            Dimension::Age => "age_band",
            Dimension::Sex => "sex",
        }
    }

    /// Its code in the metric's `dimensions` column.
    pub(crate) fn code(self) -> &'static str {
        match self {
            Dimension::Imd => "imd",
            Dimension::Ethnicity => "ethnicity",
            Dimension::Age => "age",
            Dimension::Sex => "sex",
        }
    }

    /// Reads a stored code back.
    pub(crate) fn from_code(code: &str) -> Result<Self, Error> {
        Dimension::ALL
            .into_iter()
            .find(|d| d.code() == code)
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("stored dimension {code}")))
    }

    /// The field of `Stratum` holding its label.
    pub(crate) fn stratum_field(self) -> &'static str {
        match self {
            Dimension::Imd => "imd_quintile",
            Dimension::Ethnicity => "ethnic_category",
            Dimension::Age => "age_band",
            Dimension::Sex => "sex",
        }
    }

    /// What to call it in messages.
    pub(crate) fn title(self) -> &'static str {
        match self {
            Dimension::Imd => "IMD quintile",
            Dimension::Ethnicity => "ethnic category",
            Dimension::Age => "age band",
            Dimension::Sex => "sex",
        }
    }

    /// Reads the contract's enum.
    pub(crate) fn from_proto(value: i32) -> Option<Self> {
        match pb::InequalityDimension::try_from(value) {
            Ok(pb::InequalityDimension::ImdQuintile) => Some(Dimension::Imd),
            Ok(pb::InequalityDimension::EthnicCategory) => Some(Dimension::Ethnicity),
            Ok(pb::InequalityDimension::AgeBand) => Some(Dimension::Age),
            Ok(pb::InequalityDimension::Sex) => Some(Dimension::Sex),
            Ok(pb::InequalityDimension::Unspecified) | Err(_) => None,
        }
    }

    /// The contract's enum.
    pub(crate) fn to_proto(self) -> pb::InequalityDimension {
        match self {
            Dimension::Imd => pb::InequalityDimension::ImdQuintile,
            Dimension::Ethnicity => pb::InequalityDimension::EthnicCategory,
            Dimension::Age => pb::InequalityDimension::AgeBand,
            Dimension::Sex => pb::InequalityDimension::Sex,
        }
    }

    /// Whether its strata have an order (deprivation, age), so a slope index applies.
    pub(crate) fn ordered(self) -> bool {
        matches!(self, Dimension::Imd | Dimension::Age)
    }

    /// Whether a label of this dimension says the value is not known or not stated.
    pub(crate) fn is_unknown(self, label: &str) -> bool {
        self.shared().is_unknown(label)
    }

    /// The same dimension as the shared gap arithmetic names it.
    pub(crate) fn shared(self) -> qi_spc::gaps::Dimension {
        match self {
            Dimension::Imd => qi_spc::gaps::Dimension::Imd,
            Dimension::Ethnicity => qi_spc::gaps::Dimension::Ethnicity,
            Dimension::Age => qi_spc::gaps::Dimension::Age,
            Dimension::Sex => qi_spc::gaps::Dimension::Sex,
        }
    }
}

/// A stratum's labels, indexed by [`Dimension::index`]; empty where not broken down.
pub(crate) type Labels = [String; 4];

/// Reads a `Stratum` message into labels (unchecked).
pub(crate) fn labels_of(stratum: Option<pb::Stratum>) -> Labels {
    let pb::Stratum {
        imd_quintile,
        ethnic_category,
        age_band,
        sex,
    } = stratum.unwrap_or_default();
    [imd_quintile, ethnic_category, age_band, sex]
}

/// Writes labels back as a `Stratum` message.
pub(crate) fn stratum_of(labels: &Labels) -> pb::Stratum {
    let [imd_quintile, ethnic_category, age_band, sex] = labels.clone();
    pb::Stratum {
        imd_quintile,
        ethnic_category,
        age_band,
        sex,
    }
}

/// One age band: `{from}-{to}` or, open-ended, `{from}+`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct AgeBand {
    from: u32,
    to: Option<u32>,
}

fn parse_age_band(s: &str) -> Option<AgeBand> {
    let number = |t: &str| {
        (!t.is_empty() && t.len() <= 3 && t.bytes().all(|b| b.is_ascii_digit()))
            .then(|| t.parse::<u32>().ok())
            .flatten()
    };
    if let Some(from) = s.strip_suffix('+') {
        return Some(AgeBand {
            from: number(from)?,
            to: None,
        });
    }
    let (from, to) = s.split_once('-')?;
    let (from, to) = (number(from)?, number(to)?);
    (from <= to).then_some(AgeBand { from, to: Some(to) })
}

/// Checks a metric's age bands: contiguous, youngest first, only the last open-ended;
/// empty means the default set.
pub(crate) fn validate_age_bands(field: &str, bands: &[String]) -> Result<Vec<String>, Error> {
    if bands.is_empty() {
        return Ok(Vec::new());
    }
    let mut previous: Option<AgeBand> = None;
    for (i, s) in bands.iter().enumerate() {
        let Some(band) = parse_age_band(s) else {
            return Err(Error::invalid(
                format!("{field}[{i}]"),
                format!(
                    "`{}` is not an age band: use `{{from}}-{{to}}` in whole years, or `{{from}}+` for the last",
                    qi_platform::names::clip(s)
                ),
            ));
        };
        if let Some(p) = previous {
            match p.to {
                Some(to) if band.from == to + 1 => {}
                Some(to) => {
                    return Err(Error::invalid(
                        format!("{field}[{i}]"),
                        format!("must start at {} to follow the band before it", to + 1),
                    ));
                }
                None => {
                    return Err(Error::invalid(
                        format!("{field}[{i}]"),
                        "follows an open-ended band: only the last may end with `+`",
                    ));
                }
            }
        }
        previous = Some(band);
    }
    Ok(bands.to_vec())
}

/// How a metric records its strata: which dimensions, and its age bands.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Recording {
    /// The dimensions, in the order given.
    pub(crate) dimensions: Vec<Dimension>,
    /// The age bands (empty: the default set).
    pub(crate) age_bands: Vec<String>,
}

impl Recording {
    /// Whether the metric is recorded by `d`.
    pub(crate) fn records(&self, d: Dimension) -> bool {
        self.dimensions.contains(&d)
    }

    /// The known labels of `d`, in the dimension's order, then its unknown labels.
    pub(crate) fn labels(&self, d: Dimension) -> Vec<String> {
        let fixed = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect();
        match d {
            Dimension::Imd => fixed(&["1", "2", "3", "4", "5", UNKNOWN]),
            Dimension::Ethnicity => ETHNIC_CATEGORIES
                .iter()
                .map(|(c, _)| (*c).to_owned())
                .collect(),
            Dimension::Age => {
                let mut bands: Vec<String> = if self.age_bands.is_empty() {
                    fixed(&DEFAULT_AGE_BANDS)
                } else {
                    self.age_bands.clone()
                };
                bands.push(UNKNOWN.to_owned());
                bands
            }
            Dimension::Sex => SEXES.iter().map(|(c, _)| (*c).to_owned()).collect(),
        }
    }

    /// Whether `label` is one of `d`'s labels (without building the list: ingest asks this
    /// for every measurement).
    pub(crate) fn is_label(&self, d: Dimension, label: &str) -> bool {
        match d {
            Dimension::Imd => matches!(label, "1" | "2" | "3" | "4" | "5" | UNKNOWN),
            Dimension::Ethnicity => ETHNIC_CATEGORIES.iter().any(|(c, _)| *c == label),
            Dimension::Age => {
                label == UNKNOWN
                    || if self.age_bands.is_empty() {
                        DEFAULT_AGE_BANDS.contains(&label)
                    } else {
                        self.age_bands.iter().any(|b| b == label)
                    }
            }
            Dimension::Sex => SEXES.iter().any(|(c, _)| *c == label),
        }
    }

    /// Checks one label of `d`.
    pub(crate) fn check_label(&self, d: Dimension, label: &str) -> Result<(), String> {
        if self.is_label(d, label) {
            return Ok(());
        }
        let hint = match d {
            Dimension::Imd => "use `1` (most deprived) to `5`, or `U` when not known".to_owned(),
            Dimension::Ethnicity => {
                "use an NHS Data Dictionary ethnic category `A` to `S`, `Z` (not stated) or `99` (not known)"
                    .to_owned()
            }
            Dimension::Age => format!(
                "use one of the metric's age bands ({}) or `U` when not known",
                self.labels(d)
                    .iter()
                    .filter(|l| *l != UNKNOWN)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Dimension::Sex => {
                "use `1` (male), `2` (female), `9` (indeterminate) or `X` (not known)".to_owned()
            }
        };
        Err(format!(
            "`{}` is not a {} label: {hint}",
            qi_platform::names::clip(label),
            d.title()
        ))
    }

    /// Checks a measurement's labels: one for each recorded dimension, none for the others.
    /// Violations go to `{field()}.{stratum field}` (the field's name is built only for a
    /// violation).
    pub(crate) fn check_measurement(
        &self,
        field: impl Fn() -> String,
        labels: &Labels,
        mut report: impl FnMut(String, String),
    ) {
        for d in Dimension::ALL {
            let label = &labels[d.index()];
            let at = || format!("{}.{}", field(), d.stratum_field());
            if self.records(d) {
                if label.is_empty() {
                    let unknown = if d == Dimension::Ethnicity {
                        "`Z` when not stated, `99` when not known"
                    } else if d == Dimension::Sex {
                        "`X` when not known"
                    } else {
                        "`U` when not known"
                    };
                    report(
                        at(),
                        format!(
                            "is required: the metric is recorded by {} (use {unknown})",
                            d.title()
                        ),
                    );
                } else if let Err(e) = self.check_label(d, label) {
                    report(at(), e);
                }
            } else if !label.is_empty() {
                report(at(), format!("the metric is not recorded by {}", d.title()));
            }
        }
    }

    /// Checks a stratum filter: labels only of recorded dimensions, each valid.
    pub(crate) fn check_filter(&self, field: &str, labels: &Labels) -> Result<(), Error> {
        let mut v = qi_platform::Violations::new();
        for d in Dimension::ALL {
            let label = &labels[d.index()];
            if label.is_empty() {
                continue;
            }
            let at = format!("{field}.{}", d.stratum_field());
            if !self.records(d) {
                v.add(at, format!("the metric is not recorded by {}", d.title()));
            } else if let Err(e) = self.check_label(d, label) {
                v.add(at, e);
            }
        }
        v.finish()
    }
}

/// What a label of `d` means, for people.
pub(crate) fn display_name(d: Dimension, label: &str) -> String {
    match d {
        Dimension::Imd => match label {
            "1" => "IMD quintile 1 (most deprived)".into(),
            "5" => "IMD quintile 5 (least deprived)".into(),
            UNKNOWN => "IMD quintile not known".into(),
            q => format!("IMD quintile {q}"),
        },
        Dimension::Ethnicity => ETHNIC_CATEGORIES
            .iter()
            .find(|(c, _)| *c == label)
            .map(|(_, n)| (*n).to_owned())
            .or_else(|| {
                BROAD_GROUPS
                    .iter()
                    .find(|(g, _, _)| *g == label)
                    .map(|(_, n, _)| (*n).to_owned())
            })
            .unwrap_or_else(|| label.to_owned()),
        Dimension::Age => {
            if label == UNKNOWN {
                "Age not known".into()
            } else {
                format!("Aged {label}")
            }
        }
        Dimension::Sex => SEXES
            .iter()
            .find(|(c, _)| *c == label)
            .map(|(_, n)| (*n).to_owned())
            .unwrap_or_else(|| label.to_owned()),
    }
}

/// The broad ethnic group of a category (`Z` and `99` stay as they are).
pub(crate) fn broad_group(category: &str) -> &str {
    BROAD_GROUPS
        .iter()
        .find(|(_, _, members)| category.len() == 1 && members.contains(category))
        .map_or(category, |(g, _, _)| g)
}

/// The broad groups' labels in order, then the unknown ones.
pub(crate) fn broad_group_labels() -> Vec<String> {
    BROAD_GROUPS
        .iter()
        .map(|(g, _, _)| (*g).to_owned())
        .chain(["Z".to_owned(), "99".to_owned()])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recording(dims: &[Dimension]) -> Recording {
        Recording {
            dimensions: dims.to_vec(),
            age_bands: Vec::new(),
        }
    }

    #[test]
    fn labels_follow_the_nhs_data_dictionary_with_unknowns_last() {
        let r = recording(&Dimension::ALL);
        assert_eq!(r.labels(Dimension::Imd), ["1", "2", "3", "4", "5", "U"]);
        let eth = r.labels(Dimension::Ethnicity);
        assert_eq!(eth.len(), 18);
        assert_eq!(&eth[16..], ["Z", "99"]);
        assert!(!eth.iter().any(|l| l == "I" || l == "O" || l == "Q"));
        assert_eq!(
            r.labels(Dimension::Age).last().map(String::as_str),
            Some("U")
        );
        assert_eq!(r.labels(Dimension::Sex), ["1", "2", "9", "X"]);
        for (d, l) in [
            (Dimension::Imd, "U"),
            (Dimension::Ethnicity, "Z"),
            (Dimension::Ethnicity, "99"),
            (Dimension::Age, "U"),
            (Dimension::Sex, "X"),
        ] {
            assert!(d.is_unknown(l), "{d:?} {l}");
        }
        assert!(!Dimension::Sex.is_unknown("9"));
    }

    #[test]
    fn a_measurement_needs_exactly_the_metric_dimensions() {
        let r = recording(&[Dimension::Imd, Dimension::Sex]);
        let mut found = Vec::new();
        let labels: Labels = ["6".into(), "A".into(), String::new(), String::new()];
        r.check_measurement(|| "m[0].stratum".into(), &labels, |f, _| found.push(f));
        assert_eq!(
            found,
            [
                "m[0].stratum.imd_quintile",
                "m[0].stratum.ethnic_category",
                "m[0].stratum.sex"
            ]
        );
        let good: Labels = ["U".into(), String::new(), String::new(), "X".into()];
        r.check_measurement(|| "m".into(), &good, |f, d| panic!("{f}: {d}"));
    }

    #[test]
    fn age_bands_must_be_contiguous_and_open_only_at_the_end() {
        let ok: Vec<String> = ["0-17", "18-64", "65+"].map(String::from).to_vec();
        assert_eq!(validate_age_bands("b", &ok).unwrap(), ok);
        for bad in [
            vec!["0-17", "19-64"],
            vec!["0-17", "18+", "65+"],
            vec!["17-0"],
            vec!["a-b"],
            vec!["0-17", "18-64 "],
        ] {
            let bad: Vec<String> = bad.into_iter().map(String::from).collect();
            assert!(validate_age_bands("b", &bad).is_err(), "{bad:?}");
        }
        let r = Recording {
            dimensions: vec![Dimension::Age],
            age_bands: ok,
        };
        assert!(r.check_label(Dimension::Age, "18-64").is_ok());
        assert!(r.check_label(Dimension::Age, "18-24").is_err());
    }

    #[test]
    fn ethnic_categories_combine_into_broad_groups() {
        assert_eq!(broad_group("B"), "WHITE");
        assert_eq!(broad_group("G"), "MIXED");
        assert_eq!(broad_group("K"), "ASIAN");
        assert_eq!(broad_group("P"), "BLACK");
        assert_eq!(broad_group("R"), "OTHER");
        assert_eq!(broad_group("Z"), "Z");
        assert_eq!(broad_group("99"), "99");
        assert_eq!(
            display_name(Dimension::Ethnicity, "ASIAN"),
            "Asian or Asian British"
        );
    }
}
