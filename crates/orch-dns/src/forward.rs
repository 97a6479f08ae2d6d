//! Forwarding of names outside the zone to the configured resolvers.
//!
//! Expected flow: the request is sent to every resolver at once, over the client's
//! transport (UDP: a fresh connected socket per resolver; TCP: a fresh connection with
//! 2-byte length framing), under one random query id; the first reply that arrives with
//! that id wins and goes back with the client's id.
//!
//! Guarantees: never waits longer than [`ForwardConfig::timeout`]; a resolver that fails
//! (ICMP port unreachable shows up as "connection refused" on the connected UDP socket, a
//! closed TCP connection, an undecodable reply) only removes itself from the race.
//!
//! Admission ([`Forwarder::admit`]): only clients in [`ForwardConfig::allow`] are forwarded
//! for (others: REFUSED, see [`super::allow`]), and at most [`ForwardConfig::max_in_flight`]
//! forwards run at once: one more is refused at once (SERVFAIL) instead of queueing, so a
//! flood of out-of-zone queries toward a dead upstream holds a bounded number of sockets
//! and tasks.
//!
//! Differences from Mesos-DNS: Mesos-DNS tries resolvers one after the other in list
//! order; orch asks them all at once (like dcos-dns) so that a dead first resolver costs
//! nothing. No caching, as in Mesos-DNS.
//!
//! May depend on: tokio, hickory-proto, rand, futures, ipnet, [`super::config`],
//! [`super::allow`].

use super::allow::forward_allowed;
use super::answer::Transport;
use super::config::{DnsConfig, DnsError};
use futures::stream::{FuturesUnordered, StreamExt};
use hickory_proto::op::{Message, MessageType};
use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Where and how names outside the zone are forwarded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwardConfig {
    /// The upstream resolvers.
    pub resolvers: Vec<SocketAddr>,
    /// Forwarding is on (Mesos-DNS's `externalon`); off means REFUSED.
    pub external_on: bool,
    /// How long to wait for the first reply before SERVFAIL.
    pub timeout: Duration,
    /// Clients forwarded for; others get REFUSED ([`super::allow`]).
    pub allow: Vec<IpNet>,
    /// Most forwards in flight at once; past it SERVFAIL at once.
    pub max_in_flight: usize,
}

impl ForwardConfig {
    /// The forwarding part of a server's configuration.
    pub fn from_config(config: &DnsConfig) -> Self {
        Self {
            resolvers: config.resolvers.clone(),
            external_on: config.external_on,
            timeout: config.forward_timeout,
            allow: config.forward_allow.clone(),
            max_in_flight: config.max_forwards,
        }
    }
}

impl Default for ForwardConfig {
    /// The forwarding part of [`DnsConfig::default`] (no resolvers).
    fn default() -> Self {
        Self::from_config(&DnsConfig::default())
    }
}

/// A [`ForwardConfig`] in service: it also counts the forwards in flight.
#[derive(Debug)]
pub struct Forwarder {
    /// The settings.
    config: ForwardConfig,
    /// One permit per forward that may start.
    permits: Arc<Semaphore>,
}

impl Forwarder {
    /// A forwarder with no forward in flight.
    pub fn new(config: ForwardConfig) -> Self {
        let permits = config.max_in_flight.min(Semaphore::MAX_PERMITS);
        Self {
            config,
            permits: Arc::new(Semaphore::new(permits)),
        }
    }

    /// The settings.
    pub fn config(&self) -> &ForwardConfig {
        &self.config
    }

    /// May a query of `client` be forwarded now? The permit counts the forward as in flight
    /// until it is dropped.
    ///
    /// Errors: [`DnsError::NoResolvers`] (forwarding off or no resolver) and
    /// [`DnsError::ClientNotAllowed`] answer REFUSED; [`DnsError::TooManyForwards`]
    /// SERVFAIL.
    pub fn admit(&self, client: IpAddr) -> Result<OwnedSemaphorePermit, DnsError> {
        if !self.config.external_on || self.config.resolvers.is_empty() {
            return Err(DnsError::NoResolvers);
        }
        if !forward_allowed(&self.config.allow, client) {
            return Err(DnsError::ClientNotAllowed { client });
        }
        Arc::clone(&self.permits)
            .try_acquire_owned()
            .map_err(|_| DnsError::TooManyForwards {
                limit: self.config.max_in_flight,
            })
    }

    /// How many forwards are in flight now.
    pub fn in_flight(&self) -> usize {
        self.config
            .max_in_flight
            .min(Semaphore::MAX_PERMITS)
            .saturating_sub(self.permits.available_permits())
    }
}

/// Forwards the encoded request `query` over `transport` and returns the first reply, with
/// the id of `query`.
///
/// Errors: [`DnsError::NoResolvers`] (answer REFUSED) when forwarding is off or there is no
/// resolver; [`DnsError::ResolversFailed`] or [`DnsError::ForwardTimeout`] (answer
/// SERVFAIL) otherwise.
pub async fn forward(
    query: &[u8],
    transport: Transport,
    config: &ForwardConfig,
) -> Result<Message, DnsError> {
    if !config.external_on || config.resolvers.is_empty() {
        return Err(DnsError::NoResolvers);
    }
    let (Some(&high), Some(&low)) = (query.first(), query.get(1)) else {
        return Err(DnsError::ResolversFailed);
    };
    let client_id = u16::from_be_bytes([high, low]);
    let id: u16 = rand::random();
    let mut outbound = query.to_vec();
    outbound[..2].copy_from_slice(&id.to_be_bytes());

    let mut race: FuturesUnordered<_> = config
        .resolvers
        .iter()
        .map(|resolver| exchange(*resolver, &outbound, id, transport))
        .collect();
    let first = async {
        while let Some(result) = race.next().await {
            match result {
                Ok(reply) => return Ok(reply),
                Err(error) => {
                    tracing::debug!(error = &error as &dyn std::error::Error, "resolver failed")
                }
            }
        }
        Err(DnsError::ResolversFailed)
    };
    let mut reply = tokio::time::timeout(config.timeout, first)
        .await
        .map_err(|_| DnsError::ForwardTimeout {
            timeout: config.timeout,
        })??;
    reply.set_id(client_id);
    Ok(reply)
}

/// One exchange with one resolver.
async fn exchange(
    resolver: SocketAddr,
    query: &[u8],
    id: u16,
    transport: Transport,
) -> Result<Message, DnsError> {
    let failed = |source| DnsError::Exchange { resolver, source };
    let bytes = match transport {
        Transport::Udp => exchange_udp(resolver, query, id).await.map_err(failed)?,
        Transport::Tcp => exchange_tcp(resolver, query).await.map_err(failed)?,
    };
    let reply =
        Message::from_vec(&bytes).map_err(|source| DnsError::BadReply { resolver, source })?;
    if reply.id() != id || reply.message_type() != MessageType::Response {
        return Err(failed(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "reply does not match the query",
        )));
    }
    Ok(reply)
}

/// Sends `query` from a fresh connected socket and waits for a datagram carrying `id`
/// (others are ignored).
async fn exchange_udp(resolver: SocketAddr, query: &[u8], id: u16) -> std::io::Result<Vec<u8>> {
    let local: SocketAddr = if resolver.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(resolver).await?;
    socket.send(query).await?;
    let mut buffer = vec![0u8; usize::from(u16::MAX)];
    loop {
        let len = socket.recv(&mut buffer).await?;
        if len >= 12 && buffer[..2] == id.to_be_bytes() && buffer[2] & 0x80 != 0 {
            buffer.truncate(len);
            return Ok(buffer);
        }
    }
}

/// Sends `query` over a fresh TCP connection and reads one length-framed reply.
async fn exchange_tcp(resolver: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let length = u16::try_from(query.len())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "query too long"))?;
    let mut stream = TcpStream::connect(resolver).await?;
    stream.set_nodelay(true)?;
    let mut framed = Vec::with_capacity(query.len() + 2);
    framed.extend_from_slice(&length.to_be_bytes());
    framed.extend_from_slice(query);
    stream.write_all(&framed).await?;
    let mut prefix = [0u8; 2];
    stream.read_exact(&mut prefix).await?;
    let mut reply = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
    stream.read_exact(&mut reply).await?;
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Query, ResponseCode};
    use hickory_proto::rr::{Name, RecordType};

    fn query_bytes(id: u16) -> Vec<u8> {
        let mut message = Message::new();
        message
            .set_id(id)
            .set_recursion_desired(true)
            .add_query(Query::query(
                Name::from_ascii("example.com.").expect("name"),
                RecordType::A,
            ));
        message.to_vec().expect("encodable")
    }

    fn config(resolvers: Vec<SocketAddr>) -> ForwardConfig {
        ForwardConfig {
            resolvers,
            timeout: Duration::from_millis(500),
            ..ForwardConfig::default()
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an IP")
    }

    #[test]
    fn admission_refuses_other_clients_and_caps_forwards_in_flight() {
        let resolver = "127.0.0.1:53".parse().expect("address");
        let forwarder = Forwarder::new(ForwardConfig {
            max_in_flight: 2,
            ..config(vec![resolver])
        });
        assert!(matches!(
            forwarder.admit(ip("203.0.113.7")),
            Err(DnsError::ClientNotAllowed { .. })
        ));
        let first = forwarder.admit(ip("127.0.0.1")).expect("first");
        let second = forwarder.admit(ip("10.0.0.1")).expect("second");
        assert_eq!(forwarder.in_flight(), 2);
        assert!(matches!(
            forwarder.admit(ip("192.168.0.1")),
            Err(DnsError::TooManyForwards { limit: 2 })
        ));
        drop(first);
        assert_eq!(forwarder.in_flight(), 1);
        let third = forwarder.admit(ip("::1")).expect("a slot is free again");
        drop((second, third));
        assert_eq!(forwarder.in_flight(), 0);

        let off = Forwarder::new(ForwardConfig {
            external_on: false,
            ..config(vec![resolver])
        });
        assert!(matches!(
            off.admit(ip("127.0.0.1")),
            Err(DnsError::NoResolvers)
        ));
        let huge = Forwarder::new(ForwardConfig {
            max_in_flight: usize::MAX,
            ..config(vec![resolver])
        });
        let permit = huge.admit(ip("127.0.0.1")).expect("admitted");
        assert_eq!(huge.in_flight(), 1);
        drop(permit);
    }

    /// A UDP resolver answering every query with `code`, after `delay`.
    async fn fake_resolver(code: ResponseCode, delay: Duration) -> SocketAddr {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let address = socket.local_addr().expect("address");
        tokio::spawn(async move {
            let mut buffer = vec![0u8; 4096];
            while let Ok((len, from)) = socket.recv_from(&mut buffer).await {
                let Ok(query) = Message::from_vec(&buffer[..len]) else {
                    continue;
                };
                let mut reply = Message::new();
                reply
                    .set_id(query.id())
                    .set_message_type(MessageType::Response)
                    .set_response_code(code)
                    .add_queries(query.queries().to_vec());
                tokio::time::sleep(delay).await;
                let bytes = reply.to_vec().expect("encodable");
                let _ = socket.send_to(&bytes, from).await;
            }
        });
        address
    }

    #[tokio::test]
    async fn no_resolvers_or_external_off_is_refused() {
        let result = forward(&query_bytes(1), Transport::Udp, &config(vec![])).await;
        assert!(matches!(result, Err(DnsError::NoResolvers)));
        let mut off = config(vec!["127.0.0.1:53".parse().expect("address")]);
        off.external_on = false;
        let result = forward(&query_bytes(1), Transport::Udp, &off).await;
        assert!(matches!(result, Err(DnsError::NoResolvers)));
    }

    #[tokio::test]
    async fn first_reply_wins_and_keeps_the_client_id() {
        let slow = fake_resolver(ResponseCode::Refused, Duration::from_millis(200)).await;
        let fast = fake_resolver(ResponseCode::NXDomain, Duration::ZERO).await;
        let reply = forward(&query_bytes(777), Transport::Udp, &config(vec![slow, fast]))
            .await
            .expect("a reply");
        assert_eq!(reply.id(), 777);
        assert_eq!(reply.response_code(), ResponseCode::NXDomain);
    }

    #[tokio::test]
    async fn a_dead_resolver_does_not_hold_up_a_live_one() {
        let dead = {
            let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
            socket.local_addr().expect("address")
        };
        let live = fake_resolver(ResponseCode::NoError, Duration::ZERO).await;
        let reply = forward(&query_bytes(9), Transport::Udp, &config(vec![dead, live]))
            .await
            .expect("a reply");
        assert_eq!(reply.response_code(), ResponseCode::NoError);

        let started = tokio::time::Instant::now();
        let result = forward(&query_bytes(9), Transport::Udp, &config(vec![dead])).await;
        assert!(
            matches!(result, Err(DnsError::ResolversFailed)),
            "{result:?}"
        );
        assert!(started.elapsed() < Duration::from_millis(400));
    }

    #[tokio::test]
    async fn a_silent_resolver_times_out() {
        let silent = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let address = silent.local_addr().expect("address");
        let started = tokio::time::Instant::now();
        let result = forward(&query_bytes(9), Transport::Udp, &config(vec![address])).await;
        assert!(
            matches!(result, Err(DnsError::ForwardTimeout { .. })),
            "{result:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
        drop(silent);
    }
}
