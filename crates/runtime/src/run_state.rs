//! A run as the store keeps it: the row saved after every durable step (`snapshot`), the
//! context stored once beside it (`to_save` decides when), and reading either back from any
//! version of the stored format (`parse_state`, and `readable` for sweeps that skip what they
//! cannot read).

use domain::Timestamp;
use domain::ports::StoredRun;
use engine::machine::Run;
use engine::machine::stored::EncodeError;

use crate::agent::AgentError;

/// The run as it should be stored now (also updating `record`).
pub(crate) fn snapshot(run: &Run, record: &mut StoredRun, user: Option<&str>) -> Result<StoredRun, AgentError> {
    record.status = run.status;
    record.personas = personas_of(run);
    record.state = encode_state(run, user)?;
    record.updated_at = Timestamp::now();
    Ok(record.clone())
}

/// The personas a run's planned steps use, each once, in plan order.
fn personas_of(run: &Run) -> Vec<String> {
    let mut personas: Vec<String> = Vec::new();
    for step in &run.steps {
        if !step.persona.is_empty() && !personas.contains(&step.persona) {
            personas.push(step.persona.clone());
        }
    }
    personas
}

/// A stored run as its next save should write it: without its context when that is stored
/// already; with it when the run was stored by a build that kept the context in the state.
pub(crate) fn to_save(stored: StoredRun, run: &Run) -> Result<StoredRun, AgentError> {
    let context = match stored.context {
        Some(_) => None,
        None => Some(encode_context(run)?),
    };
    Ok(StoredRun { context, ..stored })
}

/// The run's context, stored once per run beside its state.
pub(crate) fn encode_context(run: &Run) -> Result<String, AgentError> {
    engine::machine::stored::encode_context(&run.context).map_err(|e| unstorable(run, &e))
}

/// The run's stored state, in the current version of the stored format.
pub(crate) fn encode_state(run: &Run, user: Option<&str>) -> Result<String, AgentError> {
    engine::machine::stored::encode(run, user).map_err(|e| unstorable(run, &e))
}

fn unstorable(run: &Run, error: &EncodeError) -> AgentError {
    AgentError::UnstorableRun { chain: run.chain_id.to_string(), reason: error.to_string() }
}

/// A stored run and who asked for it, from any version of the stored format.
pub(crate) fn parse_state(stored: &StoredRun) -> Result<(Run, Option<String>), AgentError> {
    let decoded = engine::machine::stored::decode(&stored.state, stored.context.as_deref())
        .map_err(|e| AgentError::CorruptRun { chain: stored.chain_id.to_string(), reason: e.to_string() })?;
    if decoded.run.chain_id != stored.chain_id {
        return Err(AgentError::CorruptRun {
            chain: stored.chain_id.to_string(),
            reason: format!("its state belongs to chain {}", decoded.run.chain_id),
        });
    }
    Ok((decoded.run, decoded.user))
}

/// For sweeps over many runs: a run whose state cannot be read is reported in the log (naming
/// the chain and why) and skipped, so it never holds up the others.
pub(crate) fn readable(stored: &StoredRun) -> Option<(Run, Option<String>)> {
    match parse_state(stored) {
        Ok(parsed) => Some(parsed),
        Err(error) => {
            tracing::error!(tenant = %stored.tenant_id, chain = %stored.chain_id, %error, "skipping a stored run");
            None
        }
    }
}
