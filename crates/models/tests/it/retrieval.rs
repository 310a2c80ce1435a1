//! Retrieval quality with the real embeddings: the labelled corpus of the `knowledge` crate
//! (40 passages, 40 mostly paraphrased questions) searched the way the runtime searches —
//! BM25 and the `i8` vector index fused by reciprocal rank fusion — printing recall@5 for
//! BM25, vectors and hybrid.

use domain::embed::Embedder as _;
use knowledge::{RRF_K, VectorIndex, rrf};
use models::SentenceEmbedder;
use serde_json::Value;

const CORPUS: &str = include_str!("../../../knowledge/tests/fixtures/corpus.jsonl");
const QUESTIONS: &str = include_str!("../../../knowledge/tests/fixtures/questions.jsonl");

fn lines(text: &str) -> Vec<Value> {
    text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
}

fn recall(name: &str, ranked: &[Vec<usize>], answers: &[usize]) -> f64 {
    let found = ranked.iter().zip(answers).filter(|(r, a)| r.iter().take(5).any(|i| i == *a)).count();
    let recall = found as f64 / answers.len() as f64;
    println!("{name} recall@5 = {recall:.3} ({found}/{})", answers.len());
    recall
}

#[test]
fn hybrid_recall_at_5_beats_either_alone() {
    let Some(dir) = models::testing::models_dir() else { return };
    let embedder = SentenceEmbedder::load(&dir).expect("embedder");
    let corpus = lines(CORPUS);
    let questions = lines(QUESTIONS);
    let ids: Vec<&str> = corpus.iter().map(|p| p["id"].as_str().expect("id")).collect();
    let texts: Vec<&str> = corpus.iter().map(|p| p["text"].as_str().expect("text")).collect();
    let mut index = VectorIndex::new(embedder.dims());
    for (i, vector) in embedder.embed(&texts).expect("embed corpus").iter().enumerate() {
        index.insert(i, 0, "default", 0, vector).expect("insert");
    }
    let asked: Vec<&str> = questions.iter().map(|q| q["question"].as_str().expect("question")).collect();
    let answers: Vec<usize> = questions
        .iter()
        .map(|q| ids.iter().position(|id| *id == q["answer"].as_str().expect("answer")).expect("label is a passage"))
        .collect();
    let query_vectors = embedder.embed(&asked).expect("embed questions");
    let (mut lexical, mut vector, mut hybrid) = (Vec::new(), Vec::new(), Vec::new());
    for (question, query) in asked.iter().zip(&query_vectors) {
        let bm25: Vec<usize> = knowledge::rank(question, &texts).into_iter().map(|r| r.index).collect();
        let nearest: Vec<usize> = index.search(query, "default", 0, 50).into_iter().map(|h| h.document).collect();
        let fused: Vec<usize> = rrf(&[bm25.clone(), nearest.clone()], RRF_K).into_iter().map(|(i, _)| i).collect();
        lexical.push(bm25);
        vector.push(nearest);
        hybrid.push(fused);
    }
    let lexical = recall("BM25", &lexical, &answers);
    let vector = recall("vector", &vector, &answers);
    let hybrid = recall("hybrid (RRF)", &hybrid, &answers);
    assert!(hybrid >= lexical && hybrid >= 0.9, "hybrid {hybrid:.3} vs BM25 {lexical:.3}, vector {vector:.3}");
}
