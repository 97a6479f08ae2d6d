//! The binary encoding of everything Raft writes or sends: log entries, log metadata,
//! snapshots and RPC bodies. MessagePack with field names (so structs may gain fields):
//! about half the CPU of JSON for app definitions, which are mostly strings.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The media type of encoded RPC bodies.
pub const CONTENT_TYPE: &str = "application/msgpack";

/// Bytes that do not decode, or a value that does not encode.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// Encoding failed.
    #[error("cannot encode")]
    Encode(#[from] rmp_serde::encode::Error),
    /// Decoding failed.
    #[error("cannot decode")]
    Decode(#[from] rmp_serde::decode::Error),
}

/// Encodes `value`.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    Ok(rmp_serde::to_vec_named(value)?)
}

/// The length of `value` encoded, without keeping the bytes (0 when it does not encode).
pub fn encoded_len<T: Serialize + ?Sized>(value: &T) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    match rmp_serde::encode::write_named(&mut counter, value) {
        Ok(()) => counter.0,
        Err(_) => 0,
    }
}

/// Decodes a `T` from `bytes`.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    Ok(rmp_serde::from_slice(bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use orch_core::model::{App, AppId, DeploymentId, Timestamp};
    use orch_core::state::{ClusterState, Command};
    use serde_json::json;

    #[test]
    fn state_and_commands_round_trip() {
        let definition =
            json!({"cmd": "sleep 1", "cpus": 0.5, "instances": 3, "env": {"A": "b"}, "x": null});
        let app = App::from_json(
            AppId::parse("/g/web").expect("valid id"),
            Timestamp::from_millis(42),
            &definition.as_object().cloned().unwrap_or_default(),
        )
        .expect("valid definition");
        let command = Command::Batch(vec![Command::CreateApp {
            app: Box::new(app),
            deployment_id: DeploymentId("d".into()),
            force: true,
        }]);
        let mut state = ClusterState::default();
        state.apply(7, command.clone());
        let bytes = encode(&command).expect("encodes");
        assert_eq!(encoded_len(&command), bytes.len());
        let decoded: Command = decode(&bytes).expect("decodes");
        assert_eq!(decoded, command);
        let restored: ClusterState = decode(&encode(&state).expect("encodes")).expect("decodes");
        assert_eq!(restored, state);
        assert!(decode::<ClusterState>(b"\xc1garbage").is_err());
    }
}
