//! Columns of TEXT that hold one word of a fixed set (seat states, license models, roles):
//! parsed into their enum when a row is read, so the rest of the code compares enums, never
//! strings.

use std::fmt::Debug;

use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::Text;

/// An enum stored as one word.
pub trait StoredWord: Sized + Copy + Debug + 'static {
    /// What the column holds (for the error when a row holds something else).
    const WHAT: &'static str;
    /// The stored word.
    fn as_str(self) -> &'static str;
    /// The value of a stored word.
    fn from_word(word: &str) -> Option<Self>;
}

/// The column form of a [`StoredWord`]; row structs name it in `deserialize_as` /
/// `serialize_as` and hold the enum itself.
#[derive(Debug, Clone, Copy, FromSqlRow, AsExpression)]
#[diesel(sql_type = Text)]
pub struct Word<T: StoredWord>(pub T);

impl<T: StoredWord, DB: Backend> FromSql<Text, DB> for Word<T>
where
    String: FromSql<Text, DB>,
{
    fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
        let text = String::from_sql(bytes)?;
        T::from_word(&text)
            .map(Word)
            .ok_or_else(|| format!("unknown {} {text:?} in the database", T::WHAT).into())
    }
}

impl<T: StoredWord, DB: Backend> ToSql<Text, DB> for Word<T>
where
    str: ToSql<Text, DB>,
{
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, DB>) -> serialize::Result {
        self.0.as_str().to_sql(out)
    }
}

/// Implements [`StoredWord`] and the conversions to and from [`Word`] for an enum, from its
/// list of `Variant => "word"` pairs, or, for an enum whose words are defined elsewhere (the
/// device crate's `LicenseModel`), from its inherent
/// `as_str` and the list of every value: `stored_word!(T, "what", words of T::ALL)`.
#[macro_export]
macro_rules! stored_word {
    (@convert $ty:ty) => {
        impl From<$crate::db::word::Word<$ty>> for $ty {
            fn from(word: $crate::db::word::Word<$ty>) -> Self {
                word.0
            }
        }
        impl From<$ty> for $crate::db::word::Word<$ty> {
            fn from(value: $ty) -> Self {
                $crate::db::word::Word(value)
            }
        }
    };
    ($ty:ty, $what:literal, { $($variant:ident => $word:literal),+ $(,)? }) => {
        impl $crate::db::word::StoredWord for $ty {
            const WHAT: &'static str = $what;
            fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $word),+ }
            }
            fn from_word(word: &str) -> Option<Self> {
                match word { $($word => Some(Self::$variant),)+ _ => None }
            }
        }
        $crate::stored_word!(@convert $ty);
    };
    ($ty:ty, $what:literal, words of $all:expr) => {
        impl $crate::db::word::StoredWord for $ty {
            const WHAT: &'static str = $what;
            fn as_str(self) -> &'static str {
                <$ty>::as_str(self)
            }
            fn from_word(word: &str) -> Option<Self> {
                $all.into_iter().find(|value| <$ty>::as_str(*value) == word)
            }
        }
        $crate::stored_word!(@convert $ty);
    };
}
