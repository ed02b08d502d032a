// hihichat in the browser: one ES module.
//
// On the chat page it makes the server-rendered room live over /ws: resume
// with `since`, pending/acked/failed sends with idempotent retries, history
// paging that keeps the reader's place, presence, typing, moderation events
// and direct messages. On every page it draws unread badges from the
// `data-last-seq` of room links and what this browser has seen.
//
// Every piece of user text goes into the page through textContent or text
// nodes, never as HTML; links are built with DOM calls, http(s) only.

const SEEN_PREFIX = "hihichat:seen:";
const PAGE_SIZE = 50;
const ACK_TIMEOUT_MS = 10000;
const TYPING_EVERY_MS = 3000;
const TYPING_SHOWN_MS = 5000;
const PING_EVERY_MS = 15000;
const PONG_TIMEOUT_MS = 8000;
const GROUP_GAP_MS = 5 * 60 * 1000;
const NARROW = "(max-width: 52rem)";
const MAX_CHARS = 4000;

// ------------------------------------------------------------------ helpers

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function randomId(prefix) {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return prefix + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function roomHref(room) {
  return "/rooms/" + encodeURIComponent(room);
}

function avatarSrc(name) {
  return "/avatars/" + encodeURIComponent(name) + ".svg";
}

// The server names a direct room after the two usernames sorted by their
// UTF-8 bytes (Rust's string order); JavaScript's `<` compares UTF-16 units,
// which differs outside the BMP, so compare bytes.
const encoder = new TextEncoder();
function utf8Less(a, b) {
  const x = encoder.encode(a);
  const y = encoder.encode(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] !== y[i]) return x[i] < y[i];
  }
  return x.length < y.length;
}

function directRoom(a, b) {
  return utf8Less(a, b) ? "@" + a + "+" + b : "@" + b + "+" + a;
}

function directPeer(room, me) {
  if (!room.startsWith("@")) return null;
  const plus = room.indexOf("+");
  if (plus < 0) return null;
  const a = room.slice(1, plus);
  const b = room.slice(plus + 1);
  if (a === me) return b;
  if (b === me) return a;
  return null;
}

function seenGet(room) {
  try {
    const v = localStorage.getItem(SEEN_PREFIX + room);
    return v === null ? null : Number(v) || 0;
  } catch {
    return null;
  }
}

function seenSet(room, seq) {
  try {
    if (seq > (seenGet(room) || 0)) localStorage.setItem(SEEN_PREFIX + room, String(seq));
  } catch {
    /* storage off: no badges, nothing else breaks */
  }
}

function localTime(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const now = new Date();
  const sameDay = d.toDateString() === now.toDateString();
  const time = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  return sameDay ? time : d.toLocaleDateString() + " " + time;
}

function localizeTime(node) {
  const iso = node.getAttribute("datetime");
  if (!iso) return;
  const text = localTime(iso);
  if (text) {
    node.textContent = text;
    node.title = new Date(iso).toLocaleString();
  }
}

// Same rules as the server's `linkify`: http(s) only, starting a word,
// trailing sentence punctuation left out.
const URL_RE = /https?:\/\/[^\s<>"]+/gi;
const WORD_END = /[\p{L}\p{N}]$/u;

function appendText(parent, text) {
  let last = 0;
  for (const m of text.matchAll(URL_RE)) {
    const start = m.index;
    if (start > 0 && WORD_END.test(text.slice(Math.max(0, start - 2), start))) continue;
    const url = m[0].replace(/[.,;:!?)\]'}]+$/, "");
    let parsed;
    try {
      parsed = new URL(url);
    } catch {
      continue;
    }
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") continue;
    if (start > last) parent.append(document.createTextNode(text.slice(last, start)));
    const a = document.createElement("a");
    a.href = url;
    a.rel = "noopener noreferrer";
    a.target = "_blank";
    a.textContent = url;
    parent.append(a);
    last = start + url.length;
  }
  if (last < text.length) parent.append(document.createTextNode(text.slice(last)));
}

// ------------------------------------------------------------------ unread badges

function updateBadge(link, currentRoom) {
  const badge = link.querySelector("[data-unread]");
  if (!badge) return;
  const room = link.dataset.room;
  const last = Number(link.dataset.lastSeq) || 0;
  if (room === currentRoom) {
    seenSet(room, last);
    badge.hidden = true;
    return;
  }
  const unread = Math.max(0, last - (seenGet(room) || 0));
  badge.replaceChildren();
  if (unread > 0) {
    badge.append(document.createTextNode(unread > 99 ? "99+" : String(unread)));
    badge.append(el("span", "visually-hidden", " unread"));
    badge.hidden = false;
  } else {
    badge.hidden = true;
  }
}

function updateAllBadges(currentRoom) {
  for (const link of document.querySelectorAll("a[data-room][data-last-seq]")) {
    updateBadge(link, currentRoom);
  }
}

// ------------------------------------------------------------------ the live chat

class ChatPage {
  constructor(root) {
    const d = root.dataset;
    this.root = root;
    this.room = d.room;
    this.me = d.me || "";
    this.guest = d.guest === "true";
    this.exists = d.exists === "true";
    this.dmTo = d.dmTo || "";
    this.bot = d.bot || "bot";
    this.live = d.live !== "false";
    this.moderator = d.moderator === "true";
    this.lastSeq = Number(d.lastSeq) || 0;
    this.oldestSeq = Number(d.oldestSeq) || 0;
    this.more = d.more === "true";

    this.list = root.querySelector("[data-messages]");
    this.scroller = root.querySelector("[data-scroller]");
    this.edge = root.querySelector("[data-history-edge]");
    this.offline = root.querySelector("[data-offline-banner]");
    this.notice = root.querySelector("[data-notice-banner]");
    this.marker = root.querySelector("[data-new-marker]");
    this.typingLine = root.querySelector("[data-typing]");
    this.form = root.querySelector("[data-composer]");
    this.input = this.form.querySelector("textarea");
    this.sendButton = this.form.querySelector("button[type=submit]");
    this.members = document.querySelector("[data-members]");
    this.memberCount = document.querySelector("[data-member-count]");
    this.dmList = document.querySelector("[data-dm-list]");
    this.dmEmpty = document.querySelector("[data-dm-empty]");

    this.bySeq = new Map(); // seq -> <li>
    this.pending = new Map(); // cid -> { cid, li, frame, timer, failed }
    this.typers = new Map(); // user -> timer
    this.online = new Set();
    this.ws = null;
    this.joined = false;
    this.ready = false; // connected and, for an existing room, joined
    this.attempt = 0;
    this.stopped = false;
    this.reconnectTimer = 0;
    this.pingTimer = 0;
    this.pongTimer = 0;
    this.pingCount = 0;
    this.loadingOlder = false;
    this.resetting = false;
    this.lastTypingSent = 0;
    this.divider = null;
    this.noticeTimer = 0;
    this.disabledWhy = null;
  }

  start() {
    for (const li of this.list.querySelectorAll("li.msg[data-seq]")) {
      this.bySeq.set(Number(li.dataset.seq), li);
    }
    for (const t of this.list.querySelectorAll("time[datetime]")) localizeTime(t);
    for (const li of this.members ? this.members.querySelectorAll("li[data-user]") : []) {
      if (li.classList.contains("online")) this.online.add(li.dataset.user);
      this.addModTools(li);
    }
    this.scrollToBottom();
    this.markSeen();
    updateAllBadges(this.room);
    this.wireComposer();
    this.wireScrolling();
    if (!this.live) return; // an older page: a plain document
    window.addEventListener("online", () => this.reconnectNow());
    window.addEventListener("offline", () => this.dropSocket("browser offline"));
    document.addEventListener("visibilitychange", () => this.markSeen());
    this.connect();
  }

  // -------------------------------------------------------------- socket

  connect() {
    if (this.stopped || this.ws) return;
    clearTimeout(this.reconnectTimer);
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    let ws;
    try {
      ws = new WebSocket(proto + "//" + location.host + "/ws");
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    this.joined = false;
    this.ready = false;
    ws.addEventListener("open", () => {
      if (ws !== this.ws) return;
      this.attempt = 0;
      this.startPing();
      if (this.exists) this.join();
      else this.becomeReady();
    });
    ws.addEventListener("message", (e) => {
      if (ws !== this.ws) return;
      let frame;
      try {
        frame = JSON.parse(e.data);
      } catch {
        return;
      }
      this.handle(frame);
    });
    ws.addEventListener("close", (e) => {
      if (ws !== this.ws) return;
      this.ws = null;
      this.onClosed(e.code);
    });
  }

  send(frame) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(frame));
      return true;
    }
    return false;
  }

  join() {
    // Always resume from what the page already shows: the server sends
    // exactly what came after it.
    const frame = { type: "join", room: this.room };
    if (!this.resetting) frame.since = this.lastSeq;
    this.send(frame);
  }

  onClosed(code) {
    this.joined = false;
    this.ready = false;
    this.stopPing();
    if (code === 1008) {
      this.stopped = true;
      this.showOffline(false);
      this.showNotice("Your session has ended. Reload the page or log in again to keep chatting.", true);
      this.disableComposer("Your session has ended.");
      return;
    }
    this.showOffline(true);
    this.scheduleReconnect(code === 1013 ? 200 : 0);
  }

  scheduleReconnect(floor = 0) {
    if (this.stopped) return;
    clearTimeout(this.reconnectTimer);
    const base = Math.min(15000, 500 * 2 ** this.attempt);
    const delay = Math.max(floor, base / 2 + Math.random() * (base / 2));
    this.attempt = Math.min(this.attempt + 1, 10);
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }

  reconnectNow() {
    if (this.ws || this.stopped) return;
    this.attempt = 0;
    this.connect();
  }

  // Forget a socket that may be dead without waiting for a close handshake
  // that would never finish.
  dropSocket() {
    const ws = this.ws;
    if (!ws) {
      this.showOffline(true);
      return;
    }
    this.ws = null;
    try {
      ws.close();
    } catch {
      /* already closing */
    }
    this.onClosed(1006);
  }

  startPing() {
    this.stopPing();
    this.pingTimer = setInterval(() => {
      this.pingCount += 1;
      if (!this.send({ type: "ping", cid: "p-" + this.pingCount })) return;
      clearTimeout(this.pongTimer);
      this.pongTimer = setTimeout(() => this.dropSocket(), PONG_TIMEOUT_MS);
    }, PING_EVERY_MS);
  }

  stopPing() {
    clearInterval(this.pingTimer);
    clearTimeout(this.pongTimer);
  }

  becomeReady() {
    this.ready = true;
    this.showOffline(false);
    for (const item of this.pending.values()) {
      // Re-sent with the same cid: if the first try was stored, the server
      // answers with the first ack and stores nothing new.
      if (!item.failed) this.send(this.frameFor(item));
    }
    this.refreshDms();
  }

  // -------------------------------------------------------------- frames

  handle(f) {
    switch (f.type) {
      case "welcome":
        if (!this.guest && f.user && f.user.guest) {
          this.showNotice("You are no longer logged in. Reload the page to log in again.", true);
        }
        break;
      case "joined":
        if (f.room === this.room) this.onJoined(f);
        break;
      case "message":
        this.onMessage(f);
        break;
      case "ack":
        this.onAck(f);
        break;
      case "history":
        if (f.room === this.room) this.onHistory(f);
        break;
      case "presence":
        if (f.room === this.room) this.setOnline(f.user, f.event === "join");
        break;
      case "typing":
        if (f.room === this.room && f.user !== this.me) this.showTyping(f.user);
        break;
      case "removed":
        if (f.room === this.room) this.onRemoved(f.user);
        break;
      case "muted":
        if (f.room === this.room) this.onMuted(f.user, true, f.until);
        break;
      case "unmuted":
        if (f.room === this.room) this.onMuted(f.user, false, null);
        break;
      case "dm_opened":
        this.onDmOpened(f);
        break;
      case "error":
        this.onError(f);
        break;
      case "pong":
        clearTimeout(this.pongTimer);
        break;
      default:
        break;
    }
  }

  onJoined(f) {
    const resumed = !this.resetting;
    this.resetting = false;
    if (resumed && f.more) {
      // Too much was missed to fill in: start again from the newest page.
      this.clearMessages();
      this.resetting = true;
      this.join();
      return;
    }
    if (Array.isArray(f.members)) this.setMembers(f.members);
    if (Array.isArray(f.online)) {
      this.online = new Set(f.online);
      for (const li of this.memberItems()) this.paintMember(li);
      this.sortMembers();
    }
    const messages = Array.isArray(f.messages) ? f.messages : [];
    if (!resumed) {
      this.more = !!f.more;
      this.oldestSeq = messages.length ? messages[0].seq : 0;
      this.updateEdge();
    }
    if (resumed && f.expired && this.lastSeq > 0) {
      this.insertNote("Some messages expired while you were away.");
    }
    const wasAtBottom = this.nearBottom();
    for (const m of messages) this.addMessage(m, { quiet: true });
    if (wasAtBottom) this.scrollToBottom();
    this.joined = true;
    this.becomeReady();
    this.markSeen();
    this.fillViewport();
  }

  onMessage(f) {
    if (f.private) {
      this.onBotReply(f);
      return;
    }
    if (f.room === this.room) {
      this.addMessage(f, {});
      this.clearTyper(f.from);
    } else if (typeof f.room === "string") {
      this.bumpDm(f.room, f.seq, f.from);
    }
  }

  onAck(f) {
    const item = this.pending.get(f.cid);
    if (!item) return;
    this.pending.delete(f.cid);
    clearTimeout(item.timer);
    const li = item.li;
    this.setState(li, item.guest ? "Only you and " + this.bot + " see this" : null);
    li.classList.remove("pending", "failed");
    if (f.room !== this.room || !f.seq) return;
    if (this.bySeq.has(f.seq)) {
      // The broadcast came first and is already on the page.
      if (this.bySeq.get(f.seq) !== li) li.remove();
      return;
    }
    li.dataset.seq = String(f.seq);
    li.id = "m" + f.seq;
    this.bySeq.set(f.seq, li);
    this.place(li);
    this.regroup(li);
    this.regroup(li.nextElementSibling);
  }

  onHistory(f) {
    this.loadingOlder = false;
    const messages = (Array.isArray(f.messages) ? f.messages : []).filter((m) => !this.bySeq.has(m.seq));
    const before = this.scroller.scrollHeight;
    const top = this.scroller.scrollTop;
    const frag = document.createDocumentFragment();
    const added = [];
    for (const m of messages) {
      const li = this.renderMessage(m);
      this.bySeq.set(m.seq, li);
      frag.append(li);
      added.push(li);
    }
    const firstOld = this.list.firstElementChild;
    this.list.prepend(frag);
    for (const li of added) this.regroup(li);
    this.regroup(firstOld);
    if (messages.length) this.oldestSeq = Math.min(this.oldestSeq || Infinity, messages[0].seq);
    this.more = !!f.more && messages.length > 0;
    this.updateEdge();
    // Keep what the reader was looking at exactly where it was.
    this.scroller.scrollTop = top + (this.scroller.scrollHeight - before);
    this.fillViewport();
  }

  onBotReply(f) {
    for (const item of this.pending.values()) {
      if (item.guest) {
        clearTimeout(item.timer);
        this.pending.delete(item.cid);
        item.li.classList.remove("pending");
        this.setState(item.li, "Only you and " + this.bot + " see this");
        break;
      }
    }
    const li = this.renderMessage({
      from: f.bot_name || this.bot,
      text: f.text || "",
      ts: f.ts || new Date().toISOString(),
      avatar: "bot",
    });
    li.classList.add("private");
    li.querySelector(".msg-meta").append(el("span", "tag tag-private", "only you can see this"));
    this.list.append(li);
    this.regroup(li);
    this.scrollToBottom();
  }

  onRemoved(user) {
    if (user === this.me) {
      this.showNotice("A moderator removed you from this room.", true);
      this.disableComposer("You were removed from this room.");
      return;
    }
    const li = this.memberItem(user);
    if (li) li.remove();
    this.online.delete(user);
    this.countMembers();
  }

  onMuted(user, muted, until) {
    const li = this.memberItem(user);
    if (li) {
      li.classList.toggle("is-muted", muted);
      const tag = li.querySelector("[data-muted-tag]");
      if (tag) tag.hidden = !muted;
    }
    if (user !== this.me) return;
    if (muted) {
      const when = until ? " until " + new Date(until).toLocaleString() : " until a moderator lifts it";
      this.showNotice("A moderator muted you in this room" + when + ".", true);
      this.disableComposer("You are muted.");
      if (until) {
        const left = new Date(until).getTime() - Date.now();
        if (left > 0 && left < 2 ** 31) setTimeout(() => this.onMuted(user, false, null), left + 500);
      }
    } else {
      this.hideNotice();
      this.enableComposer();
    }
  }

  onDmOpened(f) {
    if (typeof f.room !== "string") return;
    this.ensureDm(f.room, f.with || directPeer(f.room, this.me) || f.room);
    if (f.room === this.room && !this.exists) {
      this.exists = true;
      this.root.dataset.exists = "true";
      this.join();
    }
  }

  onError(f) {
    if (f.cid && this.pending.has(f.cid)) {
      let why = f.message || "Not sent.";
      if (f.code === "rate_limited" && f.retry_after) {
        why = "Slow down: try again in " + Math.ceil(f.retry_after) + " s.";
      }
      this.fail(f.cid, why);
      return;
    }
    if (f.room === this.room && f.code === "not_found" && !this.joined && this.exists) {
      this.showNotice("This room does not exist any more, or you may not see it.", true);
      this.stopped = true;
      return;
    }
    if (f.room === this.room && this.loadingOlder) this.loadingOlder = false;
    if (f.message) this.showNotice(f.message, false);
  }

  // -------------------------------------------------------------- messages

  renderMessage(m, local) {
    const li = el("li", "msg");
    li.dataset.from = m.from || "";
    li.dataset.ts = m.ts || new Date().toISOString();
    if (m.seq) {
      li.dataset.seq = String(m.seq);
      li.id = "m" + m.seq;
    }
    const mine = local || (this.me !== "" && m.from === this.me);
    if (mine) li.classList.add("mine");
    if (m.kind === "notice") li.classList.add("notice");

    const img = el("img", "avatar msg-avatar");
    img.src = avatarSrc(m.avatar || m.from || "guest");
    img.alt = "";
    img.width = 36;
    img.height = 36;

    const body = el("div", "msg-body");
    const meta = el("div", "msg-meta");
    meta.append(el("span", "msg-from", m.from || "you"));
    if (mine) meta.append(el("span", "tag tag-you", "you"));
    const time = el("time");
    time.setAttribute("datetime", li.dataset.ts);
    localizeTime(time);
    meta.append(time);
    const text = el("p", "msg-text");
    appendText(text, String(m.text || ""));
    body.append(meta, text);
    li.append(img, body);
    return li;
  }

  addMessage(m, { quiet }) {
    if (typeof m.seq !== "number" || m.seq <= 0) return;
    if (this.bySeq.has(m.seq)) {
      this.lastSeq = Math.max(this.lastSeq, m.seq);
      return;
    }
    const atBottom = this.nearBottom();
    let li;
    const own = m.cid && m.from === this.me ? this.pending.get(m.cid) : null;
    if (own) {
      // Our own message, broadcast back: the pending line becomes it.
      clearTimeout(own.timer);
      this.pending.delete(m.cid);
      li = own.li;
      li.classList.remove("pending", "failed");
      this.setState(li, null);
      li.dataset.seq = String(m.seq);
      li.dataset.ts = m.ts;
      li.id = "m" + m.seq;
      const t = li.querySelector("time");
      if (t) {
        t.setAttribute("datetime", m.ts);
        localizeTime(t);
      }
    } else {
      li = this.renderMessage(m);
    }
    this.bySeq.set(m.seq, li);
    this.place(li);
    this.regroup(li);
    this.regroup(li.nextElementSibling);
    this.lastSeq = Math.max(this.lastSeq, m.seq);
    if (!this.oldestSeq) this.oldestSeq = m.seq;
    if (m.from === this.me || atBottom) {
      if (!quiet) this.scrollToBottom();
    } else {
      this.markUnseen(li);
    }
    this.markSeen();
  }

  // Stored messages in seq order; local lines (pending, failed) stay last.
  place(li) {
    const seq = Number(li.dataset.seq);
    let after = null;
    for (let node = this.list.lastElementChild; node; node = node.previousElementSibling) {
      if (node === li) continue;
      if (node.classList.contains("pending") || node.classList.contains("failed")) continue;
      if (!node.dataset.seq || Number(node.dataset.seq) < seq) {
        after = node;
        break;
      }
    }
    if (after) after.after(li);
    else this.list.prepend(li);
  }

  regroup(li) {
    if (!li || !li.classList.contains("msg")) return;
    const prev = li.previousElementSibling;
    const cont =
      !!prev &&
      prev.classList.contains("msg") &&
      prev.dataset.from === li.dataset.from &&
      !prev.classList.contains("notice") &&
      !li.classList.contains("notice") &&
      prev.classList.contains("private") === li.classList.contains("private") &&
      Math.abs(Date.parse(li.dataset.ts) - Date.parse(prev.dataset.ts)) < GROUP_GAP_MS;
    li.classList.toggle("cont", cont);
  }

  clearMessages() {
    for (const li of Array.from(this.list.children)) {
      if (!li.classList.contains("pending") && !li.classList.contains("failed")) li.remove();
    }
    this.bySeq.clear();
    this.divider = null;
    this.lastSeq = 0;
    this.oldestSeq = 0;
  }

  insertNote(text) {
    const li = el("li", "unread-divider", text);
    li.setAttribute("role", "note");
    this.list.append(li);
  }

  markUnseen(li) {
    if (!this.divider || !this.divider.isConnected) {
      this.divider = el("li", "unread-divider", "New messages");
      this.divider.setAttribute("role", "separator");
      li.before(this.divider);
    }
    this.marker.hidden = false;
  }

  markSeen() {
    if (document.visibilityState !== "visible") return;
    if (this.lastSeq > 0) seenSet(this.room, this.lastSeq);
  }

  updateEdge() {
    if (!this.edge) return;
    this.edge.replaceChildren();
    if (this.loadingOlder) {
      this.edge.append(document.createTextNode("Loading older messages…"));
    } else if (this.more) {
      const b = el("button", "link", "Older messages");
      b.type = "button";
      b.addEventListener("click", () => this.loadOlder());
      this.edge.append(b);
    } else {
      this.edge.append(document.createTextNode("This is the beginning of the conversation."));
    }
  }

  // -------------------------------------------------------------- scrolling

  nearBottom() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 80;
  }

  scrollToBottom() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
    this.marker.hidden = true;
  }

  wireScrolling() {
    this.scroller.addEventListener(
      "scroll",
      () => {
        if (this.scroller.scrollTop < 200) this.loadOlder();
        if (this.nearBottom()) {
          this.marker.hidden = true;
          this.markSeen();
        }
      },
      { passive: true },
    );
    this.marker.addEventListener("click", () => {
      this.scrollToBottom();
      this.input.focus();
    });
    const older = this.root.querySelector("[data-older-link]");
    if (older && this.live) {
      older.addEventListener("click", (e) => {
        e.preventDefault();
        this.loadOlder();
      });
    }
  }

  loadOlder() {
    if (!this.live || !this.more || this.loadingOlder || !this.joined || !this.oldestSeq) return;
    if (!this.send({ type: "history", room: this.room, before: this.oldestSeq, limit: PAGE_SIZE })) return;
    this.loadingOlder = true;
    this.updateEdge();
  }

  // A short history does not fill the screen, so no scroll event would ever
  // ask for more: ask now.
  fillViewport() {
    if (this.more && this.scroller.scrollHeight <= this.scroller.clientHeight + 10) this.loadOlder();
  }

  // -------------------------------------------------------------- composer

  wireComposer() {
    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.submit();
    });
    this.input.addEventListener("keydown", (e) => {
      // Enter and Ctrl+Enter send, Shift+Enter is a new line; an Enter that
      // confirms an input-method composition (Chinese, Japanese…) is not a send.
      if (e.key !== "Enter" || e.shiftKey || e.isComposing || e.keyCode === 229) return;
      e.preventDefault();
      this.submit();
    });
    this.input.addEventListener("input", () => {
      this.autosize();
      this.maybeTyping();
    });
  }

  autosize() {
    const lines = this.input.value.split("\n").length;
    this.input.rows = Math.max(2, Math.min(8, lines));
  }

  maybeTyping() {
    if (this.guest || !this.exists || !this.joined || !this.input.value.trim()) return;
    const now = Date.now();
    if (now - this.lastTypingSent < TYPING_EVERY_MS) return;
    this.lastTypingSent = now;
    this.send({ type: "typing", room: this.room });
  }

  submit() {
    if (this.disabledWhy) return;
    const text = this.input.value;
    if (!text.trim()) return;
    if (Array.from(text).length > MAX_CHARS) {
      this.showNotice("A message may be at most " + MAX_CHARS + " characters long.", false);
      return;
    }
    this.input.value = "";
    this.autosize();
    this.lastTypingSent = 0;
    if (this.divider) {
      this.divider.remove();
      this.divider = null;
    }
    const cid = randomId("c-");
    const li = this.renderMessage({ from: this.me || "you", text, ts: new Date().toISOString() }, true);
    const item = { cid, li, text, timer: 0, failed: false, guest: this.guest };
    this.pending.set(cid, item);
    this.list.append(li);
    this.regroup(li);
    this.transmit(item);
    this.scrollToBottom();
  }

  frameFor(item) {
    if (!this.exists && this.dmTo) return { type: "dm", to: this.dmTo, text: item.text, cid: item.cid };
    return { type: "send", room: this.room, text: item.text, cid: item.cid };
  }

  transmit(item) {
    item.failed = false;
    item.li.classList.remove("failed");
    item.li.classList.add("pending");
    this.setState(item.li, item.guest ? "Asking " + this.bot + "…" : "Sending…");
    clearTimeout(item.timer);
    item.timer = setTimeout(() => this.fail(item.cid, "Not sent: no answer from the server."), ACK_TIMEOUT_MS);
    // Not connected yet: `becomeReady` sends it.
    if (this.ready) this.send(this.frameFor(item));
  }

  fail(cid, why) {
    const item = this.pending.get(cid);
    if (!item) return;
    clearTimeout(item.timer);
    item.failed = true;
    item.li.classList.remove("pending");
    item.li.classList.add("failed");
    this.setState(item.li, why, () => this.transmit(item));
  }

  // The line under a local message: "Sending…", or why it failed and a retry button.
  setState(li, text, retry) {
    let box = li.querySelector(".msg-actions");
    if (!text) {
      if (box) box.remove();
      return;
    }
    if (!box) {
      box = el("div", "msg-actions");
      li.querySelector(".msg-body").append(box);
    }
    box.replaceChildren(el("span", "msg-state", text));
    box.setAttribute("role", retry ? "alert" : "status");
    if (retry) {
      const b = el("button", "", "Retry");
      b.type = "button";
      b.addEventListener("click", retry);
      box.append(b);
    }
  }

  disableComposer(why) {
    this.disabledWhy = why;
    this.input.disabled = true;
    this.sendButton.disabled = true;
    this.form.setAttribute("aria-disabled", "true");
    this.input.placeholder = why;
  }

  enableComposer() {
    if (this.stopped) return;
    this.disabledWhy = null;
    this.input.disabled = false;
    this.sendButton.disabled = false;
    this.form.removeAttribute("aria-disabled");
    this.input.placeholder = "Message " + (this.dmTo || this.room);
  }

  // -------------------------------------------------------------- typing

  showTyping(user) {
    clearTimeout(this.typers.get(user));
    this.typers.set(
      user,
      setTimeout(() => this.clearTyper(user), TYPING_SHOWN_MS),
    );
    this.paintTyping();
  }

  clearTyper(user) {
    if (!this.typers.has(user)) return;
    clearTimeout(this.typers.get(user));
    this.typers.delete(user);
    this.paintTyping();
  }

  paintTyping() {
    const names = Array.from(this.typers.keys());
    let text = "";
    if (names.length === 1) text = names[0] + " is typing…";
    else if (names.length === 2) text = names[0] + " and " + names[1] + " are typing…";
    else if (names.length > 2) text = "Several people are typing…";
    this.typingLine.textContent = text;
  }

  // -------------------------------------------------------------- members

  memberItems() {
    return this.members ? Array.from(this.members.querySelectorAll("li[data-user]")) : [];
  }

  memberItem(name) {
    return this.memberItems().find((li) => li.dataset.user === name) || null;
  }

  setMembers(names) {
    const wanted = new Set(names);
    for (const li of this.memberItems()) {
      if (!wanted.has(li.dataset.user)) li.remove();
    }
    for (const name of names) this.ensureMember(name);
    this.sortMembers();
  }

  ensureMember(name) {
    if (!this.members) return null;
    let li = this.memberItem(name);
    if (li) return li;
    li = el("li", "member");
    li.dataset.user = name;
    const dot = el("span", "presence-dot");
    dot.setAttribute("aria-hidden", "true");
    const img = el("img", "avatar");
    img.src = avatarSrc(name);
    img.alt = "";
    img.width = 24;
    img.height = 24;
    li.append(dot, img);
    if (this.me && name !== this.me) {
      const a = el("a", "member-name", name);
      a.href = roomHref(directRoom(this.me, name));
      a.title = "Send " + name + " a private message";
      li.append(a);
    } else {
      li.append(el("span", "member-name", name));
    }
    if (name === this.me) li.append(el("span", "tag tag-you", "you"));
    const status = el("span", "visually-hidden", "offline");
    status.dataset.status = "";
    const muted = el("span", "tag tag-muted", "muted");
    muted.dataset.mutedTag = "";
    muted.hidden = true;
    li.append(status, muted);
    this.addModTools(li);
    this.members.append(li);
    this.countMembers();
    return li;
  }

  setOnline(user, online) {
    if (online) {
      this.online.add(user);
      this.ensureMember(user);
    } else {
      this.online.delete(user);
      this.clearTyper(user);
    }
    const li = this.memberItem(user);
    if (li) this.paintMember(li);
    this.sortMembers();
  }

  paintMember(li) {
    const online = this.online.has(li.dataset.user);
    li.classList.toggle("online", online);
    const status = li.querySelector("[data-status]");
    if (status) status.textContent = online ? "online" : "offline";
  }

  sortMembers() {
    if (!this.members) return;
    const items = this.memberItems();
    items.sort((a, b) => {
      const oa = this.online.has(a.dataset.user) ? 0 : 1;
      const ob = this.online.has(b.dataset.user) ? 0 : 1;
      if (oa !== ob) return oa - ob;
      return a.dataset.user < b.dataset.user ? -1 : a.dataset.user > b.dataset.user ? 1 : 0;
    });
    // Moving the focused element would lose keyboard focus: leave order alone then.
    if (items.some((li) => li.contains(document.activeElement))) return;
    for (const li of items) this.members.append(li);
    this.countMembers();
  }

  countMembers() {
    if (this.memberCount) this.memberCount.textContent = String(this.memberItems().length);
  }

  addModTools(li) {
    const name = li.dataset.user;
    if (!this.moderator || !this.exists || name === this.me || li.querySelector(".mod-tools")) return;
    const box = el("span", "mod-tools");
    const select = el("select");
    select.setAttribute("aria-label", "Moderate " + name);
    const options = [
      ["", "Moderate…"],
      ["mute:300", "Mute 5 min"],
      ["mute:600", "Mute 10 min"],
      ["mute:18000", "Mute 5 h"],
      ["mute:", "Mute until lifted"],
      ["unmute", "Unmute"],
      ["kick", "Remove from room"],
    ];
    for (const [value, label] of options) {
      const o = el("option", "", label);
      o.value = value;
      select.append(o);
    }
    select.addEventListener("change", () => {
      const action = select.value;
      select.value = "";
      if (action) this.moderate(name, action);
    });
    box.append(select);
    li.append(box);
  }

  async moderate(name, action) {
    const base = roomHref(this.room).replace("/rooms/", "/api/rooms/");
    let url;
    let method;
    let body;
    if (action.startsWith("mute:")) {
      url = base + "/mutes/" + encodeURIComponent(name);
      method = "PUT";
      const seconds = action.slice(5);
      body = seconds ? { seconds: Number(seconds) } : {};
    } else if (action === "unmute") {
      url = base + "/mutes/" + encodeURIComponent(name);
      method = "DELETE";
    } else {
      if (!window.confirm("Remove " + name + " from this room?")) return;
      url = base + "/members/" + encodeURIComponent(name);
      method = "DELETE";
    }
    try {
      const res = await fetch(url, {
        method,
        credentials: "same-origin",
        headers: body ? { "Content-Type": "application/json" } : {},
        body: body ? JSON.stringify(body) : undefined,
      });
      if (!res.ok) {
        let message = "That did not work (" + res.status + ").";
        try {
          const j = await res.json();
          if (j && j.error && j.error.message) message = j.error.message;
        } catch {
          /* not JSON */
        }
        this.showNotice(message, false);
      }
    } catch {
      this.showNotice("Could not reach the server.", false);
    }
  }

  // -------------------------------------------------------------- direct messages

  ensureDm(room, withName) {
    if (!this.dmList) return null;
    let link = Array.from(this.dmList.querySelectorAll("a[data-room]")).find((a) => a.dataset.room === room);
    if (link) return link;
    const li = el("li");
    link = el("a");
    link.href = roomHref(room);
    link.dataset.room = room;
    link.dataset.lastSeq = "0";
    const img = el("img", "avatar");
    img.src = avatarSrc(withName);
    img.alt = "";
    img.width = 24;
    img.height = 24;
    const badge = el("span", "badge");
    badge.dataset.unread = "";
    badge.hidden = true;
    link.append(img, el("span", "dm-name", withName), badge);
    if (room === this.room) link.setAttribute("aria-current", "page");
    li.append(link);
    this.dmList.append(li);
    if (this.dmEmpty) this.dmEmpty.hidden = true;
    return link;
  }

  bumpDm(room, seq, from) {
    const peer = directPeer(room, this.me);
    if (!peer) return;
    const link = this.ensureDm(room, peer);
    if (!link) return;
    if (typeof seq === "number" && seq > (Number(link.dataset.lastSeq) || 0)) link.dataset.lastSeq = String(seq);
    if (from === this.me && typeof seq === "number") seenSet(room, seq);
    updateBadge(link, this.room);
  }

  async refreshDms() {
    if (this.guest || !this.dmList) return;
    try {
      const res = await fetch("/api/dms", { credentials: "same-origin" });
      if (!res.ok) return;
      const data = await res.json();
      for (const dm of (data && data.rooms) || []) {
        const link = this.ensureDm(dm.name, dm.with);
        if (!link) continue;
        const last = Number(dm.last_seq) || 0;
        if (last > (Number(link.dataset.lastSeq) || 0)) link.dataset.lastSeq = String(last);
        updateBadge(link, this.room);
      }
    } catch {
      /* the sidebar is a convenience; the socket carries on */
    }
  }

  // -------------------------------------------------------------- banners

  showOffline(on) {
    this.offline.hidden = !on;
  }

  showNotice(text, sticky) {
    clearTimeout(this.noticeTimer);
    this.notice.textContent = text;
    this.notice.hidden = false;
    if (!sticky) this.noticeTimer = setTimeout(() => this.hideNotice(), 8000);
  }

  hideNotice() {
    clearTimeout(this.noticeTimer);
    this.notice.hidden = true;
    this.notice.textContent = "";
  }
}

// ------------------------------------------------------------------ start

function foldPanels() {
  const narrow = window.matchMedia(NARROW);
  const panels = document.querySelectorAll("details[data-collapsible]");
  const apply = () => {
    for (const d of panels) d.open = !narrow.matches;
  };
  apply();
  narrow.addEventListener("change", apply);
}

function main() {
  const root = document.getElementById("chat");
  foldPanels();
  if (root) {
    const page = new ChatPage(root);
    page.start();
    window.hihichat = page; // for debugging from the console and for tests
  } else {
    updateAllBadges(null);
    // Coming back to a list with the back button shows a cached page.
    window.addEventListener("pageshow", () => updateAllBadges(null));
  }
}

main();
