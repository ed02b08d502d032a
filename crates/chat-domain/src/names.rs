//! Newtypes for every name and value that crosses the edge: parse, don't validate.
//!
//! Each constructor is the only way to get the type, so a `Username` held
//! anywhere in the program is known to be well formed. Names are Unicode
//! (`小明`, `闲聊-1`); the rules exclude only what would break URLs, the
//! direct-room naming scheme or the eye (whitespace, control characters).

use std::fmt;

use thiserror::Error;

/// Why a piece of input was refused; the message is safe to show to users.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{what}: {why}")]
pub struct InvalidInput {
    /// Which kind of value was refused ("username", "room name", ...).
    pub what: &'static str,
    /// What is wrong with it, in words for the person who typed it.
    pub why: &'static str,
}

impl InvalidInput {
    const fn new(what: &'static str, why: &'static str) -> Self {
        Self { what, why }
    }
}

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '-' | '_' | '.')
}

fn check_name(raw: &str, what: &'static str, max: usize) -> Result<(), InvalidInput> {
    let len = raw.chars().count();
    if len == 0 {
        return Err(InvalidInput::new(what, "must not be empty"));
    }
    if len > max {
        return Err(InvalidInput::new(what, "is too long"));
    }
    if !raw.chars().all(is_name_char) {
        return Err(InvalidInput::new(
            what,
            "may contain only letters, digits, '-', '_' and '.'",
        ));
    }
    if raw.starts_with('.') {
        return Err(InvalidInput::new(what, "must not start with '.'"));
    }
    Ok(())
}

macro_rules! string_newtype {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[cfg_attr(feature = "serde", derive(serde::Serialize), serde(transparent))]
        pub struct $name(String);

        impl $name {
            /// The value as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
            /// The value as an owned `String`.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<&str> for $name {
            type Error = InvalidInput;
            fn try_from(raw: &str) -> Result<Self, InvalidInput> {
                Self::parse(raw)
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidInput;
            fn try_from(raw: String) -> Result<Self, InvalidInput> {
                Self::parse(&raw)
            }
        }

        impl std::str::FromStr for $name {
            type Err = InvalidInput;
            fn from_str(raw: &str) -> Result<Self, InvalidInput> {
                Self::parse(raw)
            }
        }
    };
}

/// Adds `from_trusted` to a newtype a store reads back from rows it wrote.
///
/// Re-running `parse` on every row of a history page costs about as much as
/// the rest of decoding it, and can only fail if the store's data was
/// corrupted or edited behind its back. Only the types a stored message is
/// made of get this door; the rest of the program keeps "parse, don't
/// validate".
macro_rules! trusted_constructor {
    ($name:ident) => {
        impl $name {
            #[doc = concat!(
                        "Wraps a value that a store wrote itself after it had been made by [`",
                        stringify!($name),
                        "::parse`], without checking it again.\n\n",
                        "Only for a storage adapter reading back its own rows (a history page); ",
                        "never for anything from a client, a file or another program, which ",
                        "must go through `parse`. Debug builds still check, so a caller that ",
                        "breaks the promise fails the tests."
                    )]
            pub fn from_trusted(raw: String) -> Self {
                debug_assert!(
                    Self::parse(&raw).is_ok(),
                    concat!(stringify!($name), "::from_trusted given an invalid value")
                );
                Self(raw)
            }
        }
    };
}

string_newtype! {
    /// A user's unique name: 1–32 letters (any script), digits, `-`, `_`, `.`.
    ///
    /// `bot` and `system` are reserved, because messages show them as authors.
    Username
}

/// Names no user may take: they appear as message authors.
pub const RESERVED_USERNAMES: [&str; 3] = ["bot", "system", "admin-bot"];

impl Username {
    /// Longest accepted name, in characters.
    pub const MAX_CHARS: usize = 32;

    /// Parses a username.
    ///
    /// # Errors
    /// [`InvalidInput`] when empty, too long, reserved or containing other characters.
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        check_name(raw, "username", Self::MAX_CHARS)?;
        if RESERVED_USERNAMES
            .iter()
            .any(|r| r.eq_ignore_ascii_case(raw))
        {
            return Err(InvalidInput::new("username", "is reserved"));
        }
        Ok(Self(raw.to_owned()))
    }
}

string_newtype! {
    /// A room's unique name: 1–64 letters, digits, `-`, `_`, `.`; or a
    /// direct room `@alice+bob` whose two usernames are sorted.
    RoomName
}

impl RoomName {
    /// Longest accepted name of an ordinary room, in characters.
    pub const MAX_CHARS: usize = 64;

    /// Parses a room name, accepting the direct form `@a+b` only when `a < b`
    /// are both valid usernames, so each pair has exactly one name.
    ///
    /// # Errors
    /// [`InvalidInput`] when the name breaks the rules above.
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        if let Some(rest) = raw.strip_prefix('@') {
            let (a, b) = rest.split_once('+').ok_or(InvalidInput::new(
                "room name",
                "a direct room is named @a+b",
            ))?;
            let (a, b) = (Username::parse(a)?, Username::parse(b)?);
            if a >= b {
                return Err(InvalidInput::new(
                    "room name",
                    "a direct room names two different users in sorted order",
                ));
            }
            return Ok(Self(raw.to_owned()));
        }
        check_name(raw, "room name", Self::MAX_CHARS)?;
        Ok(Self(raw.to_owned()))
    }

    /// The direct room of two users, whichever order they are given in.
    ///
    /// # Errors
    /// [`InvalidInput`] when both are the same user.
    pub fn direct(a: &Username, b: &Username) -> Result<Self, InvalidInput> {
        let (lo, hi) = match a.cmp(b) {
            std::cmp::Ordering::Less => (a, b),
            std::cmp::Ordering::Greater => (b, a),
            std::cmp::Ordering::Equal => {
                return Err(InvalidInput::new(
                    "recipient",
                    "you cannot message yourself",
                ));
            }
        };
        Ok(Self(format!("@{lo}+{hi}")))
    }

    /// Whether this is a direct (two-person) room.
    pub fn is_direct(&self) -> bool {
        self.0.starts_with('@')
    }

    /// The two users of a direct room, sorted; `None` for ordinary rooms.
    pub fn direct_pair(&self) -> Option<(Username, Username)> {
        let (a, b) = self.0.strip_prefix('@')?.split_once('+')?;
        Some((Username(a.to_owned()), Username(b.to_owned())))
    }

    /// In a direct room, the user who is not `me`.
    pub fn direct_peer(&self, me: &Username) -> Option<Username> {
        let (a, b) = self.direct_pair()?;
        if &a == me {
            Some(b)
        } else if &b == me {
            Some(a)
        } else {
            None
        }
    }
}

string_newtype! {
    /// A permission's name: 1–32 of `a-z`, `0-9`, `_`, `-`, starting with a letter.
    PermissionName
}

impl PermissionName {
    /// Parses a permission name.
    ///
    /// # Errors
    /// [`InvalidInput`] when it breaks the rules above.
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        const WHAT: &str = "permission";
        if raw.is_empty() || raw.len() > 32 {
            return Err(InvalidInput::new(WHAT, "must be 1 to 32 characters"));
        }
        if !raw.starts_with(|c: char| c.is_ascii_lowercase())
            || !raw
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        {
            return Err(InvalidInput::new(
                WHAT,
                "may contain only a-z, 0-9, '_' and '-', starting with a letter",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// `admin`: manage users and permissions; implies every other permission.
    pub fn admin() -> Self {
        Self("admin".into())
    }
    /// `create_room`: create rooms.
    pub fn create_room() -> Self {
        Self("create_room".into())
    }
    /// `moderate`: mute and kick in any room.
    pub fn moderate() -> Self {
        Self("moderate".into())
    }
    /// The permissions every installation has.
    pub fn builtins() -> [Self; 3] {
        [Self::admin(), Self::create_room(), Self::moderate()]
    }
    /// Whether this is one of [`PermissionName::builtins`].
    pub fn is_builtin(&self) -> bool {
        Self::builtins().contains(self)
    }
}

string_newtype! {
    /// The text of a chat message: 1–4,000 characters with something visible in it.
    ///
    /// Any Unicode is kept exactly as sent (right-to-left marks, zero-width
    /// characters, emoji); only NUL and other C0 controls except tab and
    /// newline are refused, since they corrupt terminals and logs.
    MessageText
}

impl MessageText {
    /// Longest accepted text, in characters (not bytes).
    pub const MAX_CHARS: usize = 4000;

    /// Parses message text.
    ///
    /// # Errors
    /// [`InvalidInput`] when blank, too long or containing control characters.
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        const WHAT: &str = "message";
        if raw.trim().is_empty() {
            return Err(InvalidInput::new(WHAT, "must not be empty"));
        }
        if raw.chars().count() > Self::MAX_CHARS {
            return Err(InvalidInput::new(WHAT, "is longer than 4000 characters"));
        }
        if raw
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r'))
        {
            return Err(InvalidInput::new(WHAT, "contains control characters"));
        }
        Ok(Self(raw.to_owned()))
    }
}

string_newtype! {
    /// A room's description: up to 500 characters, possibly empty.
    Description
}

impl Description {
    /// Parses a description; surrounding whitespace is dropped.
    ///
    /// # Errors
    /// [`InvalidInput`] when longer than 500 characters or holding control characters.
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let raw = raw.trim();
        if raw.chars().count() > 500 {
            return Err(InvalidInput::new(
                "description",
                "is longer than 500 characters",
            ));
        }
        if raw.chars().any(|c| c.is_control() && c != '\n') {
            return Err(InvalidInput::new(
                "description",
                "contains control characters",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The empty description.
    pub fn empty() -> Self {
        Self(String::new())
    }
}

string_newtype! {
    /// A client-chosen id that makes a send idempotent: 1–64 visible ASCII characters.
    ClientId
}

impl ClientId {
    /// Parses a client id.
    ///
    /// # Errors
    /// [`InvalidInput`] when empty, longer than 64 or not printable ASCII.
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        if raw.is_empty() || raw.len() > 64 || !raw.chars().all(|c| c.is_ascii_graphic()) {
            return Err(InvalidInput::new(
                "cid",
                "must be 1 to 64 printable ASCII characters",
            ));
        }
        Ok(Self(raw.to_owned()))
    }
}

trusted_constructor!(Username);
trusted_constructor!(MessageText);
trusted_constructor!(ClientId);

/// A message's position in its room: 1, 2, 3, … with no gap and no repeat.
///
/// `Seq::ZERO` means "before the first message".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize), serde(transparent))]
pub struct Seq(u64);

impl Seq {
    /// Before the first message.
    pub const ZERO: Seq = Seq(0);

    /// Wraps a raw number.
    pub const fn new(n: u64) -> Self {
        Self(n)
    }
    /// The raw number.
    pub const fn get(self) -> u64 {
        self.0
    }
    /// The seq after this one.
    pub const fn next(self) -> Self {
        Self(self.0 + 1)
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unicode_names_are_accepted() {
        assert!(Username::parse("小明").is_ok());
        assert!(RoomName::parse("闲聊-1").is_ok());
        assert!(Username::parse("ali.ce_1-x").is_ok());
    }

    #[test]
    fn bad_names_are_refused() {
        for bad in [
            "", " ", "a b", "a/b", "a+b", "@x", ".hidden", "bot", "System", "<script>",
        ] {
            assert!(Username::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Username::parse(&"x".repeat(33)).is_err());
        assert!(Username::parse(&"名".repeat(32)).is_ok());
        for bad in [
            "",
            "a b",
            "a/b",
            "a?b",
            "#x",
            "@bob+alice",
            "@alice+alice",
            "@alice",
        ] {
            assert!(RoomName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn direct_rooms_are_named_by_the_sorted_pair() {
        let (a, b) = (
            Username::parse("bob").unwrap(),
            Username::parse("alice").unwrap(),
        );
        let room = RoomName::direct(&a, &b).unwrap();
        assert_eq!(room.as_str(), "@alice+bob");
        assert_eq!(room, RoomName::direct(&b, &a).unwrap());
        assert_eq!(RoomName::parse("@alice+bob").unwrap(), room);
        assert!(room.is_direct());
        assert_eq!(room.direct_peer(&a), Some(b.clone()));
        assert_eq!(room.direct_peer(&Username::parse("carol").unwrap()), None);
        assert!(RoomName::direct(&a, &a).is_err());
    }

    #[test]
    fn message_text_limits_count_characters_not_bytes() {
        assert!(MessageText::parse(&"你".repeat(4000)).is_ok());
        assert!(MessageText::parse(&"你".repeat(4001)).is_err());
        assert!(MessageText::parse("  \n ").is_err());
        assert!(MessageText::parse("a\u{0}b").is_err());
        assert!(MessageText::parse("line\nline\u{200b}\u{202e}🎉").is_ok());
    }

    #[test]
    fn trusted_constructors_keep_the_value() {
        assert_eq!(
            Username::from_trusted("小明".to_owned()),
            Username::parse("小明").unwrap()
        );
        assert_eq!(
            MessageText::from_trusted("hi\nthere 🎉".to_owned()),
            MessageText::parse("hi\nthere 🎉").unwrap()
        );
        assert_eq!(ClientId::from_trusted("c-1".to_owned()).as_str(), "c-1");
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "from_trusted given an invalid value")]
    fn trusted_constructors_still_check_in_debug_builds() {
        let _ = Username::from_trusted("a b".to_owned());
    }

    #[test]
    fn permission_names() {
        assert!(PermissionName::parse("create_room").is_ok());
        assert!(PermissionName::parse("Create").is_err());
        assert!(PermissionName::parse("1x").is_err());
        assert!(PermissionName::admin().is_builtin());
    }
}
