//! The OpenAPI 3.1 document, generated from the handlers' annotations (`/openapi.json`), and
//! an interactive reference page (`/docs`) served from the binary: plain HTML and script that
//! read the document and can send requests, with nothing fetched from the internet.

use axum::Json;
use axum::response::Html;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, PartialSchema as _};

use crate::compat::{anthropic, openai};
use crate::error;
use crate::native::{
    admin, broadcasts, chains, conversations, equipment, jobs, keys, knowledge, ledger, logs, mcp, memory, moderation,
    plugins, settings, shapes, usage, watchers,
};
use crate::routes::Surface;
use crate::{health, observe};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("an API key (nxs_…) or a token from POST /v1/auth/token"))
                    .build(),
            ),
        );
    }
}

/// Errors are part of every operation's contract: each 4xx/5xx response declared without a
/// body, and a `default` response for the rest, carry the error body of the route's dialect.
struct ErrorBodies;

impl Modify for ErrorBodies {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{Content, Ref, RefOr, ResponseBuilder};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.schemas.insert("NativeError".into(), error::ErrorBody::schema());
        components.schemas.insert("NativeErrorDetail".into(), error::ErrorDetail::schema());
        components.schemas.insert("OpenAiError".into(), openai::ErrorBody::schema());
        components.schemas.insert("OpenAiErrorDetail".into(), openai::ErrorDetail::schema());
        components.schemas.insert("AnthropicError".into(), anthropic::ErrorBody::schema());
        components.schemas.insert("AnthropicErrorDetail".into(), anthropic::ErrorDetail::schema());
        for (path, item) in &mut openapi.paths.paths {
            let body = match Surface::of_path(path) {
                Surface::Native => "NativeError",
                Surface::OpenAi => "OpenAiError",
                Surface::Anthropic => "AnthropicError",
            };
            let content = || Content::new(Some(Ref::from_schema_name(body)));
            for operation in [&mut item.get, &mut item.put, &mut item.post, &mut item.delete].into_iter().flatten() {
                for (status, response) in &mut operation.responses.responses {
                    if let RefOr::T(response) = response
                        && response.content.is_empty()
                        && status.starts_with(['4', '5'])
                    {
                        response.content.insert("application/json".into(), content());
                    }
                }
                operation.responses.responses.entry("default".into()).or_insert_with(|| {
                    RefOr::T(
                        ResponseBuilder::new()
                            .description("an error, in this route's dialect")
                            .content("application/json", content())
                            .build(),
                    )
                });
            }
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Nexus", description = "Accountable AI agent gateway: agent runs sealed in a verifiable ledger, and an OpenAI/Anthropic-compatible model gateway with keys, limits and budgets."),
    modifiers(&BearerAuth, &ErrorBodies),
    paths(
        health::health, health::ready, health::components, observe::metrics_text,
        admin::token, admin::whoami,
        chains::execute, chains::execute_stream, chains::list_chains, chains::get_chain, chains::cancel_chain, chains::chain_events, chains::feed,
        ledger::page, ledger::chain, ledger::checkpoint, ledger::inclusion, ledger::consistency, ledger::bundle,
        admin::list_personas, admin::create_persona, admin::update_persona, admin::list_tools,
        admin::list_approvals, admin::get_approval, admin::approve, admin::deny,
        knowledge::ingest, knowledge::query, knowledge::documents, knowledge::delete_document,
        usage::usage,
        keys::create_key, keys::list_keys, keys::revoke_key,
        broadcasts::create, broadcasts::get,
        moderation::list_cases, moderation::get_case, moderation::strictness,
        logs::logs, logs::stream,
        equipment::list_equipment, equipment::get_equipment, equipment::run_equipment, equipment::enable_equipment, equipment::disable_equipment, equipment::create_backup,
        settings::list_settings, settings::get_setting, settings::change_settings,
        mcp::post_mcp, mcp::get_mcp,
        conversations::list_conversations, conversations::get_conversation, conversations::export_conversation, conversations::delete_conversation,
        memory::list_memory, memory::write_memory, memory::supersede_memory, memory::forget_memory, memory::restore_memory, memory::memory_history,
        plugins::list_plugins, plugins::get_plugin, plugins::add_plugin, plugins::enable_plugin, plugins::disable_plugin, plugins::remove_plugin,
        jobs::list_jobs, jobs::create_job, jobs::get_job, jobs::cancel_job, jobs::retry_job,
        jobs::list_schedules, jobs::create_schedule, jobs::get_schedule, jobs::delete_schedule,
        watchers::list_watchers, watchers::create_watcher, watchers::get_watcher, watchers::delete_watcher, watchers::poll_watcher,
        openai::chat_completions, openai::models, openai::embeddings, anthropic::messages,
    ),
    components(schemas(crate::schema::LedgerAck, knowledge::UploadResponse, knowledge::FileResult, shapes::ExecuteRequest, shapes::ExecuteResponse, shapes::SealResponse, shapes::GateResponse, shapes::CostSummary)),
    tags(
        (name = "agent", description = "Run tasks through the notarized engine"),
        (name = "gateway", description = "OpenAI- and Anthropic-compatible model endpoints"),
        (name = "ledger", description = "The tamper-evident log and its proofs"),
        (name = "keys", description = "API keys of the caller's tenant (admin keys only)"),
        (name = "channels", description = "Chat channels: broadcasts to the tenant's linked accounts, and the moderation record"),
        (name = "jobs", description = "Background jobs (a durable queue) and the cron schedules that enqueue them"),
        (name = "settings", description = "The installation's settings: typed, secrets sealed and masked, changed live and sealed in the ledger (operator admins only)"),
        (name = "memory", description = "What the assistant remembers of each person: versioned, append-only items (supersede, delete as a tombstone, restore any version), exact duplicates a no-op, size budgets refused with the reason"),
        (name = "mcp", description = "Nexus as an MCP server (streamable HTTP, stateless): knowledge search, run a task, a run's status, ledger proofs — with the caller's key, in its tenant"),
        (name = "plugins", description = "Plugins: built-in optional capabilities and third-party MCP servers, enabled and disabled live, their tool definitions approved and pinned (operator admins only)"),
        (name = "watchers", description = "Feeds and web page sections polled on a schedule; each new item posted once (deduped across restarts and replicas) to Telegram, Discord or a webhook, sealed with its source and digest"),
        (name = "equipment", description = "Deterministic jobs that answer without a model: health check, cost report, log rotation, checkpoint export, backup"),
    ),
)]
pub(crate) struct ApiDoc;

pub(crate) async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

pub(crate) async fn docs_page() -> Html<&'static str> {
    Html(include_str!("docs.html"))
}
