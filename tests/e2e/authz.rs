//! The authorization matrix: every HTML route, every JSON route and every
//! WebSocket command, asked by a guest, a plain user, a room's creator, a
//! moderator and an admin, about a public and a private room — each cell
//! with its expected answer, written out in [`matrix`].
//!
//! After every refused request (and every request that only reads) the
//! observable state must be exactly what it was: rooms and their member
//! counts, the members and mutes of both rooms, their history, users and
//! their permissions, defined permissions, the audit trail, everyone's
//! sessions and direct rooms. After an allowed change, the fixtures are put
//! back (members, mutes, the victim user) so every cell starts from the same
//! baseline.
//!
//! [`every_route_and_command_in_the_source_is_in_the_matrix`] reads the
//! routers' source (chat-http and chat-admin) and the WebSocket frame enum,
//! and fails when a route, a method or a command is not in the matrix.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chat_tests::{
    Client, TestApp, TestUser, Ws, encode, expect_status, spawn_app_with, without_rate_limit,
};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

// ------------------------------------------------------------------ cast

/// Who asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Role {
    Guest,
    /// A user with no permission at all.
    User,
    /// Holds `create_room`; created both rooms.
    Creator,
    /// Holds `moderate`; a member of neither room.
    Moderator,
    /// Holds `admin`; a member of neither room.
    Admin,
}

const ROLES: [Role; 5] = [
    Role::Guest,
    Role::User,
    Role::Creator,
    Role::Moderator,
    Role::Admin,
];

impl Role {
    fn name(self) -> Option<&'static str> {
        match self {
            Role::Guest => None,
            Role::User => Some("uma"),
            Role::Creator => Some("cora"),
            Role::Moderator => Some("mo"),
            Role::Admin => Some("admin"),
        }
    }

    fn user(self) -> Option<TestUser> {
        self.name().map(|n| TestUser {
            name: n.to_owned(),
            password: if n == "admin" {
                chat_tests::ADMIN_PASSWORD.to_owned()
            } else {
                format!("{n}-password")
            },
        })
    }
}

/// Which room a cell is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Public,
    Private,
}

impl Kind {
    fn room(self) -> &'static str {
        match self {
            Kind::Public => "闲聊-1",
            Kind::Private => "密室",
        }
    }
    fn visibility(self) -> &'static str {
        match self {
            Kind::Public => "public",
            Kind::Private => "private",
        }
    }
}

/// A member of both rooms whom the moderation requests act on.
const TARGET: &str = "tess";
/// A user the admin requests act on (and may delete).
const VICTIM: &str = "zed";

// ---------------------------------------------------------------- matrix

/// How a request reaches the server: an HTTP method and route pattern as
/// the router declares it, or a WebSocket command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Door {
    Http(&'static str, &'static str),
    Ws(&'static str),
}

/// What to do; [`World::run`] turns it into a request and its answer into
/// an outcome string ("403", "200 listed", "error:not_found", "ack", ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    ApiLogin,
    ApiLogout,
    ApiMe,
    ApiListRooms,
    ApiCreateRoom,
    ApiHistory,
    ApiSend,
    ApiDms,
    ApiMute,
    ApiUnmute,
    ApiKick,
    ApiAllow,
    ApiSetSlowMode,
    ApiLiftSlowMode,
    Healthz,
    Readyz,
    AdminListUsers,
    AdminCreateUser,
    AdminShowUser,
    AdminDeleteUser,
    AdminSetPassword,
    AdminSetPermissions,
    AdminListPermissions,
    AdminDefinePermission,
    AdminAudit,
    OwnPassword,
    Home,
    LoginPage,
    LoginForm,
    LogoutForm,
    RoomsPage,
    CreateRoomForm,
    RoomPage,
    SendForm,
    DmsPage,
    Avatar,
    Static,
    AdminHome,
    AdminCss,
    UsersPage,
    NewUserPage,
    NewUserForm,
    UserPage,
    UserPermissionsForm,
    UserPasswordForm,
    DeleteUserPage,
    DeleteUserForm,
    PermissionsPage,
    DefinePermissionForm,
    AuditPage,
    AccountPage,
    AccountForm,
    MembersPage,
    AllowForm,
    MuteForm,
    UnmuteForm,
    KickForm,
    SlowModeForm,
    WsConnect,
    WsJoin,
    WsLeave,
    WsSend,
    WsHistory,
    WsTyping,
    WsDm,
    WsPing,
}

/// One line of the matrix: a request, the outcomes that may change state,
/// and the expected outcome for [guest, user, creator, moderator, admin]
/// about the public room and the private one (`None`: the request names no
/// room, and is asked once per role).
struct Row {
    door: Door,
    op: Op,
    writes: &'static [&'static str],
    public: [&'static str; 5],
    private: Option<[&'static str; 5]>,
}

const fn row(
    door: Door,
    op: Op,
    writes: &'static [&'static str],
    public: [&'static str; 5],
    private: Option<[&'static str; 5]>,
) -> Row {
    Row {
        door,
        op,
        writes,
        public,
        private,
    }
}

const fn http(method: &'static str, route: &'static str) -> Door {
    Door::Http(method, route)
}

const ALL_200: [&str; 5] = ["200"; 5];
const ALL_303: [&str; 5] = ["303"; 5];
const USERS_200: [&str; 5] = ["401", "200", "200", "200", "200"];
/// Admin-only JSON: guests must log in, everyone else but the admin is refused.
const fn admin_api(ok: &'static str) -> [&'static str; 5] {
    ["401", "403", "403", "403", ok]
}
const ADMIN_PAGE: [&str; 5] = ["303", "403", "403", "403", "200"];
const ADMIN_FORM: [&str; 5] = ["401", "403", "403", "403", "303"];
/// Moderation over the API: guests must log in, the plain user is refused
/// (and cannot even see the private room), the moderator cannot see the
/// private room either, the creator and the admin may.
const MODERATE_PUBLIC: [&str; 5] = ["401", "403", "204", "204", "204"];
const MODERATE_PRIVATE: [&str; 5] = ["401", "404", "204", "404", "204"];
const MODERATE_FORM_PUBLIC: [&str; 5] = ["401", "403", "303", "303", "303"];
const MODERATE_FORM_PRIVATE: [&str; 5] = ["401", "404", "303", "404", "303"];
/// Who may see (read) the private room: its creator, and admins.
const SEE_PRIVATE: [&str; 5] = ["404", "404", "200", "404", "200"];

/// Every route and command × every role × both rooms, with its answer.
// A table reads best one row per line.
#[rustfmt::skip]
fn matrix() -> Vec<Row> {
    use Op::*;
    vec![
        // ---------------------------------------------- JSON API (chat-http)
        row(
            http("POST", "/api/session"),
            ApiLogin,
            &[],
            ["401", "200", "200", "200", "200"],
            None,
        ),
        row(
            http("DELETE", "/api/session"),
            ApiLogout,
            &[],
            ["204"; 5],
            None,
        ),
        row(
            http("GET", "/api/me"),
            ApiMe,
            &[],
            ["200 guest", "200 me", "200 me", "200 me", "200 me"],
            None,
        ),
        row(
            http("GET", "/api/rooms"),
            ApiListRooms,
            &[],
            ["200 listed"; 5],
            Some([
                "200 hidden",
                "200 hidden",
                "200 listed",
                "200 hidden",
                "200 listed",
            ]),
        ),
        row(
            http("POST", "/api/rooms"),
            ApiCreateRoom,
            &["201"],
            ["401", "403", "201", "403", "201"],
            Some(["401", "403", "201", "403", "201"]),
        ),
        row(
            http("GET", "/api/rooms/{room}/messages"),
            ApiHistory,
            &[],
            ALL_200,
            Some(SEE_PRIVATE),
        ),
        row(
            http("POST", "/api/rooms/{room}/messages"),
            ApiSend,
            &["201"],
            // A guest's words go to the bot, privately, and are not stored.
            ["200 bot", "201", "201", "201", "201"],
            // An admin sees a private room but is not a member: no sending.
            Some(["404", "404", "201", "404", "403"]),
        ),
        row(http("GET", "/api/dms"), ApiDms, &[], USERS_200, None),
        row(
            http("PUT", "/api/rooms/{room}/mutes/{name}"),
            ApiMute,
            &["204"],
            MODERATE_PUBLIC,
            Some(MODERATE_PRIVATE),
        ),
        row(
            http("DELETE", "/api/rooms/{room}/mutes/{name}"),
            ApiUnmute,
            &["204"],
            MODERATE_PUBLIC,
            Some(MODERATE_PRIVATE),
        ),
        row(
            http("DELETE", "/api/rooms/{room}/members/{name}"),
            ApiKick,
            &["204"],
            MODERATE_PUBLIC,
            Some(MODERATE_PRIVATE),
        ),
        row(
            http("PUT", "/api/rooms/{room}/members/{name}"),
            ApiAllow,
            &["204"],
            MODERATE_PUBLIC,
            Some(MODERATE_PRIVATE),
        ),
        row(
            http("PUT", "/api/rooms/{room}/slow_mode"),
            ApiSetSlowMode,
            &["204"],
            MODERATE_PUBLIC,
            Some(MODERATE_PRIVATE),
        ),
        row(
            http("DELETE", "/api/rooms/{room}/slow_mode"),
            ApiLiftSlowMode,
            &["204"],
            MODERATE_PUBLIC,
            Some(MODERATE_PRIVATE),
        ),
        row(http("GET", "/healthz"), Healthz, &[], ALL_200, None),
        row(http("GET", "/readyz"), Readyz, &[], ALL_200, None),
        // -------------------------------------------- JSON API (chat-admin)
        row(
            http("GET", "/api/admin/users"),
            AdminListUsers,
            &[],
            admin_api("200"),
            None,
        ),
        row(
            http("POST", "/api/admin/users"),
            AdminCreateUser,
            &["201"],
            admin_api("201"),
            None,
        ),
        row(
            http("GET", "/api/admin/users/{name}"),
            AdminShowUser,
            &[],
            admin_api("200"),
            None,
        ),
        row(
            http("DELETE", "/api/admin/users/{name}"),
            AdminDeleteUser,
            &["204"],
            admin_api("204"),
            None,
        ),
        row(
            http("PUT", "/api/admin/users/{name}/password"),
            AdminSetPassword,
            &["204"],
            admin_api("204"),
            None,
        ),
        row(
            http("PUT", "/api/admin/users/{name}/permissions"),
            AdminSetPermissions,
            &["200"],
            admin_api("200"),
            None,
        ),
        row(
            http("GET", "/api/admin/permissions"),
            AdminListPermissions,
            &[],
            admin_api("200"),
            None,
        ),
        row(
            http("POST", "/api/admin/permissions"),
            AdminDefinePermission,
            &["201"],
            admin_api("201"),
            None,
        ),
        row(
            http("GET", "/api/admin/audit"),
            AdminAudit,
            &[],
            admin_api("200"),
            None,
        ),
        row(
            http("PUT", "/api/me/password"),
            OwnPassword,
            &["204"],
            ["401", "204", "204", "204", "204"],
            None,
        ),
        // ------------------------------------------------ pages (chat-http)
        row(http("GET", "/"), Home, &[], ALL_303, None),
        row(http("GET", "/login"), LoginPage, &[], ALL_200, None),
        row(
            http("POST", "/login"),
            LoginForm,
            &[],
            ["401", "303", "303", "303", "303"],
            None,
        ),
        row(http("POST", "/logout"), LogoutForm, &[], ALL_303, None),
        row(
            http("GET", "/rooms"),
            RoomsPage,
            &[],
            ["200 listed"; 5],
            Some([
                "200 hidden",
                "200 hidden",
                "200 listed",
                "200 hidden",
                "200 listed",
            ]),
        ),
        row(
            http("POST", "/rooms"),
            CreateRoomForm,
            &["303"],
            ["403", "403", "303", "403", "303"],
            Some(["403", "403", "303", "403", "303"]),
        ),
        row(
            http("GET", "/rooms/{room}"),
            RoomPage,
            &[],
            ALL_200,
            Some(SEE_PRIVATE),
        ),
        row(
            http("POST", "/rooms/{room}"),
            SendForm,
            &["303"],
            ["200", "303", "303", "303", "303"],
            Some(["404", "404", "303", "404", "403"]),
        ),
        row(
            http("GET", "/dms"),
            DmsPage,
            &[],
            ["303", "200", "200", "200", "200"],
            None,
        ),
        row(http("GET", "/avatars/{file}"), Avatar, &[], ALL_200, None),
        row(http("GET", "/static/{file}"), Static, &[], ALL_200, None),
        // ----------------------------------------------- pages (chat-admin)
        row(http("GET", "/admin"), AdminHome, &[], ALL_303, None),
        row(
            http("GET", "/admin/admin.css"),
            AdminCss,
            &[],
            ALL_200,
            None,
        ),
        row(
            http("GET", "/admin/users"),
            UsersPage,
            &[],
            ADMIN_PAGE,
            None,
        ),
        row(
            http("GET", "/admin/users/new"),
            NewUserPage,
            &[],
            ADMIN_PAGE,
            None,
        ),
        row(
            http("POST", "/admin/users/new"),
            NewUserForm,
            &["303"],
            ADMIN_FORM,
            None,
        ),
        row(
            http("GET", "/admin/users/{name}"),
            UserPage,
            &[],
            ADMIN_PAGE,
            None,
        ),
        row(
            http("POST", "/admin/users/{name}/permissions"),
            UserPermissionsForm,
            &["303"],
            ADMIN_FORM,
            None,
        ),
        row(
            http("POST", "/admin/users/{name}/password"),
            UserPasswordForm,
            &["303"],
            ADMIN_FORM,
            None,
        ),
        row(
            http("GET", "/admin/users/{name}/delete"),
            DeleteUserPage,
            &[],
            ADMIN_PAGE,
            None,
        ),
        row(
            http("POST", "/admin/users/{name}/delete"),
            DeleteUserForm,
            &["303"],
            ADMIN_FORM,
            None,
        ),
        row(
            http("GET", "/admin/permissions"),
            PermissionsPage,
            &[],
            ADMIN_PAGE,
            None,
        ),
        row(
            http("POST", "/admin/permissions"),
            DefinePermissionForm,
            &["303"],
            ADMIN_FORM,
            None,
        ),
        row(
            http("GET", "/admin/audit"),
            AuditPage,
            &[],
            ADMIN_PAGE,
            None,
        ),
        row(
            http("GET", "/account"),
            AccountPage,
            &[],
            ["303", "200", "200", "200", "200"],
            None,
        ),
        row(
            http("POST", "/account"),
            AccountForm,
            &["303"],
            ["401", "303", "303", "303", "303"],
            None,
        ),
        row(
            http("GET", "/rooms/{room}/members"),
            MembersPage,
            &[],
            ["303", "403", "200", "200", "200"],
            Some(["303", "404", "200", "404", "200"]),
        ),
        row(
            http("POST", "/rooms/{room}/members"),
            AllowForm,
            &["303"],
            MODERATE_FORM_PUBLIC,
            Some(MODERATE_FORM_PRIVATE),
        ),
        row(
            http("POST", "/rooms/{room}/members/{name}/mute"),
            MuteForm,
            &["303"],
            MODERATE_FORM_PUBLIC,
            Some(MODERATE_FORM_PRIVATE),
        ),
        row(
            http("POST", "/rooms/{room}/members/{name}/unmute"),
            UnmuteForm,
            &["303"],
            MODERATE_FORM_PUBLIC,
            Some(MODERATE_FORM_PRIVATE),
        ),
        row(
            http("POST", "/rooms/{room}/members/{name}/kick"),
            KickForm,
            &["303"],
            MODERATE_FORM_PUBLIC,
            Some(MODERATE_FORM_PRIVATE),
        ),
        row(
            http("POST", "/rooms/{room}/slow_mode"),
            SlowModeForm,
            &["303"],
            MODERATE_FORM_PUBLIC,
            Some(MODERATE_FORM_PRIVATE),
        ),
        // -------------------------------------------------------- WebSocket
        row(
            http("GET", "/ws"),
            WsConnect,
            &[],
            [
                "welcome guest",
                "welcome me",
                "welcome me",
                "welcome me",
                "welcome me",
            ],
            None,
        ),
        row(
            Door::Ws("join"),
            WsJoin,
            &["joined"],
            ["joined"; 5],
            // An admin may read a private room, but joins only as a member.
            Some([
                "error:not_found",
                "error:not_found",
                "joined",
                "error:not_found",
                "error:forbidden",
            ]),
        ),
        row(
            Door::Ws("leave"),
            WsLeave,
            &["left"],
            ["left"; 5],
            // Leaving a room the join of which was refused: nothing to leave.
            Some([
                "error:invalid",
                "error:invalid",
                "left",
                "error:invalid",
                "error:invalid",
            ]),
        ),
        row(
            Door::Ws("send"),
            WsSend,
            &["ack"],
            ["bot", "ack", "ack", "ack", "ack"],
            Some([
                "error:not_found",
                "error:not_found",
                "ack",
                "error:not_found",
                "error:forbidden",
            ]),
        ),
        row(
            Door::Ws("history"),
            WsHistory,
            &[],
            ["history"; 5],
            Some([
                "error:not_found",
                "error:not_found",
                "history",
                "error:not_found",
                "history",
            ]),
        ),
        row(
            Door::Ws("typing"),
            WsTyping,
            &[],
            // Only members type; success is silent (the next answer is the pong).
            [
                "error:unauthenticated",
                "error:forbidden",
                "silent",
                "error:forbidden",
                "error:forbidden",
            ],
            Some([
                "error:not_found",
                "error:not_found",
                "silent",
                "error:not_found",
                "error:forbidden",
            ]),
        ),
        row(
            Door::Ws("dm"),
            WsDm,
            &["ack"],
            ["error:forbidden", "ack", "ack", "ack", "ack"],
            None,
        ),
        row(Door::Ws("ping"), WsPing, &[], ["pong"; 5], None),
    ]
}

// ---------------------------------------------------------------- state

/// Everything a refused request must leave as it was, as the admin (and
/// each user) sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Snapshot {
    /// (name, visibility, members, last_seq) of every room.
    rooms: Vec<(String, String, u64, u64)>,
    /// Per fixture room: every member and whether they are muted.
    members: Vec<Vec<(String, bool)>>,
    /// Per fixture room: its slow mode as the members page shows it
    /// (`off`, or the seconds).
    slow_modes: Vec<String>,
    /// Per fixture room: (seq, from, text) of its history.
    history: Vec<Vec<(u64, String, String)>>,
    /// (name, permissions) of every user.
    users: Vec<(String, Vec<String>)>,
    permissions: Vec<String>,
    audit_entries: usize,
    /// Who each fixture client is logged in as.
    sessions: Vec<String>,
    /// Each fixture user's direct rooms.
    directs: Vec<Vec<String>>,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|x| x.as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The `(name, muted)` of every `<tr data-member="…">` of a members page.
fn member_rows(html: &str) -> Vec<(String, bool)> {
    let marker = "<tr data-member=\"";
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(at) = rest.find(marker) {
        rest = &rest[at + marker.len()..];
        let name = rest[..rest.find('"').unwrap()].to_owned();
        let tag_end = rest.find('>').unwrap();
        out.push((name, rest[..tag_end].contains("data-muted")));
    }
    out
}

/// The `data-slow-mode` of a members page (`off` or the seconds).
fn slow_mode_of(html: &str) -> String {
    let marker = "data-slow-mode=\"";
    let at = html
        .find(marker)
        .expect("the members page shows the slow mode");
    let rest = &html[at + marker.len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

fn status_of(response: &Response) -> String {
    response.status().as_u16().to_string()
}

/// The server under test, the fixture clients, and a counter for unique names.
struct World {
    app: TestApp,
    clients: BTreeMap<Role, Client>,
    target: Client,
    tokens: BTreeMap<Role, String>,
    static_path: String,
    n: usize,
}

impl World {
    async fn new() -> World {
        let app = spawn_app_with(without_rate_limit).await;
        let admin = app.admin_client().await;
        for (role, perms) in [
            (Role::User, &[][..]),
            (Role::Creator, &["create_room"][..]),
            (Role::Moderator, &["moderate"][..]),
        ] {
            admin.create_user(role.name().unwrap(), perms).await;
        }
        let tess = admin.create_user(TARGET, &[]).await;
        admin.create_user(VICTIM, &[]).await;

        let mut clients = BTreeMap::new();
        clients.insert(Role::Guest, app.guest());
        for role in &ROLES[1..] {
            clients.insert(*role, app.login(&role.user().unwrap()).await);
        }
        let target = app.login(&tess).await;
        let cora = &clients[&Role::Creator];
        for kind in [Kind::Public, Kind::Private] {
            let r = cora.create_room(kind.room(), kind.visibility()).await;
            expect_status(r, StatusCode::CREATED, "the fixture rooms").await;
        }
        let r = cora
            .put_json(
                &format!(
                    "/api/rooms/{}/members/{TARGET}",
                    encode(Kind::Private.room())
                ),
                &json!({}),
            )
            .await;
        expect_status(r, StatusCode::NO_CONTENT, "tess joins the private room").await;
        let r = target
            .post_json(
                &format!("/api/rooms/{}/messages", encode(Kind::Public.room())),
                &json!({ "text": "tess was here" }),
            )
            .await;
        expect_status(r, StatusCode::CREATED, "tess joins the public room").await;

        let mut tokens = BTreeMap::new();
        for (role, c) in &clients {
            tokens.insert(*role, c.csrf_token("/login").await);
        }
        let login = clients[&Role::Guest]
            .get("/login")
            .await
            .text()
            .await
            .unwrap();
        let at = login
            .find("href=\"/static/")
            .expect("the layout links a stylesheet");
        let rest = &login[at + "href=\"".len()..];
        let static_path = rest[..rest.find('"').unwrap()].to_owned();

        World {
            app,
            clients,
            target,
            tokens,
            static_path,
            n: 0,
        }
    }

    fn client(&self, role: Role) -> &Client {
        &self.clients[&role]
    }

    fn admin(&self) -> &Client {
        self.client(Role::Admin)
    }

    fn token(&self, role: Role) -> &str {
        &self.tokens[&role]
    }

    fn next(&mut self) -> usize {
        self.n += 1;
        self.n
    }

    /// A new browser for `role` (logged in unless a guest), for requests
    /// that start or end sessions, so the fixture sessions stay.
    async fn fresh(&self, role: Role) -> Client {
        match role.user() {
            Some(u) => self.app.login(&u).await,
            None => self.app.guest(),
        }
    }

    async fn json(&self, c: &Client, path: &str) -> Value {
        expect_status(c.get(path).await, StatusCode::OK, path).await
    }

    async fn observe(&self) -> Snapshot {
        let admin = self.admin();
        let rooms = self.json(admin, "/api/rooms").await;
        let mut room_rows: Vec<(String, String, u64, u64)> = rooms["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["name"].as_str().unwrap().to_owned(),
                    r["visibility"].as_str().unwrap().to_owned(),
                    r["members"].as_u64().unwrap(),
                    r["last_seq"].as_u64().unwrap(),
                )
            })
            .collect();
        room_rows.sort();
        let mut members = Vec::new();
        let mut slow_modes = Vec::new();
        let mut history = Vec::new();
        for kind in [Kind::Public, Kind::Private] {
            let room = encode(kind.room());
            let r = admin.get(&format!("/rooms/{room}/members")).await;
            assert_eq!(
                r.status(),
                StatusCode::OK,
                "the admin sees the members page"
            );
            let html = r.text().await.unwrap();
            members.push(member_rows(&html));
            slow_modes.push(slow_mode_of(&html));
            let h = self
                .json(admin, &format!("/api/rooms/{room}/messages?limit=200"))
                .await;
            history.push(
                h["messages"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| {
                        (
                            m["seq"].as_u64().unwrap(),
                            m["from"].as_str().unwrap().to_owned(),
                            m["text"].as_str().unwrap().to_owned(),
                        )
                    })
                    .collect(),
            );
        }
        let users = self.json(admin, "/api/admin/users").await;
        let users = users["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| {
                (
                    u["name"].as_str().unwrap().to_owned(),
                    strings(&u["permissions"]),
                )
            })
            .collect();
        let permissions = strings(&self.json(admin, "/api/admin/permissions").await["permissions"]);
        let audit = self.json(admin, "/api/admin/audit?limit=10000").await;
        let audit_entries = audit["entries"].as_array().unwrap().len();
        let mut sessions = Vec::new();
        let mut directs = Vec::new();
        for c in self.clients.values().chain([&self.target]) {
            let me = self.json(c, "/api/me").await;
            sessions.push(me["user"]["name"].as_str().unwrap_or("?").to_owned());
            if c.user.is_some() {
                let dms = self.json(c, "/api/dms").await;
                directs.push(
                    dms["rooms"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|d| d["name"].as_str().unwrap().to_owned())
                        .collect(),
                );
            }
        }
        Snapshot {
            rooms: room_rows,
            members,
            slow_modes,
            history,
            users,
            permissions,
            audit_entries,
            sessions,
            directs,
        }
    }

    /// Puts the fixtures back after an allowed change: both rooms have
    /// exactly the creator and the target as members, nobody is muted or
    /// barred, the victim exists and every fixture client is logged in.
    async fn restore(&mut self) -> Snapshot {
        let guest_name = "guest";
        for role in &ROLES[1..] {
            let me = self.json(self.client(*role), "/api/me").await;
            if me["user"]["name"] == guest_name {
                let c = self.app.login(&role.user().unwrap()).await;
                self.tokens.insert(*role, c.csrf_token("/login").await);
                self.clients.insert(*role, c);
            }
        }
        if self
            .admin()
            .get(&format!("/api/admin/users/{VICTIM}"))
            .await
            .status()
            == StatusCode::NOT_FOUND
        {
            self.admin().create_user(VICTIM, &[]).await;
        }
        let before = self.observe().await;
        let cora = self.client(Role::Creator).clone();
        let mut changed = false;
        for (i, kind) in [Kind::Public, Kind::Private].into_iter().enumerate() {
            let room = encode(kind.room());
            if before.slow_modes[i] != "off" {
                let r = cora.delete(&format!("/api/rooms/{room}/slow_mode")).await;
                expect_status(r, StatusCode::NO_CONTENT, "restore: lift slow mode").await;
                changed = true;
            }
            let rows = &before.members[i];
            for (name, muted) in rows {
                if *muted {
                    let r = cora
                        .delete(&format!("/api/rooms/{room}/mutes/{}", encode(name)))
                        .await;
                    expect_status(r, StatusCode::NO_CONTENT, "restore: unmute").await;
                    changed = true;
                }
                if name != "cora" && name != TARGET {
                    // A kick, then a pardon: out of the room, and free to come back.
                    let member = format!("/api/rooms/{room}/members/{}", encode(name));
                    expect_status(
                        cora.delete(&member).await,
                        StatusCode::NO_CONTENT,
                        "restore: kick",
                    )
                    .await;
                    if kind == Kind::Public {
                        expect_status(
                            cora.put_json(&member, &json!({})).await,
                            StatusCode::NO_CONTENT,
                            "restore: pardon",
                        )
                        .await;
                    }
                    changed = true;
                }
            }
            if !rows.iter().any(|(n, _)| n == TARGET) {
                let member = format!("/api/rooms/{room}/members/{TARGET}");
                expect_status(
                    cora.put_json(&member, &json!({})).await,
                    StatusCode::NO_CONTENT,
                    "restore: let tess in",
                )
                .await;
                if kind == Kind::Public {
                    let r = self
                        .target
                        .post_json(
                            &format!("/api/rooms/{room}/messages"),
                            &json!({ "text": "tess is back" }),
                        )
                        .await;
                    expect_status(r, StatusCode::CREATED, "restore: tess re-joins").await;
                }
                changed = true;
            }
        }
        let now = if changed {
            self.observe().await
        } else {
            before
        };
        let baseline = vec![("cora".to_owned(), false), (TARGET.to_owned(), false)];
        assert_eq!(
            now.members,
            vec![baseline.clone(), baseline],
            "the fixtures are restored"
        );
        assert_eq!(now.slow_modes, ["off", "off"], "slow mode is lifted");
        now
    }

    /// Asks `op` as `role` about the room of `kind`; the outcome as a string.
    async fn run(&mut self, op: Op, role: Role, kind: Kind) -> String {
        use Op::*;
        let n = self.next();
        let room = encode(kind.room());
        let c = self.client(role).clone();
        let token = self.token(role).to_owned();
        let me = role.name().unwrap_or("guest");
        match op {
            ApiLogin => {
                let c = self.app.guest();
                let user = role.user().unwrap_or(TestUser {
                    name: format!("nobody-{n}"),
                    password: "not-a-password".to_owned(),
                });
                status_of(&c.login(&user).await)
            }
            ApiLogout => status_of(&self.fresh(role).await.delete("/api/session").await),
            ApiMe => {
                let body = expect_status(c.get("/api/me").await, StatusCode::OK, "/api/me").await;
                if body["user"]["guest"] == true {
                    "200 guest".to_owned()
                } else if body["user"]["name"] == me {
                    "200 me".to_owned()
                } else {
                    format!("200 {}", body["user"])
                }
            }
            ApiListRooms => {
                let r = c.get("/api/rooms").await;
                let status = status_of(&r);
                let body: Value = r.json().await.unwrap_or(Value::Null);
                let listed = body["rooms"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x["name"] == kind.room()));
                format!("{status} {}", if listed { "listed" } else { "hidden" })
            }
            ApiCreateRoom => status_of(
                &c.create_room(&format!("api-room-{n}"), kind.visibility())
                    .await,
            ),
            ApiHistory => status_of(&c.get(&format!("/api/rooms/{room}/messages")).await),
            ApiSend => {
                let r = c
                    .post_json(
                        &format!("/api/rooms/{room}/messages"),
                        &json!({ "text": format!("api {n}") }),
                    )
                    .await;
                let status = status_of(&r);
                let body: Value = r.json().await.unwrap_or(Value::Null);
                if body["from"] == "bot" {
                    format!("{status} bot")
                } else {
                    status
                }
            }
            ApiDms => status_of(&c.get("/api/dms").await),
            ApiMute => status_of(
                &c.put_json(
                    &format!("/api/rooms/{room}/mutes/{TARGET}"),
                    &json!({ "seconds": 300 }),
                )
                .await,
            ),
            ApiUnmute => status_of(&c.delete(&format!("/api/rooms/{room}/mutes/{TARGET}")).await),
            ApiKick => status_of(
                &c.delete(&format!("/api/rooms/{room}/members/{TARGET}"))
                    .await,
            ),
            ApiAllow => status_of(
                &c.put_json(&format!("/api/rooms/{room}/members/{TARGET}"), &json!({}))
                    .await,
            ),
            ApiSetSlowMode => status_of(
                &c.put_json(
                    &format!("/api/rooms/{room}/slow_mode"),
                    &json!({ "seconds": 30 }),
                )
                .await,
            ),
            ApiLiftSlowMode => status_of(&c.delete(&format!("/api/rooms/{room}/slow_mode")).await),
            Healthz => status_of(&c.get("/healthz").await),
            Readyz => status_of(&c.get("/readyz").await),
            AdminListUsers => status_of(&c.get("/api/admin/users").await),
            AdminCreateUser => status_of(
                &c.post_json(
                    "/api/admin/users",
                    &json!({ "username": format!("made-{n}"), "password": "made-password" }),
                )
                .await,
            ),
            AdminShowUser => status_of(&c.get(&format!("/api/admin/users/{VICTIM}")).await),
            AdminDeleteUser => status_of(&c.delete(&format!("/api/admin/users/{VICTIM}")).await),
            AdminSetPassword => status_of(
                &c.put_json(
                    &format!("/api/admin/users/{VICTIM}/password"),
                    &json!({ "password": "zed-new-password" }),
                )
                .await,
            ),
            AdminSetPermissions => status_of(
                &c.put_json(
                    &format!("/api/admin/users/{VICTIM}/permissions"),
                    &json!({ "permissions": ["admin"] }),
                )
                .await,
            ),
            AdminListPermissions => status_of(&c.get("/api/admin/permissions").await),
            AdminDefinePermission => status_of(
                &c.post_json(
                    "/api/admin/permissions",
                    &json!({ "name": format!("perm-{n}") }),
                )
                .await,
            ),
            AdminAudit => status_of(&c.get("/api/admin/audit").await),
            OwnPassword => {
                // The same password again: the change is real (and audited)
                // but every fixture keeps working.
                let password = role
                    .user()
                    .map_or_else(|| "whatever-pw".to_owned(), |u| u.password);
                status_of(
                    &c.put_json(
                        "/api/me/password",
                        &json!({ "old": password, "new": password }),
                    )
                    .await,
                )
            }
            Home => status_of(&c.get("/").await),
            LoginPage => status_of(&c.get("/login").await),
            LoginForm => {
                let c = self.app.guest();
                let token = c.csrf_token("/login").await;
                let user = role.user().unwrap_or(TestUser {
                    name: format!("nobody-{n}"),
                    password: "not-a-password".to_owned(),
                });
                status_of(
                    &c.post_form(
                        "/login",
                        &[
                            ("csrf", &token),
                            ("username", &user.name),
                            ("password", &user.password),
                        ],
                    )
                    .await,
                )
            }
            LogoutForm => {
                let c = self.fresh(role).await;
                let token = c.csrf_token("/login").await;
                status_of(&c.post_form("/logout", &[("csrf", &token)]).await)
            }
            RoomsPage => {
                let r = c.get("/rooms").await;
                let status = status_of(&r);
                let html = r.text().await.unwrap_or_default();
                let listed = html.contains(&format!("href=\"/rooms/{room}\""));
                format!("{status} {}", if listed { "listed" } else { "hidden" })
            }
            CreateRoomForm => status_of(
                &c.post_form(
                    "/rooms",
                    &[
                        ("csrf", &token),
                        ("name", &format!("form-room-{n}")),
                        ("description", ""),
                        ("visibility", kind.visibility()),
                    ],
                )
                .await,
            ),
            RoomPage => status_of(&c.get(&format!("/rooms/{room}")).await),
            SendForm => status_of(
                &c.post_form(
                    &format!("/rooms/{room}"),
                    &[("csrf", &token), ("text", &format!("form {n}"))],
                )
                .await,
            ),
            DmsPage => status_of(&c.get("/dms").await),
            Avatar => status_of(&c.get(&format!("/avatars/{TARGET}.svg")).await),
            Static => status_of(&c.get(&self.static_path).await),
            AdminHome => status_of(&c.get("/admin").await),
            AdminCss => status_of(&c.get("/admin/admin.css").await),
            UsersPage => status_of(&c.get("/admin/users").await),
            NewUserPage => status_of(&c.get("/admin/users/new").await),
            NewUserForm => {
                let name = format!("made-form-{n}");
                status_of(
                    &c.post_form(
                        "/admin/users/new",
                        &[
                            ("csrf", &token),
                            ("username", &name),
                            ("password", "made-password"),
                            ("password2", "made-password"),
                            ("perm:admin", "on"),
                        ],
                    )
                    .await,
                )
            }
            UserPage => status_of(&c.get(&format!("/admin/users/{VICTIM}")).await),
            UserPermissionsForm => status_of(
                &c.post_form(
                    &format!("/admin/users/{VICTIM}/permissions"),
                    &[("csrf", &token), ("perm:admin", "on")],
                )
                .await,
            ),
            UserPasswordForm => status_of(
                &c.post_form(
                    &format!("/admin/users/{VICTIM}/password"),
                    &[
                        ("csrf", &token),
                        ("password", "zed-form-pw"),
                        ("password2", "zed-form-pw"),
                    ],
                )
                .await,
            ),
            DeleteUserPage => status_of(&c.get(&format!("/admin/users/{VICTIM}/delete")).await),
            DeleteUserForm => status_of(
                &c.post_form(
                    &format!("/admin/users/{VICTIM}/delete"),
                    &[("csrf", &token), ("confirm", "yes")],
                )
                .await,
            ),
            PermissionsPage => status_of(&c.get("/admin/permissions").await),
            DefinePermissionForm => status_of(
                &c.post_form(
                    "/admin/permissions",
                    &[("csrf", &token), ("name", &format!("perm-form-{n}"))],
                )
                .await,
            ),
            AuditPage => status_of(&c.get("/admin/audit").await),
            AccountPage => status_of(&c.get("/account").await),
            AccountForm => {
                let password = role
                    .user()
                    .map_or_else(|| "whatever-pw".to_owned(), |u| u.password);
                status_of(
                    &c.post_form(
                        "/account",
                        &[
                            ("csrf", &token),
                            ("old", &password),
                            ("new", &password),
                            ("new2", &password),
                        ],
                    )
                    .await,
                )
            }
            MembersPage => status_of(&c.get(&format!("/rooms/{room}/members")).await),
            AllowForm => status_of(
                &c.post_form(
                    &format!("/rooms/{room}/members"),
                    &[("csrf", &token), ("name", TARGET)],
                )
                .await,
            ),
            MuteForm => status_of(
                &c.post_form(
                    &format!("/rooms/{room}/members/{TARGET}/mute"),
                    &[("csrf", &token), ("duration", "300")],
                )
                .await,
            ),
            UnmuteForm => status_of(
                &c.post_form(
                    &format!("/rooms/{room}/members/{TARGET}/unmute"),
                    &[("csrf", &token)],
                )
                .await,
            ),
            KickForm => status_of(
                &c.post_form(
                    &format!("/rooms/{room}/members/{TARGET}/kick"),
                    &[("csrf", &token)],
                )
                .await,
            ),
            SlowModeForm => status_of(
                &c.post_form(
                    &format!("/rooms/{room}/slow_mode"),
                    &[("csrf", &token), ("seconds", "30")],
                )
                .await,
            ),
            WsConnect => {
                let (ws, welcome) = connect(&c).await;
                ws.close().await;
                if welcome["user"]["guest"] == true {
                    "welcome guest".to_owned()
                } else if welcome["user"]["name"] == me {
                    "welcome me".to_owned()
                } else {
                    format!("welcome {}", welcome["user"])
                }
            }
            WsJoin | WsLeave | WsSend | WsHistory | WsTyping | WsDm | WsPing => {
                let (mut ws, _) = connect(&c).await;
                let outcome = ws_command(&mut ws, op, kind.room(), n, role == Role::Guest).await;
                ws.close().await;
                outcome
            }
        }
    }
}

/// A WebSocket carrying `c`'s session, and its `welcome`.
async fn connect(c: &Client) -> (Ws, Value) {
    let mut ws = c.ws().await;
    let welcome = ws.wait_for("welcome", |f| f["type"] == "welcome").await;
    (ws, welcome)
}

/// The answer to the last command: the first frame of one of `types`, an
/// `error`, or the bot's private reply, as an outcome string.
async fn answer(ws: &mut Ws, types: &[&str]) -> String {
    let frame = ws
        .wait_for(&format!("one of {types:?}"), |f| {
            f["type"] == "error"
                || (f["type"] == "message" && f["from"] == "bot")
                || types.iter().any(|t| f["type"] == *t)
        })
        .await;
    match frame["type"].as_str().unwrap_or_default() {
        "error" => format!("error:{}", frame["code"].as_str().unwrap_or("?")),
        "message" => "bot".to_owned(),
        other => other.to_owned(),
    }
}

/// `guest`: the socket is a guest's, which the bot greets after `joined`.
async fn ws_command(ws: &mut Ws, op: Op, room: &str, n: usize, guest: bool) -> String {
    let cid = format!("c-{n}");
    match op {
        Op::WsJoin => {
            ws.send_json(json!({ "type": "join", "room": room })).await;
            answer(ws, &["joined"]).await
        }
        Op::WsLeave => {
            ws.send_json(json!({ "type": "join", "room": room })).await;
            if answer(ws, &["joined"]).await == "joined" && guest {
                // The greeting is not the answer to the `leave` below.
                ws.wait_for("the bot's greeting", |f| f["from"] == "bot")
                    .await;
            }
            ws.send_json(json!({ "type": "leave", "room": room })).await;
            answer(ws, &["left"]).await
        }
        Op::WsSend => {
            ws.send_json(
                json!({ "type": "send", "room": room, "text": format!("ws {n}"), "cid": cid }),
            )
            .await;
            answer(ws, &["ack"]).await
        }
        Op::WsHistory => {
            ws.send_json(json!({ "type": "history", "room": room, "limit": 10 }))
                .await;
            answer(ws, &["history"]).await
        }
        Op::WsTyping => {
            // Success says nothing; frames are answered in order, so the
            // pong of a ping sent after it comes first when nothing went wrong.
            ws.send_json(json!({ "type": "typing", "room": room }))
                .await;
            ws.send_json(json!({ "type": "ping", "cid": cid })).await;
            match answer(ws, &["pong"]).await.as_str() {
                "pong" => "silent".to_owned(),
                other => other.to_owned(),
            }
        }
        Op::WsDm => {
            ws.send_json(
                json!({ "type": "dm", "to": TARGET, "text": format!("dm {n}"), "cid": cid }),
            )
            .await;
            answer(ws, &["ack"]).await
        }
        Op::WsPing => {
            ws.send_json(json!({ "type": "ping", "cid": cid })).await;
            answer(ws, &["pong"]).await
        }
        other => unreachable!("{other:?} is not a WebSocket command"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_and_command_answers_each_role_as_the_matrix_says_and_refusals_change_nothing()
{
    let mut world = World::new().await;
    let mut state = world.restore().await;
    let mut failures = Vec::new();
    let mut cells = 0;
    for row in matrix() {
        let kinds: Vec<(Kind, [&str; 5])> = match row.private {
            Some(private) => vec![(Kind::Public, row.public), (Kind::Private, private)],
            None => vec![(Kind::Public, row.public)],
        };
        for (kind, expected) in kinds {
            for (role, want) in ROLES.into_iter().zip(expected) {
                cells += 1;
                let got =
                    tokio::time::timeout(Duration::from_secs(30), world.run(row.op, role, kind))
                        .await
                        .unwrap_or_else(|_| format!("{:?} as {role:?} hung", row.op));
                let cell = format!(
                    "{:?} {:?} as {role:?} on the {} room",
                    row.door,
                    row.op,
                    kind.visibility()
                );
                if got != want {
                    failures.push(format!("{cell}: expected {want}, got {got}"));
                }
                if row.writes.contains(&got.as_str()) {
                    state = world.restore().await;
                } else {
                    let after = world.observe().await;
                    if after != state {
                        failures.push(format!(
                            "{cell} answered {got} but changed the state:\n  before {state:?}\n  after  {after:?}"
                        ));
                        state = world.restore().await;
                    }
                }
            }
        }
    }
    assert!(cells > 400, "the matrix has {cells} cells");
    assert!(
        failures.is_empty(),
        "{} of {cells} cells failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ------------------------------------------------------------- coverage

/// Every `(METHOD, path)` the routers of chat-http and chat-admin declare,
/// read from their source: the path literal of each `.route(` call and the
/// method routers (`get(`, `post(`, …) at the top level of its arguments.
fn declared_routes() -> BTreeSet<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for krate in ["crates/chat-http/src", "crates/chat-admin/src"] {
        collect_rs(&root.join(krate), &mut files);
    }
    assert!(files.len() > 5, "found the routers' source: {files:?}");
    let mut routes = BTreeSet::new();
    for file in files {
        let source = std::fs::read_to_string(&file).unwrap();
        routes.extend(routes_in(&source));
    }
    routes
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_rs(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

const METHODS: [&str; 7] = ["get", "post", "put", "delete", "patch", "head", "options"];

fn routes_in(source: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = source;
    while let Some(at) = rest.find(".route(") {
        let line_start = rest[..at].rfind('\n').map_or(0, |i| i + 1);
        let in_comment = rest[line_start..at].trim_start().starts_with("//");
        rest = &rest[at + ".route(".len()..];
        if in_comment {
            continue;
        }
        let args = rest.trim_start();
        let Some(literal) = args.strip_prefix('"') else {
            panic!(
                "a .route( whose path is not a string literal: {}",
                &args[..args.len().min(80)]
            );
        };
        let path = &literal[..literal.find('"').unwrap()];
        // Walk the call's arguments at depth 1, skipping strings and nested calls.
        let mut depth = 1;
        let mut methods = Vec::new();
        let bytes = literal.as_bytes();
        let mut i = path.len() + 1;
        let mut in_string = false;
        while i < bytes.len() && depth > 0 {
            let b = bytes[i];
            if in_string {
                if b == b'\\' {
                    i += 1;
                } else if b == b'"' {
                    in_string = false;
                }
            } else {
                match b {
                    b'"' => in_string = true,
                    b'(' => depth += 1,
                    b')' => depth -= 1,
                    _ if depth == 1 => {
                        let word_start = i == 0
                            || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
                        if word_start {
                            for m in METHODS {
                                if bytes[i..].starts_with(format!("{m}(").as_bytes()) {
                                    methods.push(m.to_ascii_uppercase());
                                }
                            }
                        }
                    }
                    _ => {}
                }
            }
            i += 1;
        }
        assert!(!methods.is_empty(), "no method router found for {path}");
        out.extend(methods.into_iter().map(|m| (m, path.to_owned())));
    }
    out
}

/// The `type`s a client may send, read from `enum ClientFrame` (serde
/// `rename_all = "snake_case"`).
fn declared_commands() -> BTreeSet<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/chat-http/src/ws/frames.rs");
    let source = std::fs::read_to_string(&path).unwrap();
    let start = source
        .find("pub enum ClientFrame {")
        .expect("enum ClientFrame");
    let body = &source[start..];
    let body = &body[..body.find("\n}").expect("the end of enum ClientFrame")];
    body.lines()
        .filter_map(|l| {
            // Variants sit at one indent: `    Join {`, `    Ping,`.
            let variant = l.strip_prefix("    ")?;
            let first = variant.chars().next()?;
            if !first.is_ascii_uppercase() {
                return None;
            }
            let name: String = variant
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            let mut snake = String::new();
            for (i, c) in name.chars().enumerate() {
                if c.is_ascii_uppercase() && i > 0 {
                    snake.push('_');
                }
                snake.push(c.to_ascii_lowercase());
            }
            Some(snake)
        })
        .collect()
}

#[test]
fn every_route_and_command_in_the_source_is_in_the_matrix() {
    let rows = matrix();
    let in_matrix: BTreeSet<(String, String)> = rows
        .iter()
        .filter_map(|r| match r.door {
            Door::Http(m, p) => Some((m.to_owned(), p.to_owned())),
            Door::Ws(_) => None,
        })
        .collect();
    let declared = declared_routes();
    assert!(declared.len() > 30, "{declared:?}");
    let missing: Vec<_> = declared.difference(&in_matrix).collect();
    assert!(
        missing.is_empty(),
        "routes without a row in the authorization matrix (tests/e2e/authz.rs): {missing:?}"
    );
    let stale: Vec<_> = in_matrix.difference(&declared).collect();
    assert!(
        stale.is_empty(),
        "matrix rows for routes that no longer exist: {stale:?}"
    );

    let commands: BTreeSet<String> = rows
        .iter()
        .filter_map(|r| match r.door {
            Door::Ws(c) => Some(c.to_owned()),
            Door::Http(..) => None,
        })
        .collect();
    let declared = declared_commands();
    assert!(declared.len() >= 7, "{declared:?}");
    assert_eq!(
        declared, commands,
        "every WebSocket command has a row in the authorization matrix, and only those"
    );

    // Each row is asked of every role; a per-room row of both rooms.
    for r in &rows {
        let per_room = r.private.is_some();
        let names_a_room = matches!(r.door, Door::Ws(c) if !matches!(c, "dm" | "ping"))
            || matches!(r.door, Door::Http(_, p) if p.contains("{room}"));
        assert!(
            !names_a_room || per_room,
            "{:?} names a room, so it needs a private-room column",
            r.door
        );
    }
}

#[test]
fn the_route_reader_finds_methods_in_every_style() {
    let source = r#"
        Router::new()
            .route("/a", get(list).post(create))
            .route(
                "/b/{x}",
                axum::routing::delete(remove).get(|| async { Redirect::to("/c(") }),
            )
            .route("/d", put(set))
    "#;
    assert_eq!(
        routes_in(source),
        [
            ("GET".to_owned(), "/a".to_owned()),
            ("POST".to_owned(), "/a".to_owned()),
            ("DELETE".to_owned(), "/b/{x}".to_owned()),
            ("GET".to_owned(), "/b/{x}".to_owned()),
            ("PUT".to_owned(), "/d".to_owned()),
        ]
    );
}
