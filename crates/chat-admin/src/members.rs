//! `/rooms/{room}/members`: a room's member-management page, for the room's
//! moderators (holders of `moderate`, admins and the room's creator).
//!
//! It lists the members and every active mute with the time left, and has a
//! CSRF-protected form per action: mute for 5 min, 10 min, 5 h or until
//! lifted, unmute, kick, let a user (back) in — in a private room only its
//! creator and admins add members — and set or lift the room's slow mode. Every action goes through
//! [`Moderation`], which checks the caller again, announces the action in
//! the room and writes the audit trail. Guests are sent to log in, other
//! users get 403, and rooms the caller may not see are 404.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use chat_domain::{
    Chat, Coded, Moderation, Mute, RoomError, RoomName, Rooms, Username, Visibility, policy,
};
use chat_http::AppState;
use chat_http::pages::text::{capitalize, encode_component, room_href};
use chat_http::pages::{CsrfForm, PageContext};

use crate::pages::failed;
use serde::Deserialize;

/// `/rooms/{room}/members` and its forms.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/rooms/{room}/members", get(members_page).post(allow))
        .route("/rooms/{room}/members/{name}/mute", post(mute))
        .route("/rooms/{room}/members/{name}/unmute", post(unmute))
        .route("/rooms/{room}/members/{name}/kick", post(kick))
        .route("/rooms/{room}/slow_mode", post(slow_mode))
}

/// The slow-mode intervals the page offers, in seconds (`off` lifts it).
const SLOW_MODES: [(u64, &str); 6] = [
    (5, "5 s"),
    (10, "10 s"),
    (30, "30 s"),
    (60, "1 min"),
    (300, "5 min"),
    (3600, "1 h"),
];

/// One choice of the slow-mode form.
struct SlowChoice {
    value: String,
    label: String,
    selected: bool,
}

/// The choices of the slow-mode form, with `current` selected (and offered
/// even when it was set through the API to a value not in the list).
fn slow_choices(current: Option<u64>) -> Vec<SlowChoice> {
    let mut choices = vec![SlowChoice {
        value: "off".to_owned(),
        label: "Off".to_owned(),
        selected: current.is_none(),
    }];
    let mut offered: Vec<(u64, String)> = SLOW_MODES
        .iter()
        .map(|(s, l)| (*s, (*l).to_owned()))
        .collect();
    if let Some(c) = current.filter(|c| !offered.iter().any(|(s, _)| s == c)) {
        offered.push((c, format!("{c} s")));
        offered.sort_by_key(|(s, _)| *s);
    }
    choices.extend(offered.into_iter().map(|(s, label)| SlowChoice {
        value: s.to_string(),
        label: format!("one message every {label}"),
        selected: current == Some(s),
    }));
    choices
}

/// The mute lengths the page offers (CONTRACT §2), as (form value, label).
const DURATIONS: [(&str, &str); 4] = [
    ("300", "5 min"),
    ("600", "10 min"),
    ("18000", "5 h"),
    ("forever", "until lifted"),
];

/// The services every handler here needs.
#[derive(Clone)]
struct Deps {
    moderation: Arc<Moderation>,
    rooms: Arc<Rooms>,
    chat: Arc<Chat>,
}

impl axum::extract::FromRef<AppState> for Deps {
    fn from_ref(state: &AppState) -> Self {
        Self {
            moderation: Arc::clone(&state.moderation),
            rooms: Arc::clone(&state.rooms),
            chat: Arc::clone(&state.chat),
        }
    }
}

fn members_href(room: &RoomName) -> String {
    format!("/rooms/{}/members", encode_component(room.as_str()))
}

/// The answer to a refused request that is not a form mistake.
fn refusal(page: &PageContext, e: &RoomError, is_get: bool) -> Response {
    match e {
        RoomError::Unauthenticated if is_get => page.redirect(&page.login_href()),
        RoomError::Unauthenticated => page.error(
            StatusCode::UNAUTHORIZED,
            "Log in first",
            "Only a room's moderators manage its members. Log in and try again.",
        ),
        RoomError::Forbidden(why) => {
            page.error(StatusCode::FORBIDDEN, "Not allowed", &capitalize(why))
        }
        RoomError::NotFound => page.not_found(),
        other => failed(page, other, "member management"),
    }
}

/// `4 min 59 s`, `2 h 5 min`: how long a mute still holds.
fn time_left(d: Duration) -> String {
    let s = d.as_secs().max(1);
    match s {
        s if s >= 3600 => format!("{} h {} min", s / 3600, (s % 3600) / 60),
        s if s >= 60 => format!("{} min {} s", s / 60, s % 60),
        s => format!("{s} s"),
    }
}

/// One row of the member table.
struct MemberRow {
    name: String,
    /// The path segment, percent-encoded, for form actions.
    segment: String,
    member: bool,
    creator: bool,
    is_self: bool,
    /// `Some` when muted: (until as RFC 3339 or `None` for until lifted, time left).
    mute: Option<MuteView>,
}

struct MuteView {
    until: Option<String>,
    left: Option<String>,
}

#[derive(Template)]
#[template(path = "room_members.html")]
struct MembersPage<'a> {
    page: &'a PageContext,
    room: String,
    room_href: String,
    members_href: String,
    private: bool,
    may_manage: bool,
    rows: Vec<MemberRow>,
    durations: &'a [(&'a str, &'a str)],
    /// The slow-mode interval in seconds; `None`: off.
    slow_mode: Option<u64>,
    slow_choices: Vec<SlowChoice>,
    slow_mode_href: String,
    flash: Option<&'static str>,
    error: Option<String>,
    add_name: String,
}

/// What a form left to show again beside the page.
#[derive(Default)]
struct Outcome {
    flash: Option<&'static str>,
    error: Option<String>,
    add_name: String,
}

async fn render(
    page: &PageContext,
    deps: &Deps,
    room: &RoomName,
    status: StatusCode,
    outcome: Outcome,
) -> Response {
    let is_get = status == StatusCode::OK;
    if page.actor.is_guest() {
        return refusal(page, &RoomError::Unauthenticated, is_get);
    }
    // `mutes` is the moderators-only read: it answers 404 for rooms the
    // caller cannot see and 403 for those they cannot moderate.
    let mutes = match deps.moderation.mutes(&page.actor, room).await {
        Ok(m) => m,
        Err(e) => return refusal(page, &e, is_get),
    };
    let (r, members, slow_mode) = match (
        deps.rooms.get(&page.actor, room).await,
        deps.rooms.members(&page.actor, room).await,
        deps.rooms.slow_mode(&page.actor, room).await,
    ) {
        (Ok(r), Ok(m), Ok(s)) => (r, m, s.map(|d| d.as_secs())),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return refusal(page, &e, is_get),
    };
    let now = deps.chat.now();
    let me = page.actor.user().map(|u| &u.name);
    let mut rows: BTreeMap<Username, MemberRow> = BTreeMap::new();
    let row = |name: &Username, member: bool, mute: Option<&Mute>| MemberRow {
        name: name.as_str().to_owned(),
        segment: encode_component(name.as_str()),
        member,
        creator: name == &r.created_by,
        is_self: Some(name) == me,
        mute: mute.map(|m| MuteView {
            until: m.until.map(|u| u.to_rfc3339()),
            left: m.until.map(|u| time_left(now.until(u))),
        }),
    };
    let muted: HashMap<&Username, &Mute> = mutes.iter().map(|(u, m)| (u, m)).collect();
    for m in &members {
        rows.insert(m.clone(), row(m, true, muted.get(m).copied()));
    }
    for (u, m) in &mutes {
        rows.entry(u.clone())
            .or_insert_with(|| row(u, false, Some(m)));
    }
    page.render(
        status,
        &MembersPage {
            page,
            room: room.as_str().to_owned(),
            room_href: room_href(room.as_str()),
            members_href: members_href(room),
            private: r.visibility == Visibility::Private,
            may_manage: policy::may_manage_members(&page.actor, &r),
            rows: rows.into_values().collect(),
            durations: &DURATIONS,
            slow_mode,
            slow_choices: slow_choices(slow_mode),
            slow_mode_href: format!("/rooms/{}/slow_mode", encode_component(room.as_str())),
            flash: outcome.flash,
            error: outcome.error,
            add_name: outcome.add_name,
        },
    )
}

#[derive(Debug, Deserialize, Default)]
struct Done {
    done: Option<String>,
}

impl Done {
    fn message(&self) -> Option<&'static str> {
        Some(match self.done.as_deref()? {
            "muted" => "Muted.",
            "unmuted" => "The mute was lifted.",
            "kicked" => "Removed from the room; they cannot come back until let in.",
            "allowed" => "Let in.",
            "slow_mode" => "Slow mode updated.",
            _ => return None,
        })
    }
}

async fn members_page(
    page: PageContext,
    State(deps): State<Deps>,
    Path(room): Path<String>,
    Query(done): Query<Done>,
) -> Response {
    let Ok(room) = RoomName::parse(&room) else {
        return page.not_found();
    };
    let outcome = Outcome {
        flash: done.message(),
        ..Outcome::default()
    };
    render(&page, &deps, &room, StatusCode::OK, outcome).await
}

/// What a POST acts on; `None` for guests (who must log in first,
/// whatever the room) and for names that cannot exist.
fn target(page: &PageContext, room: &str, name: &str) -> Option<(RoomName, Username)> {
    if page.actor.is_guest() {
        return None;
    }
    Some((RoomName::parse(room).ok()?, Username::parse(name).ok()?))
}

/// The answer when [`target`] found nothing to act on.
fn no_target(page: &PageContext) -> Response {
    if page.actor.is_guest() {
        refusal(page, &RoomError::Unauthenticated, false)
    } else {
        page.not_found()
    }
}

/// After an action: back to the page with a flash, or the page again with
/// the reason (a refusal page when the caller may not be here at all).
async fn answer(
    page: &PageContext,
    deps: &Deps,
    room: &RoomName,
    result: Result<(), RoomError>,
    done: &str,
    add_name: String,
) -> Response {
    match result {
        Ok(()) => page.redirect(&format!("{}?done={done}", members_href(room))),
        Err(e @ (RoomError::NoSuchUser | RoomError::Forbidden(_) | RoomError::Invalid(_))) => {
            let status = chat_http::error::status_of(e.code());
            let error = match &e {
                RoomError::NoSuchUser => format!("There is no user named “{add_name}”."),
                other => capitalize(&other.to_string()),
            };
            let outcome = Outcome {
                error: Some(error),
                add_name,
                ..Outcome::default()
            };
            render(page, deps, room, status, outcome).await
        }
        Err(e) => refusal(page, &e, false),
    }
}

async fn mute(
    page: PageContext,
    State(deps): State<Deps>,
    Path((room, name)): Path<(String, String)>,
    CsrfForm(form): CsrfForm<HashMap<String, String>>,
) -> Response {
    let Some((room, name)) = target(&page, &room, &name) else {
        return no_target(&page);
    };
    let Ok(duration) = seconds_field(form.get("duration"), "forever", u64::MAX) else {
        return invalid(&page, &deps, &room, "Choose how long the mute lasts.").await;
    };
    let result = deps
        .moderation
        .mute(&page.actor, &room, &name, duration)
        .await
        .map(|_| ());
    answer(&page, &deps, &room, result, "muted", name.into_string()).await
}

async fn unmute(
    page: PageContext,
    State(deps): State<Deps>,
    Path((room, name)): Path<(String, String)>,
    CsrfForm(_): CsrfForm<HashMap<String, String>>,
) -> Response {
    let Some((room, name)) = target(&page, &room, &name) else {
        return no_target(&page);
    };
    let result = deps.moderation.unmute(&page.actor, &room, &name).await;
    answer(&page, &deps, &room, result, "unmuted", name.into_string()).await
}

async fn kick(
    page: PageContext,
    State(deps): State<Deps>,
    Path((room, name)): Path<(String, String)>,
    CsrfForm(_): CsrfForm<HashMap<String, String>>,
) -> Response {
    let Some((room, name)) = target(&page, &room, &name) else {
        return no_target(&page);
    };
    let result = deps.moderation.kick(&page.actor, &room, &name).await;
    answer(&page, &deps, &room, result, "kicked", name.into_string()).await
}

/// The slow-mode form: `seconds` is `off` or a whole number from 1 to 3600.
async fn slow_mode(
    page: PageContext,
    State(deps): State<Deps>,
    Path(room): Path<String>,
    CsrfForm(form): CsrfForm<HashMap<String, String>>,
) -> Response {
    if page.actor.is_guest() {
        return refusal(&page, &RoomError::Unauthenticated, false);
    }
    let Ok(room) = RoomName::parse(&room) else {
        return page.not_found();
    };
    let max = chat_domain::MAX_SLOW_MODE.as_secs();
    let Ok(interval) = seconds_field(form.get("seconds"), "off", max) else {
        return invalid(
            &page,
            &deps,
            &room,
            "Choose a slow mode from 1 s to 1 h, or off.",
        )
        .await;
    };
    let result = deps
        .moderation
        .set_slow_mode(&page.actor, &room, interval)
        .await;
    answer(&page, &deps, &room, result, "slow_mode", String::new()).await
}

/// The "let in" form: `name` is typed, so a bad one is a form mistake.
async fn allow(
    page: PageContext,
    State(deps): State<Deps>,
    Path(room): Path<String>,
    CsrfForm(form): CsrfForm<HashMap<String, String>>,
) -> Response {
    if page.actor.is_guest() {
        return refusal(&page, &RoomError::Unauthenticated, false);
    }
    let Ok(room) = RoomName::parse(&room) else {
        return page.not_found();
    };
    let raw = form
        .get("name")
        .map(|s| s.trim())
        .unwrap_or_default()
        .to_owned();
    let name = match Username::parse(&raw) {
        Ok(n) => n,
        Err(e) => {
            let outcome = Outcome {
                error: Some(capitalize(&e.to_string())),
                add_name: raw,
                ..Outcome::default()
            };
            return render(
                &page,
                &deps,
                &room,
                StatusCode::UNPROCESSABLE_ENTITY,
                outcome,
            )
            .await;
        }
    };
    let result = deps.moderation.allow(&page.actor, &room, &name).await;
    answer(&page, &deps, &room, result, "allowed", raw).await
}

/// Reads a form's duration field: absent or `none_word` means no duration,
/// otherwise whole seconds from 1 to `max`.
fn seconds_field(raw: Option<&String>, none_word: &str, max: u64) -> Result<Option<Duration>, ()> {
    match raw.map(|s| s.trim()) {
        None => Ok(None),
        Some(w) if w == none_word => Ok(None),
        Some(w) => match w.parse::<u64>() {
            Ok(secs) if (1..=max).contains(&secs) => Ok(Some(Duration::from_secs(secs))),
            _ => Err(()),
        },
    }
}

/// The member page again with `why` and a 422.
async fn invalid(page: &PageContext, deps: &Deps, room: &RoomName, why: &str) -> Response {
    let outcome = Outcome {
        error: Some(why.to_owned()),
        ..Outcome::default()
    };
    render(page, deps, room, StatusCode::UNPROCESSABLE_ENTITY, outcome).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_fields_accept_the_word_or_whole_seconds_in_range() {
        let f = |raw: Option<&str>| seconds_field(raw.map(str::to_owned).as_ref(), "off", 3600);
        assert_eq!(f(None), Ok(None));
        assert_eq!(f(Some("off")), Ok(None));
        assert_eq!(f(Some(" 30 ")), Ok(Some(Duration::from_secs(30))));
        assert_eq!(f(Some("3600")), Ok(Some(Duration::from_secs(3600))));
        for bad in ["0", "3601", "-1", "soon", ""] {
            assert_eq!(f(Some(bad)), Err(()), "{bad:?}");
        }
    }

    #[test]
    fn the_current_slow_mode_is_selected_even_when_not_offered() {
        let picked = |c: Option<u64>| -> Vec<String> {
            slow_choices(c)
                .into_iter()
                .filter(|s| s.selected)
                .map(|s| s.value)
                .collect()
        };
        assert_eq!(picked(None), ["off"]);
        assert_eq!(picked(Some(30)), ["30"]);
        assert_eq!(picked(Some(45)), ["45"]);
        let values: Vec<String> = slow_choices(Some(45))
            .into_iter()
            .map(|s| s.value)
            .collect();
        assert_eq!(values, ["off", "5", "10", "30", "45", "60", "300", "3600"]);
    }

    #[test]
    fn time_left_reads_naturally() {
        let s = Duration::from_secs;
        assert_eq!(time_left(s(0)), "1 s");
        assert_eq!(time_left(s(42)), "42 s");
        assert_eq!(time_left(s(299)), "4 min 59 s");
        assert_eq!(time_left(s(18_000)), "5 h 0 min");
        assert_eq!(time_left(Duration::from_millis(600_500)), "10 min 0 s");
    }
}
