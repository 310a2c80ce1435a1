//! The tier classifier on the held-out examples of `data/tiers_test.jsonl`.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use domain::embed::Embedder;
use models::SentenceEmbedder;
use models::classifier::{Equipment, Label, Tier, TierClassifier, latest_user_turn, parse_examples, training_examples};
use providers::Message;

const TEST_DATA: &str = include_str!("../../data/tiers_test.jsonl");

#[test]
fn the_held_out_set_is_large_disjoint_from_training_and_covers_every_label() {
    let train = training_examples().expect("training data parses");
    let test = parse_examples("tiers_test.jsonl", TEST_DATA).expect("test data parses");
    assert!(test.len() >= 150, "{} held-out examples", test.len());
    let seen: HashSet<String> = train.iter().map(|e| e.text.trim().to_lowercase()).collect();
    let shared: Vec<&str> =
        test.iter().filter(|e| seen.contains(&e.text.trim().to_lowercase())).map(|e| e.text.as_str()).collect();
    assert!(shared.is_empty(), "in both files: {shared:?}");
    for label in Label::ALL {
        assert!(train.iter().filter(|e| e.label == label).count() >= 20, "few {label:?} training examples");
        assert!(test.iter().filter(|e| e.label == label).count() >= 10, "few {label:?} test examples");
    }
}

#[test]
fn classifies_held_out_requests_accurately() {
    let Some(dir) = models::testing::models_dir() else { return };
    let embedder: Arc<dyn Embedder> = Arc::new(SentenceEmbedder::load(&dir).expect("embedder loads"));
    let classifier = TierClassifier::new(embedder).expect("trains");
    let test = parse_examples("tiers_test.jsonl", TEST_DATA).expect("test data parses");
    let mut per_label: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut correct = 0;
    for example in &test {
        let expected = example.label.classification(1.0);
        let got = classifier.classify(&example.text).expect("classifies");
        assert!(got.confidence > 0.0 && got.confidence <= 1.0);
        let right = got.tier == expected.tier && got.equipment == expected.equipment;
        if !right {
            println!(
                "wrong: {:?} -> {:?}/{:?} ({:.2})  {:?}",
                example.label, got.tier, got.equipment, got.confidence, example.text
            );
        }
        correct += usize::from(right);
        let entry = per_label.entry(format!("{:?}", example.label)).or_default();
        entry.0 += usize::from(right);
        entry.1 += 1;
    }
    let accuracy = correct as f64 / test.len() as f64;
    for (label, (right, total)) in &per_label {
        println!("{label:>12}: {right}/{total} = {:.3}", *right as f64 / *total as f64);
    }
    println!("held-out accuracy: {correct}/{} = {accuracy:.3}", test.len());
    assert!(accuracy >= 0.9, "held-out accuracy {accuracy:.3} below 0.9");
}

#[test]
fn equipment_requests_name_the_equipment_and_are_trivial() {
    let Some(dir) = models::testing::models_dir() else { return };
    let embedder: Arc<dyn Embedder> = Arc::new(SentenceEmbedder::load(&dir).expect("embedder loads"));
    let classifier = TierClassifier::new(embedder).expect("trains");
    let got = classifier.classify("please back up the whole database right now").expect("classifies");
    assert_eq!((got.tier, got.equipment), (Tier::Trivial, Some(Equipment::Backup)));
    let got = classifier.classify("what's 3 plus 4?").expect("classifies");
    assert_eq!((got.tier, got.equipment), (Tier::Trivial, None));
}

#[test]
fn only_the_latest_user_turn_is_classified() {
    let messages = vec![
        Message::user("design a distributed database"),
        Message::assistant("Sure, here is a design..."),
        Message::user("thanks!"),
        Message::tool_result("call_1", "back up the database"),
    ];
    assert_eq!(latest_user_turn(&messages), Some("thanks!"));
    assert_eq!(latest_user_turn(&[Message::assistant("hello")]), None);
}
