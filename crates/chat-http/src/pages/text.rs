//! Small text helpers for the pages: links in message text, URL encoding of
//! names, the check that keeps `?next=` on this site, and domain messages
//! turned into sentences.

/// A run of message text: plain, or an http(s) link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// The text as written (the template escapes it).
    pub text: String,
    /// `Some(url)` when the run is a link; the URL is the text itself.
    pub href: Option<String>,
}

/// Domain messages are lower-case fragments ("room name: is too long");
/// pages show them as sentences: a capital first letter and a full stop.
pub fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => {
            let mut out: String = first.to_uppercase().collect();
            out.push_str(chars.as_str());
            if !out.ends_with(['.', '!', '?']) {
                out.push('.');
            }
            out
        }
        None => String::new(),
    }
}

/// Splits message text into plain runs and http(s) links, the same way the
/// browser's `chat.js` does, so pages look alike with and without JavaScript.
///
/// Only `http://` and `https://` become links; trailing punctuation that
/// usually ends a sentence is left outside the link.
pub fn linkify(text: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut plain_start = 0;
    let mut i = 0;
    while i < text.len() {
        let rest = &text[i..];
        let at_word_start = i == 0 || !text[..i].ends_with(|c: char| c.is_alphanumeric());
        let scheme = ["https://", "http://"].into_iter().find(|s| {
            rest.get(..s.len())
                .is_some_and(|h| h.eq_ignore_ascii_case(s))
        });
        if let (true, Some(scheme)) = (at_word_start, scheme) {
            let end = rest
                .find(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"'))
                .unwrap_or(rest.len());
            let mut url = &rest[..end];
            url = url.trim_end_matches(['.', ',', ';', ':', '!', '?', ')', ']', '\'', '}']);
            if url.len() > scheme.len() {
                if plain_start < i {
                    out.push(Segment {
                        text: text[plain_start..i].to_owned(),
                        href: None,
                    });
                }
                out.push(Segment {
                    text: url.to_owned(),
                    href: Some(url.to_owned()),
                });
                i += url.len();
                plain_start = i;
                continue;
            }
        }
        i += rest.chars().next().map_or(1, char::len_utf8);
    }
    if plain_start < text.len() {
        out.push(Segment {
            text: text[plain_start..].to_owned(),
            href: None,
        });
    }
    out
}

/// Percent-encodes `raw` for one path segment or query value: everything
/// but ASCII letters, digits and `-._~` is encoded, so `@a+b` and `闲聊-1`
/// survive the trip and header values stay ASCII.
pub fn encode_component(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for b in raw.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `/rooms/<name>`, encoded.
pub fn room_href(room: &str) -> String {
    format!("/rooms/{}", encode_component(room))
}

/// `/avatars/<name>.svg`, encoded.
pub fn avatar_href(name: &str) -> String {
    format!("/avatars/{}.svg", encode_component(name))
}

/// Whether `next` is a path on this site (so a login link cannot send people
/// elsewhere): it starts with one `/`, and has no backslash, no control
/// character and no whitespace, which some browsers reinterpret.
pub fn is_local_path(next: &str) -> bool {
    next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next
            .chars()
            .any(|c| c == '\\' || c.is_control() || c.is_whitespace())
}

/// `/login?next=<path>` for the page at `path`.
pub fn login_href(path: &str) -> String {
    if path == "/" || path.is_empty() || !is_local_path(path) {
        "/login".to_owned()
    } else {
        // Keep the slashes readable; encode everything else.
        let encoded: Vec<String> = path.split('/').map(encode_component).collect();
        format!("/login?next={}", encoded.join("/"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_messages_become_sentences() {
        assert_eq!(
            capitalize("room name: is too long"),
            "Room name: is too long."
        );
        assert_eq!(capitalize("already a member!"), "Already a member!");
        assert_eq!(capitalize("ärger."), "Ärger.");
        assert_eq!(capitalize("名字太长"), "名字太长.");
        assert_eq!(capitalize(""), "");
    }

    fn link(s: &str) -> Segment {
        Segment {
            text: s.to_owned(),
            href: Some(s.to_owned()),
        }
    }
    fn plain(s: &str) -> Segment {
        Segment {
            text: s.to_owned(),
            href: None,
        }
    }

    #[test]
    fn links_are_found_and_punctuation_left_out() {
        assert_eq!(
            linkify("see https://example.com/a?b=1. 好"),
            vec![
                plain("see "),
                link("https://example.com/a?b=1"),
                plain(". 好")
            ]
        );
        assert_eq!(linkify("http://x.y"), vec![link("http://x.y")]);
        assert_eq!(linkify("你好🎉"), vec![plain("你好🎉")]);
        assert_eq!(linkify(""), vec![]);
    }

    #[test]
    fn only_http_links_count() {
        for s in [
            "javascript:alert(1)",
            "data:text/html,<script>",
            "xhttps://a.b",
            "https://",
            "ftp://a.b",
        ] {
            assert!(linkify(s).iter().all(|seg| seg.href.is_none()), "{s}");
        }
    }

    #[test]
    fn quotes_and_angle_brackets_end_a_link() {
        let segs = linkify("https://a.b/\"><script>");
        assert_eq!(segs[0], link("https://a.b/"));
        assert!(segs[1].href.is_none());
    }

    #[test]
    fn names_are_encoded_for_paths() {
        assert_eq!(room_href("@alice+bob"), "/rooms/%40alice%2Bbob");
        assert_eq!(room_href("闲聊-1"), "/rooms/%E9%97%B2%E8%81%8A-1");
        assert_eq!(avatar_href("a.b"), "/avatars/a.b.svg");
    }

    #[test]
    fn only_local_paths_are_followed() {
        assert!(is_local_path("/rooms/x"));
        assert!(is_local_path("/rooms?x=1"));
        for bad in [
            "//evil.com",
            "https://evil.com",
            "/\\evil.com",
            "evil",
            "",
            "/a\nb",
            "/ x",
        ] {
            assert!(!is_local_path(bad), "{bad:?}");
        }
        assert_eq!(
            login_href("/rooms/闲聊"),
            "/login?next=/rooms/%E9%97%B2%E8%81%8A"
        );
        assert_eq!(login_href("/"), "/login");
    }
}
