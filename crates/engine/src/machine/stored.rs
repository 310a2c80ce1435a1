//! The stored run: what the runtime writes into `runs.state` after every durable step and reads
//! back after a restart — possibly by a newer build, while the run is still going. So the
//! layout is versioned, and every version a released build wrote stays readable:
//!
//! - **version 1** (no `version` field): `{"run": …, "user": …}`. The phase is an externally
//!   tagged enum (`"New"`, `{"SealingIntent": {"step": 0}}`) and the phases' working data sit
//!   beside it on the run (`drift`, `pending_payload`). Read by [`from_v1`].
//! - **version 2**: `{"version": 2, "run": …, "user": …}`. The phase is internally tagged and
//!   carries its own data (`{"name": "sealing_intent", "step": 0, "payload": …}`); the run is
//!   [`Run`]'s serde form. `route` and `notice` were added later as optional fields, written
//!   only when set: a run stored without them reads as planned on the normal tier.
//! - **version 3**: as version 2, with the run's `provenance` (`envelope`, `taint`, `sources`:
//!   where its content came from, see [`crate::provenance`]) and intent seals that say whether
//!   the run was `tainted`. A version-2 run reads with empty provenance: it is judged from what
//!   it reads after the upgrade.
//! - **version 4**: as version 3 without the run's `context` (its personas and tool
//!   definitions, which do not change while it runs and made up most of every save). The
//!   context is stored once per run, beside the state ([`encode_context`]), and given back to
//!   [`decode`]. Versions 1 to 3 carry it inside the state.
//!
//! `crates/runtime/tests/fixtures/runs/` holds, in `v<N>/`, a stored run of every phase for every
//! version, and a test resumes each one to its end. Changing what [`Run`] serializes to needs
//! a new version: freeze the current layout as types here, read it with a `from_v<N>`, bump
//! [`VERSION`], and add that version's fixtures (`NEXUS_WRITE_RUN_FIXTURES=1`).

use domain::ChainId;
use domain::agent::ChainStatus;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Phase, Run, RunContext, StepRecord};
use crate::gates::DriftHistory;
use crate::parse::PlannedStep;

/// The version [`encode`] writes.
pub const VERSION: u64 = 4;

/// A stored run read back.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub run: Run,
    /// Who asked for the run (they may not approve its calls).
    pub user: Option<String>,
    /// The version it was stored in.
    pub version: u64,
}

/// Why a stored run cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("the stored state is not a JSON object: {0}")]
    NotJson(String),
    #[error("the stored state's version is {0}, which no build writes")]
    BadVersion(String),
    #[error("stored by a newer build (format version {found}; this build reads versions 1 to {VERSION})")]
    Newer { found: u64 },
    #[error("the stored state (format version {version}) is invalid: {reason}")]
    Invalid { version: u64, reason: String },
}

/// Why a run cannot be stored.
#[derive(Debug, thiserror::Error)]
#[error("the run cannot be serialized: {0}")]
pub struct EncodeError(#[from] serde_json::Error);

#[derive(Serialize)]
struct Envelope<'a> {
    version: u64,
    run: &'a Run,
    user: Option<&'a str>,
}

/// The run as stored now (version [`VERSION`]), without its context ([`encode_context`]).
pub fn encode(run: &Run, user: Option<&str>) -> Result<String, EncodeError> {
    Ok(serde_json::to_string(&Envelope { version: VERSION, run, user })?)
}

/// A run's context as stored beside its state, once per run.
pub fn encode_context(context: &RunContext) -> Result<String, EncodeError> {
    Ok(serde_json::to_string(context)?)
}

/// Reads a run stored by this build or any earlier one. `context` is what was stored beside
/// the state ([`encode_context`]): a version-4 state needs it; older ones carry their own.
pub fn decode(text: &str, context: Option<&str>) -> Result<Decoded, DecodeError> {
    let mut value: Value = serde_json::from_str(text).map_err(|e| DecodeError::NotJson(e.to_string()))?;
    let Some(object) = value.as_object_mut() else {
        return Err(DecodeError::NotJson("found another JSON value".into()));
    };
    let version = match object.get("version") {
        None => 1,
        Some(v) => v.as_u64().filter(|v| *v >= 1).ok_or_else(|| DecodeError::BadVersion(v.to_string()))?,
    };
    if version > VERSION {
        return Err(DecodeError::Newer { found: version });
    }
    let invalid = |reason: String| DecodeError::Invalid { version, reason };
    let user = match object.get("user") {
        None | Some(Value::Null) => None,
        Some(Value::String(user)) => Some(user.clone()),
        Some(other) => return Err(invalid(format!("`user` is {other}, not a string"))),
    };
    let mut run = object.remove("run").ok_or_else(|| invalid("it has no `run`".into()))?;
    let run = match version {
        1 => from_v1(serde_json::from_value(run).map_err(|e| invalid(e.to_string()))?).map_err(invalid)?,
        _ => {
            let context = match (version, context) {
                (2 | 3, _) => run
                    .as_object_mut()
                    .and_then(|run| run.remove("context"))
                    .ok_or_else(|| invalid("its run has no `context`".into()))
                    .and_then(|c| serde_json::from_value(c).map_err(|e| invalid(format!("its context: {e}"))))?,
                (_, Some(text)) => serde_json::from_str::<RunContext>(text)
                    .map_err(|e| invalid(format!("the context stored beside it: {e}")))?,
                (_, None) => return Err(invalid("the context stored beside it is missing".into())),
            };
            let mut run: Run = serde_json::from_value(run).map_err(|e| invalid(e.to_string()))?;
            run.context = context;
            run.check().map_err(invalid)?;
            run
        }
    };
    Ok(Decoded { run, user, version })
}

/// Version 1's run, as it was serialized (types whose layout has not changed since are shared).
pub mod v1 {
    use super::*;

    #[derive(Debug, Clone, Deserialize)]
    pub struct Run {
        pub chain_id: ChainId,
        pub task: String,
        pub context: RunContext,
        pub status: ChainStatus,
        pub plan: Vec<PlannedStep>,
        pub steps: Vec<StepRecord>,
        pub answer: Option<String>,
        pub error: Option<String>,
        pub input_tokens: u64,
        pub output_tokens: u64,
        pub cost_usd: f64,
        pub models: Vec<String>,
        pub phase: Phase,
        pub drift: Option<DriftHistory>,
        pub retrieved: String,
        pub pending_payload: Option<Value>,
    }

    #[derive(Debug, Clone, Deserialize)]
    pub enum Phase {
        New,
        Planning { attempts: u32 },
        Retrieving { step: usize, loops: u32 },
        Activating { step: usize },
        Declaring { step: usize, attempts: u32 },
        Gating { step: usize },
        SealingIntent { step: usize },
        AwaitingApproval { step: usize },
        Executing { step: usize },
        SealingResult { step: usize },
        Answering { attempts: u32, tier_bump: u8 },
        Done,
    }
}

/// A version 1 run in today's layout: the working data moves into the phase that uses it.
pub fn from_v1(old: v1::Run) -> Result<Run, String> {
    let drift = || old.drift.clone().unwrap_or_default();
    let payload = |phase: &str| {
        old.pending_payload.clone().ok_or_else(|| format!("phase {phase} has no pending payload to seal"))
    };
    let phase = match old.phase {
        v1::Phase::New => Phase::New,
        v1::Phase::Planning { attempts } => Phase::Planning { attempts },
        v1::Phase::Retrieving { step, loops } => Phase::Retrieving { step, loops },
        v1::Phase::Activating { step } => Phase::Activating { step },
        v1::Phase::Declaring { step, attempts } => Phase::Declaring { step, attempts, drift: drift() },
        v1::Phase::Gating { step } => Phase::Gating { step, drift: drift() },
        v1::Phase::SealingIntent { step } => Phase::SealingIntent { step, payload: payload("SealingIntent")? },
        v1::Phase::AwaitingApproval { step } => Phase::AwaitingApproval { step },
        v1::Phase::Executing { step } => Phase::Executing { step },
        v1::Phase::SealingResult { step } => Phase::SealingResult { step, payload: payload("SealingResult")? },
        v1::Phase::Answering { attempts, tier_bump } => Phase::Answering { attempts, tier_bump },
        v1::Phase::Done => Phase::Done,
    };
    let run = Run {
        chain_id: old.chain_id,
        task: old.task,
        context: old.context,
        status: old.status,
        plan: old.plan,
        steps: old.steps,
        answer: old.answer,
        error: old.error,
        input_tokens: old.input_tokens,
        output_tokens: old.output_tokens,
        cost_usd: old.cost_usd,
        models: old.models,
        route: None,
        notice: None,
        provenance: Default::default(),
        phase,
        retrieved: old.retrieved,
    };
    run.check()?;
    Ok(run)
}

impl Run {
    /// The checks a stored run must pass before it is resumed: every step its phase names
    /// exists (a resumed run indexes its steps by it).
    fn check(&self) -> Result<(), String> {
        let step = match &self.phase {
            Phase::Retrieving { step, .. }
            | Phase::Activating { step }
            | Phase::Declaring { step, .. }
            | Phase::Gating { step, .. }
            | Phase::SealingIntent { step, .. }
            | Phase::AwaitingApproval { step }
            | Phase::Executing { step }
            | Phase::SealingResult { step, .. } => *step,
            Phase::New | Phase::Planning { .. } | Phase::Answering { .. } | Phase::Done => return Ok(()),
        };
        if step >= self.steps.len() {
            return Err(format!("phase {} names step {step} of {}", self.phase.name(), self.steps.len()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> Run {
        let context = RunContext {
            personas: Vec::new(),
            tools: Vec::new(),
            persona_override: None,
            qa_spec: None,
            max_steps: None,
        };
        Run::new(ChainId::parse("chain-1").expect("id"), "say hi", context)
    }

    #[test]
    fn a_run_comes_back_as_it_was_stored() {
        let mut run = run();
        run.advance(super::super::Input::Start);
        run.context.qa_spec = Some("mentions hi".into());
        let text = encode(&run, Some("alice")).expect("encode");
        assert!(text.starts_with(r#"{"version":4,"#), "{text}");
        assert!(!text.contains("mentions hi"), "the context is stored beside the state: {text}");
        let context = encode_context(&run.context).expect("context");
        let decoded = decode(&text, Some(&context)).expect("decode");
        assert_eq!(decoded, Decoded { run, user: Some("alice".into()), version: 4 });
    }

    #[test]
    fn a_version_4_state_needs_its_context_and_an_older_one_carries_its_own() {
        let text = encode(&run(), None).expect("encode");
        let error = decode(&text, None).expect_err("no context");
        assert!(error.to_string().contains("the context stored beside it is missing"), "{error}");
        let error = decode(&text, Some("{}")).expect_err("bad context");
        assert!(error.to_string().contains("the context stored beside it: missing field"), "{error}");
        // Version 3: the same run with its context inside; a context given beside it is ignored.
        let mut v3: Value = serde_json::from_str(&text).expect("json");
        v3["version"] = 3.into();
        v3["run"]["context"] =
            serde_json::to_value(RunContext { qa_spec: Some("v3".into()), ..run().context }).expect("context");
        let decoded = decode(&v3.to_string(), Some("{}")).expect("v3");
        assert_eq!((decoded.version, decoded.run.context.qa_spec.as_deref()), (3, Some("v3")));
        v3["run"].as_object_mut().expect("object").remove("context");
        let error = decode(&v3.to_string(), None).expect_err("v3 without context");
        assert!(error.to_string().contains("its run has no `context`"), "{error}");
    }

    #[test]
    fn unreadable_states_are_errors_that_say_why() {
        let context = encode_context(&RunContext::default()).expect("context");
        let decode = |text: &str| decode(text, Some(&context));
        let newer = decode(r#"{"version": 5, "run": {}}"#).expect_err("newer");
        assert_eq!(newer, DecodeError::Newer { found: 5 });
        assert!(newer.to_string().contains("newer build"), "{newer}");
        assert!(matches!(decode("not json"), Err(DecodeError::NotJson(_))));
        assert!(matches!(decode("[1]"), Err(DecodeError::NotJson(_))));
        assert!(matches!(decode(r#"{"version": "2"}"#), Err(DecodeError::BadVersion(_))));
        assert!(matches!(decode(r#"{"version": 0}"#), Err(DecodeError::BadVersion(_))));
        assert!(matches!(decode(r#"{"version": 2}"#), Err(DecodeError::Invalid { version: 2, .. })));
        assert!(matches!(decode(r#"{"run": {"phase": "New"}}"#), Err(DecodeError::Invalid { version: 1, .. })));
        // A phase naming a step the run does not have would index out of bounds on resume.
        let mut stored: Value = serde_json::from_str(&encode(&run(), None).expect("encode")).expect("json");
        stored["run"]["phase"] = serde_json::json!({"name": "sealing_intent", "step": 4, "payload": null});
        let v1 = {
            let mut v1 = stored.clone();
            v1.as_object_mut().expect("object").remove("version");
            v1["run"]["phase"] = serde_json::json!({"Executing": {"step": 4}});
            v1["run"]["drift"] = Value::Null;
            v1["run"]["pending_payload"] = Value::Null;
            v1["run"]["context"] = serde_json::to_value(RunContext::default()).expect("context");
            v1
        };
        let error = decode(&v1.to_string()).expect_err("out of range");
        assert!(error.to_string().contains("names step 4 of 0"), "{error}");
        let error = decode(&stored.to_string()).expect_err("out of range");
        assert!(error.to_string().contains("phase sealing_intent names step 4 of 0"), "{error}");
    }
}
