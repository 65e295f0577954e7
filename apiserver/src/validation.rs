//! Stand-in until the full module lands.
use serde_json::Value;
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub reason: &'static str,
    pub field: String,
    pub message: String,
}
pub fn validate(
    _kind: &str,
    _obj: &Value,
    _old: Option<&Value>,
    _namespaced: bool,
) -> Vec<FieldError> {
    vec![]
}
