//! Schema-only types for the OpenAPI document: the value sets and shapes the native API checks
//! by hand (string enums, the SSE event), described once so the document says exactly what the
//! server enforces. Nothing here is constructed; handlers parse into domain types. (Error bodies
//! are real types: `error::ErrorBody` and each compat module's `ErrorBody`.)

#![allow(dead_code, reason = "these types exist only to be described in the OpenAPI document")]

use serde::Serialize;
use utoipa::ToSchema;

/// A ledger entry kind.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum EntryKind {
    SealIntent,
    SealResult,
    ModelCall,
    GateDecision,
    Approval,
    AdminChange,
    Moderation,
    Route,
    Equipment,
    Job,
    Memory,
}

/// A chain's status.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ChainStatus {
    Planning,
    Executing,
    AwaitingApproval,
    Completed,
    Failed,
    Partial,
    Escalated,
    Cancelled,
}

/// An approval's status.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ApprovalStatus {
    Pending,
    Approved,
    Denied,
    Expired,
}

/// What a gateway caller asks of its call's ledger entry (`x-nexus-ledger-ack`): `durable`
/// answers once the entry is committed; `queued` takes the server's setting.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum LedgerAck {
    Durable,
    Queued,
}

/// A knowledge document's access level.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum AccessLevel {
    Public,
    Internal,
    Restricted,
    Confidential,
}

/// How much risk a persona accepts.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RiskLevel {
    Low,
    Medium,
    High,
    Critical,
}

/// How far a persona is trusted.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum TrustTier {
    ColdStart,
    Established,
    Trusted,
}

/// What happens below a persona's intent threshold.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum LowIntent {
    Approve,
    Block,
}

/// Per-request overrides of `POST /v1/execute`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExecuteConfig {
    /// A QA spec (the text `nexus run --qa-spec` reads) the answer must pass.
    qa_spec: Option<String>,
}

/// One server-sent event, as `text/event-stream` responses carry them: the event's name (absent
/// for OpenAI-style streams), its number where a stream can be resumed, and its data (JSON text,
/// or `[DONE]`).
#[derive(Serialize, ToSchema)]
pub(crate) struct SseEvent {
    #[schema(nullable = false)]
    event: Option<String>,
    #[schema(nullable = false)]
    id: Option<String>,
    data: String,
}
