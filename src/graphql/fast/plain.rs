//! Plain fields declared once: [`graphql_object!`] writes an object's `#[Object]` impl and,
//! from the same declarations, what the fast paths need to answer those fields from memory
//! (`plain_field_now`) or to have SQLite write them (`plain_field_sql`). A field cannot be
//! added to one and forgotten in the other.

use std::sync::OnceLock;

use async_graphql::{ID, Name, Value};
use chrono::{DateTime, Utc};

use super::eager::enum_value;
use crate::domain::{Executor, HttpMethod, ParameterLocation, RunnerKind, TestStatus, Verdict};

/// Whether the GraphQL name `field` is the field written `snake` in Rust (async-graphql's
/// camelCase rename: `target_tps` is `targetTps`, `p95_response_time` is `p95ResponseTime`).
pub fn is_field(field: &str, snake: &str) -> bool {
    let (mut field, mut snake) = (field.bytes(), snake.bytes());
    loop {
        match (field.next(), snake.next()) {
            (None, None) => return true,
            (Some(f), Some(b'_')) => match snake.next() {
                Some(s) if s.to_ascii_uppercase() == f => {}
                _ => return false,
            },
            (Some(f), Some(s)) if f == s => {}
            _ => return false,
        }
    }
}

/// A plain field's value as async-graphql would answer it, made without a future.
pub trait PlainValue {
    fn now(&self) -> Value;

    /// Whether SQLite stores it as 0 / 1 that JSON must write as `false` / `true`.
    const BOOLEAN: bool = false;
}

impl PlainValue for ID {
    fn now(&self) -> Value {
        Value::String(self.0.clone())
    }
}

impl PlainValue for String {
    fn now(&self) -> Value {
        Value::String(self.clone())
    }
}

impl PlainValue for bool {
    fn now(&self) -> Value {
        Value::Boolean(*self)
    }

    const BOOLEAN: bool = true;
}

impl PlainValue for i32 {
    fn now(&self) -> Value {
        Value::from(*self)
    }
}

impl PlainValue for i64 {
    fn now(&self) -> Value {
        Value::from(*self)
    }
}

impl PlainValue for f64 {
    fn now(&self) -> Value {
        async_graphql::InputType::to_value(self)
    }
}

impl PlainValue for DateTime<Utc> {
    fn now(&self) -> Value {
        async_graphql::InputType::to_value(self)
    }
}

impl<T: PlainValue> PlainValue for Option<T> {
    fn now(&self) -> Value {
        self.as_ref().map_or(Value::Null, T::now)
    }
}

/// Enums answer their item's name, one `Name` per item kept for the life of the process.
macro_rules! plain_enums {
    ($($enum:ty),*) => {$(
        impl PlainValue for $enum {
            fn now(&self) -> Value {
                static NAMES: OnceLock<Vec<Name>> = OnceLock::new();
                enum_value(*self, &NAMES)
            }
        }
    )*};
}
plain_enums!(Executor, HttpMethod, ParameterLocation, RunnerKind, TestStatus, Verdict);

/// An `#[Object]` impl whose plain fields are declared once, in the order the schema lists
/// them among the object's other fields:
///
/// ```ignore
/// graphql_object! {
///     impl Endpoint as this {
///         plain id: ID = to_id(this.row.id), sql "CAST(e.id AS TEXT)";
///         /// Documented like any field.
///         plain summary: Option<String> = this.row.summary.clone();
///         async fn tags(&self, ctx: &Context<'_>) -> Result<Vec<Tag>> { … }
///     }
/// }
/// ```
///
/// A plain field is one async-graphql resolves without context: `this` is the object. The
/// macro adds `plain_field_now(&self, name) -> Option<Value>` (the value of the plain field
/// `name`, `None` for any other field) and `plain_field_sql(name) -> Option<SqlColumn>` (the
/// SQL expression of a plain field that has one, and whether it is a boolean).
macro_rules! graphql_object {
    (impl $ty:ident as $this:ident { $($body:tt)* }) => {
        $crate::graphql::fast::plain::graphql_object!(@munch $ty, $this, [], [], $($body)*);
    };
    (@munch $ty:ident, $this:ident, [$($methods:tt)*], [$($plain:tt)*],
        $(#[doc = $doc:literal])*
        plain $name:ident : $out:ty = $value:expr $(, sql $sql:literal)? ; $($rest:tt)*) => {
        $crate::graphql::fast::plain::graphql_object!(@munch $ty, $this,
            [$($methods)* $(#[doc = $doc])* async fn $name(&self) -> $out { let $this = self; $value }],
            [$($plain)* ($name, $out, $value, [$($sql)?])],
            $($rest)*);
    };
    (@munch $ty:ident, $this:ident, [$($methods:tt)*], [$($plain:tt)*],
        $(#[$meta:meta])*
        async fn $name:ident ($($args:tt)*) -> $out:ty $body:block $($rest:tt)*) => {
        $crate::graphql::fast::plain::graphql_object!(@munch $ty, $this,
            [$($methods)* $(#[$meta])* async fn $name($($args)*) -> $out $body],
            [$($plain)*],
            $($rest)*);
    };
    (@munch $ty:ident, $this:ident, [$($methods:tt)*], [$(($name:ident, $out:ty, $value:expr, [$($sql:literal)?]))*], ) => {
        #[async_graphql::Object]
        impl $ty {
            $($methods)*
        }

        impl $ty {
            /// The value of the plain field `field` (see `graphql_object!`); `None` for others.
            #[allow(dead_code)]
            pub(crate) fn plain_field_now(&self, field: &str) -> Option<async_graphql::Value> {
                let $this = self;
                $(
                    if $crate::graphql::fast::plain::is_field(field, stringify!($name)) {
                        let value: $out = $value;
                        return Some($crate::graphql::fast::plain::PlainValue::now(&value));
                    }
                )*
                None
            }

            /// The SQL expression of the plain field `field`, when it has one.
            #[allow(dead_code, unused_variables)]
            pub(crate) fn plain_field_sql(field: &str) -> Option<$crate::db::repo::endpoints_json::SqlColumn> {
                $($(
                    if $crate::graphql::fast::plain::is_field(field, stringify!($name)) {
                        return Some($crate::db::repo::endpoints_json::SqlColumn {
                            sql: $sql,
                            boolean: <$out as $crate::graphql::fast::plain::PlainValue>::BOOLEAN,
                        });
                    }
                )?)*
                None
            }
        }
    };
}
pub(crate) use graphql_object;

#[cfg(test)]
mod tests {
    use super::is_field;

    #[test]
    fn graphql_names_match_their_rust_names() {
        assert!(is_field("id", "id"));
        assert!(is_field("targetTps", "target_tps"));
        assert!(is_field("p95ResponseTime", "p95_response_time"));
        assert!(is_field("k6ScriptFileName", "k6_script_file_name"));
        assert!(!is_field("targettps", "target_tps"));
        assert!(!is_field("targetTp", "target_tps"));
        assert!(!is_field("target_tps", "target_tps"));
        assert!(!is_field("title", "titles"));
    }
}
