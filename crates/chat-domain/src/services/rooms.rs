//! `Rooms`: listing, creating, opening and joining rooms, and direct rooms.

use std::collections::HashSet;
use std::sync::Arc;

use tracing::instrument;

use super::{Auditor, visible_room};
use crate::clock::Clock;
use crate::error::RoomError;
use crate::model::{AuditAction, NewRoom, Room, RoomSummary, Visibility};
use crate::names::{Description, RoomName, Seq, Username};
use crate::policy::{self, Actor, Standing};
use crate::ports::{AuditLog, MessageLog, RoomRepository, StoreError};

/// The result of a join: the room and its members.
#[derive(Debug, Clone)]
pub struct Joined {
    /// The room.
    pub room: Room,
    /// Its members, sorted.
    pub members: Vec<Username>,
    /// Whether the caller is a member (guests only watch).
    pub member: bool,
    /// The room's slow-mode interval; `None` when off.
    pub slow_mode: Option<std::time::Duration>,
}

/// One of my direct conversations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectSummary {
    /// The direct room.
    pub room: RoomName,
    /// The other person.
    pub with: Username,
    /// Its newest seq.
    pub last_seq: Seq,
}

/// Rooms and membership.
pub struct Rooms {
    rooms: Arc<dyn RoomRepository>,
    log: Arc<dyn MessageLog>,
    audit: Auditor,
    clock: Arc<dyn Clock>,
}

impl Rooms {
    /// Wires the service to its ports; room creation is written to `audit`.
    pub fn new(
        rooms: Arc<dyn RoomRepository>,
        log: Arc<dyn MessageLog>,
        audit: Arc<dyn AuditLog>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            rooms,
            log,
            audit: Auditor::new(audit, Arc::clone(&clock)),
            clock,
        }
    }

    /// The ordinary rooms the caller may see, with member counts and last seqs:
    /// public rooms for everyone, private rooms only for members (and admins).
    ///
    /// # Errors
    /// Store failures.
    pub async fn list(&self, actor: &Actor) -> Result<Vec<RoomSummary>, RoomError> {
        let all = self.rooms.rooms().await?;
        // Seeing a room depends only on membership (`banned` never hides
        // one), so one read of the caller's rooms answers for every private
        // room, and a fixed number of reads lists any number of rooms.
        let mine: HashSet<RoomName> = match actor.user() {
            Some(u) if all.iter().any(|r| r.visibility == Visibility::Private) => self
                .rooms
                .rooms_of(&u.name)
                .await?
                .into_iter()
                .map(|r| r.name)
                .collect(),
            _ => HashSet::new(),
        };
        let visible: Vec<Room> = all
            .into_iter()
            .filter(|room| {
                let standing = Standing {
                    member: mine.contains(&room.name),
                    banned: false,
                };
                policy::may_see(actor, room, standing)
            })
            .collect();
        let names: Vec<RoomName> = visible.iter().map(|r| r.name.clone()).collect();
        let members = self.rooms.member_counts(&names).await?;
        let seqs = self.log.last_seqs(&names).await?;
        if members.len() != names.len() || seqs.len() != names.len() {
            return Err(RoomError::Store(StoreError::unexpected(
                "the store answered a listing with the wrong number of rooms",
            )));
        }
        Ok(visible
            .into_iter()
            .zip(members)
            .zip(seqs)
            .map(|((room, members), last_seq)| RoomSummary {
                room,
                members,
                last_seq,
            })
            .collect())
    }

    /// Creates a room; the creator becomes its first member.
    ///
    /// # Errors
    /// `Unauthenticated` for guests, `Forbidden` without `create_room`,
    /// `Invalid` for a direct-room name, `NameTaken`; store failures.
    #[instrument(skip_all, fields(room = %name))]
    pub async fn create(
        &self,
        actor: &Actor,
        name: RoomName,
        description: Description,
        visibility: Visibility,
    ) -> Result<Room, RoomError> {
        let creator = match actor {
            Actor::Guest => return Err(RoomError::Unauthenticated),
            Actor::User(u) => u.name.clone(),
            Actor::System => return Err(RoomError::Forbidden("rooms are created by users")),
        };
        if !policy::may_create_room(actor) {
            return Err(RoomError::Forbidden("you need the create_room permission"));
        }
        if name.is_direct() {
            return Err(RoomError::Invalid(crate::names::InvalidInput {
                what: "room name",
                why: "names starting with @ are for direct messages",
            }));
        }
        let room = Room {
            name,
            description,
            visibility,
            created_by: creator.clone(),
            created_at: self.clock.now(),
        };
        let room = self
            .rooms
            .create_room(NewRoom {
                room,
                members: vec![creator],
            })
            .await?;
        self.audit
            .record(
                actor,
                AuditAction::RoomCreated,
                room.name.as_str(),
                room.visibility.as_str().to_owned(),
            )
            .await;
        Ok(room)
    }

    /// A room the caller may see.
    ///
    /// # Errors
    /// `NotFound` for missing or invisible rooms; store failures.
    pub async fn get(&self, actor: &Actor, name: &RoomName) -> Result<Room, RoomError> {
        Ok(visible_room(&self.rooms, actor, name).await?.0)
    }

    /// Opens a room: users become members of public rooms (unless kicked);
    /// guests may watch public rooms without becoming members.
    ///
    /// # Errors
    /// `NotFound` for missing or invisible rooms; `Forbidden` for a kicked
    /// user; store failures.
    #[instrument(skip_all, fields(room = %name))]
    pub async fn join(&self, actor: &Actor, name: &RoomName) -> Result<Joined, RoomError> {
        let (room, standing) = visible_room(&self.rooms, actor, name).await?;
        let member = match actor.user() {
            Some(u) if !standing.member => {
                if !policy::may_join(actor, &room, standing) {
                    return Err(RoomError::Forbidden(if standing.banned {
                        "you were removed from this room; a moderator must let you back"
                    } else {
                        "this room is private"
                    }));
                }
                self.rooms.add_member(name, &u.name).await?;
                true
            }
            Some(_) => true,
            None => false,
        };
        let members = self.rooms.members(name).await?;
        let slow_mode = self.rooms.slow_mode(name).await?;
        Ok(Joined {
            room,
            members,
            member,
            slow_mode,
        })
    }

    /// The slow-mode interval of a room the caller may see; `None` when off.
    ///
    /// # Errors
    /// `NotFound` for missing or invisible rooms; store failures.
    pub async fn slow_mode(
        &self,
        actor: &Actor,
        name: &RoomName,
    ) -> Result<Option<std::time::Duration>, RoomError> {
        visible_room(&self.rooms, actor, name).await?;
        Ok(self.rooms.slow_mode(name).await?)
    }

    /// The members of a room the caller may see.
    ///
    /// # Errors
    /// `NotFound` for missing or invisible rooms; store failures.
    pub async fn members(
        &self,
        actor: &Actor,
        name: &RoomName,
    ) -> Result<Vec<Username>, RoomError> {
        visible_room(&self.rooms, actor, name).await?;
        Ok(self.rooms.members(name).await?)
    }

    /// My direct conversations, with their last seqs (for unread badges).
    ///
    /// # Errors
    /// `Unauthenticated` for guests; store failures.
    pub async fn directs(&self, actor: &Actor) -> Result<Vec<DirectSummary>, RoomError> {
        let me = actor.user().ok_or(RoomError::Unauthenticated)?;
        let mut out = Vec::new();
        for room in self.rooms.rooms_of(&me.name).await? {
            if let Some(with) = room.name.direct_peer(&me.name) {
                let last_seq = self.log.last_seq(&room.name).await?;
                out.push(DirectSummary {
                    room: room.name,
                    with,
                    last_seq,
                });
            }
        }
        Ok(out)
    }

    /// Every room the caller belongs to, direct rooms included.
    ///
    /// # Errors
    /// Store failures.
    pub async fn memberships(&self, actor: &Actor) -> Result<Vec<Room>, RoomError> {
        match actor.user() {
            Some(u) => Ok(self.rooms.rooms_of(&u.name).await?),
            None => Ok(Vec::new()),
        }
    }
}

/// Opens (creating on first use) the direct room of `me` and `with`; the bool
/// says whether it was created by this call.
pub(super) async fn open_direct(
    rooms: &Arc<dyn RoomRepository>,
    users: &dyn crate::ports::UserRepository,
    clock: &dyn Clock,
    me: &Username,
    with: &Username,
) -> Result<(Room, bool), RoomError> {
    let name = RoomName::direct(me, with)?;
    if let Some(room) = rooms.room(&name).await? {
        return Ok((room, false));
    }
    if users.user(with).await?.is_none() {
        return Err(RoomError::NoSuchUser);
    }
    let room = Room {
        name,
        description: Description::empty(),
        visibility: Visibility::Private,
        created_by: me.clone(),
        created_at: clock.now(),
    };
    let members = vec![me.clone(), with.clone()];
    match rooms
        .create_room(NewRoom {
            room: room.clone(),
            members,
        })
        .await
    {
        Ok(room) => Ok((room, true)),
        // Both users opened it at once: the other call made it.
        Err(StoreError::Conflict) => Ok((
            rooms.room(&room.name).await?.ok_or(RoomError::NotFound)?,
            false,
        )),
        Err(e) => Err(e.into()),
    }
}
