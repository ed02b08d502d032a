//! The default guest bot: answers from a question/answer corpus by closest
//! match, like the original's ChatterBot best-match, and the corpus file format.
//!
//! Similarity is the Dice coefficient over character bigrams of normalised
//! text, blended with word overlap. Bigrams of characters work for Chinese,
//! which has no spaces, as well as for English paraphrases.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;

use crate::names::InvalidInput;
use crate::ports::{Bot, BotCorpus, QaPair, StoreResult};

/// Below this similarity the bot gives its fallback line.
pub const MATCH_THRESHOLD: f64 = 0.35;

/// The default bot name, from the original series.
pub const DEFAULT_BOT_NAME: &str = "小黄鸭";

/// What the bot says to a guest who opens a public room, by default.
pub const DEFAULT_BOT_GREETING: &str = "你好!我是小黄鸭 🦆,有问题可以问我。登录后就可以和大家一起聊天了。      (Hello! I'm 小黄鸭, the Little Yellow Duck — ask me anything. Log in to chat with everyone.)";

/// Answers from a [`BotCorpus`] by closest match.
pub struct CorpusBot {
    name: String,
    fallback: String,
    greeting: Option<String>,
    corpus: Arc<dyn BotCorpus>,
}

impl CorpusBot {
    /// A bot called `name` answering from `corpus`, saying `fallback` when
    /// nothing in the corpus is close.
    pub fn new(
        name: impl Into<String>,
        fallback: impl Into<String>,
        corpus: Arc<dyn BotCorpus>,
    ) -> Self {
        Self {
            name: name.into(),
            fallback: fallback.into(),
            greeting: None,
            corpus,
        }
    }

    /// The same bot, greeting guests who open a public room with `greeting`
    /// (an empty one greets nobody).
    #[must_use]
    pub fn with_greeting(mut self, greeting: impl Into<String>) -> Self {
        let greeting = greeting.into();
        self.greeting = (!greeting.trim().is_empty()).then_some(greeting);
        self
    }
}

#[async_trait]
impl Bot for CorpusBot {
    fn name(&self) -> &str {
        &self.name
    }

    fn greeting(&self) -> Option<&str> {
        self.greeting.as_deref()
    }

    async fn reply(&self, text: &str) -> StoreResult<String> {
        let pairs = self.corpus.pairs().await?;
        Ok(best_answer(&pairs, text)
            .map(str::to_owned)
            .unwrap_or_else(|| self.fallback.clone()))
    }
}

/// The answer of the pair whose question is most similar to `text`, if any
/// is similar enough.
pub fn best_answer<'a>(pairs: &'a [QaPair], text: &str) -> Option<&'a str> {
    let probe = normalise(text);
    pairs
        .iter()
        .map(|p| (similarity(&normalise(&p.question), &probe), p))
        .filter(|(s, _)| *s >= MATCH_THRESHOLD)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, p)| p.answer.as_str())
}

fn normalise(text: &str) -> String {
    text.chars()
        .flat_map(char::to_lowercase)
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn bigrams(s: &str) -> HashMap<(char, char), u32> {
    let chars: Vec<char> = s.chars().collect();
    let mut grams = HashMap::new();
    if chars.len() == 1 {
        *grams.entry((chars[0], ' ')).or_default() += 1;
    }
    for w in chars.windows(2) {
        *grams.entry((w[0], w[1])).or_default() += 1;
    }
    grams
}

/// Similarity of two normalised texts in `0.0..=1.0`.
fn similarity(a: &str, b: &str) -> f64 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    if a == b {
        return 1.0;
    }
    let (ga, gb) = (bigrams(a), bigrams(b));
    let total: u32 = ga.values().sum::<u32>() + gb.values().sum::<u32>();
    let common: u32 = ga
        .iter()
        .map(|(g, n)| (*n).min(*gb.get(g).unwrap_or(&0)))
        .sum();
    let dice = if total == 0 {
        0.0
    } else {
        2.0 * f64::from(common) / f64::from(total)
    };

    let wa: std::collections::HashSet<&str> = a.split(' ').collect();
    let wb: std::collections::HashSet<&str> = b.split(' ').collect();
    let inter = wa.intersection(&wb).count() as f64;
    let jaccard = inter / (wa.union(&wb).count() as f64);
    dice.max((dice + jaccard) / 2.0)
}

/// Parses a corpus file: blocks of `Q: …` lines followed by `A: …` lines,
/// separated by blank lines; `#` starts a comment line. Several `Q:` lines in
/// one block are paraphrases sharing the block's answer; several `A:` lines
/// are joined by newlines.
///
/// ```text
/// # greetings
/// Q: hello
/// Q: hi there
/// A: Hello! Log in to chat with everyone.
///
/// Q: 你好
/// A: 你好呀!登录后就可以和大家聊天了。
/// ```
///
/// # Errors
/// [`InvalidInput`] for a block with questions but no answer (or the
/// reverse), or a line that is neither.
pub fn parse_corpus(text: &str) -> Result<Vec<QaPair>, InvalidInput> {
    const BAD: InvalidInput = InvalidInput {
        what: "corpus",
        why: "every block needs `Q:` lines followed by `A:` lines",
    };
    let mut pairs = Vec::new();
    let (mut qs, mut answer): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
    let flush = |qs: &mut Vec<String>, answer: &mut Vec<String>, pairs: &mut Vec<QaPair>| {
        if qs.is_empty() && answer.is_empty() {
            return Ok(());
        }
        if qs.is_empty() || answer.is_empty() {
            return Err(BAD);
        }
        let a = answer.join("\n");
        pairs.extend(qs.drain(..).map(|q| QaPair {
            question: q,
            answer: a.clone(),
        }));
        answer.clear();
        Ok(())
    };
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') {
            continue;
        }
        if line.is_empty() {
            flush(&mut qs, &mut answer, &mut pairs)?;
        } else if let Some(q) = line.strip_prefix("Q:") {
            if !answer.is_empty() {
                flush(&mut qs, &mut answer, &mut pairs)?;
            }
            qs.push(q.trim().to_owned());
        } else if let Some(a) = line.strip_prefix("A:") {
            answer.push(a.trim().to_owned());
        } else {
            return Err(BAD);
        }
    }
    flush(&mut qs, &mut answer, &mut pairs)?;
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus() -> Vec<QaPair> {
        parse_corpus(
            "Q: how do I create a room\nA: ask an admin for create_room\n\n\
             Q: 你好\nQ: 您好\nA: 你好呀\n\nQ: 怎么创建聊天室\nA: 需要 create_room 权限\n",
        )
        .unwrap()
    }

    #[test]
    fn answers_close_paraphrases_in_english_and_chinese() {
        let c = corpus();
        assert_eq!(
            best_answer(&c, "How do I create a room?"),
            Some("ask an admin for create_room")
        );
        assert_eq!(
            best_answer(&c, "how can i create rooms"),
            Some("ask an admin for create_room")
        );
        assert_eq!(best_answer(&c, "你好!"), Some("你好呀"));
        assert_eq!(
            best_answer(&c, "请问怎么创建一个聊天室"),
            Some("需要 create_room 权限")
        );
        assert_eq!(best_answer(&c, "zxqv wplk"), None);
    }

    #[test]
    fn corpus_format_errors_are_reported() {
        assert_eq!(corpus().len(), 4);
        assert!(parse_corpus("Q: lonely question\n").is_err());
        assert!(parse_corpus("A: lonely answer\n").is_err());
        assert!(parse_corpus("what is this\n").is_err());
        assert_eq!(parse_corpus("# only a comment\n\n").unwrap(), vec![]);
    }
}
