//! The tier classifier: how much model a request needs (trivial / normal / complex), or which
//! piece of equipment answers it (health check, backup, cost report, log rotation). A softmax
//! regression over sentence embeddings, trained when the classifier is built from the labelled
//! examples shipped in `data/tiers_train.jsonl` (a few hundred; training takes well under a
//! second after embedding them). Classifying is one embedding and seven dot products.
//!
//! **Invariant:** the classifier only ever sees the user's latest turn — never the system
//! prompt, earlier turns or tool output, so nothing but the user's own words can steer routing.
//! [`latest_user_turn`] picks it out of a conversation.

use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use domain::embed::Embedder;
use serde::{Deserialize, Serialize};

use crate::error::ModelError;

/// The labelled examples the classifier learns from.
const TRAINING_DATA: &str = include_str!("../data/tiers_train.jsonl");
/// Embeddings are scaled up before training: unit vectors give logits too flat to separate
/// seven classes with a small weight penalty.
const FEATURE_SCALE: f32 = 5.0;
const LEARNING_RATE: f64 = 1.0;
const L2_PENALTY: f64 = 1e-3;
const EPOCHS: usize = 300;

/// How much model a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    Trivial,
    Normal,
    Complex,
}

/// Built-in operations that answer a request without a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Equipment {
    HealthCheck,
    Backup,
    CostReport,
    LogRotate,
}

impl Equipment {
    /// The equipment's name as the runtime knows it (`health_check`, …).
    pub fn name(self) -> &'static str {
        match self {
            Equipment::HealthCheck => "health_check",
            Equipment::Backup => "backup",
            Equipment::CostReport => "cost_report",
            Equipment::LogRotate => "log_rotate",
        }
    }
}

/// The classifier's answer. Equipment requests report [`Tier::Trivial`]: the equipment does
/// the work, a model at most phrases the result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Classification {
    pub tier: Tier,
    pub equipment: Option<Equipment>,
    /// The probability the classifier gives its answer, in (0, 1].
    pub confidence: f32,
}

/// A label in the training and test files: a tier or an equipment name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Label {
    Trivial,
    Normal,
    Complex,
    HealthCheck,
    Backup,
    CostReport,
    LogRotate,
}

impl Label {
    pub const ALL: [Label; 7] = [
        Label::Trivial,
        Label::Normal,
        Label::Complex,
        Label::HealthCheck,
        Label::Backup,
        Label::CostReport,
        Label::LogRotate,
    ];

    /// Its position in [`Label::ALL`] (the declaration order).
    fn index(self) -> usize {
        self as usize
    }

    /// The classification this label stands for.
    pub fn classification(self, confidence: f32) -> Classification {
        let (tier, equipment) = match self {
            Label::Trivial => (Tier::Trivial, None),
            Label::Normal => (Tier::Normal, None),
            Label::Complex => (Tier::Complex, None),
            Label::HealthCheck => (Tier::Trivial, Some(Equipment::HealthCheck)),
            Label::Backup => (Tier::Trivial, Some(Equipment::Backup)),
            Label::CostReport => (Tier::Trivial, Some(Equipment::CostReport)),
            Label::LogRotate => (Tier::Trivial, Some(Equipment::LogRotate)),
        };
        Classification { tier, equipment, confidence }
    }
}

/// One line of a JSONL example file: `{"text": "...", "label": "normal"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Example {
    pub text: String,
    pub label: Label,
}

/// Parses a JSONL example file; `what` names it in errors.
pub fn parse_examples(what: &str, jsonl: &str) -> Result<Vec<Example>, ModelError> {
    jsonl
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| {
            serde_json::from_str(line)
                .map_err(|e| ModelError::Data { what: format!("{what} line {}", n + 1), reason: e.to_string() })
        })
        .collect()
}

/// The shipped training examples.
pub fn training_examples() -> Result<Vec<Example>, ModelError> {
    parse_examples("data/tiers_train.jsonl", TRAINING_DATA)
}

/// The text of the last user message, the only thing [`TierClassifier::classify`] may see.
pub fn latest_user_turn(messages: &[providers::Message]) -> Option<&str> {
    messages.iter().rev().find(|m| m.role == providers::Role::User).map(|m| m.content.as_str())
}

/// Softmax regression over embeddings: one weight row and one bias per [`Label`].
pub struct TierClassifier {
    embedder: Arc<dyn Embedder>,
    /// `Label::ALL.len()` rows of `dims` weights, already multiplied by [`FEATURE_SCALE`].
    weights: Vec<Vec<f32>>,
    bias: Vec<f32>,
}

impl std::fmt::Debug for TierClassifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TierClassifier").field("embedder", &self.embedder).finish_non_exhaustive()
    }
}

impl TierClassifier {
    /// Embeds the shipped examples with `embedder` and trains on them.
    pub fn new(embedder: Arc<dyn Embedder>) -> Result<Self, ModelError> {
        Self::train(embedder, &training_examples()?)
    }

    /// Trains on `examples` (every label must occur).
    pub fn train(embedder: Arc<dyn Embedder>, examples: &[Example]) -> Result<Self, ModelError> {
        for label in Label::ALL {
            if !examples.iter().any(|e| e.label == label) {
                return Err(ModelError::Data {
                    what: "training examples".into(),
                    reason: format!("no {label:?} example"),
                });
            }
        }
        let texts: Vec<&str> = examples.iter().map(|e| e.text.as_str()).collect();
        let vectors = embedder.embed(&texts).map_err(|e| ModelError::Inference(e.to_string()))?;
        let dims = embedder.dims();
        let features: Vec<f32> = vectors.iter().flatten().map(|x| x * FEATURE_SCALE).collect();
        let device = &Device::Cpu;
        let (n, k) = (examples.len(), Label::ALL.len());
        let x = Tensor::from_vec(features, (n, dims), device)?;
        let targets: Vec<f32> = examples
            .iter()
            .flat_map(|e| (0..k).map(move |class| if class == e.label.index() { 1.0 } else { 0.0 }))
            .collect();
        let y = Tensor::from_vec(targets, (n, k), device)?;
        let mut w = Tensor::zeros((k, dims), DType::F32, device)?;
        let mut b = Tensor::zeros(k, DType::F32, device)?;
        // Full-batch gradient descent on the mean cross-entropy: deterministic, and at this
        // size faster than anything cleverer.
        for _ in 0..EPOCHS {
            let logits = x.matmul(&w.t()?)?.broadcast_add(&b)?;
            let probabilities = candle_nn::ops::softmax_last_dim(&logits)?;
            let gradient = ((probabilities - &y)? / n as f64)?; // (n, k)
            let w_gradient = (gradient.t()?.matmul(&x)? + (&w * L2_PENALTY)?)?;
            w = (w - (w_gradient * LEARNING_RATE)?)?;
            b = (b - (gradient.sum(0)? * LEARNING_RATE)?)?;
        }
        let weights = (w * f64::from(FEATURE_SCALE))?.to_vec2::<f32>()?;
        let bias = b.to_vec1::<f32>()?;
        Ok(Self { embedder, weights, bias })
    }

    /// Classifies the user's latest turn (see the module's invariant): one embedding, then a
    /// softmax over the labels.
    pub fn classify(&self, latest_user_turn: &str) -> Result<Classification, ModelError> {
        let vectors = self.embedder.embed(&[latest_user_turn]).map_err(|e| ModelError::Inference(e.to_string()))?;
        let vector = vectors.first().ok_or_else(|| ModelError::Inference("the embedder returned nothing".into()))?;
        Ok(self.classify_vector(vector))
    }

    fn classify_vector(&self, vector: &[f32]) -> Classification {
        let logits: Vec<f32> = self
            .weights
            .iter()
            .zip(&self.bias)
            .map(|(row, bias)| row.iter().zip(vector).map(|(w, x)| w * x).sum::<f32>() + bias)
            .collect();
        let (best, max) = logits
            .iter()
            .copied()
            .enumerate()
            .fold((0, f32::NEG_INFINITY), |acc, (i, z)| if z > acc.1 { (i, z) } else { acc });
        let total: f32 = logits.iter().map(|z| (z - max).exp()).sum();
        Label::ALL[best].classification(1.0 / total)
    }
}
