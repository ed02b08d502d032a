//! The contract of [`BotCorpus`]: pairs kept once each, in insertion order.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use chat_domain::{BotCorpus, QaPair};

fn pair(q: &str, a: &str) -> QaPair {
    QaPair {
        question: q.to_owned(),
        answer: a.to_owned(),
    }
}

/// An empty corpus has no pairs, and adding none adds nothing.
pub async fn an_empty_corpus_has_no_pairs<S: BotCorpus>(store: Arc<S>) {
    assert_eq!(store.pairs().await.unwrap(), vec![]);
    assert_eq!(store.add_pairs(&[]).await.unwrap(), 0);
    assert_eq!(store.pairs().await.unwrap(), vec![]);
}

/// Identical pairs are stored once (within a call and across calls); the
/// count says how many were new; order is insertion order.
pub async fn identical_pairs_are_stored_once_in_insertion_order<S: BotCorpus>(store: Arc<S>) {
    let (p1, p2, p3) = (
        pair("你好", "你好呀!"),
        pair("hello", "Quack!"),
        pair("how are you", "fine"),
    );
    assert_eq!(
        store
            .add_pairs(&[p1.clone(), p2.clone(), p1.clone()])
            .await
            .unwrap(),
        2
    );
    assert_eq!(store.add_pairs(&[p2.clone(), p3.clone()]).await.unwrap(), 1);
    assert_eq!(store.add_pairs(std::slice::from_ref(&p1)).await.unwrap(), 0);
    assert_eq!(store.pairs().await.unwrap(), vec![p1, p2, p3]);
}

/// One question with two answers, or one answer to two questions, are
/// different pairs.
pub async fn pairs_differing_in_one_half_are_both_kept<S: BotCorpus>(store: Arc<S>) {
    let pairs = [
        pair("hi", "hello"),
        pair("hi", "hey there"),
        pair("hey", "hello"),
        pair("Hi", "hello"),
    ];
    assert_eq!(store.add_pairs(&pairs).await.unwrap(), 4);
    assert_eq!(store.pairs().await.unwrap(), pairs.to_vec());
}

/// Unicode text, newlines and long answers come back exactly.
pub async fn unicode_pairs_round_trip_exactly<S: BotCorpus>(store: Arc<S>) {
    let pairs = [
        pair("你叫什么名字?", "我是小黄鸭 🦆"),
        pair("مرحبا", "\u{200f}أهلا"),
        pair("multi\nline", "answer\twith tab"),
        pair("long", &"长".repeat(3000)),
    ];
    assert_eq!(store.add_pairs(&pairs).await.unwrap(), 4);
    assert_eq!(store.pairs().await.unwrap(), pairs.to_vec());
}
