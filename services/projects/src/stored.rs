//! The stored (lower case) forms of the contract's enums: the [`Column`] trait, the
//! [`column_enum!`] macro each resource uses for the enums it owns, and the readers of enum
//! fields in requests and rows; and [`fetch_optional_locked!`], a read locked on request.

use qi_platform::Error;
use qi_proto::projects as pb;

/// An internal error for a stored value the code did not expect.
pub(crate) fn unexpected(what: &str, value: &str) -> Error {
    Error::Internal(anyhow::anyhow!("stored {what} {value}"))
}

/// An enum of the contract with a stored form.
pub(crate) trait Column: Sized + Copy + TryFrom<i32> {
    /// The stored form, `None` for the unspecified value.
    fn column(self) -> Option<&'static str>;
    /// Reads the stored form back.
    fn from_column(s: &str) -> Result<Self, Error>;
}

/// Maps one of the contract's enums to and from its stored (lower case) form; the
/// unspecified value has no stored form.
macro_rules! column_enum {
    ($ty:ident, $what:literal, { $($variant:ident => $col:literal),+ $(,)? }) => {
        impl $crate::stored::Column for qi_proto::projects::$ty {
            fn column(self) -> Option<&'static str> {
                match self {
                    Self::Unspecified => None,
                    $(Self::$variant => Some($col),)+
                }
            }
            fn from_column(s: &str) -> Result<Self, qi_platform::Error> {
                match s {
                    $($col => Ok(Self::$variant),)+
                    other => Err($crate::stored::unexpected($what, other)),
                }
            }
        }
    };
}
pub(crate) use column_enum;

/// Fetches the optional row of a checked `query_as!` (`sqlx::query_as!(Type, sql, args)` or
/// a store's `rows!(head, tail, args)`), with ` FOR UPDATE` after its SQL when `$lock`: two
/// statements, each checked at build time, as the macros take only literals.
macro_rules! fetch_optional_locked {
    ($conn:expr, $lock:expr, $($m:ident)::+!($ty:ident, $sql:literal, $($arg:expr),* $(,)?)) => {
        if $lock {
            $($m)::+!($ty, $sql + " FOR UPDATE", $($arg),*).fetch_optional(&mut *$conn).await?
        } else {
            $($m)::+!($ty, $sql, $($arg),*).fetch_optional(&mut *$conn).await?
        }
    };
    ($conn:expr, $lock:expr, $m:ident!($head:literal, $tail:literal, $($arg:expr),* $(,)?)) => {
        if $lock {
            $m!($head, $tail + " FOR UPDATE", $($arg),*).fetch_optional(&mut *$conn).await?
        } else {
            $m!($head, $tail, $($arg),*).fetch_optional(&mut *$conn).await?
        }
    };
}
pub(crate) use fetch_optional_locked;

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

/// An enum's stored form from its value name in a `filter` term (`at`), with or without
/// its `prefix`.
pub(crate) fn enum_value<E>(at: &str, prefix: &str, value: &str) -> Result<&'static str, Error>
where
    E: Column + Copy + EnumName,
{
    let full = if value.starts_with(prefix) {
        value.to_owned()
    } else {
        format!("{prefix}{value}")
    };
    E::from_name(&full).and_then(|e| e.column()).ok_or_else(|| {
        Error::invalid(
            "filter",
            format!("{at}: `{}` is not a value", qi_platform::names::clip(value)),
        )
    })
}

/// prost's generated `from_str_name`, for the enums a filter names.
pub(crate) trait EnumName: Sized {
    fn from_name(name: &str) -> Option<Self>;
}

impl EnumName for pb::QsirPhase {
    fn from_name(name: &str) -> Option<Self> {
        Self::from_str_name(name)
    }
}

impl EnumName for pb::ProjectState {
    fn from_name(name: &str) -> Option<Self> {
        Self::from_str_name(name)
    }
}

impl EnumName for pb::IdeaState {
    fn from_name(name: &str) -> Option<Self> {
        Self::from_str_name(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qi_proto::projects as pb;

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
}
