//! Rate limits against floods and guessing: per client IP here; per login
//! name in [`login`] and per account's password checks in
//! [`password_check`], in the database.
//!
//! Rules:
//! - Each [`Action`] has its own bucket per client: `CUSTOS_RATE_LIMIT_PER_MINUTE`
//!   attempts a minute, with a burst of the same size (GCRA, from `governor`),
//!   in the memory of each instance: a cheap first filter that refuses a
//!   flood without touching the database.
//! - On PostgreSQL an attempt the memory lets through is then counted in
//!   the database ([`shared`]), against the same limit over a sliding
//!   minute, so N instances behind a balancer allow what one would. SQLite
//!   serves one instance, whose memory sees every attempt already.
//! - The check runs inside each resolver call ([`check`]), so every alias of
//!   a field in one document counts: twenty aliased `login`s are twenty
//!   attempts, not one request.
//! - The client is the TCP peer. `X-Forwarded-For` is believed only when the
//!   peer is a trusted proxy (`CUSTOS_TRUSTED_PROXIES`), and then only up to
//!   the right-most address that is not itself a trusted proxy: anything left
//!   of that was written by the client and may be forged.
//! - IPv6 clients are counted by their /64, since one subscriber usually
//!   holds a whole /64 and could otherwise rotate addresses at will.
//! - A refusal is `RATE_LIMITED` with `extensions.retryAfterSeconds`. Client
//!   addresses are personal data: they are never logged or stored.

pub mod login;
pub mod password_check;
pub mod shared;

use std::{
    hash::Hash,
    net::{IpAddr, Ipv4Addr},
    num::NonZeroU32,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use async_graphql::Context;
use governor::{Quota, RateLimiter, clock::Clock as _};

use crate::{
    graphql::errors::{ApiError, ApiResult, ErrorCode},
    state::AppState,
};

/// What a client is limited in doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// `signup`.
    Signup,
    /// `login`.
    Login,
    /// `requestPasswordReset`.
    RequestPasswordReset,
    /// `resetPassword` (each success costs a password hash).
    ResetPassword,
    /// `requestAccountDeletion`.
    RequestAccountDeletion,
    /// `createTicket`.
    CreateTicket,
    /// `changePassword` and `changeEmail`: a signed-in caller's password
    /// checks (each costs a password hash).
    PasswordCheck,
    /// `usernameCheck` (its own bucket, as large as sign-up's, so a form
    /// that checks as the person types does not use up their sign-up).
    UsernameCheck,
}

impl Action {
    /// The name used in security log lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Signup => "signup",
            Self::Login => "login",
            Self::RequestPasswordReset => "request_password_reset",
            Self::ResetPassword => "reset_password",
            Self::RequestAccountDeletion => "request_account_deletion",
            Self::CreateTicket => "create_ticket",
            Self::PasswordCheck => "password_check",
            Self::UsernameCheck => "username_check",
        }
    }
}

/// The address of the client that sent a request, attached to the GraphQL
/// request by the HTTP layer (see [`client_ip`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// Whom a bucket belongs to: an IPv4 address, an IPv6 /64, or every
/// request whose address is unknown (they share one bucket rather than
/// escaping the limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ClientKey {
    V4(Ipv4Addr),
    V6Prefix(u64),
    Unknown,
}

impl ClientKey {
    /// The text the shared count's blind index is computed over.
    fn label(self) -> String {
        match self {
            Self::V4(v4) => format!("v4:{v4}"),
            Self::V6Prefix(prefix) => format!("v6:{prefix:016x}"),
            Self::Unknown => "unknown".to_owned(),
        }
    }

    fn of(ip: Option<IpAddr>) -> Self {
        match ip.map(|ip| ip.to_canonical()) {
            Some(IpAddr::V4(v4)) => Self::V4(v4),
            Some(IpAddr::V6(v6)) => {
                let bits = u128::from(v6);
                // The upper 64 bits: the network a subscriber is given.
                Self::V6Prefix(u64::try_from(bits >> 64).unwrap_or(u64::MAX))
            }
            None => Self::Unknown,
        }
    }
}

/// Whose share of the password-hashing queue a request spends: the
/// client's address, or its /64 for IPv6, as the buckets here count it
/// (see [`crate::crypto::passwords`]).
pub fn hash_caller(ip: Option<IpAddr>) -> crate::crypto::passwords::Caller {
    use crate::crypto::passwords::Caller;
    // A tag above the 64 bits of address keeps the three kinds apart.
    match ClientKey::of(ip) {
        ClientKey::V4(v4) => Caller::new((1 << 64) | u128::from(u32::from(v4))),
        ClientKey::V6Prefix(prefix) => Caller::new((2 << 64) | u128::from(prefix)),
        ClientKey::Unknown => Caller::new(3 << 64),
    }
}

/// How long a refused client should wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub Duration);

impl RetryAfter {
    /// Whole seconds, rounded up and at least 1, for `retryAfterSeconds`.
    pub fn seconds(self) -> u64 {
        let secs = self.0.as_secs() + u64::from(self.0.subsec_nanos() > 0);
        secs.max(1)
    }
}

/// Checks between two sweeps of idle buckets.
const SWEEP_EVERY: u64 = 4096;

type Limiter = governor::DefaultKeyedRateLimiter<(Action, ClientKey)>;

/// The per-client buckets of one server instance, and whether attempts
/// they let through are counted in the database too.
pub struct RateLimits {
    limiter: Limiter,
    checks: AtomicU64,
    per_minute: NonZeroU32,
    shared: bool,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("buckets", &self.limiter.len())
            .finish()
    }
}

impl RateLimits {
    /// Allows `per_minute` attempts of each action per client a minute, in
    /// this instance's memory.
    pub fn new(per_minute: NonZeroU32) -> Self {
        Self {
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute)),
            checks: AtomicU64::new(0),
            per_minute,
            shared: false,
        }
    }

    /// Also counts attempts in the database, shared by every instance
    /// ([`shared`]): for PostgreSQL.
    pub fn shared_by_instances(mut self) -> Self {
        self.shared = true;
        self
    }

    /// Whether attempts are also counted in the database.
    pub fn is_shared(&self) -> bool {
        self.shared
    }

    /// Takes one attempt of `action` from the client's bucket in memory
    /// and, when shared, counts it in the database: the decision of both.
    pub async fn admit(
        &self,
        state: &AppState,
        action: Action,
        ip: Option<IpAddr>,
    ) -> Result<(), RetryAfter> {
        self.check(action, ip)?;
        if !self.shared {
            return Ok(());
        }
        let now = state.clock().now();
        let client = state
            .blind()
            .active()
            .compute(shared::CLIENT_INDEX, &ClientKey::of(ip).label());
        match shared::count(state.db(), action.as_str(), &client, now).await {
            Ok(counts) => shared::decide(counts, now, self.per_minute.get()),
            Err(err) => {
                // The memory's decision stands (see `shared`).
                tracing::warn!(error = %err, action = action.as_str(), "shared rate limit not counted");
                Ok(())
            }
        }
    }

    /// Takes one attempt of `action` from the client's bucket, or says how
    /// long to wait.
    pub fn check(&self, action: Action, ip: Option<IpAddr>) -> Result<(), RetryAfter> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            // Forget buckets that are full again, so memory follows the
            // number of recent clients, not of all clients ever seen.
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        self.limiter
            .check_key(&(action, ClientKey::of(ip)))
            .map_err(|not_until| RetryAfter(not_until.wait_time_from(self.limiter.clock().now())))
    }
}

/// `RATE_LIMITED` with `extensions.retryAfterSeconds`.
pub fn rate_limited(retry_after_seconds: u64) -> ApiError {
    ApiError::new(
        ErrorCode::RateLimited,
        crate::graphql::messages::Message::new(crate::graphql::messages::Key::RateLimited)
            .arg("seconds", retry_after_seconds.max(1)),
    )
    .with_extension(
        "retryAfterSeconds",
        async_graphql::Value::Number(retry_after_seconds.into()),
    )
}

/// Takes one attempt of `action` from the bucket of the request's client
/// (and, on PostgreSQL, counts it for every instance): call it first thing
/// in every resolver the limit applies to (so each alias counts).
/// `RATE_LIMITED` when the limit is reached.
pub async fn check(ctx: &Context<'_>, action: Action) -> ApiResult<()> {
    let limits = ctx
        .data::<RateLimits>()
        .map_err(|_| ApiError::internal(&"schema built without rate limits"))?;
    let state = crate::graphql::state(ctx)?;
    let ip = ctx.data_opt::<ClientIp>().map(|client| client.0);
    limits.admit(state, action, ip).await.map_err(|retry| {
        tracing::info!(
            target: "security",
            event = "rate_limited",
            action = action.as_str(),
            "per-client rate limit reached"
        );
        rate_limited(retry.seconds())
    })
}

/// An IP network in CIDR form (`10.0.0.0/8`, `fd00::/8`) or a single
/// address, as named in `CUSTOS_TRUSTED_PROXIES`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNetwork {
    base: IpAddr,
    prefix: u8,
}

impl IpNetwork {
    /// Parses `addr` or `addr/prefix`; the address bits below the prefix
    /// are ignored.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let base = addr
            .parse::<IpAddr>()
            .map_err(|_| format!("{text:?} is not an IP address or CIDR network"))?
            .to_canonical();
        let max = match base {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        let prefix = match prefix {
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?} has a prefix length outside 0..={max}"))?,
            None => max,
        };
        Ok(Self { base, prefix })
    }

    /// Whether `ip` lies in the network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.base, ip.to_canonical()) {
            (IpAddr::V4(base), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(base) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(base), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(base) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Parses one `X-Forwarded-For` entry: an address, possibly with a port.
fn forwarded_address(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
        .map(|ip| ip.to_canonical())
}

/// The client of a request: the TCP `peer`, unless the peer is a trusted
/// proxy, in which case the `X-Forwarded-For` chain (every header, in
/// order) is walked from the right past trusted proxies to the first
/// address that is not one. A malformed entry stops the walk at the last
/// address a trusted hop vouched for.
pub fn client_ip(
    peer: Option<IpAddr>,
    forwarded_for: &[&str],
    trusted: &[IpNetwork],
) -> Option<IpAddr> {
    let peer = peer?.to_canonical();
    let is_trusted = |ip: IpAddr| trusted.iter().any(|network| network.contains(ip));
    if !is_trusted(peer) {
        return Some(peer);
    }
    let mut client = peer;
    let entries = forwarded_for
        .iter()
        .flat_map(|header| header.split(','))
        .collect::<Vec<_>>();
    for entry in entries.into_iter().rev() {
        let Some(ip) = forwarded_address(entry) else {
            break;
        };
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    Some(client)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn nets(list: &[&str]) -> Vec<IpNetwork> {
        list.iter().map(|n| IpNetwork::parse(n).unwrap()).collect()
    }

    #[test]
    fn networks_parse_and_match() {
        let net = IpNetwork::parse("10.1.0.0/16").unwrap();
        assert!(net.contains(ip("10.1.255.3")));
        assert!(!net.contains(ip("10.2.0.1")));
        assert!(
            net.contains(ip("::ffff:10.1.0.9")),
            "v4-mapped counts as v4"
        );
        let single = IpNetwork::parse("192.0.2.7").unwrap();
        assert!(single.contains(ip("192.0.2.7")));
        assert!(!single.contains(ip("192.0.2.8")));
        let v6 = IpNetwork::parse("fd00::/8").unwrap();
        assert!(v6.contains(ip("fd12:3456::1")));
        assert!(!v6.contains(ip("fe80::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        assert!(
            IpNetwork::parse("0.0.0.0/0")
                .unwrap()
                .contains(ip("8.8.8.8"))
        );
        for bad in ["", "10.0.0.0/33", "fd00::/129", "host", "10.0.0.0/x"] {
            assert!(IpNetwork::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarded_for_is_ignored_without_trusted_proxies() {
        let peer = Some(ip("203.0.113.9"));
        assert_eq!(client_ip(peer, &["198.51.100.1"], &[]), peer);
        // Trusted proxies named, but this peer is not one of them.
        assert_eq!(
            client_ip(peer, &["198.51.100.1"], &nets(&["10.0.0.0/8"])),
            peer
        );
        assert_eq!(client_ip(None, &["198.51.100.1"], &[]), None);
    }

    #[test]
    fn forwarded_for_is_walked_past_trusted_hops_only() {
        let trusted = nets(&["10.0.0.0/8"]);
        let peer = Some(ip("10.0.0.2"));
        // The client forged the left-most entry; the proxy appended the real one.
        assert_eq!(
            client_ip(peer, &["6.6.6.6, 198.51.100.1"], &trusted),
            Some(ip("198.51.100.1"))
        );
        // Two proxies in the chain, headers split over two lines.
        assert_eq!(
            client_ip(peer, &["6.6.6.6, 198.51.100.1", "10.0.0.7"], &trusted),
            Some(ip("198.51.100.1"))
        );
        // Ports are tolerated.
        assert_eq!(
            client_ip(peer, &["198.51.100.1:4711"], &trusted),
            Some(ip("198.51.100.1"))
        );
        // No header: the proxy itself is all we know.
        assert_eq!(client_ip(peer, &[], &trusted), peer);
        // Garbage after the trusted hop: stop at what was vouched for.
        assert_eq!(client_ip(peer, &["198.51.100.1, junk"], &trusted), peer);
    }

    #[test]
    fn buckets_are_per_action_and_per_client() {
        let limits = RateLimits::new(NonZeroU32::new(2).unwrap());
        let a = Some(ip("192.0.2.1"));
        let b = Some(ip("192.0.2.2"));
        assert!(limits.check(Action::Login, a).is_ok());
        assert!(limits.check(Action::Login, a).is_ok());
        let refused = limits.check(Action::Login, a).unwrap_err();
        assert!((1..=30).contains(&refused.seconds()), "{refused:?}");
        assert!(limits.check(Action::Login, b).is_ok(), "another client");
        assert!(limits.check(Action::Signup, a).is_ok(), "another action");
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        let limits = RateLimits::new(NonZeroU32::new(1).unwrap());
        assert!(
            limits
                .check(Action::Login, Some(ip("2001:db8:1:2::1")))
                .is_ok()
        );
        assert!(
            limits
                .check(Action::Login, Some(ip("2001:db8:1:2:ffff::9")))
                .is_err()
        );
        assert!(
            limits
                .check(Action::Login, Some(ip("2001:db8:1:3::1")))
                .is_ok()
        );
    }

    #[test]
    fn unknown_clients_share_one_bucket() {
        let limits = RateLimits::new(NonZeroU32::new(1).unwrap());
        assert!(limits.check(Action::Login, None).is_ok());
        assert!(limits.check(Action::Login, None).is_err());
    }

    #[test]
    fn hash_callers_follow_the_buckets() {
        let v4 = hash_caller(Some(ip("192.0.2.1")));
        assert_eq!(v4, hash_caller(Some(ip("::ffff:192.0.2.1"))));
        assert_ne!(v4, hash_caller(Some(ip("192.0.2.2"))));
        let v6 = hash_caller(Some(ip("2001:db8:1:2::1")));
        assert_eq!(v6, hash_caller(Some(ip("2001:db8:1:2:ffff::9"))));
        assert_ne!(v6, hash_caller(Some(ip("2001:db8:1:3::1"))));
        let unknown = hash_caller(None);
        assert_ne!(unknown, crate::crypto::passwords::Caller::LOCAL);
        assert_ne!(unknown, v4);
        // 0.0.0.0 and ::/64 are not the unknown client either.
        assert_ne!(hash_caller(Some(ip("0.0.0.0"))), unknown);
        assert_ne!(
            hash_caller(Some(ip("::2"))),
            hash_caller(Some(ip("0.0.0.2")))
        );
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(RetryAfter(Duration::from_millis(1)).seconds(), 1);
        assert_eq!(RetryAfter(Duration::from_millis(2001)).seconds(), 3);
        assert_eq!(RetryAfter(Duration::ZERO).seconds(), 1);
    }
}
