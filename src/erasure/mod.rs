//! Erasure: deletion on request, within a working-day deadline.
//!
//! Rules: deletion is asked with the username and the bound email; only a
//! link mailed to that address confirms it, so nobody can delete someone
//! else's account. At confirmation processing stops (sessions end, sign-in
//! is refused, no mail but about the deletion); after the grace window
//! (`CUSTOS_DELETION_GRACE_WORKING_DAYS` working days in
//! `CUSTOS_TIMEZONE`, weekends and holidays skipped, make-up days counted)
//! the purge erases every row in the inventory in one transaction and
//! leaves a certificate without personal data. Until the purge, a cancel
//! link restores the account. A guardian's refusal or silence schedules
//! erasure at once ([`guardian`]), and so does a sign-up whose address
//! was never verified once its link has expired plus
//! `CUSTOS_UNVERIFIED_GRACE_DAYS`; a staff
//! flag for an unconsented minor stops processing at once and erases after
//! the same window, unless an admin lifts it (`minor_flag`). Every purge is
//! recorded in the erasure journal, kept apart from the main database, and
//! re-applied to a restored database before it serves anyone ([`journal`],
//! [`reapply`]).

pub mod calendar;
pub mod export;
pub mod graphql;
pub mod guardian;
pub mod inventory;
pub mod journal;
pub mod minor_flag;
pub mod purge;
pub mod reapply;
pub mod service;
pub mod store;
pub mod templates;
pub mod unverified;
