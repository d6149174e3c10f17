//! What the projects service's resources share: the
//! stored forms of the contract's enums, and the precondition errors.

use qi_platform::Error;
use qi_proto::projects as pb;

pub(crate) use qi_platform::calendar::{not_future, today};
pub(crate) use qi_platform::convert::{check_etag, long_text, optional_date, optional_text};

/// A FAILED_PRECONDITION.
pub(crate) fn precondition(reason: &'static str, message: impl Into<String>) -> Error {
    Error::FailedPrecondition {
        reason,
        message: message.into(),
    }
}

/// An internal error for a stored value the code does not know.
pub(crate) fn stored(what: &str, value: &str) -> Error {
    Error::Internal(anyhow::anyhow!("stored {what} {value}"))
}

/// Maps one of the contract's enums to and from its stored (lower case) form; the
/// unspecified value has no stored form.
macro_rules! column_enum {
    ($ty:ident, $what:literal, { $($variant:ident => $col:literal),+ $(,)? }) => {
        impl crate::common::Column for pb::$ty {
            fn column(self) -> Option<&'static str> {
                match self {
                    pb::$ty::Unspecified => None,
                    $(pb::$ty::$variant => Some($col),)+
                }
            }
            fn from_column(s: &str) -> Result<Self, Error> {
                match s {
                    $($col => Ok(pb::$ty::$variant),)+
                    other => Err(crate::common::stored($what, other)),
                }
            }
        }
    };
}

/// An enum of the contract with a stored form.
pub(crate) trait Column: Sized + Copy + TryFrom<i32> {
    /// The stored form, `None` for the unspecified value.
    fn column(self) -> Option<&'static str>;
    /// Reads the stored form back.
    fn from_column(s: &str) -> Result<Self, Error>;
}

/// Reads an enum field of a request: `None` when unspecified, refused when unknown.
pub(crate) fn enum_field<E: Column>(field: &str, value: i32) -> Result<Option<E>, Error> {
    E::try_from(value)
        .map_err(|_| Error::invalid(field, format!("{value} is not a known value")))
        .map(|e| e.column().map(|_| e))
}

/// Reads a required enum field: unspecified is refused, naming the field.
pub(crate) fn required_enum<E: Column + Default>(field: &str, value: i32) -> Result<E, Error> {
    enum_field(field, value)?.ok_or_else(|| Error::invalid(field, "is required"))
}

/// Reads an optional stored enum back (`Unspecified` when NULL) as its wire number.
pub(crate) fn from_optional<E: Column + Into<i32>>(s: Option<&str>) -> Result<i32, Error> {
    match s {
        None => Ok(0),
        Some(s) => E::from_column(s).map(Into::into),
    }
}

column_enum!(IdeaState, "idea state", {
    Submitted => "submitted",
    UnderReview => "under_review",
    Accepted => "accepted",
    Declined => "declined",
    Merged => "merged",
});
column_enum!(ProjectState, "project state", {
    Scoping => "scoping",
    InProgress => "in_progress",
    Completed => "completed",
    Stopped => "stopped",
});
column_enum!(PatientInvolvement, "patient involvement", {
    None => "none",
    Informing => "informing",
    Consulting => "consulting",
    Engaging => "engaging",
    CoDesigning => "co_designing",
    CoProducing => "co_producing",
});
column_enum!(BenefitKind, "benefit kind", {
    BedDaysSaved => "bed_days_saved",
    ComplaintsAvoided => "complaints_avoided",
    StaffHoursReleased => "staff_hours_released",
    CostSaved => "cost_saved",
    HarmEventsAvoided => "harm_events_avoided",
    Other => "other",
});
column_enum!(TeamRole, "team role", {
    Lead => "lead",
    Member => "member",
    Sponsor => "sponsor",
    Coach => "coach",
    PatientPartner => "patient_partner",
});
column_enum!(MeasureKind, "measure kind", {
    Outcome => "outcome",
    Process => "process",
    Balancing => "balancing",
});
column_enum!(PdsaDecision, "PDSA decision", {
    Adopt => "adopt",
    Adapt => "adapt",
    Abandon => "abandon",
});
column_enum!(EngagementKind, "engagement kind", {
    Survey => "survey",
    Interview => "interview",
    FocusGroup => "focus_group",
    Workshop => "workshop",
    PatientStory => "patient_story",
    Other => "other",
});
column_enum!(ProgrammeKind, "programme kind", {
    TrainingWrapped => "training_wrapped",
    WardProgramme => "ward_programme",
    Thematic => "thematic",
});
column_enum!(WardStage, "ward stage", {
    Diagnostic => "diagnostic",
    Assessment => "assessment",
    Accredited => "accredited",
    Withdrawn => "withdrawn",
});
column_enum!(PortfolioPeriod, "portfolio period", {
    FinancialYear => "fy",
    Quarter => "quarter",
    Month => "month",
});
column_enum!(AccreditationRating, "rating", {
    Bronze => "bronze",
    Silver => "silver",
    Gold => "gold",
});

/// Checks a resource name of another service, `sites/{site}/{collection}/{id}` or
/// `trust/{collection}/{id}`, by form only: this service stores it and never reads the
/// other service's schema.
pub(crate) fn foreign_name(field: &str, value: &str, collection: &str) -> Result<String, Error> {
    qi_platform::names::parse_name(field, value, collection).map(|_| value.to_owned())
}

/// Checks a staff name `sites/{site}/staff/{employee_number}` (ESR employee numbers are
/// 5 to 12 digits), by form only.
pub(crate) fn staff_name(field: &str, value: &str) -> Result<String, Error> {
    let bad = || {
        Error::invalid(
            field,
            format!(
                "`{}` is not a staff name: `sites/{{site}}/staff/{{employee_number}}`",
                qi_platform::names::clip(value)
            ),
        )
    };
    let rest = value.strip_prefix("sites/").ok_or_else(bad)?;
    let (site, number) = rest.split_once("/staff/").ok_or_else(bad)?;
    qi_platform::SiteCode::parse(site).map_err(|e| Error::invalid(field, e))?;
    if (5..=12).contains(&number.len()) && number.bytes().all(|b| b.is_ascii_digit()) {
        Ok(value.to_owned())
    } else {
        Err(bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip_their_stored_form_and_unspecified_is_none() {
        assert_eq!(pb::IdeaState::UnderReview.column(), Some("under_review"));
        assert_eq!(
            pb::IdeaState::from_column("under_review").unwrap(),
            pb::IdeaState::UnderReview
        );
        assert_eq!(pb::IdeaState::Unspecified.column(), None);
        assert!(pb::IdeaState::from_column("lost").is_err());
        assert!(enum_field::<pb::TeamRole>("role", 99).is_err());
        assert!(required_enum::<pb::TeamRole>("role", 0).is_err());
    }

    #[test]
    fn texts_may_span_lines_but_not_hold_other_controls() {
        assert_eq!(optional_text("t", " a\nb ", 10).unwrap(), "a\nb");
        assert!(optional_text("t", "a\u{7}", 10).is_err());
        assert!(long_text("t", "  ", 10).is_err());
    }

    #[test]
    fn staff_names_are_checked_by_form() {
        assert!(staff_name("s", "sites/BAS/staff/12345678").is_ok());
        for bad in [
            "sites/-/staff/12345678",
            "sites/BAS/staff/12ab",
            "staff/12345678",
        ] {
            assert!(staff_name("s", bad).is_err(), "{bad}");
        }
    }
}
