//! The rule every master and agent HTTP listener follows while it has no TLS: loopback only
//! (127.0.0.0/8, ::1), where only this machine reaches it, unless the operator passes
//! `--insecure` and is warned at every start. Anyone who reaches a master can run commands
//! as root on every agent.

use std::net::SocketAddr;

/// Whether a node may serve plaintext HTTP on `listen`: on loopback always, elsewhere only
/// with `insecure`.
pub fn plaintext_allowed(listen: SocketAddr, insecure: bool) -> bool {
    listen.ip().is_loopback() || insecure
}

/// Why `node` (`master`, `agent`) does not start on `listen`.
pub fn refusal(node: &str, listen: SocketAddr) -> String {
    format!(
        "--listen {listen} is not a loopback address and this {node} has no TLS: anyone who \
         reaches it could run commands as root on every agent. Listen on 127.0.0.1 (or ::1), \
         or pass --insecure to serve plaintext HTTP there anyway"
    )
}

/// The warning a node logs at every start when it serves plaintext HTTP off loopback.
pub fn warning(node: &str, listen: SocketAddr) -> String {
    format!(
        "this {node} serves plaintext HTTP on {listen}, which is not a loopback address \
         (--insecure): anyone who reaches it can run commands as root on every agent"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_is_plaintext_without_insecure() {
        let at = |text: &str| text.parse::<SocketAddr>().expect("an address");
        assert!(plaintext_allowed(at("127.0.0.1:8080"), false));
        assert!(plaintext_allowed(at("127.61.5.2:8080"), false));
        assert!(plaintext_allowed(at("[::1]:8080"), false));
        assert!(!plaintext_allowed(at("0.0.0.0:8080"), false));
        assert!(!plaintext_allowed(at("10.0.0.2:8080"), false));
        assert!(plaintext_allowed(at("10.0.0.2:8080"), true));
        assert!(refusal("master", at("0.0.0.0:8080")).contains("pass --insecure"));
    }
}
