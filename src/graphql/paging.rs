//! Relay connections for the lists that grow (`supportQueue`, `auditLog`,
//! `myConsentHistory`): `first`/`after`, opaque cursors, `pageInfo`.
//!
//! Rules:
//! - `first` is 0 to [`MAX_FIRST`], [`DEFAULT_FIRST`] when left out;
//!   anything else is `BAD_USER_INPUT` on `first`.
//! - A cursor is the position of an item in its list's order (never a row
//!   to look up), sealed with the keyring's active key and bound to the
//!   list and, for a person's own list, to that person. Clients cannot read
//!   or make one, and a cursor this server did not give out for this list
//!   and this caller (malformed, forged, from another list or another
//!   person, under a key since dropped) is `BAD_USER_INPUT` on `after`,
//!   whatever is wrong with it: a page says "start again" for all of them.
//! - A cursor outlives its item: an item erased since (a purge) leaves its
//!   position, and the next page starts after it all the same.
//! - Every list's order is total (ties broken by a unique key), so paging
//!   neither repeats nor skips an item that stays in the list.
//! - `hasPreviousPage` is true when `after` was given (the item it names
//!   came before), false on a first page; `hasNextPage` is exact (one item
//!   more is read than shown).

use async_graphql::{
    OutputType,
    connection::{Connection, Edge},
};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use uuid::Uuid;

use super::{
    errors::{ApiError, ApiResult},
    messages::{Key, Message},
};
use crate::crypto::{FieldCipher, FieldContext};

/// Page size when `first` is left out.
pub const DEFAULT_FIRST: i32 = 50;
/// Largest page a client may ask for.
pub const MAX_FIRST: i32 = 200;

/// Where the sealing binds a cursor: not a table, a name of its own, so a
/// cursor can never pass for a stored field or the other way round.
const CURSOR_SCOPE: &str = "page_cursor";

/// The number of items a page shows, from the `first` argument.
pub fn page_size(first: Option<i32>) -> ApiResult<u64> {
    let first = first.unwrap_or(DEFAULT_FIRST);
    if !(0..=MAX_FIRST).contains(&first) {
        return Err(ApiError::bad_input(
            "first",
            Message::new(Key::PageSize)
                .arg("min", 0)
                .arg("max", MAX_FIRST),
        ));
    }
    Ok(u64::from(first.unsigned_abs()))
}

/// A position in one list's order, as its cursor carries it.
pub trait Position: Sized {
    /// The list's name, bound into its cursors.
    const LIST: &'static str;
    /// The position as bytes.
    fn to_bytes(&self) -> Vec<u8>;
    /// The position from [`Position::to_bytes`]; `None` if they are not one.
    fn from_bytes(bytes: &[u8]) -> Option<Self>;
}

/// A position by a unique sequence number (the audit trail, the consent
/// ledger): the order is the sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seq<const LIST: u8>(pub i64);

/// Makes and opens the cursors of one list for one caller.
pub struct Cursors<'a> {
    cipher: &'a FieldCipher,
    /// The person the list belongs to (`None`: a staff list, the same for all staff).
    owner: Option<Uuid>,
}

impl<'a> Cursors<'a> {
    /// Cursors of a list shown alike to every caller allowed to see it.
    pub fn shared(cipher: &'a FieldCipher) -> Self {
        Self {
            cipher,
            owner: None,
        }
    }

    /// Cursors of a person's own list: another person's do not open.
    pub fn owned_by(cipher: &'a FieldCipher, owner: Uuid) -> Self {
        Self {
            cipher,
            owner: Some(owner),
        }
    }

    fn context<P: Position>(&self) -> FieldContext<'static> {
        FieldContext {
            table: CURSOR_SCOPE,
            column: P::LIST,
            row_id: self.owner.unwrap_or(Uuid::nil()),
        }
    }

    /// The cursor of `position`.
    pub fn seal<P: Position>(&self, position: &P) -> ApiResult<String> {
        let sealed = self
            .cipher
            .encrypt(&self.context::<P>(), &position.to_bytes())
            .map_err(|err| ApiError::internal(&err))?;
        Ok(URL_SAFE_NO_PAD.encode(sealed))
    }

    /// The position an `after` argument names, or `BAD_USER_INPUT` on
    /// `after` for anything but a cursor of this list and caller.
    pub fn open<P: Position>(&self, after: Option<&str>) -> ApiResult<Option<P>> {
        let Some(cursor) = after else {
            return Ok(None);
        };
        let position = URL_SAFE_NO_PAD
            .decode(cursor.trim())
            .ok()
            .and_then(|sealed| self.cipher.decrypt(&self.context::<P>(), &sealed).ok())
            .and_then(|bytes| P::from_bytes(&bytes));
        match position {
            Some(position) => Ok(Some(position)),
            None => Err(ApiError::bad_input("after", Key::CursorUnknown)),
        }
    }

    /// The connection for a page of `items` in the list's order, each
    /// with its position.
    pub fn connection<P: Position, N: OutputType>(
        &self,
        items: Vec<(P, N)>,
        has_next_page: bool,
        after_given: bool,
    ) -> ApiResult<Connection<String, N>> {
        let mut connection = Connection::new(after_given, has_next_page);
        for (position, node) in items {
            connection
                .edges
                .push(Edge::new(self.seal(&position)?, node));
        }
        Ok(connection)
    }
}

/// Splits what a list read for a page of `first` (up to `first` + 1 items:
/// one more than shown, to know whether another page follows) into the
/// items shown and whether another page follows.
pub fn split_page<T>(mut items: Vec<T>, first: u64) -> (Vec<T>, bool) {
    let shown = usize::try_from(first).unwrap_or(usize::MAX);
    let has_next_page = items.len() > shown;
    items.truncate(shown);
    (items, has_next_page)
}

/// The audit trail's list name in cursors.
pub const AUDIT_LOG: u8 = 1;
/// The consent ledger's list name in cursors.
pub const CONSENT_HISTORY: u8 = 2;

impl<const LIST: u8> Position for Seq<LIST> {
    const LIST: &'static str = match LIST {
        AUDIT_LOG => "audit_log",
        CONSENT_HISTORY => "consent_history",
        _ => "sequence",
    };

    fn to_bytes(&self) -> Vec<u8> {
        self.0.to_be_bytes().to_vec()
    }

    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        Some(Self(i64::from_be_bytes(bytes.try_into().ok()?)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::crypto::{EncryptionKey, Keyring};
    use crate::graphql::errors::ErrorCode;

    fn cipher(id: &str, byte: u8) -> FieldCipher {
        FieldCipher::new(Keyring::new(vec![EncryptionKey::new(id, [byte; 32]).unwrap()]).unwrap())
    }

    type Audit = Seq<AUDIT_LOG>;
    type Consent = Seq<CONSENT_HISTORY>;

    fn refused<T: std::fmt::Debug>(result: ApiResult<T>) {
        let err = result.unwrap_err();
        assert_eq!(err.code, ErrorCode::BadUserInput);
        assert_eq!(err.field, Some("after"));
    }

    #[test]
    fn a_cursor_opens_only_for_its_list_and_its_owner() {
        let cipher = cipher("k1", 7);
        let alice = Uuid::new_v4();
        let cursors = Cursors::owned_by(&cipher, alice);
        let cursor = cursors.seal::<Consent>(&Seq(42)).unwrap();
        assert!(!cursor.contains("42"));
        assert_eq!(
            cursors.open::<Consent>(Some(&cursor)).unwrap(),
            Some(Seq(42))
        );
        assert_eq!(cursors.open::<Consent>(None).unwrap(), None);
        // Another person, another list, a staff list, another keyring.
        refused(Cursors::owned_by(&cipher, Uuid::new_v4()).open::<Consent>(Some(&cursor)));
        refused(cursors.open::<Audit>(Some(&cursor)));
        refused(Cursors::shared(&cipher).open::<Consent>(Some(&cursor)));
        refused(Cursors::owned_by(&self::cipher("k1", 8), alice).open::<Consent>(Some(&cursor)));
        // Malformed, truncated, altered.
        refused(cursors.open::<Consent>(Some("not a cursor!")));
        refused(cursors.open::<Consent>(Some("")));
        refused(cursors.open::<Consent>(Some(&cursor[..cursor.len() - 2])));
        let mut altered = URL_SAFE_NO_PAD.decode(&cursor).unwrap();
        let last = altered.len() - 1;
        altered[last] ^= 1;
        refused(cursors.open::<Consent>(Some(&URL_SAFE_NO_PAD.encode(altered))));
    }

    #[test]
    fn first_is_bounded() {
        assert_eq!(page_size(None).unwrap(), 50);
        assert_eq!(page_size(Some(0)).unwrap(), 0);
        assert_eq!(page_size(Some(MAX_FIRST)).unwrap(), 200);
        for bad in [-1, MAX_FIRST + 1, i32::MAX, i32::MIN] {
            let err = page_size(Some(bad)).unwrap_err();
            assert_eq!(err.code, ErrorCode::BadUserInput);
            assert_eq!(err.field, Some("first"));
        }
    }

    #[test]
    fn the_item_beyond_the_page_only_says_another_follows() {
        let cipher = cipher("k1", 7);
        let cursors = Cursors::shared(&cipher);
        let items = |n: i64| {
            (1..=n)
                .map(|i| (Seq::<AUDIT_LOG>(i), i))
                .collect::<Vec<_>>()
        };
        let (shown, more) = split_page(items(3), 2);
        assert_eq!(shown.len(), 2);
        assert!(more);
        let page = cursors.connection(shown, more, false).unwrap();
        assert!(page.has_next_page);
        assert!(!page.has_previous_page);
        let last = cursors.open::<Audit>(Some(&page.edges[1].cursor)).unwrap();
        assert_eq!(last, Some(Seq(2)));
        assert_eq!(split_page(items(2), 2), (items(2), false));
        assert_eq!(split_page(items(1), 0), (Vec::new(), true));
        assert_eq!(split_page(items(0), 0), (Vec::new(), false));
    }
}
