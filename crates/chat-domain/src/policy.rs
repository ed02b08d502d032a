//! Who may do what: pure functions over data, no I/O, table-tested.
//!
//! The services call these on every entry point, so the HTML pages, the JSON
//! API, the WebSocket and the CLI share one set of rules.

use crate::model::{Room, User, Visibility};
use crate::names::PermissionName;

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// No session.
    Guest,
    /// A logged-in user.
    User(User),
    /// The operator at the command line (`hihichat user add`): trusted.
    System,
}

impl Actor {
    /// The user, if the actor is one.
    pub fn user(&self) -> Option<&User> {
        match self {
            Self::User(u) => Some(u),
            _ => None,
        }
    }
    /// Whether the actor holds `perm` (`admin` implies all; `System` holds all).
    pub fn has(&self, perm: &PermissionName) -> bool {
        match self {
            Self::Guest => false,
            Self::User(u) => u.has(perm),
            Self::System => true,
        }
    }
    /// Whether this is a guest.
    pub fn is_guest(&self) -> bool {
        matches!(self, Self::Guest)
    }
}

/// What the caller's relation to a room is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Standing {
    /// The caller is a member.
    pub member: bool,
    /// The caller was kicked and not let back.
    pub banned: bool,
}

/// May manage users and permissions.
pub fn may_administer(actor: &Actor) -> bool {
    actor.has(&PermissionName::admin())
}

/// May create rooms.
pub fn may_create_room(actor: &Actor) -> bool {
    actor.has(&PermissionName::create_room())
}

/// May know the room exists, open it and read its history.
pub fn may_see(actor: &Actor, room: &Room, standing: Standing) -> bool {
    if matches!(actor, Actor::System) || standing.member {
        return true;
    }
    if room.is_direct() {
        return false;
    }
    match room.visibility {
        Visibility::Public => true,
        Visibility::Private => may_administer(actor),
    }
}

/// May become (or stay) a member by joining. Guests never become members.
pub fn may_join(actor: &Actor, room: &Room, standing: Standing) -> bool {
    match actor {
        Actor::Guest => false,
        Actor::System => true,
        Actor::User(_) => {
            if standing.member {
                return true;
            }
            !standing.banned && !room.is_direct() && room.visibility == Visibility::Public
        }
    }
}

/// May mute, unmute and kick in the room: `moderate` holders, admins and the
/// room's creator. Nobody moderates a direct room.
pub fn may_moderate(actor: &Actor, room: &Room) -> bool {
    if room.is_direct() {
        return matches!(actor, Actor::System);
    }
    match actor {
        Actor::Guest => false,
        Actor::System => true,
        Actor::User(u) => u.has(&PermissionName::moderate()) || u.name == room.created_by,
    }
}

/// May add members to the room (or let a kicked user back): in a private room
/// its creator and admins; in a public room its moderators.
pub fn may_manage_members(actor: &Actor, room: &Room) -> bool {
    if room.is_direct() {
        return matches!(actor, Actor::System);
    }
    match room.visibility {
        Visibility::Public => may_moderate(actor, room),
        Visibility::Private => match actor {
            Actor::Guest => false,
            Actor::System => true,
            Actor::User(u) => u.is_admin() || u.name == room.created_by,
        },
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::clock::Timestamp;
    use crate::names::{Description, RoomName, Username};

    fn user(name: &str, perms: &[PermissionName]) -> Actor {
        Actor::User(User {
            name: Username::parse(name).unwrap(),
            permissions: perms.iter().cloned().collect::<BTreeSet<_>>(),
            created_at: Timestamp::default(),
        })
    }

    fn room(name: &str, vis: Visibility) -> Room {
        Room {
            name: RoomName::parse(name).unwrap(),
            description: Description::empty(),
            visibility: vis,
            created_by: Username::parse("carol").unwrap(),
            created_at: Timestamp::default(),
        }
    }

    const OUT: Standing = Standing {
        member: false,
        banned: false,
    };
    const IN: Standing = Standing {
        member: true,
        banned: false,
    };
    const BANNED: Standing = Standing {
        member: false,
        banned: true,
    };

    #[test]
    fn who_may_do_what() {
        let guest = Actor::Guest;
        let plain = user("bob", &[]);
        let creator = user("carol", &[]);
        let moderator = user("mo", &[PermissionName::moderate()]);
        let admin = user("root", &[PermissionName::admin()]);
        let maker = user("maker", &[PermissionName::create_room()]);
        let public = room("lobby", Visibility::Public);
        let private = room("secret", Visibility::Private);
        let direct = room("@alice+bob", Visibility::Private);

        // (label, actor, room, standing, see, join, moderate, manage)
        type Row<'a> = (
            &'a str,
            &'a Actor,
            &'a Room,
            Standing,
            bool,
            bool,
            bool,
            bool,
        );
        let table: Vec<Row<'_>> = vec![
            (
                "guest/public",
                &guest,
                &public,
                OUT,
                true,
                false,
                false,
                false,
            ),
            (
                "guest/private",
                &guest,
                &private,
                OUT,
                false,
                false,
                false,
                false,
            ),
            (
                "guest/direct",
                &guest,
                &direct,
                OUT,
                false,
                false,
                false,
                false,
            ),
            (
                "user/public",
                &plain,
                &public,
                OUT,
                true,
                true,
                false,
                false,
            ),
            (
                "user/public banned",
                &plain,
                &public,
                BANNED,
                true,
                false,
                false,
                false,
            ),
            (
                "user/private outsider",
                &plain,
                &private,
                OUT,
                false,
                false,
                false,
                false,
            ),
            (
                "user/private member",
                &plain,
                &private,
                IN,
                true,
                true,
                false,
                false,
            ),
            (
                "user/direct member",
                &plain,
                &direct,
                IN,
                true,
                true,
                false,
                false,
            ),
            (
                "user/direct outsider",
                &plain,
                &direct,
                OUT,
                false,
                false,
                false,
                false,
            ),
            (
                "creator/public",
                &creator,
                &public,
                IN,
                true,
                true,
                true,
                true,
            ),
            (
                "creator/private",
                &creator,
                &private,
                IN,
                true,
                true,
                true,
                true,
            ),
            (
                "moderator/public",
                &moderator,
                &public,
                OUT,
                true,
                true,
                true,
                true,
            ),
            (
                "moderator/private outsider",
                &moderator,
                &private,
                OUT,
                false,
                false,
                true,
                false,
            ),
            (
                "moderator/direct",
                &moderator,
                &direct,
                OUT,
                false,
                false,
                false,
                false,
            ),
            (
                "admin/private",
                &admin,
                &private,
                OUT,
                true,
                false,
                true,
                true,
            ),
            (
                "admin/direct",
                &admin,
                &direct,
                OUT,
                false,
                false,
                false,
                false,
            ),
            (
                "system/direct",
                &Actor::System,
                &direct,
                OUT,
                true,
                true,
                true,
                true,
            ),
        ];
        for (label, actor, room, standing, see, join, moderate, manage) in table {
            assert_eq!(may_see(actor, room, standing), see, "{label}: see");
            assert_eq!(may_join(actor, room, standing), join, "{label}: join");
            assert_eq!(may_moderate(actor, room), moderate, "{label}: moderate");
            assert_eq!(may_manage_members(actor, room), manage, "{label}: manage");
        }

        for (actor, create, administer) in [
            (&guest, false, false),
            (&plain, false, false),
            (&maker, true, false),
            (&moderator, false, false),
            (&admin, true, true),
            (&Actor::System, true, true),
        ] {
            assert_eq!(may_create_room(actor), create, "{actor:?}");
            assert_eq!(may_administer(actor), administer, "{actor:?}");
        }
    }
}
