//! The register's `filter` (ListCompletions, GetTrainingSummary): the terms [`qi_filter`]
//! reads, with the request's own course and dates, turned into what the register's
//! statements compare (each `None` or empty: no condition). Staff fields are the learner's
//! as they are now. Every bad term is named under `filter`, saying which term and why.

use chrono::{Days, NaiveDate};
use qi_filter::{Op, Range};
use qi_platform::names::{self, Owner};
use qi_platform::{Error, SiteCode, Violations};

use super::import::Source;
use crate::courses;

const FIELDS: &str =
    "site, staff_group, pay_band, department, ward, course, source, completion_date";

/// `=` and `!=` terms of one text field.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Text {
    pub(crate) is: Option<String>,
    pub(crate) not: Vec<String>,
}

impl Text {
    fn take(&mut self, at: &str, field: &str, op: Op, value: String) -> Result<(), Error> {
        match op {
            Op::Eq if self.is.is_some() => Err(Error::invalid(
                "filter",
                format!("{at}: {field} = is given twice"),
            )),
            Op::Eq => {
                self.is = Some(value);
                Ok(())
            }
            Op::Ne => {
                self.not.push(value);
                Ok(())
            }
            Op::Lt | Op::Gt | Op::Le | Op::Ge => Err(Error::invalid(
                "filter",
                format!("{at}: {field} takes = !="),
            )),
        }
    }
}

/// What a register read is narrowed to.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Filter {
    pub(crate) site: Text,
    pub(crate) staff_group: Text,
    pub(crate) pay_band: Text,
    pub(crate) department: Text,
    pub(crate) ward: Text,
    /// Course ids.
    pub(crate) course: Text,
    /// Sources as stored.
    pub(crate) source: Text,
    pub(crate) completed: Range<NaiveDate>,
}

impl Filter {
    /// The sites of `scope` (`None`: every one of the trust's `sites`) the `site` terms
    /// leave; `None` when no term names a site and the scope is every site.
    pub(crate) fn sites(
        &self,
        scope: Option<Vec<String>>,
        sites: &[SiteCode],
    ) -> Option<Vec<String>> {
        if self.site.is.is_none() && self.site.not.is_empty() {
            return scope;
        }
        let all = scope.unwrap_or_else(|| sites.iter().map(ToString::to_string).collect());
        Some(
            all.into_iter()
                .filter(|s| self.site.is.as_ref().is_none_or(|is| is == s))
                .filter(|s| !self.site.not.contains(s))
                .collect(),
        )
    }
}

/// Reads `filter` into a [`Filter`] that already holds the request's own fields.
pub(crate) fn parse(f: Filter, filter: &str) -> Result<Filter, Error> {
    let terms = qi_filter::parse(filter).map_err(|e| Error::invalid("filter", e.to_string()))?;
    read_terms(f, terms)
}

/// Reads a filter's terms (ListCompletions has taken out its `update_time` ones) into a
/// [`Filter`] that already holds the request's own fields.
pub(crate) fn read_terms(mut f: Filter, terms: Vec<qi_filter::Term>) -> Result<Filter, Error> {
    let mut v = Violations::new();
    for qi_filter::Term { field, op, value } in terms {
        let at = format!("`{field} {op} …`");
        let bad = |why: String| Error::invalid("filter", format!("{at}: {why}"));
        let value = value.trim().to_owned();
        let result = match field.as_str() {
            "site" => SiteCode::parse(&value)
                .map_err(|_| bad(format!("`{}` is not a site code", names::clip(&value))))
                .and_then(|s| f.site.take(&at, &field, op, s.to_string())),
            "staff_group" => {
                if matches!(value.parse::<u8>(), Ok(1..=10) if value.len() == 2) {
                    f.staff_group.take(&at, &field, op, value)
                } else {
                    Err(bad("a staff group is a national code, 01 to 10".into()))
                }
            }
            "pay_band" => {
                bounded(&at, &value, 50).and_then(|()| f.pay_band.take(&at, &field, op, value))
            }
            "department" => {
                bounded(&at, &value, 200).and_then(|()| f.department.take(&at, &field, op, value))
            }
            "ward" => match names::parse_name("filter", &value, "wards") {
                Ok((Owner::Site(_), _)) => f.ward.take(&at, &field, op, value),
                _ => Err(bad(format!(
                    "`{}` is not a ward: `sites/{{site}}/wards/{{ward}}`",
                    names::clip(&value)
                ))),
            },
            "course" => courses::parse_ref("filter", &value)
                .map_err(|_| {
                    bad(format!(
                        "`{}` is not a course: `trust/courses/{{course}}`",
                        names::clip(&value)
                    ))
                })
                .and_then(|id| f.course.take(&at, &field, op, id)),
            "source" => source(&value)
                .ok_or_else(|| {
                    bad(format!(
                        "`{}` is not a source (COURSE, HISTORIC_REGISTER, ESR_COMPETENCE, \
                         INTER_AUTHORITY_TRANSFER)",
                        names::clip(&value)
                    ))
                })
                .and_then(|s| f.source.take(&at, &field, op, s.as_str().to_owned())),
            "completion_date" => value
                .parse::<NaiveDate>()
                .map_err(|_| {
                    bad(format!(
                        "`{}` is not a date (YYYY-MM-DD)",
                        names::clip(&value)
                    ))
                })
                .and_then(|day| {
                    let next = day.checked_add_days(Days::new(1)).unwrap_or(day);
                    if f.completed.narrow(op, day, next) {
                        Ok(())
                    } else {
                        Err(bad("completion_date takes = < > <= >=".into()))
                    }
                }),
            _ => Err(bad(format!(
                "no field `{}` (fields: {FIELDS})",
                names::clip(&field)
            ))),
        };
        v.check(result);
    }
    v.finish()?;
    Ok(f)
}

fn bounded(at: &str, value: &str, max: usize) -> Result<(), Error> {
    if value.chars().count() > max {
        Err(Error::invalid(
            "filter",
            format!("{at}: the value is longer than {max} characters"),
        ))
    } else {
        Ok(())
    }
}

/// A source by its `CompletionSource` value name, with or without the prefix.
fn source(value: &str) -> Option<Source> {
    let name = value.strip_prefix("COMPLETION_SOURCE_").unwrap_or(value);
    Some(match name {
        "COURSE" => Source::Course,
        "HISTORIC_REGISTER" => Source::Historic,
        "ESR_COMPETENCE" => Source::Esr,
        "INTER_AUTHORITY_TRANSFER" => Source::Transfer,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(filter: &str) -> Result<Filter, Error> {
        parse(Filter::default(), filter)
    }

    fn refused(filter: &str) -> String {
        match read(filter) {
            Err(Error::InvalidArgument { violations }) => {
                assert!(violations.iter().all(|v| v.field == "filter"));
                violations
                    .iter()
                    .map(|v| v.description.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            }
            other => panic!("{filter}: {other:?}"),
        }
    }

    fn text(is: Option<&str>, not: &[&str]) -> Text {
        Text {
            is: is.map(Into::into),
            not: not.iter().map(|s| (*s).into()).collect(),
        }
    }

    #[test]
    fn each_field_reads_into_what_the_register_compares() {
        let day = |s: &str| s.parse::<NaiveDate>().unwrap();
        let f = read(
            r#"site = BAS AND site != SOU AND staff_group = 03 AND pay_band = "Band 5"
               AND department != "Ward 7" AND ward = sites/BAS/wards/cedar
               AND course = trust/courses/qsir-fund AND source != HISTORIC_REGISTER
               AND completion_date >= 2025-04-01 AND completion_date <= 2026-03-31"#,
        )
        .unwrap();
        assert_eq!(
            f,
            Filter {
                site: text(Some("BAS"), &["SOU"]),
                staff_group: text(Some("03"), &[]),
                pay_band: text(Some("Band 5"), &[]),
                department: text(None, &["Ward 7"]),
                ward: text(Some("sites/BAS/wards/cedar"), &[]),
                course: text(Some("qsir-fund"), &[]),
                source: text(None, &["historic"]),
                completed: Range {
                    from: Some(day("2025-04-01")),
                    before: Some(day("2026-04-01")),
                },
            }
        );
        assert_eq!(read("").unwrap(), Filter::default());
    }

    #[test]
    fn bad_terms_are_named_each() {
        let why = refused(
            "staff_group = 3 AND ward = sites/BAS/cedar AND source = NHSP AND grade = 5 \
             AND completion_date != 2025-01-01 AND pay_band > 5 AND site = bas",
        );
        for part in [
            "`staff_group = …`: a staff group is a national code",
            "`ward = …`: `sites/BAS/cedar` is not a ward",
            "`source = …`: `NHSP` is not a source",
            "`grade = …`: no field `grade`",
            "`completion_date != …`: completion_date takes",
            "`pay_band > …`: pay_band takes = !=",
            "`site = …`: `bas` is not a site code",
        ] {
            assert!(why.contains(part), "{part} in {why}");
        }
        assert!(
            refused("course = trust/courses/a AND course = trust/courses/b")
                .contains("given twice")
        );
    }

    #[test]
    fn site_terms_narrow_the_scope() {
        let sites = ["BAS", "BRM", "SOU"].map(|s| SiteCode::parse(s).unwrap());
        let f = read("site != SOU").unwrap();
        assert_eq!(
            f.sites(None, &sites),
            Some(vec!["BAS".into(), "BRM".into()])
        );
        let f = read("site = SOU").unwrap();
        assert_eq!(f.sites(Some(vec!["BAS".into()]), &sites), Some(vec![]));
        assert_eq!(read("").unwrap().sites(None, &sites), None);
    }
}
