//! Placement constraints, `[field, OPERATOR, value?]` as Marathon apps write them.

use serde_json::Value;

/// A constraint operator (matched case-insensitively on input).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Operator {
    /// No two instances share the field value.
    Unique,
    /// All instances share one value (the given one, or the first placed).
    Cluster,
    /// Spread evenly over the values (optionally expecting that many groups).
    GroupBy,
    /// The value fully matches a regex.
    Like,
    /// The value does not fully match a regex, or is absent.
    Unlike,
    /// At most N instances per value.
    MaxPer,
    /// The value equals the given one.
    Is,
}

impl Operator {
    /// Marathon's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unique => "UNIQUE",
            Self::Cluster => "CLUSTER",
            Self::GroupBy => "GROUP_BY",
            Self::Like => "LIKE",
            Self::Unlike => "UNLIKE",
            Self::MaxPer => "MAX_PER",
            Self::Is => "IS",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [
            Self::Unique,
            Self::Cluster,
            Self::GroupBy,
            Self::Like,
            Self::Unlike,
            Self::MaxPer,
            Self::Is,
        ]
        .into_iter()
        .find(|op| op.as_str().eq_ignore_ascii_case(text))
    }
}

/// One placement constraint. `field` is `hostname` (also `@hostname`) or an attribute name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Constraint {
    /// `hostname` or an agent attribute name.
    pub field: String,
    /// How the field is compared.
    pub operator: Operator,
    /// The operator's argument, if any.
    pub value: Option<String>,
}

impl Constraint {
    /// Parses one entry of an app's `constraints`, with Marathon's validation messages.
    /// LIKE/UNLIKE patterns are checked for presence here; compiling them is the
    /// scheduler's job.
    pub fn parse(entry: &Value) -> Result<Self, String> {
        let parts: Vec<&str> = match entry {
            Value::Array(items) => items
                .iter()
                .map(|item| {
                    item.as_str()
                        .ok_or_else(|| "Each constraint must be an array of strings".to_owned())
                })
                .collect::<Result<_, _>>()?,
            _ => return Err("Each constraint must be an array of strings".into()),
        };
        if !(2..=3).contains(&parts.len()) {
            return Err("Each constraint must have either 2 or 3 fields".into());
        }
        let field = parts[0].trim();
        if field.is_empty() {
            return Err("missing field for constraint declaration".into());
        }
        let operator = Operator::parse(parts[1]).ok_or_else(|| {
            "operator must be one of the following UNIQUE, CLUSTER, GROUP_BY, LIKE, MAX_PER, UNLIKE or IS".to_owned()
        })?;
        let value = parts.get(2).map(|v| (*v).to_owned());
        match (operator, value.as_deref()) {
            (Operator::Unique, Some(_)) => return Err("UNIQUE does not accept a value".into()),
            (Operator::Like | Operator::Unlike, None) => {
                return Err(format!("{} requires a non-empty value", operator.as_str()))
            }
            (Operator::MaxPer, v) if v.and_then(|v| v.parse::<u32>().ok()).is_none() => {
                return Err("MAX_PER requires an integer value".into())
            }
            (Operator::GroupBy, Some(v))
                if !v.is_empty() && v != "inf" && v.parse::<u32>().is_err() =>
            {
                return Err("GROUP_BY value must be empty or an integer".into())
            }
            (Operator::Is, None) => return Err("IS requires a value".into()),
            _ => {}
        }
        let field = if field == "@hostname" {
            "hostname"
        } else {
            field
        };
        Ok(Self {
            field: field.to_owned(),
            operator,
            value,
        })
    }

    /// The JSON array form.
    pub fn to_json(&self) -> Value {
        let mut parts = vec![
            Value::String(self.field.clone()),
            Value::String(self.operator.as_str().into()),
        ];
        if let Some(value) = &self.value {
            parts.push(Value::String(value.clone()));
        }
        Value::Array(parts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_and_validates_like_marathon() {
        let unique = Constraint::parse(&json!(["hostname", "unique"])).expect("valid");
        assert_eq!(unique.operator, Operator::Unique);
        assert_eq!(unique.to_json(), json!(["hostname", "UNIQUE"]));
        let max = Constraint::parse(&json!(["rack", "MAX_PER", "2"])).expect("valid");
        assert_eq!(max.value.as_deref(), Some("2"));
        for (bad, message) in [
            (
                json!(["hostname"]),
                "Each constraint must have either 2 or 3 fields",
            ),
            (json!(["hostname", "NEAR"]), "operator must be one of"),
            (
                json!(["hostname", "UNIQUE", "x"]),
                "UNIQUE does not accept a value",
            ),
            (
                json!(["rack", "MAX_PER", "x"]),
                "MAX_PER requires an integer value",
            ),
        ] {
            let error = Constraint::parse(&bad).expect_err("invalid");
            assert!(error.starts_with(message), "{error}");
        }
    }
}
