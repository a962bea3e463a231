//! Custom scalars: `Won`, a 64-bit amount of won sent as a JSON number (never a float, never the
//! 32-bit GraphQL `Int`). `DateTime` comes from async-graphql's chrono support (RFC 3339, UTC).

use async_graphql::{ID, InputValueError, InputValueResult, Scalar, ScalarType, Value};
use serde::{Deserialize, Serialize};

/// An amount of Korean won: a whole number that may exceed 32 bits.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Won(pub i64);

/// A 64-bit integer amount of won, as a JSON number.
#[Scalar(name = "Won")]
impl ScalarType for Won {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::Number(number) => number.as_i64().map(Won).ok_or_else(|| {
                InputValueError::custom("Won must be a whole number of won within 64 bits")
            }),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn is_valid(value: &Value) -> bool {
        matches!(value, Value::Number(n) if n.is_i64())
    }

    fn to_value(&self) -> Value {
        Value::Number(self.0.into())
    }
}

/// Parses a numeric `ID`; `None` when it is not one.
pub fn parse_id(id: &ID) -> Option<i64> {
    id.parse::<i64>().ok().filter(|id| *id > 0)
}
