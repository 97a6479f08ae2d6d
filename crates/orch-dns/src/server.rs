//! The DNS server: hickory-server's `ServerFuture` over bound UDP sockets and a TCP
//! listener, answering from the newest [`Zone`] of a watch channel ([`super::answer`]) and
//! forwarding other names ([`super::forward`]).
//!
//! Guarantees: the zone is read once per request (an `Arc` clone), so a new zone is served
//! from the next request on. Names in the zone are answered to every client; other names
//! are forwarded only for allowed clients and while fewer than the cap are in flight
//! ([`Forwarder::admit`]: REFUSED, or SERVFAIL at once over the cap). Malformed packets are handled by hickory (FORMERR when the
//! header is readable, dropped otherwise); a panic while answering becomes SERVFAIL (as in
//! Mesos-DNS) and never stops the server. A response's question section is encoded afresh,
//! never copied from the request's bytes ([`question_section`]). TCP connections idle for
//! [`TCP_IDLE_TIMEOUT`] are closed.
//!
//! Caveat: hickory-server logs every request at `info` (target `hickory_server`); a
//! process that serves real load should filter that target to `warn`.
//!
//! May depend on: tokio, hickory-server, hickory-proto, rand,
//! [`super::answer`], [`super::forward`], [`super::zone`].

use super::answer::{answer, error_reply, fit_reply, Outcome, Question, Transport};
use super::config::DnsError;
use super::forward::{forward, ForwardConfig, Forwarder};
use super::zone::Zone;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::serialize::binary::{BinDecodable, BinEncodable};
use hickory_proto::xfer::Protocol;
use hickory_server::authority::{MessageRequest, MessageResponseBuilder};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::ServerFuture;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;

/// How long a TCP connection may stay idle between requests.
pub const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves DNS on `udp` and `tcp` until `shutdown` completes.
pub async fn serve(
    udp: UdpSocket,
    tcp: TcpListener,
    zones: watch::Receiver<Arc<Zone>>,
    config: ForwardConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DnsError> {
    serve_sockets(vec![udp], vec![tcp], zones, config, shutdown).await
}

/// `count` handles of `socket` (duplicated descriptors sharing its receive queue), so that
/// hickory runs `count` receive loops on it.
fn receive_loops(socket: UdpSocket, count: usize) -> Result<Vec<UdpSocket>, DnsError> {
    let address = socket
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let listen = |source| DnsError::Listen { address, source };
    let socket = socket.into_std().map_err(listen)?;
    let mut handles = Vec::with_capacity(count);
    for _ in 1..count {
        let handle = socket.try_clone().map_err(listen)?;
        handles.push(UdpSocket::from_std(handle).map_err(listen)?);
    }
    handles.push(UdpSocket::from_std(socket).map_err(listen)?);
    Ok(handles)
}

/// Like [`serve`], with any number of UDP sockets and TCP listeners (e.g. one of each per
/// address family). Each UDP socket gets one receive loop per available CPU (hickory runs
/// one loop per registered socket, and one loop is its bottleneck).
pub async fn serve_sockets(
    udp: Vec<UdpSocket>,
    tcp: Vec<TcpListener>,
    zones: watch::Receiver<Arc<Zone>>,
    config: ForwardConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DnsError> {
    let loops = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let mut handles = Vec::new();
    for socket in udp {
        handles.extend(receive_loops(socket, loops)?);
    }
    let handler = Handler {
        zones,
        forwarder: Forwarder::new(config),
    };
    let mut server = ServerFuture::new(handler);
    for socket in handles {
        server.register_socket(socket);
    }
    for listener in tcp {
        server.register_listener(listener, TCP_IDLE_TIMEOUT);
    }
    let token = server.shutdown_token().clone();
    let done = server.block_until_done();
    tokio::pin!(done);
    tokio::pin!(shutdown);
    tokio::select! {
        result = &mut done => return result.map_err(|source| DnsError::Serve { source }),
        () = &mut shutdown => token.cancel(),
    }
    done.await.map_err(|source| DnsError::Serve { source })
}

/// Answers each request from the newest zone, or forwards it.
#[derive(Debug)]
struct Handler {
    /// The newest zone.
    zones: watch::Receiver<Arc<Zone>>,
    /// Where other names go, and for whom.
    forwarder: Forwarder,
}

impl Handler {
    /// The response to `request`.
    async fn respond(&self, request: &Request, transport: Transport) -> Message {
        let question = Question {
            header: request.header(),
            queries: request.queries(),
            edns: request.edns(),
        };
        let zone = Arc::clone(&self.zones.borrow());
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
            answer(&question, &zone, &mut rand::rng(), transport)
        }));
        match outcome {
            Ok(Outcome::Answer(message)) => message,
            Ok(Outcome::Forward) => self.forwarded(request, &question, transport).await,
            Err(_) => {
                tracing::error!("answering a DNS request panicked");
                error_reply(&question, ResponseCode::ServFail)
            }
        }
    }

    /// The resolvers' reply to `request`, or REFUSED / SERVFAIL.
    async fn forwarded(
        &self,
        request: &Request,
        question: &Question<'_>,
        transport: Transport,
    ) -> Message {
        let result = match self.forwarder.admit(request.src().ip()) {
            Ok(_in_flight) => match (**request).to_bytes() {
                Ok(bytes) => forward(&bytes, transport, self.forwarder.config()).await,
                Err(source) => Err(DnsError::EncodeRequest { source }),
            },
            Err(refused) => Err(refused),
        };
        match result {
            Ok(mut reply) => {
                fit_reply(&mut reply, question, transport);
                reply
            }
            Err(DnsError::NoResolvers | DnsError::ClientNotAllowed { .. }) => {
                error_reply(question, ResponseCode::Refused)
            }
            Err(error) => {
                tracing::debug!(
                    error = &error as &dyn std::error::Error,
                    "forwarding failed"
                );
                error_reply(question, ResponseCode::ServFail)
            }
        }
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let transport = match request.protocol() {
            Protocol::Udp => Transport::Udp,
            _ => Transport::Tcp,
        };
        let message = self.respond(request, transport).await;
        let fresh = question_section(&message);
        let mut builder =
            MessageResponseBuilder::from_message_request(fresh.as_ref().unwrap_or(request));
        if let Some(edns) = message.extensions() {
            builder.edns(edns.clone());
        }
        let response = builder.build(
            *message.header(),
            message.answers(),
            message.name_servers(),
            std::iter::empty(),
            message.additionals(),
        );
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(error) => {
                tracing::debug!(
                    error = &error as &dyn std::error::Error,
                    "cannot send a DNS response"
                );
                let mut header = *message.header();
                header.set_response_code(ResponseCode::ServFail);
                header.into()
            }
        }
    }
}

/// A request holding just the questions of `response`, encoded afresh: its raw question
/// bytes are what hickory's response builder echoes. The request's own raw bytes would be
/// echoed otherwise, and a compression pointer there that points outside the question
/// section (into the header, say) then points at other bytes in the response: the client
/// gets a reply it cannot decode (found by `fuzz_dns_server_survives_hostile_traffic`).
/// Here names are compressed only against each other, inside the question section, which
/// starts at the same offset in the response.
fn question_section(response: &Message) -> Option<MessageRequest> {
    let mut questions = Message::new();
    questions.add_queries(response.queries().iter().cloned());
    MessageRequest::from_bytes(&questions.to_vec().ok()?).ok()
}

#[cfg(test)]
#[path = "server_fuzz.rs"]
mod fuzz;
