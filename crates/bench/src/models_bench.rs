//! The in-process models benchmark: all-MiniLM-L6-v2 sentences per second at batch 32 (short
//! and ~40-token texts) and single-text latency, on all cores and on one (a child process with
//! `RAYON_NUM_THREADS=1`, since rayon sizes its pool once per process); tier classification
//! latency and the held-out examples routed by the rule runs follow (equipment answered with
//! no model, trivial requests with no plan); SmolLM2-135M prompt and generation tokens per
//! second and the time to a whole one-sentence answer. The embeddings' baseline is
//! `sentence-transformers` (PyTorch) embedding the same texts in a Python child process in the
//! same run, when it is installed, its rounds alternating with ours so that both see the same
//! minutes of a machine whose speed drifts; the local model's is candle's quantized llama running the
//! same file on the same prompts, greedy, in the same process. Last, `nexus serve` is started as a user starts it, with
//! and without the models (`startup_bench.rs`).
//!
//! Every text is distinct, so the embedder's cache never answers.

// The benchmark starts itself (one-thread measurements) and the Python baseline.
#![allow(clippy::disallowed_methods)]

use std::io::Write as _;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use domain::embed::Embedder;
use models::local::{ChatRole, chatml_prompt};
use models::{GenerationParams, LocalModel, SentenceEmbedder, TierClassifier};

const BATCH: usize = 32;
/// Throughput rounds; each appends its own word so no text repeats. Ours and the baseline's
/// alternate round by round, each going first in half of them.
const ROUNDS: usize = 4;
const ROUND_WORDS: [&str; ROUNDS] = ["today", "again", "later", "tonight"];
/// Timed readings of the prompt, ours and candle's; each side reports its fastest (the host's
/// speed drifts from one second to the next, and one reading takes a fraction of one).
const PROMPT_ROUNDS: usize = 5;
/// Set in the child that measures one-thread latency.
const SINGLE_THREAD_CHILD: &str = "NEXUS_BENCH_SINGLE_THREAD_CHILD";

struct Sizes {
    batches: usize,
    latency_samples: usize,
    generated_tokens: usize,
}

pub fn run(quick: bool) -> anyhow::Result<()> {
    let sizes = if quick {
        Sizes { batches: 3, latency_samples: 30, generated_tokens: 32 }
    } else {
        Sizes { batches: 20, latency_samples: 300, generated_tokens: 200 }
    };
    let dir = models_dir()?;
    if std::env::var_os(SINGLE_THREAD_CHILD).is_some() {
        return single_thread_child(&dir, &sizes);
    }
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "physical cores".into());
    println!("# models benchmark ({} cores, candle threads: {threads})", cores());
    println!(
        "targets: embedding one short text <= 5 ms on one core; local generation >= 100 tokens/s, prompt >= 1000 tokens/s"
    );
    // Other work on the machine skews every figure here (both sides of each ratio alike).
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        println!("load average at start: {}", load.split_whitespace().take(3).collect::<Vec<_>>().join(" "));
    }
    println!();

    let started = Instant::now();
    let embedder = Arc::new(SentenceEmbedder::load(&dir)?);
    let mut inline_load = started.elapsed();
    println!("embedder loaded in {:.0} ms", ms(started.elapsed()));
    let short = texts(sizes.batches * BATCH, 5, 1);
    let long = texts(sizes.batches * BATCH, 30, 2);
    let mut python = Python::start(&dir);
    let (short_rate, py_short) = throughput(&embedder, &mut python, &short)?;
    let (long_rate, py_long) = throughput(&embedder, &mut python, &long)?;
    let latency = single_latency(&embedder, sizes.latency_samples, 3)?;
    let py_latency = python.as_mut().ok().and_then(|p| p.latency(&texts(sizes.latency_samples + 10, 5, 7)));

    println!();
    println!(
        "## embeddings, all-MiniLM-L6-v2, batch {BATCH} (best of {ROUNDS} rounds each, ours and the baseline's alternating)"
    );
    row("short texts (~5 words)", short_rate, "sentences/s", py_short);
    row("~40-token texts", long_rate, "sentences/s", py_long);
    println!(
        "{:<34} {:>9.2} ms median, {:.2} ms p99{}",
        "one short text, all cores",
        latency.0,
        latency.1,
        py_latency.map_or(String::new(), |py| format!("   python {py:.2} ms   ratio {:.2}x", py / latency.0))
    );
    match single_thread_latency(&sizes) {
        Ok((median, p99)) => println!(
            "{:<34} {median:>9.2} ms median, {p99:.2} ms p99 [{}]",
            "one short text, one core",
            if median <= 5.0 { "meets <= 5 ms" } else { "MISSES <= 5 ms" }
        ),
        Err(e) => println!("one-core latency unavailable: {e:#}"),
    }
    match &python {
        Err(e) => println!(
            "python baseline unavailable ({e:#}); install it with `python3 -m pip install sentence-transformers`"
        ),
        Ok(p) if p.failed.is_some() => {
            println!(
                "python baseline stopped ({}); its figures above come from the rounds before",
                p.failed.as_deref().unwrap_or_default()
            );
        }
        Ok(_) => {}
    }
    drop(python);

    println!();
    println!("## tier classifier");
    let started = Instant::now();
    let dyn_embedder: Arc<dyn Embedder> = embedder.clone();
    let classifier = TierClassifier::new(dyn_embedder)?;
    inline_load += started.elapsed();
    println!("trained in {:.0} ms (embedding the examples included)", ms(started.elapsed()));
    let requests = texts(sizes.latency_samples, 8, 4);
    let mut samples = Vec::with_capacity(requests.len());
    for request in &requests {
        let started = Instant::now();
        classifier.classify(request)?;
        samples.push(started.elapsed());
    }
    let (median, p99) = percentiles(&mut samples);
    println!("{:<34} {median:>9.2} ms median, {p99:.2} ms p99", "classify one request");
    held_out_routing(&classifier)?;

    println!();
    println!("## local model, SmolLM2-135M-Instruct (the file's Q4_1 weights, f32 activations)");
    let started = Instant::now();
    let model = LocalModel::load(&dir)?;
    inline_load += started.elapsed();
    println!("loaded in {:.0} ms ({:.1} MB of weights)", ms(started.elapsed()), model.weight_bytes() as f64 / 1e6);
    generation(&model, &sizes)?;
    candle_baseline(&dir, &model, &sizes)?;
    drop((model, classifier, embedder));
    crate::startup_bench::run(&dir, inline_load)
}

fn models_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::var_os("NEXUS_MODELS_DIR")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from("data").join("models"), PathBuf::from);
    if !dir.join(models::embeddings::MODEL_DIR).is_dir() {
        bail!("no models in {}: run `cargo xtask models` (and set NEXUS_MODELS_DIR)", dir.display());
    }
    Ok(dir)
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn row(what: &str, ours: f64, unit: &str, python: Option<f64>) {
    let baseline = python.map_or(String::new(), |py| format!("   python {py:>8.1}   ratio {:.2}x", ours / py));
    println!("{what:<34} {ours:>9.1} {unit}{baseline}");
}

/// `n` distinct sentences of `words` words from a fixed vocabulary (a seeded generator).
fn texts(n: usize, words: usize, seed: u64) -> Vec<String> {
    const VOCABULARY: &[&str] = &[
        "the",
        "report",
        "server",
        "customer",
        "quickly",
        "invoice",
        "green",
        "model",
        "deploy",
        "budget",
        "river",
        "market",
        "please",
        "summary",
        "yesterday",
        "network",
        "engine",
        "policy",
        "travel",
        "coffee",
        "storage",
        "team",
        "quarter",
        "contract",
        "design",
        "latency",
        "garden",
        "ticket",
        "review",
        "window",
        "planet",
        "account",
        "schedule",
        "payment",
        "weather",
        "kitchen",
        "question",
        "error",
        "language",
        "history",
    ];
    let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
    let mut next = || {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as usize
    };
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let sentence: Vec<&str> = (0..words).map(|_| VOCABULARY[next() % VOCABULARY.len()]).collect();
        let sentence = sentence.join(" ");
        if seen.insert(sentence.clone()) {
            out.push(sentence);
        }
    }
    out
}

/// Sentences per second, ours and the baseline's, each the best of [`ROUNDS`] rounds over
/// distinct texts. The rounds alternate (ours first in even rounds, the baseline's in odd
/// ones), so a machine whose speed drifts from minute to minute slows both alike; the best
/// round is the one least disturbed.
fn throughput(
    embedder: &SentenceEmbedder,
    python: &mut anyhow::Result<Python>,
    texts: &[String],
) -> anyhow::Result<(f64, Option<f64>)> {
    let warmup: Vec<String> = texts.iter().take(BATCH).map(|t| format!("warm {t}")).collect();
    embedder.embed_texts(&warmup.iter().map(String::as_str).collect::<Vec<_>>())?;
    let (mut ours, mut theirs) = (0f64, None::<f64>);
    for (round, word) in ROUND_WORDS.iter().enumerate() {
        let round_texts: Vec<String> = texts.iter().map(|t| format!("{t} {word}")).collect();
        let mut run_ours = || -> anyhow::Result<()> {
            let started = Instant::now();
            for chunk in round_texts.chunks(BATCH) {
                embedder.embed_texts(&chunk.iter().map(String::as_str).collect::<Vec<_>>())?;
            }
            ours = ours.max(texts.len() as f64 / started.elapsed().as_secs_f64());
            Ok(())
        };
        if round % 2 == 0 {
            run_ours()?;
        }
        if let Ok(python) = python.as_mut()
            && let Some(rate) = python.rate(&round_texts)
        {
            theirs = Some(theirs.map_or(rate, |best| best.max(rate)));
        }
        if round % 2 == 1 {
            run_ours()?;
        }
    }
    Ok((ours, theirs))
}

/// Median and p99 latency in ms of embedding one distinct short text at a time.
fn single_latency(embedder: &SentenceEmbedder, samples: usize, seed: u64) -> anyhow::Result<(f64, f64)> {
    let texts = texts(samples + 10, 5, seed);
    for text in &texts[..10] {
        embedder.embed_texts(&[text])?;
    }
    let mut times = Vec::with_capacity(samples);
    for text in &texts[10..] {
        let started = Instant::now();
        embedder.embed_texts(&[text])?;
        times.push(started.elapsed());
    }
    Ok(percentiles(&mut times))
}

fn percentiles(samples: &mut [Duration]) -> (f64, f64) {
    samples.sort_unstable();
    let at = |q: f64| samples.get(((samples.len() as f64 - 1.0) * q).round() as usize).map_or(0.0, |d| ms(*d));
    (at(0.5), at(0.99))
}

/// Runs this benchmark again with one candle thread and reads its `latency MEDIAN P99` line.
fn single_thread_latency(sizes: &Sizes) -> anyhow::Result<(f64, f64)> {
    let exe = std::env::current_exe().context("locating the benchmark binary")?;
    let mut args = vec!["models".to_owned()];
    if sizes.batches < 20 {
        args.push("--quick".into());
    }
    let out = Command::new(exe)
        .args(&args)
        .env(SINGLE_THREAD_CHILD, "1")
        .env("RAYON_NUM_THREADS", "1")
        .env("CANDLE_NUM_THREADS", "1")
        .output()
        .context("starting the one-thread child")?;
    if !out.status.success() {
        bail!("one-thread child failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().find_map(|l| l.strip_prefix("latency ")).context("no latency line from the child")?;
    let mut numbers = line.split_whitespace().map(str::parse::<f64>);
    match (numbers.next(), numbers.next()) {
        (Some(Ok(median)), Some(Ok(p99))) => Ok((median, p99)),
        _ => bail!("unreadable latency line {line:?}"),
    }
}

fn single_thread_child(dir: &Path, sizes: &Sizes) -> anyhow::Result<()> {
    let embedder = SentenceEmbedder::load(dir)?;
    let (median, p99) = single_latency(&embedder, sizes.latency_samples, 5)?;
    println!("latency {median} {p99}");
    Ok(())
}

/// `sentence-transformers` in a Python child process (`python3`, or `$NEXUS_BENCH_PYTHON`)
/// that embeds on request, one JSON line in and one out, so its rounds can alternate with ours.
const PYTHON_BASELINE: &str = r#"
import json, sys, time, statistics
from sentence_transformers import SentenceTransformer, models
t = models.Transformer(sys.argv[1], max_seq_length=256)
m = SentenceTransformer(modules=[t, models.Pooling(t.get_embedding_dimension(), pooling_mode="mean"), models.Normalize()], device="cpu")
m.encode(["warm up"] * 32, batch_size=32)
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    job = json.loads(line)
    if "rate" in job:
        texts = job["rate"]
        start = time.perf_counter()
        for i in range(0, len(texts), 32):
            m.encode(texts[i:i + 32], batch_size=32)
        value = len(texts) / (time.perf_counter() - start)
    else:
        times = []
        for text in job["latency"]:
            start = time.perf_counter()
            m.encode([text])
            times.append((time.perf_counter() - start) * 1000)
        value = statistics.median(times[10:])
    print(json.dumps({"value": value}), flush=True)
"#;

/// The longest the baseline may take to start (loading PyTorch and the model) or to answer.
const PYTHON_LIMIT: Duration = Duration::from_secs(300);

/// The running baseline.
struct Python {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    /// Its standard output, line by line, read on a thread of its own so a silent child
    /// cannot hold the benchmark past [`PYTHON_LIMIT`].
    lines: std::sync::mpsc::Receiver<String>,
    /// Where its standard error goes (read when it fails).
    stderr: tempfile::NamedTempFile,
    /// Why it stopped answering, if it did; it is not asked again.
    failed: Option<String>,
}

impl Python {
    /// Starts it and waits until its model is loaded.
    fn start(dir: &Path) -> anyhow::Result<Self> {
        let python = std::env::var("NEXUS_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
        let stderr = tempfile::NamedTempFile::new().context("a file for the baseline's errors")?;
        let mut child = Command::new(&python)
            .args(["-c", PYTHON_BASELINE])
            .arg(dir.join(models::embeddings::MODEL_DIR))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr.reopen().context("the baseline's error file")?))
            .spawn()
            .with_context(|| format!("starting {python}"))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            bail!("the baseline's pipes were not set up");
        };
        let (send, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)).map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let baseline = Self { child, stdin, lines, stderr, failed: None };
        let line = baseline.next_line()?;
        if !line.contains("ready") {
            bail!("unexpected first line from the baseline: {line}");
        }
        Ok(baseline)
    }

    /// Its next line of output, or why there is none.
    fn next_line(&self) -> anyhow::Result<String> {
        match self.lines.recv_timeout(PYTHON_LIMIT) {
            Ok(line) => Ok(line),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                bail!("no answer within {} s", PYTHON_LIMIT.as_secs())
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => bail!("{}", self.last_error()),
        }
    }

    /// The last line it wrote on standard error.
    fn last_error(&self) -> String {
        let text = std::fs::read_to_string(self.stderr.path()).unwrap_or_default();
        text.lines().last().unwrap_or("python failed without a message").to_owned()
    }

    /// Sentences per second embedding `texts` in batches of [`BATCH`]; `None` once it failed.
    fn rate(&mut self, texts: &[String]) -> Option<f64> {
        self.ask(&serde_json::json!({ "rate": texts }))
    }

    /// The median ms of embedding each text alone, the first ten not counted.
    fn latency(&mut self, texts: &[String]) -> Option<f64> {
        self.ask(&serde_json::json!({ "latency": texts }))
    }

    fn ask(&mut self, job: &serde_json::Value) -> Option<f64> {
        if self.failed.is_some() {
            return None;
        }
        let answer = (|| -> anyhow::Result<f64> {
            writeln!(self.stdin, "{job}")?;
            self.stdin.flush()?;
            let line = self.next_line()?;
            let value: serde_json::Value = serde_json::from_str(&line).context("reading the baseline's answer")?;
            value["value"].as_f64().context("the baseline's answer has no value")
        })();
        match answer {
            Ok(value) => Some(value),
            Err(error) => {
                self.failed = Some(format!("{error:#}"));
                None
            }
        }
    }
}

impl Drop for Python {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The classifier's held-out examples routed by the rule every run follows, at the default
/// thresholds: how many equipment requests are answered with no model, how many trivial ones
/// with no plan, and how often a request is sent somewhere it should not go.
fn held_out_routing(classifier: &TierClassifier) -> anyhow::Result<()> {
    use engine::machine::ModelTier;
    use models::classifier::{Label, parse_examples};
    let examples = parse_examples("tiers_test.jsonl", include_str!("../../models/data/tiers_test.jsonl"))?;
    let defaults = runtime::RuntimeConfig::default();
    let thresholds = runtime::routing::Thresholds {
        direct_answer: defaults.direct_answer_confidence,
        equipment: defaults.equipment_confidence,
    };
    #[derive(Default)]
    struct Count {
        of: usize,
        hit: usize,
    }
    let (mut answerable, mut all_equipment, mut wrong_equipment, mut trivial, mut over_eager) =
        (Count::default(), Count::default(), Count::default(), Count::default(), Count::default());
    for example in &examples {
        let c = classifier.classify(&example.text)?;
        let routing = runtime::llm::Routing {
            tier: match c.tier {
                models::Tier::Trivial => ModelTier::Trivial,
                models::Tier::Normal => ModelTier::Normal,
                models::Tier::Complex => ModelTier::Complex,
            },
            equipment: c.equipment.map(|e| e.name().to_owned()),
            confidence: Some(f64::from(c.confidence)),
        };
        let (route, equipment) = runtime::routing::decide(&routing, "classifier", &example.text, None, thresholds);
        let expected = example.label.classification(1.0).equipment.map(models::Equipment::name);
        match expected {
            Some(name) => {
                let right = equipment == Some(name);
                all_equipment.of += 1;
                all_equipment.hit += usize::from(right);
                if runtime::equipment::spec(name).is_some_and(|spec| !spec.changes_state) {
                    answerable.of += 1;
                    answerable.hit += usize::from(right);
                }
            }
            None => {
                wrong_equipment.of += 1;
                wrong_equipment.hit += usize::from(equipment.is_some());
                if example.label == Label::Trivial {
                    trivial.of += 1;
                    trivial.hit += usize::from(equipment.is_none() && route.tier == ModelTier::Trivial);
                } else {
                    over_eager.of += 1;
                    over_eager.hit += usize::from(equipment.is_none() && route.tier == ModelTier::Trivial);
                }
            }
        }
    }
    let share = |c: &Count| format!("{}/{} ({:.0} %)", c.hit, c.of, 100.0 * c.hit as f64 / c.of.max(1) as f64);
    println!(
        "held-out examples routed as runs are (direct >= {}, equipment >= {}):",
        thresholds.direct_answer, thresholds.equipment
    );
    println!("  {:<62} {}", "read-only equipment requests answered with no model", share(&answerable));
    println!("  {:<62} {}", "all equipment requests (state-changing ones never run on words)", share(&all_equipment));
    println!("  {:<62} {}", "other requests wrongly answered by equipment", share(&wrong_equipment));
    println!("  {:<62} {}", "trivial requests answered at once, no plan", share(&trivial));
    println!("  {:<62} {}", "normal/complex requests answered at once (too eager)", share(&over_eager));
    Ok(())
}

/// The prompt whose reading is timed.
fn summary_prompt() -> String {
    let article = texts(1, 160, 9).concat();
    chatml_prompt(&[(ChatRole::User, &format!("Summarise these notes in one sentence: {article}"))])
}

const QUESTION: &str = "What is the capital of France? Answer in one sentence.";
const STORY: &str = "Write a long story about a lighthouse keeper and a storm.";

fn generation(model: &LocalModel, sizes: &Sizes) -> anyhow::Result<()> {
    let prompt = summary_prompt();
    let params = GenerationParams { max_tokens: 1, ..GenerationParams::default() };
    let ignore = &mut |_: &str| ControlFlow::Continue(());
    model.generate(&prompt, &params, ignore)?; // warm-up
    let mut prompt_tokens = 0;
    let mut prompt_time = Duration::MAX;
    for _ in 0..PROMPT_ROUNDS {
        let prefill = model.generate(&prompt, &params, ignore)?;
        prompt_tokens = prefill.prompt_tokens;
        prompt_time = prompt_time.min(prefill.prompt_time);
    }
    let prompt_rate = prompt_tokens as f64 / prompt_time.as_secs_f64();
    println!(
        "{:<34} {prompt_rate:>9.1} tokens/s ({prompt_tokens} prompt tokens, best of {PROMPT_ROUNDS}) [{}]",
        "prompt",
        if prompt_rate >= 1000.0 { "meets >= 1000" } else { "MISSES >= 1000" }
    );

    // What a person offline waits for a trivial question: the whole one-sentence answer.
    let question = chatml_prompt(&[(ChatRole::User, QUESTION)]);
    let params = GenerationParams { max_tokens: 48, ..GenerationParams::default() };
    let started = Instant::now();
    let answer = model.generate(&question, &params, ignore)?;
    println!(
        "{:<34} {:>9.0} ms ({} tokens: {:?})",
        "one-sentence answer, offline",
        ms(started.elapsed()),
        answer.generated_tokens,
        answer.text.trim()
    );

    let story = chatml_prompt(&[(ChatRole::User, STORY)]);
    let params = GenerationParams {
        max_tokens: sizes.generated_tokens,
        temperature: 0.7,
        seed: 1,
        ..GenerationParams::default()
    };
    let answer = model.generate(&story, &params, ignore)?;
    // The first token comes from the prompt pass; the rest from one forward pass each.
    let decoded = answer.generated_tokens.saturating_sub(1).max(1);
    let rate = decoded as f64 / answer.generation_time.as_secs_f64();
    println!(
        "{:<34} {rate:>9.1} tokens/s ({} tokens) [{}]",
        "generation",
        answer.generated_tokens,
        if rate >= 100.0 { "meets >= 100" } else { "MISSES >= 100" }
    );
    Ok(())
}

/// The same prompts through candle's quantized llama (`candle_transformers`) on the file as
/// shipped: the prompt read at once, then greedy tokens one forward pass each.
fn candle_baseline(dir: &Path, model: &LocalModel, sizes: &Sizes) -> anyhow::Result<()> {
    use candle_core::quantized::gguf_file;
    use candle_core::{Device, IndexOp as _, Tensor};
    use candle_transformers::models::quantized_llama::ModelWeights;

    let path = dir.join(models::local::MODEL_DIR).join(models::local::GGUF_FILE);
    let mut reader = std::io::BufReader::new(std::fs::File::open(&path).with_context(|| path.display().to_string())?);
    let content = gguf_file::Content::read(&mut reader)?;
    let mut weights = ModelWeights::from_gguf(content, &mut reader, &Device::Cpu)?;
    let mut forward = |ids: &[u32], position: usize| -> anyhow::Result<Vec<f32>> {
        let input = Tensor::new(ids, &Device::Cpu)?.unsqueeze(0)?;
        Ok(weights.forward(&input, position)?.i(0)?.to_vec1::<f32>()?)
    };
    let argmax =
        |logits: &[f32]| logits.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(i, _)| i as u32);
    let end = model.encode("<|im_end|>")?;
    let mut greedy = |prompt: &str, tokens: usize| -> anyhow::Result<(Vec<u32>, Duration, Duration)> {
        let ids = model.encode(prompt)?;
        let started = Instant::now();
        let mut next = argmax(&forward(&ids, 0)?);
        let prompt_time = started.elapsed();
        let mut out = Vec::new();
        while out.len() < tokens && !end.contains(&next) {
            out.push(next);
            next = argmax(&forward(&[next], ids.len() + out.len() - 1)?);
        }
        Ok((out, prompt_time, started.elapsed().saturating_sub(prompt_time)))
    };
    let prompt = summary_prompt();
    greedy(&prompt, 0)?; // warm-up
    let mut prompt_time = Duration::MAX;
    for _ in 0..PROMPT_ROUNDS {
        prompt_time = prompt_time.min(greedy(&prompt, 0)?.1);
    }
    let prompt_tokens = model.encode(&prompt)?.len();
    println!(
        "{:<34} {:>9.1} tokens/s (best of {PROMPT_ROUNDS})",
        "baseline: candle's llama, prompt",
        prompt_tokens as f64 / prompt_time.as_secs_f64()
    );
    let (answer, _, _) = greedy(&chatml_prompt(&[(ChatRole::User, QUESTION)]), 48)?;
    println!("{:<34} {:?}", "baseline: candle's llama, answer", model.decode(&answer)?.trim());
    let (story, _, time) = greedy(&chatml_prompt(&[(ChatRole::User, STORY)]), sizes.generated_tokens)?;
    println!(
        "{:<34} {:>9.1} tokens/s ({} tokens, greedy)",
        "baseline: candle's llama, gen.",
        story.len().saturating_sub(1).max(1) as f64 / time.as_secs_f64(),
        story.len()
    );
    Ok(())
}
