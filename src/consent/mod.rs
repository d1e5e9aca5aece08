//! Consent: the published privacy policy and its purposes.
//!
//! Rules: a policy version lists purposes, each required or optional,
//! sensitive or not. Required purposes come with the account; optional and
//! sensitive purposes are granted one by one and never pre-ticked. A new
//! purpose only arrives with a new policy version.

pub mod consent_state;
pub mod graphql;
pub mod policy;
pub mod policy_cache;
pub mod publication;
pub mod service;
pub mod templates;
pub mod versions;
