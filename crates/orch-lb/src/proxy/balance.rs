//! Picking a backend's server for a new connection or request (HAProxy's `balance`):
//! `roundrobin` in turn, `leastconn` the one with the fewest requests or connections in
//! progress (ties in turn), `source` by a hash of the client's IP (stable while the server
//! set is). Servers already tried for this request are skipped; servers marked down are
//! skipped while others are up, except for one probe per interval
//! ([`ServerState::claim_probe`](super::server::ServerState::claim_probe)); when every
//! untried server is down, they are tried anyway, in turn.
//!
//! Sticky sessions: [`sticky`] finds the server a `mesosphere_server_id` cookie names.
//!
//! May depend on: std, [`super::live`], [`crate`] (the table).

use super::live::LiveBackend;
use crate::Balance;
use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;

/// The index of the server to try next, or `None` when every server was tried (or there
/// are none).
pub(crate) fn pick(backend: &LiveBackend, client: IpAddr, tried: &[usize]) -> Option<usize> {
    let servers = &backend.servers;
    let n = servers.len();
    if n == 0 {
        return None;
    }
    let untried = |i: &usize| !tried.contains(i);
    let start = match backend.backend.balance {
        Balance::Source => {
            let n64 = u64::try_from(n).unwrap_or(u64::MAX);
            usize::try_from(source_hash(client) % n64).unwrap_or(0)
        }
        Balance::RoundRobin | Balance::LeastConn => backend.state.next.fetch_add(1, Relaxed) % n,
    };
    let order = (0..n).map(|k| (start + k) % n);
    match backend.backend.balance {
        Balance::RoundRobin | Balance::Source => {
            if let Some(i) = order
                .clone()
                .filter(untried)
                .find(|&i| servers[i].state.claim_probe())
            {
                return Some(i);
            }
        }
        Balance::LeastConn => {
            let mut best: Option<(usize, u64)> = None;
            for i in order.clone().filter(untried) {
                let state = &servers[i].state;
                if state.is_up() {
                    let current = state.counters.current.load(Relaxed);
                    if best.is_none_or(|(_, least)| current < least) {
                        best = Some((i, current));
                    }
                } else if state.claim_probe() {
                    return Some(i);
                }
            }
            if let Some((i, _)) = best {
                return Some(i);
            }
        }
    }
    // Every untried server is down: try them anyway.
    order.clone().find(untried)
}

/// The server whose cookie is `cookie`, if it is usable.
pub(crate) fn sticky(backend: &LiveBackend, cookie: &str) -> Option<usize> {
    let i = backend.servers.iter().position(|s| s.cookie == cookie)?;
    backend.servers[i].state.claim_probe().then_some(i)
}

/// FNV-1a over the address's bytes.
fn source_hash(client: IpAddr) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    match client {
        IpAddr::V4(v4) => eat(&v4.octets()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => eat(&v4.octets()),
            None => eat(&v6.octets()),
        },
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::live::{sticky_cookie, LiveServer};
    use crate::proxy::server::{BackendState, ServerState};
    use crate::{Backend, Mode};
    use hyper::header::HeaderValue;
    use orch_core::model::AppId;
    use std::net::SocketAddr;
    use std::sync::Arc;

    fn backend(balance: Balance, n: u16) -> LiveBackend {
        let state = Arc::new(BackendState::default());
        LiveBackend {
            backend: Arc::new(Backend {
                name: "b".to_owned(),
                app_id: AppId::parse("/b").expect("app id"),
                service_port: 1,
                mode: Mode::Http,
                balance,
                sticky: true,
                redirect_to_https: false,
                hsts: false,
                health_check: None,
                servers: Vec::new(),
            }),
            servers: (0..n)
                .map(|i| LiveServer {
                    name: format!("s{i}"),
                    cookie: sticky_cookie(&format!("s{i}")),
                    set_cookie: HeaderValue::from_static("x"),
                    state: Arc::new(ServerState::new(
                        SocketAddr::from(([127, 0, 0, 1], 1000 + i)),
                        Arc::clone(&state),
                    )),
                })
                .collect(),
            state,
        }
    }

    const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 1, 2, 3));

    #[test]
    fn roundrobin_takes_turns_and_skips_down_and_tried_servers() {
        let b = backend(Balance::RoundRobin, 3);
        let picks: Vec<_> = (0..6).filter_map(|_| pick(&b, CLIENT, &[])).collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1, 2]);
        b.servers[1].state.mark_down();
        let picks: Vec<_> = (0..4).filter_map(|_| pick(&b, CLIENT, &[])).collect();
        assert!(!picks.contains(&1), "{picks:?}");
        assert_eq!(
            pick(&b, CLIENT, &[0, 2]),
            Some(1),
            "down, but the only one left"
        );
        assert_eq!(pick(&b, CLIENT, &[0, 1, 2]), None);
    }

    #[test]
    fn leastconn_prefers_the_idle_server() {
        let b = backend(Balance::LeastConn, 3);
        b.servers[0].state.counters.current.store(2, Relaxed);
        b.servers[2].state.counters.current.store(1, Relaxed);
        for _ in 0..5 {
            assert_eq!(pick(&b, CLIENT, &[]), Some(1));
        }
        assert_eq!(pick(&b, CLIENT, &[1]), Some(2));
    }

    #[test]
    fn source_is_stable_per_client_and_spreads_clients() {
        let b = backend(Balance::Source, 4);
        let first = pick(&b, CLIENT, &[]);
        for _ in 0..10 {
            assert_eq!(pick(&b, CLIENT, &[]), first);
        }
        let spread: std::collections::BTreeSet<_> = (0..64u8)
            .filter_map(|i| pick(&b, IpAddr::from([10, 0, 0, i]), &[]))
            .collect();
        assert!(spread.len() > 1, "{spread:?}");
    }

    #[test]
    fn sticky_finds_the_named_server_unless_down() {
        let b = backend(Balance::RoundRobin, 3);
        assert_eq!(sticky(&b, &sticky_cookie("s2")), Some(2));
        assert_eq!(sticky(&b, "0000000000"), None);
        b.servers[2].state.mark_down();
        assert_eq!(sticky(&b, &sticky_cookie("s2")), None);
    }
}
