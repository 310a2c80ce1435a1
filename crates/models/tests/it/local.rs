//! SmolLM2-135M through `LocalModel` and `LocalChatProvider`: tokenizer round trips,
//! deterministic greedy answers, limits, stop sequences, streaming, and missing files.

use std::ops::ControlFlow;
use std::sync::{Arc, OnceLock};

use futures_util::StreamExt as _;
use models::local::{ChatRole, GenerationParams, LocalModel, StopReason, chatml_prompt};
use models::{LocalChatProvider, ModelError};
use providers::{ChatRequest, FinishReason, Message, ModelProvider as _, ProviderError, StreamEvent};

fn model() -> Option<Arc<LocalModel>> {
    static MODEL: OnceLock<Option<Arc<LocalModel>>> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            let dir = models::testing::models_dir()?;
            Some(Arc::new(LocalModel::load(&dir).expect("the local model loads")))
        })
        .clone()
}

fn greedy(max_tokens: usize) -> GenerationParams {
    GenerationParams { max_tokens, ..GenerationParams::default() }
}

fn ignore(_: &str) -> ControlFlow<()> {
    ControlFlow::Continue(())
}

const QUESTION: &str = "What is the capital of France?";

#[test]
fn the_tokenizer_round_trips_exactly_without_a_leading_space() {
    let Some(model) = model() else { return };
    for text in
        ["Hello world", " leading space", "12345 apples", "naïve café — 東京 🎉", "line1\n\n  indented\ttab", ""]
    {
        let ids = model.encode(text).expect("encodes");
        assert_eq!(model.decode(&ids).expect("decodes"), text, "{ids:?}");
    }
    // The ids Hugging Face's tokenizer gives: digits one by one, no prefix space added.
    let expected: [(&str, &[u32]); 3] = [
        ("Hello world", &[19556, 905]),
        (" leading space", &[2899, 1898]),
        ("12345 apples", &[33, 34, 35, 36, 37, 13855]),
    ];
    for (text, ids) in expected {
        assert_eq!(model.encode(text).expect("encodes"), ids, "{text:?}");
    }
    // ChatML markers are single control tokens.
    assert_eq!(model.encode("<|im_start|>user").expect("encodes").len(), 2);
}

#[test]
fn greedy_generation_is_deterministic_and_answers() {
    let Some(model) = model() else { return };
    let prompt = chatml_prompt(&[(ChatRole::User, QUESTION)]);
    let first = model.generate(&prompt, &greedy(24), &mut ignore).expect("generates");
    let second = model.generate(&prompt, &greedy(24), &mut ignore).expect("generates");
    println!("{first:?}");
    assert_eq!(first.text, second.text);
    assert!(first.text.contains("Paris"), "{:?}", first.text);
    assert!(first.generated_tokens > 0 && first.prompt_tokens > 10);
}

#[test]
fn generation_stops_at_max_tokens() {
    let Some(model) = model() else { return };
    let prompt = chatml_prompt(&[(ChatRole::User, "Write a long story about a dragon who learns to bake bread.")]);
    let generation = model.generate(&prompt, &greedy(5), &mut ignore).expect("generates");
    assert_eq!(generation.generated_tokens, 5);
    assert_eq!(generation.stop_reason, StopReason::MaxTokens);
}

#[test]
fn stop_sequences_end_the_answer_before_them() {
    let Some(model) = model() else { return };
    let prompt = chatml_prompt(&[(ChatRole::User, "Count from 1 to 20, separated by commas.")]);
    let full = model.generate(&prompt, &greedy(60), &mut ignore).expect("generates");
    let Some(index) = full.text.find('7') else { panic!("no 7 in {:?}", full.text) };
    let params = GenerationParams { stop: vec!["7".into()], ..greedy(60) };
    let mut streamed = String::new();
    let stopped = model
        .generate(&prompt, &params, &mut |piece| {
            streamed.push_str(piece);
            ControlFlow::Continue(())
        })
        .expect("generates");
    assert_eq!(stopped.stop_reason, StopReason::StopSequence);
    assert_eq!(stopped.text, full.text[..index]);
    assert_eq!(streamed, stopped.text, "the streamed pieces never include the stop sequence");
}

#[test]
fn the_callback_can_cancel() {
    let Some(model) = model() else { return };
    let prompt = chatml_prompt(&[(ChatRole::User, "Tell me about the sea.")]);
    let mut pieces = 0;
    let generation = model
        .generate(&prompt, &greedy(50), &mut |_| {
            pieces += 1;
            if pieces == 3 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
        })
        .expect("generates");
    assert_eq!(generation.stop_reason, StopReason::Cancelled);
    assert_eq!(pieces, 3);
    assert!(generation.generated_tokens < 50);
}

fn request(content: &str, max_tokens: u32) -> ChatRequest {
    ChatRequest {
        model: "smollm2-135m".into(),
        system: None,
        messages: vec![Message::user(content)],
        tools: Vec::new(),
        max_tokens,
        temperature: None,
        stop: Vec::new(),
    }
}

#[tokio::test]
async fn the_provider_streams_the_same_text_it_completes() {
    let Some(model) = model() else { return };
    let provider = LocalChatProvider::new(model);
    assert_eq!(provider.name(), "local");
    assert!(!provider.capabilities().tools && provider.capabilities().streaming);
    let request = request(QUESTION, 40);
    let complete = provider.complete(&request).await.expect("completes");
    assert_eq!(complete.model, "smollm2-135m");
    assert!(complete.usage.input_tokens > 10 && complete.usage.output_tokens > 0);

    let mut stream = provider.stream(&request).await.expect("streams");
    let (mut text, mut usage, mut done, mut deltas) = (String::new(), None, None, 0);
    while let Some(event) = stream.next().await {
        match event.expect("no stream error") {
            StreamEvent::TextDelta(piece) => {
                deltas += 1;
                text.push_str(&piece);
            }
            StreamEvent::Usage(u) => usage = Some(u),
            StreamEvent::Done { finish_reason } => done = Some(finish_reason),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(text, complete.content);
    assert!(deltas > 1, "streamed in pieces");
    assert_eq!(usage, Some(complete.usage));
    assert_eq!(done, Some(complete.finish_reason));
}

#[tokio::test]
async fn the_provider_answers_requests_with_tools_in_text_and_honours_limits() {
    let Some(model) = model() else { return };
    let provider = LocalChatProvider::new(model);
    let mut with_tools = request("Say hello.", 3);
    with_tools.tools = vec![providers::ToolSpec {
        name: "weather".into(),
        description: "Current weather".into(),
        parameters: serde_json::json!({"type": "object"}),
    }];
    let answer = provider.complete(&with_tools).await.expect("answers");
    assert!(answer.tool_calls.is_empty());
    assert_eq!(answer.finish_reason, FinishReason::Length);
    assert_eq!(answer.usage.output_tokens, 3);

    let mut other_model = request("hi", 3);
    other_model.model = "gpt-4o".into();
    let error = provider.complete(&other_model).await.expect_err("unknown model");
    assert!(matches!(error, ProviderError::Status { status: 404, .. }), "{error:?}");

    let huge = request(&"word ".repeat(5000), 3);
    let error = provider.complete(&huge).await.expect_err("too long");
    assert!(matches!(error, ProviderError::ContextOverflow { .. }), "{error:?}");
}

#[test]
fn a_missing_model_file_is_an_error_naming_the_fix() {
    let empty = tempfile::tempdir().expect("tempdir");
    let error = LocalModel::load(empty.path()).expect_err("nothing to load");
    assert!(matches!(&error, ModelError::Missing { path, .. } if path.ends_with("SmolLM2-135M-Instruct.Q4_1.gguf")));
    assert!(error.to_string().contains("cargo xtask models"), "{error}");
}

#[test]
fn a_re_encoded_copy_left_by_earlier_versions_is_removed_at_load() {
    let Some(dir) = models::testing::models_dir() else { return };
    let scratch = tempfile::tempdir().expect("tempdir");
    let model_dir = scratch.path().join("smollm2-135m");
    std::fs::create_dir_all(&model_dir).expect("mkdir");
    let gguf = "SmolLM2-135M-Instruct.Q4_1.gguf";
    std::fs::copy(dir.join("smollm2-135m").join(gguf), model_dir.join(gguf)).expect("copy");
    let stale = model_dir.join("SmolLM2-135M-Instruct.Q4_1.q8_0.gguf");
    std::fs::write(&stale, b"an old cache").expect("write");

    let model = LocalModel::load(scratch.path()).expect("loads");
    assert!(!stale.exists(), "the unused copy is gone");
    assert!(model_dir.join(gguf).is_file(), "the model file stays");
    // The file's own encodings are held as they are: under a byte per weight (~135M weights).
    let held = model.weight_bytes();
    assert!((100_000_000..140_000_000).contains(&held), "{held} bytes of weights");
    let prompt = chatml_prompt(&[(ChatRole::User, QUESTION)]);
    let answer = model.generate(&prompt, &greedy(12), &mut ignore).expect("generates");
    assert!(answer.text.contains("Paris"), "{:?}", answer.text);
}
