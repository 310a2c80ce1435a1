//! all-MiniLM-L6-v2 against sentence-transformers' own output (tests/fixtures), plus batching,
//! caching and the missing-model error.

use std::sync::{Arc, OnceLock};

use domain::embed::{Embedder, cosine};
use models::{ModelError, SentenceEmbedder};
use serde::Deserialize;

#[derive(Deserialize)]
struct Reference {
    model: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    text: String,
    embedding: Vec<f32>,
}

fn reference() -> Reference {
    let text = include_str!("../fixtures/reference_embeddings.json");
    serde_json::from_str(text).expect("reference_embeddings.json parses")
}

/// One embedder shared by the tests of this binary (loading costs a few hundred ms).
fn embedder() -> Option<Arc<SentenceEmbedder>> {
    static EMBEDDER: OnceLock<Option<Arc<SentenceEmbedder>>> = OnceLock::new();
    EMBEDDER
        .get_or_init(|| {
            let dir = models::testing::models_dir()?;
            Some(Arc::new(SentenceEmbedder::load(&dir).expect("the embedding model loads")))
        })
        .clone()
}

#[test]
fn matches_sentence_transformers_on_the_reference_sentences() {
    let Some(embedder) = embedder() else { return };
    let reference = reference();
    assert_eq!(reference.model, embedder.model());
    let texts: Vec<&str> = reference.cases.iter().map(|c| c.text.as_str()).collect();
    let vectors = embedder.embed(&texts).expect("embeds");
    let mut worst = f32::MAX;
    for (case, vector) in reference.cases.iter().zip(&vectors) {
        assert_eq!(vector.len(), 384);
        let similarity = cosine(vector, &case.embedding);
        println!("cosine {similarity:.7}  {:?}", case.text.chars().take(40).collect::<String>());
        assert!(similarity >= 0.999, "cosine {similarity} for {:?}", case.text);
        worst = worst.min(similarity);
    }
    println!("minimum cosine against sentence-transformers: {worst:.7}");
}

#[test]
fn vectors_are_unit_length_and_independent_of_batching() {
    let Some(embedder) = embedder() else { return };
    let texts = ["a cat sat on the mat", "quarterly revenue grew by twelve percent in Europe", "ok"];
    let together = embedder.embed_texts(&texts).expect("batch");
    for (text, vector) in texts.iter().zip(&together) {
        let norm: f32 = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
        // Alone there is no padding; in the batch there is. The mask must make them equal.
        let fresh = SentenceEmbedder::load(&models::testing::models_dir().expect("dir")).expect("loads");
        let alone = fresh.embed_texts(&[text]).expect("alone");
        assert!(cosine(vector, &alone[0]) > 0.99999, "{text}");
    }
}

#[test]
fn related_texts_are_closer_than_unrelated_ones() {
    let Some(embedder) = embedder() else { return };
    let v = embedder
        .embed(&["How do I reset my password?", "I forgot my login password", "The tide comes in at noon"])
        .expect("embeds");
    assert!(cosine(&v[0], &v[1]) > cosine(&v[0], &v[2]) + 0.3, "{} vs {}", cosine(&v[0], &v[1]), cosine(&v[0], &v[2]));
}

#[test]
fn repeated_texts_come_from_the_cache_in_order() {
    let Some(dir) = models::testing::models_dir() else { return };
    let embedder = SentenceEmbedder::load(&dir).expect("loads");
    let first = embedder.embed_texts(&["alpha", "beta", "alpha"]).expect("embeds");
    assert_eq!(embedder.cached(), 2, "each distinct text is computed and cached once");
    assert_eq!(first[0], first[2]);
    let second = embedder.embed_texts(&["beta", "alpha"]).expect("embeds");
    assert_eq!(second, vec![first[1].clone(), first[0].clone()]);
    assert_eq!(embedder.cached(), 2);
    assert!(embedder.embed_texts(&[]).expect("nothing to embed").is_empty());
}

#[test]
fn a_call_with_more_texts_than_the_cache_holds_still_answers_every_text() {
    let Some(dir) = models::testing::models_dir() else { return };
    let embedder = SentenceEmbedder::load(&dir).expect("loads").with_cache_entries(2);
    let texts = ["one", "two", "three", "four", "five", "two"];
    let vectors = embedder.embed_texts(&texts).expect("embeds");
    assert_eq!(vectors.len(), texts.len());
    assert_eq!(vectors[1], vectors[5]);
    assert!(embedder.cached() <= 2, "the cache stays bounded: {}", embedder.cached());
    let again = embedder.embed_texts(&texts).expect("embeds again");
    for (a, b) in vectors.iter().zip(&again) {
        assert!(cosine(a, b) > 0.99999);
    }
}

#[test]
fn a_missing_model_is_an_error_naming_the_file_and_the_fix() {
    let empty = tempfile::tempdir().expect("tempdir");
    let error = SentenceEmbedder::load(empty.path()).expect_err("nothing to load");
    let ModelError::Missing { path, hint } = &error else { panic!("expected Missing, got {error:?}") };
    assert!(path.ends_with("all-MiniLM-L6-v2/config.json"), "{}", path.display());
    assert!(hint.contains("cargo xtask models"));
    assert!(error.to_string().contains("cargo xtask models"), "{error}");
}

#[test]
fn the_embedder_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<SentenceEmbedder>();
    let Some(embedder) = embedder() else { return };
    let handles: Vec<_> = (0..2)
        .map(|i| {
            let embedder = Arc::clone(&embedder);
            std::thread::spawn(move || embedder.embed_texts(&[&format!("thread {i} text")]).expect("embeds"))
        })
        .collect();
    for handle in handles {
        assert_eq!(handle.join().expect("no panic")[0].len(), 384);
    }
}
