//! ListProjects' `filter`: the terms [`qi_filter`] reads, turned into what the list's one
//! statement compares (each `None` or empty: no condition). Every bad term is named under
//! `filter`, saying which term and why.

use chrono::{DateTime, Days, NaiveDate, Utc};
use qi_filter::{Op, Range};
use qi_platform::extract;
use qi_platform::names::{self, Owner, OwnerAccess as _};
use qi_platform::{AccessContext, Error, Violations};
use qi_proto::projects as pb;

use crate::foreign;
use crate::stored::enum_value;

/// What a filter asks of the projects listed.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Terms {
    pub(super) phase: Option<&'static str>,
    pub(super) not_phases: Vec<String>,
    pub(super) state: Option<&'static str>,
    pub(super) not_states: Vec<String>,
    /// A ward name, `sites/{site}/wards/{ward}`, as projects store them.
    pub(super) ward: Option<String>,
    /// A programme, `(site column, id)`.
    pub(super) programme: Option<(Option<String>, String)>,
    /// The team lead's canonical staff name.
    pub(super) lead: Option<String>,
    /// Whose lead is gone, as the HR sync's feed says: `left`, `moved` or `gone` (either).
    pub(super) lead_status: Option<&'static str>,
    /// A theme, lower case.
    pub(super) theme: Option<String>,
    pub(super) not_themes: Vec<String>,
    /// A `LIKE` pattern (its wildcards escaped) for the words of `text`.
    pub(super) text: Option<String>,
    /// Started on or after.
    pub(super) started_from: Option<NaiveDate>,
    /// Started before.
    pub(super) started_before: Option<NaiveDate>,
    /// Led from or taking part from this site.
    pub(super) site: Option<String>,
    /// Last changed in this range (a nightly extract's).
    pub(super) updated: Range<DateTime<Utc>>,
}

const FIELDS: &str =
    "phase, state, ward, programme, lead, lead_status, theme, text, start_date, site, update_time";

/// Reads `filter` for a caller `ctx` (whose `staff/me` and programmes' sites it checks).
pub(super) fn parse(ctx: &AccessContext, filter: &str) -> Result<Terms, Error> {
    let (terms, updated) = extract::read_filter(filter)?;
    let mut t = Terms {
        updated,
        ..Terms::default()
    };
    let mut v = Violations::new();
    for term in terms {
        let qi_filter::Term { field, op, value } = term;
        let at = format!("`{field} {op} …`");
        let only = |ops: &[Op]| -> Result<(), Error> {
            if ops.contains(&op) {
                Ok(())
            } else {
                let allowed: Vec<String> = ops.iter().map(Op::to_string).collect();
                Err(Error::invalid(
                    "filter",
                    format!("{at}: {field} takes {}", allowed.join(" ")),
                ))
            }
        };
        let once = |set: bool| -> Result<(), Error> {
            if set {
                Err(Error::invalid(
                    "filter",
                    format!("{at}: {field} = is given twice"),
                ))
            } else {
                Ok(())
            }
        };
        let result = match field.as_str() {
            "phase" => only(&[Op::Eq, Op::Ne]).and_then(|()| {
                let phase = enum_value::<pb::QsirPhase>(&at, "QSIR_PHASE_", &value)?;
                if op == Op::Eq {
                    once(t.phase.is_some())?;
                    t.phase = Some(phase);
                } else {
                    t.not_phases.push(phase.to_owned());
                }
                Ok(())
            }),
            "state" => only(&[Op::Eq, Op::Ne]).and_then(|()| {
                let state = enum_value::<pb::ProjectState>(&at, "PROJECT_STATE_", &value)?;
                if op == Op::Eq {
                    once(t.state.is_some())?;
                    t.state = Some(state);
                } else {
                    t.not_states.push(state.to_owned());
                }
                Ok(())
            }),
            "ward" => only(&[Op::Eq]).and_then(|()| {
                once(t.ward.is_some())?;
                match names::parse_name("filter", &value, crate::wards::COLLECTION)? {
                    (Owner::Site(_), _) => t.ward = Some(value),
                    (Owner::Trust, _) => {
                        return Err(Error::invalid(
                            "filter",
                            format!("{at}: wards belong to a site"),
                        ));
                    }
                }
                Ok(())
            }),
            "programme" => only(&[Op::Eq]).and_then(|()| {
                once(t.programme.is_some())?;
                let (owner, id) =
                    names::parse_name("filter", &value, crate::programmes::COLLECTION)?;
                // A programme of a site the caller does not hold is refused, as its name is.
                owner.check_read(ctx)?;
                t.programme = Some((owner.site_column().map(str::to_owned), id));
                Ok(())
            }),
            "lead" => only(&[Op::Eq]).and_then(|()| {
                once(t.lead.is_some())?;
                t.lead = Some(foreign::person(ctx, "filter", &value)?);
                Ok(())
            }),
            "lead_status" => only(&[Op::Eq]).and_then(|()| {
                once(t.lead_status.is_some())?;
                t.lead_status = Some(match value.to_ascii_uppercase().as_str() {
                    "LEFT" => "left",
                    "MOVED" => "moved",
                    "GONE" => "gone",
                    _ => {
                        return Err(Error::invalid(
                            "filter",
                            format!(
                                "{at}: `{}` is not a value (LEFT, MOVED or GONE)",
                                names::clip(&value)
                            ),
                        ));
                    }
                });
                Ok(())
            }),
            "theme" => only(&[Op::Eq, Op::Ne]).and_then(|()| {
                let theme = value.trim().to_lowercase();
                if op == Op::Eq {
                    once(t.theme.is_some())?;
                    t.theme = Some(theme);
                } else {
                    t.not_themes.push(theme);
                }
                Ok(())
            }),
            "text" => only(&[Op::Eq]).and_then(|()| {
                once(t.text.is_some())?;
                let words = value.split_whitespace().collect::<Vec<_>>().join(" ");
                if words.is_empty() {
                    return Err(Error::invalid("filter", format!("{at}: text needs words")));
                }
                t.text = Some(like_pattern(&words));
                Ok(())
            }),
            "start_date" => {
                let day: NaiveDate = value.parse().map_err(|_| {
                    Error::invalid(
                        "filter",
                        format!("{at}: `{}` is not a date (YYYY-MM-DD)", names::clip(&value)),
                    )
                })?;
                let next = day.checked_add_days(Days::new(1)).unwrap_or(day);
                let mut range = qi_filter::Range {
                    from: t.started_from,
                    before: t.started_before,
                };
                if !range.narrow(op, day, next) {
                    return Err(Error::invalid(
                        "filter",
                        format!("{at}: start_date takes = < > <= >="),
                    ));
                }
                (t.started_from, t.started_before) = (range.from, range.before);
                Ok(())
            }
            "site" => extract::take_site(&mut t.site, &at, op, &value),
            _ => Err(Error::invalid(
                "filter",
                format!(
                    "{at}: no field `{}` (fields: {FIELDS})",
                    names::clip(&field)
                ),
            )),
        };
        v.check(result);
    }
    v.finish()?;
    Ok(t)
}

/// A case-insensitive `LIKE` pattern finding `words` anywhere, its own `%`, `_` and `\`
/// taken literally.
fn like_pattern(words: &str) -> String {
    let mut p = String::from("%");
    for c in words.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::caller;

    fn read(filter: &str) -> Result<Terms, Error> {
        parse(&caller(Some("00123456")), filter)
    }

    fn refused(filter: &str) -> String {
        match read(filter) {
            Err(Error::InvalidArgument { violations }) => {
                assert!(
                    violations.iter().all(|v| v.field == "filter"),
                    "{violations:?}"
                );
                violations
                    .iter()
                    .map(|v| v.description.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            }
            other => panic!("{filter}: {other:?}"),
        }
    }

    #[test]
    fn each_field_reads_into_what_the_list_compares() {
        let t = read(
            r#"phase = PILOT_AND_IMPLEMENT AND phase != QSIR_PHASE_START_OUT AND state != COMPLETED
               AND ward = sites/BAS/wards/cedar AND programme = trust/programmes/flow
               AND lead = staff/me AND lead_status = gone AND theme = " Flow " AND theme != falls
               AND text = "50%  off_site" AND start_date >= 2025-04-01 AND start_date < 2026-04-01
               AND start_date <= 2026-01-31"#,
        )
        .unwrap();
        assert_eq!(
            t,
            Terms {
                phase: Some("pilot_and_implement"),
                not_phases: vec!["start_out".into()],
                state: None,
                not_states: vec!["completed".into()],
                ward: Some("sites/BAS/wards/cedar".into()),
                programme: Some((None, "flow".into())),
                lead: Some("staff/00123456".into()),
                lead_status: Some("gone"),
                theme: Some("flow".into()),
                not_themes: vec!["falls".into()],
                text: Some(r"%50\% off\_site%".into()),
                started_from: Some("2025-04-01".parse().unwrap()),
                started_before: Some("2026-02-01".parse().unwrap()),
                ..Terms::default()
            }
        );
        let on = read("start_date = 2025-06-30").unwrap();
        assert_eq!(
            (on.started_from, on.started_before),
            (
                Some("2025-06-30".parse().unwrap()),
                Some("2025-07-01".parse().unwrap())
            )
        );
        assert_eq!(read("").unwrap(), Terms::default());
    }

    #[test]
    fn a_bad_term_is_refused_under_filter_saying_which_and_why() {
        assert!(refused("colour = red").contains("no field `colour` (fields: phase,"));
        assert!(refused("phase = LAUNCH").contains("`phase = …`: `LAUNCH` is not a value"));
        assert!(refused("phase = UNSPECIFIED").contains("is not a value"));
        assert!(refused("ward != sites/BAS/wards/cedar").contains("ward takes ="));
        assert!(refused("theme < a").contains("theme takes = !="));
        assert!(refused("phase = START_OUT AND phase = DEFINE_AND_SCOPE").contains("given twice"));
        assert!(refused("start_date > 1 April").contains("expected `AND`"));
        assert!(refused("start_date > April").contains("not a date"));
        assert!(refused("text = \"  \"").contains("text needs words"));
        assert!(refused("ward = trust/wards/x").contains("wards belong to a site"));
        assert!(refused("lead = 12345678").contains("staff/"));
        assert!(refused("lead_status = AWAY").contains("LEFT, MOVED or GONE"));
        assert!(refused("lead_status != LEFT").contains("lead_status takes ="));
        // Every bad term at once.
        let all = refused("colour = red AND phase = LAUNCH");
        assert!(all.contains("colour") && all.contains("LAUNCH"), "{all}");
    }

    #[test]
    fn a_programme_of_a_site_the_caller_does_not_hold_is_refused() {
        let bas = AccessContext {
            sites: qi_platform::SiteScope::from_claim(&["BAS".into()]).unwrap(),
            ..caller(None)
        };
        assert!(parse(&bas, "programme = sites/BAS/programmes/p").is_ok());
        assert!(matches!(
            parse(&bas, "programme = sites/SOU/programmes/p"),
            Err(Error::PermissionDenied { .. })
        ));
    }
}
