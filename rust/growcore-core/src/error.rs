//! The core's one error type. Every variant names the argument at fault and the bad value, so the
//! bindings can map it to a specific Python exception without rewording it.

use thiserror::Error;

pub type Result<T> = std::result::Result<T, GrowError>;

#[derive(Debug, Clone, PartialEq, Error)]
pub enum GrowError {
    /// A value of the right type that is not acceptable (shape, range of a real, duplicates...).
    #[error("{arg}: {msg}")]
    InvalidArgument { arg: String, msg: String },

    /// An index (layer, slot, id) outside the valid range.
    #[error("{arg}: {value} is out of range for {what} (valid: 0..{bound})")]
    OutOfRange {
        arg: String,
        /// Wide enough for any 64-bit value, signed or not.
        value: i128,
        bound: u64,
        what: String,
    },

    /// A block that should exist does not, or one that should not exist does.
    #[error("block ({src}, {dst}): {msg}")]
    Block { src: u32, dst: u32, msg: String },

    /// An edge that should exist does not, or one that should not exist does.
    #[error("{arg}: edge (row {row}, col {col}) of block ({src}, {dst}) {msg}")]
    Edge {
        arg: String,
        src: u32,
        dst: u32,
        row: u32,
        col: u32,
        msg: String,
    },

    /// An operation would remove a frozen edge; unfreeze it first.
    #[error("{arg}: edge (row {row}, col {col}) of block ({src}, {dst}) is frozen; unfreeze it before removing it")]
    FrozenEdge {
        arg: String,
        src: u32,
        dst: u32,
        row: u32,
        col: u32,
    },

    /// NaN or inf where a finite number is needed: scores, or statistics in strict mode.
    #[error("{arg}[{index}]: non-finite value {value}{why}")]
    NonFinite {
        arg: String,
        index: usize,
        value: f32,
        /// Why it is refused, when that is not obvious (" (strict mode is on)"), or "".
        why: &'static str,
    },

    /// A state dict or byte string that is malformed or inconsistent.
    #[error("state[{field:?}]: {msg}")]
    State { field: String, msg: String },
}

impl GrowError {
    pub fn invalid(arg: impl Into<String>, msg: impl Into<String>) -> Self {
        GrowError::InvalidArgument {
            arg: arg.into(),
            msg: msg.into(),
        }
    }

    pub fn out_of_range(
        arg: impl Into<String>,
        value: impl Into<i128>,
        bound: u64,
        what: impl Into<String>,
    ) -> Self {
        GrowError::OutOfRange {
            arg: arg.into(),
            value: value.into(),
            bound,
            what: what.into(),
        }
    }

    pub fn state(field: impl Into<String>, msg: impl Into<String>) -> Self {
        GrowError::State {
            field: field.into(),
            msg: msg.into(),
        }
    }

    /// Re-labels any error as a state error for `field`: used when rebuilding from a state dict,
    /// where the culprit is the stored field rather than a call argument.
    pub fn into_state(self, field: &str) -> Self {
        match self {
            GrowError::State { .. } => self,
            other => GrowError::state(field, other.to_string()),
        }
    }
}
