//! The room pages: the room list and its create form, the chat page (with a
//! form send for browsers without JavaScript), and my direct conversations.

use std::collections::BTreeSet;
use std::time::Duration;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chat_domain::{
    ClientId, Coded, Description, DirectSummary, ErrorCode, Message, MessageKind, MessageText,
    Room, RoomError, RoomName, Sent, Seq, Username, Visibility, policy,
};
use rand::RngCore;
use serde::Deserialize;

use super::PageContext;
use super::csrf::CsrfForm;
use super::text::{self, Segment, capitalize};
use crate::AppState;

/// Messages on a freshly opened chat page (the WebSocket `joined` sends as many).
const PAGE_MESSAGES: usize = 50;
/// Consecutive messages of one sender closer than this share one header.
const GROUP_GAP: Duration = Duration::from_secs(5 * 60);

// ---------------------------------------------------------------- room list

/// One row of the room list.
struct RoomRow {
    name: String,
    href: String,
    description: String,
    visibility: &'static str,
    members: u64,
    last_seq: u64,
    created_by: String,
}

/// What the create form shows again after a refusal.
#[derive(Default)]
struct CreateValues {
    name: String,
    description: String,
    private: bool,
}

#[derive(Template)]
#[template(path = "rooms.html")]
struct RoomsPage<'a> {
    page: &'a PageContext,
    rooms: Vec<RoomRow>,
    form: CreateValues,
    error: Option<String>,
}

fn room_rows(summaries: Vec<chat_domain::RoomSummary>) -> Vec<RoomRow> {
    let mut rows: Vec<RoomRow> = summaries
        .into_iter()
        .filter(|s| !s.room.is_direct())
        .map(|s| RoomRow {
            href: text::room_href(s.room.name.as_str()),
            name: s.room.name.into_string(),
            description: s.room.description.into_string(),
            visibility: s.room.visibility.as_str(),
            members: s.members,
            last_seq: s.last_seq.get(),
            created_by: s.room.created_by.into_string(),
        })
        .collect();
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    rows
}

async fn render_list(
    page: &PageContext,
    state: &AppState,
    status: StatusCode,
    form: CreateValues,
    error: Option<String>,
) -> Response {
    match state.rooms.list(&page.actor).await {
        Ok(summaries) => page.render(
            status,
            &RoomsPage {
                page,
                rooms: room_rows(summaries),
                form,
                error,
            },
        ),
        Err(e) => store_failure(page, &e),
    }
}

/// `GET /rooms`.
pub(super) async fn list(page: PageContext, State(state): State<AppState>) -> Response {
    render_list(&page, &state, StatusCode::OK, CreateValues::default(), None).await
}

#[derive(Debug, Deserialize)]
pub(super) struct CreateForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    visibility: String,
}

/// `POST /rooms`: the create form. The service checks `create_room`; this
/// answers a refusal with a 403 page, and bad input with the form again.
pub(super) async fn create(
    page: PageContext,
    State(state): State<AppState>,
    CsrfForm(form): CsrfForm<CreateForm>,
) -> Response {
    if page.actor.is_guest() || !policy::may_create_room(&page.actor) {
        // The service would refuse too; refusing first keeps the answer the
        // same whatever is wrong with the input.
        return page.error(
            StatusCode::FORBIDDEN,
            "Not allowed",
            "You need the create_room permission to create rooms.",
        );
    }
    let values = CreateValues {
        name: form.name.trim().to_owned(),
        description: form.description.clone(),
        private: form.visibility == "private",
    };
    let parsed = RoomName::parse(form.name.trim()).and_then(|name| {
        Description::parse(&form.description).map(|description| (name, description))
    });
    let (name, description) = match parsed {
        Ok(p) => p,
        Err(e) => {
            return render_list(
                &page,
                &state,
                StatusCode::UNPROCESSABLE_ENTITY,
                values,
                Some(capitalize(&e.to_string())),
            )
            .await;
        }
    };
    let visibility = Visibility::parse(&form.visibility).unwrap_or(Visibility::Public);
    match state
        .rooms
        .create(&page.actor, name, description, visibility)
        .await
    {
        Ok(room) => page.redirect(&text::room_href(room.name.as_str())),
        Err(RoomError::Forbidden(why)) => {
            page.error(StatusCode::FORBIDDEN, "Not allowed", &capitalize(why))
        }
        Err(RoomError::Unauthenticated) => page.error(
            StatusCode::FORBIDDEN,
            "Not allowed",
            "Log in with an account that may create rooms.",
        ),
        Err(e @ (RoomError::NameTaken | RoomError::Invalid(_))) => {
            let status = if matches!(e, RoomError::NameTaken) {
                StatusCode::CONFLICT
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            render_list(
                &page,
                &state,
                status,
                values,
                Some(capitalize(&e.to_string())),
            )
            .await
        }
        Err(e) => store_failure(&page, &e),
    }
}

// ---------------------------------------------------------------- chat page

/// One message as the chat page shows it.
struct MessageView {
    seq: u64,
    from: String,
    avatar: String,
    segments: Vec<Segment>,
    ts: String,
    /// `HH:MM` UTC; `chat.js` replaces it with the reader's local time.
    time: String,
    notice: bool,
    mine: bool,
    /// Continues the previous message's group (same sender, close in time).
    cont: bool,
}

fn message_views(messages: &[Message], me: Option<&str>) -> Vec<MessageView> {
    let mut out: Vec<MessageView> = Vec::with_capacity(messages.len());
    let mut prev: Option<&Message> = None;
    for m in messages {
        let cont = prev.is_some_and(|p| {
            p.from == m.from
                && p.kind == MessageKind::Chat
                && m.kind == MessageKind::Chat
                && p.ts.until(m.ts) < GROUP_GAP
        });
        let ts = m.ts.to_rfc3339();
        out.push(MessageView {
            seq: m.seq.get(),
            from: m.from.as_str().to_owned(),
            avatar: text::avatar_href(m.from.as_str()),
            segments: text::linkify(m.text.as_str()),
            time: ts.get(11..16).unwrap_or_default().to_owned(),
            ts,
            notice: m.kind == MessageKind::Notice,
            mine: me == Some(m.from.as_str()),
            cont,
        });
        prev = Some(m);
    }
    out
}

/// One member in the member list.
struct MemberView {
    name: String,
    avatar: String,
    online: bool,
    muted: bool,
    me: bool,
    /// The direct room with this member, for a logged-in viewer.
    dm_href: Option<String>,
}

/// One of my direct conversations.
struct DmRow {
    room: String,
    href: String,
    with: String,
    avatar: String,
    last_seq: u64,
    current: bool,
}

fn dm_rows(dms: Vec<DirectSummary>, current: Option<&RoomName>) -> Vec<DmRow> {
    let mut rows: Vec<DmRow> = dms
        .into_iter()
        .map(|d| DmRow {
            href: text::room_href(d.room.as_str()),
            current: current == Some(&d.room),
            room: d.room.into_string(),
            avatar: text::avatar_href(d.with.as_str()),
            with: d.with.into_string(),
            last_seq: d.last_seq.get(),
        })
        .collect();
    rows.sort_by(|a, b| a.with.cmp(&b.with));
    rows
}

/// A one-off message at the top of the composer (the result of a form send).
struct Flash {
    error: bool,
    text: String,
}

#[derive(Template)]
#[template(path = "room.html")]
struct RoomPage<'a> {
    page: &'a PageContext,
    room: String,
    href: String,
    description: String,
    visibility: &'static str,
    /// In a direct room, the other person.
    peer: Option<String>,
    /// False for a direct room whose first message is yet to be sent.
    exists: bool,
    members: Vec<MemberView>,
    messages: Vec<MessageView>,
    /// Older messages exist before the first one shown.
    more: bool,
    oldest_seq: u64,
    last_seq: u64,
    /// Showing an older page (`?before=`), not the live end.
    older: bool,
    may_moderate: bool,
    dms: Vec<DmRow>,
    bot_name: &'a str,
    /// A fresh idempotency key for the no-JavaScript form send.
    cid: String,
    flash: Option<Flash>,
    /// The bot's private answer to a guest's form send.
    bot_reply: Option<(String, Vec<Segment>)>,
}

impl RoomPage<'_> {
    fn me(&self) -> &str {
        self.page.user.as_deref().unwrap_or_default()
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct RoomQuery {
    before: Option<u64>,
}

/// What the room path names.
enum Target {
    /// A room that exists and the viewer may see.
    Room(Room),
    /// A direct room of the viewer's that does not exist yet.
    NewDirect(RoomName, Username),
}

/// Resolves the `{room}` of a path for `page`'s viewer.
async fn resolve(page: &PageContext, state: &AppState, raw: &str) -> Result<Target, Response> {
    let name = match RoomName::parse(raw) {
        Ok(n) => n,
        Err(_) => return Err(canonical_direct(page, raw).unwrap_or_else(|| page.not_found())),
    };
    match state.rooms.get(&page.actor, &name).await {
        Ok(room) => Ok(Target::Room(room)),
        Err(RoomError::NotFound) => {
            let peer = page.actor.user().and_then(|me| name.direct_peer(&me.name));
            match peer {
                Some(peer) => Ok(Target::NewDirect(name, peer)),
                None => Err(page.not_found()),
            }
        }
        Err(e) => Err(store_failure(page, &e)),
    }
}

/// `@bob+alice` → a redirect to `@alice+bob`, the one name of that pair.
fn canonical_direct(page: &PageContext, raw: &str) -> Option<Response> {
    let (a, b) = raw.strip_prefix('@')?.split_once('+')?;
    let (a, b) = (Username::parse(a).ok()?, Username::parse(b).ok()?);
    let room = RoomName::direct(&a, &b).ok()?;
    Some(page.redirect(&text::room_href(room.as_str())))
}

/// `GET /rooms/{room}`.
pub(super) async fn show(
    page: PageContext,
    State(state): State<AppState>,
    Path(raw): Path<String>,
    Query(q): Query<RoomQuery>,
) -> Response {
    let target = match resolve(&page, &state, &raw).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    render_room(
        &page,
        &state,
        target,
        q.before.map(Seq::new),
        StatusCode::OK,
        None,
        None,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn render_room(
    page: &PageContext,
    state: &AppState,
    target: Target,
    before: Option<Seq>,
    status: StatusCode,
    flash: Option<Flash>,
    bot_reply: Option<(String, Vec<Segment>)>,
) -> Response {
    let actor = &page.actor;
    let me = actor.user().map(|u| u.name.clone());
    let dms = match actor.user() {
        Some(_) => match state.rooms.directs(actor).await {
            Ok(d) => d,
            Err(e) => return store_failure(page, &e),
        },
        None => Vec::new(),
    };
    let cid = new_cid();
    let bot_name = state.chat.bot_name();
    let (room, peer) = match target {
        Target::NewDirect(name, peer) => {
            let members = [me.clone(), Some(peer.clone())]
                .into_iter()
                .flatten()
                .map(|u| member_view(&u, me.as_ref(), &BTreeSet::new(), &BTreeSet::new()))
                .collect();
            return page.render(
                status,
                &RoomPage {
                    page,
                    href: text::room_href(name.as_str()),
                    dms: dm_rows(dms, Some(&name)),
                    room: name.into_string(),
                    description: String::new(),
                    visibility: Visibility::Private.as_str(),
                    peer: Some(peer.into_string()),
                    exists: false,
                    members,
                    messages: Vec::new(),
                    more: false,
                    oldest_seq: 0,
                    last_seq: 0,
                    older: false,
                    may_moderate: false,
                    bot_name,
                    cid,
                    flash,
                    bot_reply,
                },
            );
        }
        Target::Room(room) => {
            let peer = me.as_ref().and_then(|m| room.name.direct_peer(m));
            (room, peer)
        }
    };
    let name = &room.name;
    let loaded = async {
        let members = state.rooms.members(actor, name).await?;
        let online: BTreeSet<Username> =
            state.chat.online(actor, name).await?.into_iter().collect();
        let history = state
            .chat
            .history(actor, name, before, PAGE_MESSAGES)
            .await?;
        Ok::<_, RoomError>((members, online, history))
    }
    .await;
    let (members, online, history) = match loaded {
        Ok(l) => l,
        Err(RoomError::NotFound) => return page.not_found(),
        Err(e) => return store_failure(page, &e),
    };
    let may_moderate = policy::may_moderate(actor, &room) && !actor.is_guest();
    let muted: BTreeSet<Username> = if may_moderate {
        match state.moderation.mutes(actor, name).await {
            Ok(m) => m.into_iter().map(|(u, _)| u).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "could not list mutes");
                BTreeSet::new()
            }
        }
    } else {
        BTreeSet::new()
    };
    let messages = message_views(&history.messages, me.as_ref().map(Username::as_str));
    let mut members: Vec<MemberView> = members
        .iter()
        .map(|u| member_view(u, me.as_ref(), &online, &muted))
        .collect();
    // Online first, then by name: who can answer now is what a reader looks for.
    members.sort_by(|a, b| b.online.cmp(&a.online).then_with(|| a.name.cmp(&b.name)));
    page.render(
        status,
        &RoomPage {
            page,
            room: name.as_str().to_owned(),
            href: text::room_href(name.as_str()),
            description: room.description.as_str().to_owned(),
            visibility: room.visibility.as_str(),
            peer: peer.map(Username::into_string),
            exists: true,
            members,
            more: history.more,
            oldest_seq: messages.first().map_or(0, |m| m.seq),
            last_seq: messages.last().map_or(0, |m| m.seq),
            messages,
            older: before.is_some(),
            may_moderate,
            dms: dm_rows(dms, Some(name)),
            bot_name,
            cid,
            flash,
            bot_reply,
        },
    )
}

fn member_view(
    u: &Username,
    me: Option<&Username>,
    online: &BTreeSet<Username>,
    muted: &BTreeSet<Username>,
) -> MemberView {
    MemberView {
        name: u.as_str().to_owned(),
        avatar: text::avatar_href(u.as_str()),
        online: online.contains(u),
        muted: muted.contains(u),
        me: me == Some(u),
        dm_href: me
            .filter(|m| *m != u)
            .and_then(|m| RoomName::direct(m, u).ok())
            .map(|r| text::room_href(r.as_str())),
    }
}

fn new_cid() -> String {
    let mut bytes = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("form-{hex}")
}

#[derive(Debug, Deserialize)]
pub(super) struct SendForm {
    #[serde(default)]
    text: String,
    #[serde(default)]
    cid: String,
}

/// `POST /rooms/{room}`: the composer without JavaScript. A user's message
/// is stored and the page reloads at the end; a guest gets the bot's answer
/// on the page.
pub(super) async fn send(
    page: PageContext,
    State(state): State<AppState>,
    Path(raw): Path<String>,
    CsrfForm(form): CsrfForm<SendForm>,
) -> Response {
    let target = match resolve(&page, &state, &raw).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let text = match MessageText::parse(&form.text) {
        Ok(t) => t,
        Err(e) => {
            let flash = Flash {
                error: true,
                text: capitalize(&e.to_string()),
            };
            return render_room(
                &page,
                &state,
                target,
                None,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(flash),
                None,
            )
            .await;
        }
    };
    let cid = ClientId::parse(&form.cid).ok();
    let result = match &target {
        Target::NewDirect(_, peer) => state
            .chat
            .direct(&page.actor, peer, text, cid)
            .await
            .map(Sent::Stored),
        Target::Room(room) => state.chat.send(&page.actor, &room.name, text, cid).await,
    };
    match result {
        Ok(Sent::Stored(appended)) => page.redirect(&format!(
            "{}#m{}",
            text::room_href(appended.message.room.as_str()),
            appended.message.seq
        )),
        Ok(Sent::Bot(reply)) => {
            let segments = text::linkify(&reply.text);
            render_room(
                &page,
                &state,
                target,
                None,
                StatusCode::OK,
                None,
                Some((reply.from, segments)),
            )
            .await
        }
        Err(e) => {
            let status = crate::error::status_of(e.code());
            if status.is_server_error() {
                tracing::error!(error = %e, "form send failed");
            }
            let flash = Flash {
                error: true,
                text: capitalize(&e.to_string()),
            };
            let target = match target {
                // A failed first message leaves the direct room unmade, or made:
                // look again rather than guess.
                Target::NewDirect(name, _) => match resolve(&page, &state, name.as_str()).await {
                    Ok(t) => t,
                    Err(r) => return r,
                },
                t => t,
            };
            render_room(&page, &state, target, None, status, Some(flash), None).await
        }
    }
}

// ---------------------------------------------------------------- direct messages

#[derive(Template)]
#[template(path = "dms.html")]
struct DmsPage<'a> {
    page: &'a PageContext,
    dms: Vec<DmRow>,
}

/// `GET /dms`: all my private chats.
pub(super) async fn dms(page: PageContext, State(state): State<AppState>) -> Response {
    if page.actor.is_guest() {
        return page.redirect(&page.login_href());
    }
    match state.rooms.directs(&page.actor).await {
        Ok(d) => page.render(
            StatusCode::OK,
            &DmsPage {
                page: &page,
                dms: dm_rows(d, None),
            },
        ),
        Err(e) => store_failure(&page, &e),
    }
}

// ---------------------------------------------------------------- helpers

fn store_failure(page: &PageContext, e: &RoomError) -> Response {
    match e.code() {
        ErrorCode::NotFound => page.not_found(),
        ErrorCode::Unavailable => {
            tracing::warn!(error = %e, "store unavailable for a page");
            page.unavailable()
        }
        _ => {
            tracing::error!(error = %e, "page failed");
            page.error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "The page could not be drawn. The error was logged.",
            )
        }
    }
}
