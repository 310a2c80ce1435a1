//! The in-process models, loaded from `models_dir` when `cargo xtask models` fetched them:
//! sentence embeddings (retrieval, gate 2, `/v1/embeddings`), the tier classifier
//! (agent runs and `nexus/auto`), and SmolLM2 as the `local` provider. A missing model is a logged notice and a
//! fallback (gate 2 skips, BM25-only retrieval, heuristic routing), never an error.

use std::sync::Arc;

use engine::machine::ModelTier;
use models::{SentenceEmbedder, Tier, TierClassifier};
use providers::ModelProvider;
use runtime::llm::{HeuristicRouter, Routing, TierRouter};

use crate::config::Config;

#[derive(Default)]
pub struct LocalModels {
    pub embedder: Option<Arc<SentenceEmbedder>>,
    pub classifier: Option<Arc<TierClassifier>>,
    pub chat: Option<Arc<dyn ModelProvider>>,
}

/// Which models a command needs: serving and running use all of them; ingesting only embeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    Everything,
    Embeddings,
}

pub fn load(config: &Config, needs: Needs) -> LocalModels {
    let dir = &config.models_dir;
    let embedder = match SentenceEmbedder::load(dir) {
        Ok(embedder) => Some(Arc::new(embedder)),
        Err(error) => {
            tracing::info!(%error, "no embedding model: gate 2 skips, knowledge search is BM25 only, nexus/auto routes by rule");
            None
        }
    };
    if needs == Needs::Embeddings {
        return LocalModels { embedder, classifier: None, chat: None };
    }
    let classifier = embedder.as_ref().and_then(|e| match TierClassifier::new(e.clone()) {
        Ok(classifier) => Some(Arc::new(classifier)),
        Err(error) => {
            tracing::warn!(%error, "the tier classifier could not be trained; nexus/auto routes by rule");
            None
        }
    });
    let chat = match models::LocalChatProvider::load(dir) {
        Ok(provider) => Some(Arc::new(provider) as Arc<dyn ModelProvider>),
        Err(error) => {
            tracing::info!(%error, "no local chat model (local/smollm2-135m unavailable)");
            None
        }
    };
    LocalModels { embedder, classifier, chat }
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
