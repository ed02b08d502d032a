//! The hihichat WebSocket frames the load generator sends and reads
//! (CONTRACT §4), and the text format of benchmark messages.
//!
//! Incoming frames are parsed into one flat struct borrowing from the frame
//! instead of a tagged enum: serde buffers a tagged enum's fields before
//! choosing the variant, and the load generator parses every delivery.

use std::borrow::Cow;

use serde::Deserialize;

/// One message inside `message`, `joined` or `history` frames.
#[derive(Debug, Deserialize)]
pub struct WireMessage<'a> {
    /// Room sequence number (absent on a bot's private answer).
    pub seq: Option<u64>,
    /// The text, which for benchmark messages starts with the scheduled send time.
    #[serde(borrow)]
    pub text: Option<Cow<'a, str>>,
}

/// Any server frame, with the fields the load generator looks at.
#[derive(Debug, Deserialize)]
pub struct Incoming<'a> {
    /// `message`, `ack`, `joined`, `history`, `error`, `welcome`, `presence`, ….
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    /// The room, on room frames.
    #[serde(borrow)]
    pub room: Option<Cow<'a, str>>,
    /// `message` and `ack`: the seq.
    pub seq: Option<u64>,
    /// `message`: the text.
    #[serde(borrow)]
    pub text: Option<Cow<'a, str>>,
    /// `ack` and `error`: the client's id for the request.
    #[serde(borrow)]
    pub cid: Option<Cow<'a, str>>,
    /// `joined` and `history`: the messages, oldest first.
    #[serde(borrow)]
    pub messages: Option<Vec<WireMessage<'a>>>,
    /// `joined` and `history`: whether there is more.
    pub more: Option<bool>,
    /// `error`: the code.
    #[serde(borrow)]
    pub code: Option<Cow<'a, str>>,
    /// `error`: the explanation.
    #[serde(borrow)]
    pub message: Option<Cow<'a, str>>,
}

/// Parses one server frame.
///
/// # Errors
/// When the text is not a JSON object with a string `type`.
pub fn parse(text: &str) -> Result<Incoming<'_>, serde_json::Error> {
    serde_json::from_str(text)
}

/// `{"type":"join","room":…}` with an optional `since`.
pub fn join(room: &str, since: Option<u64>) -> String {
    let room = json_str(room);
    match since {
        Some(s) => format!(r#"{{"type":"join","room":{room},"since":{s}}}"#),
        None => format!(r#"{{"type":"join","room":{room}}}"#),
    }
}

/// `{"type":"leave","room":…}`.
pub fn leave(room: &str) -> String {
    format!(r#"{{"type":"leave","room":{}}}"#, json_str(room))
}

/// `{"type":"send",…}` with a benchmark text and a cid.
pub fn send(room: &str, text: &str, cid: &str) -> String {
    format!(
        r#"{{"type":"send","room":{},"text":{},"cid":{}}}"#,
        json_str(room),
        json_str(text),
        json_str(cid)
    )
}

/// `{"type":"history",…}`.
pub fn history(room: &str, before: u64, limit: u64) -> String {
    format!(
        r#"{{"type":"history","room":{},"before":{before},"limit":{limit}}}"#,
        json_str(room)
    )
}

fn json_str(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// The text of a benchmark message: the scheduled send time (µs since the
/// run's epoch) first, so every recipient can compute its latency without a
/// shared table, then who sent it, then padding to `size` bytes.
pub fn bench_text(scheduled_us: u64, publisher: usize, index: u64, size: usize) -> String {
    let mut text = format!("{scheduled_us} p{publisher} #{index} ");
    while text.len() < size {
        text.push('x');
    }
    text
}

/// The scheduled send time written by [`bench_text`], if `text` is one.
pub fn scheduled_us(text: &str) -> Option<u64> {
    text.split(' ').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn frames_are_json_and_bench_texts_round_trip() {
        let v: serde_json::Value = serde_json::from_str(&send("闲聊-1", "a \"q\"", "c-1")).unwrap();
        assert_eq!(v["room"], "闲聊-1");
        assert_eq!(v["text"], "a \"q\"");
        let j: serde_json::Value = serde_json::from_str(&join("r", Some(7))).unwrap();
        assert_eq!(j["since"], 7);
        let t = bench_text(123_456, 3, 9, 64);
        assert_eq!(t.len(), 64);
        assert_eq!(scheduled_us(&t), Some(123_456));
        assert_eq!(scheduled_us("hello there"), None);
    }

    #[test]
    fn server_frames_parse_with_unknown_fields_ignored() {
        let f = parse(
            r#"{"type":"message","room":"r","seq":42,"from":"a","text":"5 p0 #1","ts":"2026-11-23T10:00:00.123Z","kind":"chat"}"#,
        )
        .unwrap();
        assert_eq!(f.kind, "message");
        assert_eq!(f.seq, Some(42));
        let j = parse(r#"{"type":"joined","room":"r","members":[],"online":[],"messages":[{"seq":1,"text":"x"}],"more":false}"#).unwrap();
        assert_eq!(j.messages.unwrap()[0].seq, Some(1));
        assert!(parse("not json").is_err());
    }
}
