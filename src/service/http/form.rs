//! Reading fields out of a JSON body, collecting every problem in DRF's
//! shape: `{"field": ["message"]}`.

use crate::service::{FieldErrors, ServiceError};
use serde_json::{Map, Value};

pub struct Form<'a> {
    fields: Option<&'a Map<String, Value>>,
    errors: FieldErrors,
}

const REQUIRED: &str = "This field is required.";

impl<'a> Form<'a> {
    /// A missing body reads as an empty object; anything but an object is
    /// refused whole.
    pub fn new(body: Option<&'a Value>) -> Result<Form<'a>, ServiceError> {
        let fields = match body {
            None => None,
            Some(Value::Object(map)) => Some(map),
            Some(other) => {
                return Err(ServiceError::field(
                    "non_field_errors",
                    format!(
                        "Invalid data. Expected a dictionary, but got {}.",
                        type_name(other)
                    ),
                ))
            }
        };
        Ok(Form {
            fields,
            errors: FieldErrors::new(),
        })
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.fields.and_then(|m| m.get(key))
    }

    fn error(&mut self, key: &str, message: &str) {
        self.errors
            .entry(key.to_string())
            .or_default()
            .push(message.to_string());
    }

    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// A non-negative integer that fits u64.
    pub fn int(&mut self, key: &str, required: bool) -> Option<u64> {
        match self.get(key) {
            None if required => {
                self.error(key, REQUIRED);
                None
            }
            None => None,
            Some(v) => match v.as_u64() {
                Some(n) => Some(n),
                None => {
                    self.error(key, "A valid integer is required.");
                    None
                }
            },
        }
    }

    pub fn string(&mut self, key: &str, required: bool) -> Option<String> {
        match self.get(key) {
            None if required => {
                self.error(key, REQUIRED);
                None
            }
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Null) => {
                self.error(key, "This field may not be null.");
                None
            }
            Some(_) => {
                self.error(key, "Not a valid string.");
                None
            }
        }
    }

    /// Every field problem found, or Ok.
    pub fn finish(self) -> Result<(), ServiceError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ServiceError::Fields(self.errors))
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}
