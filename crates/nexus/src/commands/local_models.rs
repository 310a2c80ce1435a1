//! The in-process models, loaded from `models_dir` when `cargo xtask models` fetched them:
//! sentence embeddings (retrieval, gate 2, `/v1/embeddings`), the tier classifier
//! (agent runs and `nexus/auto`), and SmolLM2 as the `local` provider. A missing model is a logged notice and a
//! fallback (gate 2 skips, BM25-only retrieval, heuristic routing), never an error.
//!
//! Commands load them before they start ([`load`]); the server loads them on a background
//! thread ([`load_in_background`]) so it answers `/health` at once: until a model is ready,
//! `/ready` says `loading`, a request that needs it waits for it (at most [`LOAD_WAIT`], then an
//! error naming the model), and `nexus/auto` routes by rule. A model that fails to load (or
//! whose loading thread dies) leaves the same fallbacks as a missing one — BM25-only knowledge,
//! gate 2 skipping, rule routing — except the local chat model, which then answers 503 naming
//! the failure instead of "no provider configured".

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use engine::machine::ModelTier;
use models::{LocalChatProvider, LocalModel, SentenceEmbedder, Tier, TierClassifier};
use providers::{Capabilities, ChatRequest, ChatResponse, EventStream, ModelProvider, ProviderError};
use runtime::llm::{HeuristicRouter, Routing, TierRouter};
use runtime::{ModelReadiness, ModelState, ModelsStatus};

use crate::config::Config;

/// How long a request that needs a model still loading waits for it.
pub const LOAD_WAIT: Duration = Duration::from_secs(120);

#[derive(Default)]
pub struct LocalModels {
    pub embedder: Option<Arc<dyn domain::embed::Embedder>>,
    pub router: Option<Arc<dyn TierRouter>>,
    pub chat: Option<Arc<dyn ModelProvider>>,
    /// Their loading state, when they load in the background.
    pub status: Option<Arc<dyn ModelsStatus>>,
}

/// Which models a command needs: serving and running use all of them (a server loads them in
/// the background); ingesting only embeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    Everything,
    EverythingInBackground,
    Embeddings,
}

const NO_EMBEDDER: &str = "no embedding model: gate 2 skips, knowledge search is BM25 only, nexus/auto routes by rule";
const NO_CHAT: &str = "no local chat model (local/smollm2-135m unavailable)";

/// Loads the models a command needs before it starts ([`Needs::EverythingInBackground`]:
/// starts loading them, see [`load_in_background`]).
pub fn load(config: &Config, needs: Needs) -> LocalModels {
    if needs == Needs::EverythingInBackground {
        return load_in_background(config);
    }
    let dir = &config.models_dir;
    let embedder = match SentenceEmbedder::load(dir) {
        Ok(embedder) => Some(Arc::new(embedder)),
        Err(error) => {
            tracing::info!(%error, "{NO_EMBEDDER}");
            None
        }
    };
    if needs == Needs::Embeddings {
        return LocalModels { embedder: embedder.map(|e| e as _), ..LocalModels::default() };
    }
    let classifier = embedder.as_ref().and_then(|e| match TierClassifier::new(e.clone()) {
        Ok(classifier) => Some(Arc::new(classifier)),
        Err(error) => {
            tracing::warn!(%error, "the tier classifier could not be trained; nexus/auto routes by rule");
            None
        }
    });
    let chat = match LocalChatProvider::load(dir) {
        Ok(provider) => Some(Arc::new(provider) as Arc<dyn ModelProvider>),
        Err(error) => {
            tracing::info!(%error, "{NO_CHAT}");
            None
        }
    };
    LocalModels {
        embedder: embedder.map(|e| e as _),
        router: classifier.map(|c| Arc::new(ClassifierRouter(c)) as _),
        chat,
        status: None,
    }
}

/// Starts loading every model whose files are present on a background thread and answers at
/// once with stand-ins that wait for them. Models whose files are absent are left out, as
/// [`load`] leaves them out.
pub fn load_in_background(config: &Config) -> LocalModels {
    let dir = config.models_dir.clone();
    let embedder_present = SentenceEmbedder::is_present(&dir);
    let chat_present = LocalModel::is_present(&dir);
    let loading = Arc::new(Loading {
        started: Instant::now(),
        embedder: Slot::new(embedder_present),
        classifier: Slot::new(embedder_present),
        chat: Slot::new(chat_present),
    });
    if !embedder_present {
        tracing::info!(dir = %dir.display(), "{NO_EMBEDDER}");
    }
    if !chat_present {
        tracing::info!(dir = %dir.display(), "{NO_CHAT}");
    }
    if embedder_present || chat_present {
        let background = loading.clone();
        let spawned = std::thread::Builder::new().name("load-models".into()).spawn(move || background.load_all(&dir));
        if let Err(error) = spawned {
            loading.give_up(&format!("could not start the loading thread: {error}"));
        }
    }
    LocalModels {
        embedder: embedder_present.then(|| Arc::new(LateEmbedder(loading.clone())) as _),
        router: embedder_present.then(|| Arc::new(LateRouter(loading.clone())) as _),
        chat: chat_present.then(|| Arc::new(LateChat(loading.clone())) as _),
        status: Some(loading as _),
    }
}

/// One model's place: loading, loaded, failed (with the reason), or never to load.
struct Slot<T> {
    state: Mutex<SlotState<T>>,
    changed: Condvar,
}

enum SlotState<T> {
    Absent,
    Loading,
    Ready(Arc<T>, Duration),
    Failed(String),
}

impl<T> Slot<T> {
    fn new(present: bool) -> Self {
        Self {
            state: Mutex::new(if present { SlotState::Loading } else { SlotState::Absent }),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SlotState<T>> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn finish(&self, result: Result<(Arc<T>, Duration), String>) {
        *self.lock() = match result {
            Ok((model, took)) => SlotState::Ready(model, took),
            Err(reason) => SlotState::Failed(reason),
        };
        self.changed.notify_all();
    }

    /// Loads the model with `load`, records the outcome and says it in the log.
    fn load_now(&self, what: &str, load: impl FnOnce() -> Result<T, models::ModelError>) -> Option<Arc<T>> {
        let started = Instant::now();
        match load() {
            Ok(model) => {
                let model = Arc::new(model);
                self.finish(Ok((model.clone(), started.elapsed())));
                tracing::info!(ms = started.elapsed().as_millis(), "the {what} is ready");
                Some(model)
            }
            Err(error) => {
                tracing::warn!(%error, "the {what} could not be loaded; its fallback is in force");
                self.finish(Err(error.to_string()));
                None
            }
        }
    }

    /// Fails the slot if it is still loading.
    fn give_up(&self, reason: &str) {
        let mut state = self.lock();
        if matches!(*state, SlotState::Loading) {
            *state = SlotState::Failed(reason.to_owned());
            self.changed.notify_all();
        }
    }

    fn is_loading(&self) -> bool {
        matches!(&*self.lock(), SlotState::Loading)
    }

    /// The model if it is loaded now.
    fn now(&self) -> Option<Arc<T>> {
        match &*self.lock() {
            SlotState::Ready(model, _) => Some(model.clone()),
            _ => None,
        }
    }

    /// The model, waiting while it loads (at most `timeout`); `Err` says why there is none.
    fn wait(&self, what: &str, timeout: Duration) -> Result<Arc<T>, String> {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        loop {
            match &*state {
                SlotState::Ready(model, _) => return Ok(model.clone()),
                SlotState::Failed(reason) => return Err(format!("the {what} did not load: {reason}")),
                SlotState::Absent => return Err(format!("the {what} is not in the models directory")),
                SlotState::Loading => {}
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("the {what} is still loading after waiting {timeout:?}"));
            }
            state = self.changed.wait_timeout(state, left).unwrap_or_else(std::sync::PoisonError::into_inner).0;
        }
    }

    fn readiness(&self, name: &'static str, absent: &str) -> ModelReadiness {
        let (state, detail) = match &*self.lock() {
            SlotState::Absent => (ModelState::Absent, Some(absent.to_owned())),
            SlotState::Loading => (ModelState::Loading, None),
            SlotState::Ready(_, took) => (ModelState::Ready, Some(format!("loaded in {} ms", took.as_millis()))),
            SlotState::Failed(reason) => (ModelState::Failed, Some(reason.clone())),
        };
        ModelReadiness { name, state, detail }
    }
}

/// The server's models, loading on one background thread in the order requests need them:
/// the embedder (retrieval, gate 2), the classifier trained on it, then the local chat model.
struct Loading {
    started: Instant,
    embedder: Slot<SentenceEmbedder>,
    classifier: Slot<TierClassifier>,
    chat: Slot<LocalChatProvider>,
}

/// Fails every model still loading when the loading thread ends without finishing them (a
/// panic in a model library): nothing then waits for a load that will never come.
struct GiveUpOnExit<'a>(&'a Loading);

impl Drop for GiveUpOnExit<'_> {
    fn drop(&mut self) {
        self.0.give_up("the loading thread stopped before this model was loaded (see the log)");
    }
}

impl Loading {
    fn give_up(&self, reason: &str) {
        self.embedder.give_up(reason);
        self.classifier.give_up(reason);
        self.chat.give_up(reason);
    }

    fn load_all(&self, dir: &std::path::Path) {
        let _guard = GiveUpOnExit(self);
        if self.embedder.is_loading() {
            match self.embedder.load_now(EMBEDDER, || SentenceEmbedder::load(dir)) {
                Some(embedder) => {
                    self.classifier.load_now("tier classifier", || TierClassifier::new(embedder));
                }
                None => self.classifier.give_up("no embedding model to train it on"),
            }
        }
        if self.chat.is_loading() {
            self.chat.load_now(CHAT, || LocalChatProvider::load(dir));
        }
        let ready = [self.embedder.now().is_some(), self.classifier.now().is_some(), self.chat.now().is_some()];
        tracing::info!(
            ms = self.started.elapsed().as_millis(),
            ready = ready.iter().filter(|r| **r).count(),
            "loading the in-process models is over; /ready shows each one's state"
        );
    }
}

impl ModelsStatus for Loading {
    fn models(&self) -> Vec<ModelReadiness> {
        let fetch = "not in the models directory; fetch it with `cargo xtask models` (the log names the directory)";
        vec![
            self.embedder.readiness("embeddings", fetch),
            self.classifier.readiness("classifier", fetch),
            self.chat.readiness("local", fetch),
        ]
    }
}

const EMBEDDER: &str = "embedding model";
const CHAT: &str = "local chat model";

/// The embedder while it loads: embedding waits for it (callers embed on blocking threads).
struct LateEmbedder(Arc<Loading>);

impl domain::embed::Embedder for LateEmbedder {
    fn model(&self) -> &str {
        models::embeddings::MODEL_NAME
    }

    fn dims(&self) -> usize {
        models::embeddings::DIMS
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, domain::embed::EmbedError> {
        let embedder = self.0.embedder.wait(EMBEDDER, LOAD_WAIT).map_err(domain::embed::EmbedError)?;
        embedder.embed(texts)
    }

    fn state(&self) -> domain::embed::EmbedderState {
        match &*self.0.embedder.lock() {
            SlotState::Ready(..) => domain::embed::EmbedderState::Ready,
            SlotState::Loading => domain::embed::EmbedderState::Loading,
            SlotState::Failed(_) | SlotState::Absent => domain::embed::EmbedderState::Unavailable,
        }
    }
}

/// The classifier while it loads: the rule routes until it is ready (routing never waits).
struct LateRouter(Arc<Loading>);

impl TierRouter for LateRouter {
    /// The router that routes now: the rule until the classifier is in (and if it fails).
    fn name(&self) -> &str {
        if self.0.classifier.now().is_some() { "classifier" } else { "heuristic" }
    }

    fn route(&self, latest_user_turn: &str) -> Routing {
        match self.0.classifier.now() {
            Some(classifier) => ClassifierRouter(classifier).route(latest_user_turn),
            None => HeuristicRouter.route(latest_user_turn),
        }
    }
}

/// The local chat model while it loads: a call waits for it (polling, so a waiting call holds
/// no thread and ends when its caller goes away), then answers 503 with the reason.
struct LateChat(Arc<Loading>);

/// How often a call waiting for the local chat model looks again.
const CHAT_POLL: Duration = Duration::from_millis(50);

impl LateChat {
    async fn provider(&self) -> Result<Arc<LocalChatProvider>, ProviderError> {
        let deadline = Instant::now() + LOAD_WAIT;
        loop {
            let loading = self.0.chat.is_loading();
            if !loading || Instant::now() >= deadline {
                // Ready, failed or absent, or waited long enough: answer now.
                let answer = if loading {
                    Err(format!("the {CHAT} is still loading after waiting {LOAD_WAIT:?}"))
                } else {
                    self.0.chat.wait(CHAT, Duration::ZERO)
                };
                return answer.map_err(|message| ProviderError::Status {
                    provider: models::local::PROVIDER_NAME.into(),
                    status: 503,
                    message,
                    retry_after: Some(Duration::from_secs(5)),
                });
            }
            tokio::time::sleep(CHAT_POLL).await;
        }
    }
}

#[async_trait]
impl ModelProvider for LateChat {
    fn name(&self) -> &str {
        models::local::PROVIDER_NAME
    }

    fn capabilities(&self) -> Capabilities {
        models::local::CAPABILITIES
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        self.provider().await?.complete(request).await
    }

    async fn stream(&self, request: &ChatRequest) -> Result<EventStream, ProviderError> {
        self.provider().await?.stream(request).await
    }
}

/// `nexus/auto` routing by the embedding classifier, falling back to the rule when it fails.
pub struct ClassifierRouter(pub Arc<TierClassifier>);

impl TierRouter for ClassifierRouter {
    fn name(&self) -> &str {
        "classifier"
    }

    fn route(&self, latest_user_turn: &str) -> Routing {
        match self.0.classify(latest_user_turn) {
            Ok(c) => Routing {
                tier: match c.tier {
                    Tier::Trivial => ModelTier::Trivial,
                    Tier::Normal => ModelTier::Normal,
                    Tier::Complex => ModelTier::Complex,
                },
                equipment: c.equipment.map(|e| e.name().to_owned()),
                confidence: Some(f64::from(c.confidence)),
            },
            Err(error) => {
                tracing::warn!(%error, "classifier failed; routing by rule");
                HeuristicRouter.route(latest_user_turn)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_hands_out_its_model_once_loaded_and_says_why_when_there_is_none() {
        let slot: Arc<Slot<&'static str>> = Arc::new(Slot::new(true));
        assert!(slot.now().is_none());
        assert_eq!(slot.readiness("embeddings", "fetch it").state, ModelState::Loading);
        let waited = slot.wait("embedding model", Duration::from_millis(20));
        assert_eq!(waited.err().as_deref(), Some("the embedding model is still loading after waiting 20ms"));
        // A waiter is woken by the load, not by its timeout.
        let waiter = {
            let slot = slot.clone();
            std::thread::spawn(move || slot.wait("embedding model", Duration::from_secs(30)))
        };
        slot.finish(Ok((Arc::new("model"), Duration::from_millis(1234))));
        assert_eq!(waiter.join().expect("waiter").as_deref().copied(), Ok("model"));
        let ready = slot.readiness("embeddings", "fetch it");
        assert_eq!((ready.state, ready.detail.as_deref()), (ModelState::Ready, Some("loaded in 1234 ms")));

        let failed: Slot<&'static str> = Slot::new(true);
        failed.finish(Err("model.safetensors: bad header".into()));
        assert_eq!(
            failed.wait("embedding model", Duration::from_secs(30)).err().as_deref(),
            Some("the embedding model did not load: model.safetensors: bad header")
        );
        assert_eq!(failed.readiness("embeddings", "").state, ModelState::Failed);

        let absent: Slot<&'static str> = Slot::new(false);
        assert_eq!(
            absent.wait("local chat model", Duration::from_secs(30)).err().as_deref(),
            Some("the local chat model is not in the models directory")
        );
        // Giving up (the loading thread died) fails what was loading and leaves the rest alone.
        absent.give_up("the thread stopped");
        let loading: Slot<&'static str> = Slot::new(true);
        loading.give_up("the thread stopped");
        assert_eq!(loading.readiness("local", "").state, ModelState::Failed);
        let report = absent.readiness("local", "fetch it with `cargo xtask models`");
        assert_eq!(
            (report.state, report.detail.as_deref()),
            (ModelState::Absent, Some("fetch it with `cargo xtask models`"))
        );
    }
}
