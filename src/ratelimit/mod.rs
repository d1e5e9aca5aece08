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

pub mod graphql;
pub mod ip;
pub mod login;
pub mod password_check;
pub mod retry_after;
pub mod shared;

pub use graphql::{check, rate_limited};
pub use ip::{IpNetwork, client_ip};
pub use retry_after::RetryAfter;

use std::{
    hash::Hash,
    net::{IpAddr, Ipv4Addr},
    num::NonZeroU32,
    sync::atomic::{AtomicU64, Ordering},
};

use governor::{Quota, RateLimiter, clock::Clock as _};

use crate::state::AppState;

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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
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
}
