//! Request body extraction with Marathon's error shapes: too large → 413, not JSON → 422,
//! an `orch.*` label anywhere in it → 422 (those labels are orch's own).

use super::{ApiError, MAX_BODY_BYTES};
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde_json::{Map, Value};

/// A request body that is a JSON object.
#[derive(Debug)]
pub struct JsonObject(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::TooLarge {
                        limit: MAX_BODY_BYTES,
                    }
                } else {
                    ApiError::InvalidJson {
                        reason: rejection.body_text(),
                    }
                }
            })?;
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(value) => match (orch_core::model::reserved_label(&value), value) {
                (Some(violation), _) => Err(ApiError::Invalid {
                    violations: vec![violation],
                }),
                (None, Value::Object(object)) => Ok(Self(object)),
                (None, _) => Err(ApiError::InvalidJson {
                    reason: "error.expected.jsobject".into(),
                }),
            },
            Err(error) => Err(ApiError::InvalidJson {
                reason: error.to_string(),
            }),
        }
    }
}
