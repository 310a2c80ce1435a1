//! `send_email`: sends a plain-text email through the configured SMTP relay. High risk and
//! approval-gated; unavailable unless `NEXUS_SMTP_HOST` and `NEXUS_SMTP_FROM` are set.

use std::str::FromStr as _;
use std::time::Duration;

use async_trait::async_trait;
use domain::persona::RiskLevel;
use domain::tool::{ResourceArg, ResourceKind, ToolDefinition};
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Tokio1Executor};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::params::{invalid, parse, schema};
use super::{BuiltinSettings, SmtpTls};
use crate::{Availability, Tool, ToolContext, ToolError};

pub const NAME: &str = "send_email";
/// The most recipients (to and cc together) of one email.
pub const MAX_RECIPIENTS: usize = 50;
/// The largest body accepted.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// One address or several.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
#[schemars(inline)]
enum Recipients {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Params {
    /// The recipient address, or a list of them.
    to: Recipients,
    /// The subject line (one line).
    subject: String,
    /// The plain-text body.
    body: String,
    /// Addresses to copy.
    #[serde(default)]
    cc: Vec<String>,
}

/// A complete SMTP configuration.
struct SmtpConfig {
    host: String,
    port: u16,
    tls: SmtpTls,
    credentials: Option<Credentials>,
    from: Mailbox,
    timeout: Duration,
}

/// Sends email.
pub struct SendEmail {
    /// The configuration, or what is missing from it.
    config: Result<SmtpConfig, String>,
}

/// Parses one mailbox (`a@b.org` or `Name <a@b.org>`).
pub(crate) fn parse_mailbox(text: &str) -> Result<Mailbox, String> {
    Mailbox::from_str(text.trim()).map_err(|e| format!("{text:?} is not a valid email address: {e}"))
}

impl SendEmail {
    pub fn new(settings: &BuiltinSettings) -> Self {
        let config = match (&settings.smtp_host, &settings.smtp_from) {
            (Some(host), Some(from)) => match parse_mailbox(from) {
                Ok(from) => Ok(SmtpConfig {
                    host: host.clone(),
                    port: settings.smtp_port.unwrap_or(settings.smtp_tls.default_port()),
                    tls: settings.smtp_tls,
                    credentials: settings
                        .smtp_username
                        .as_ref()
                        .map(|user| Credentials::new(user.clone(), settings.smtp_password.clone().unwrap_or_default())),
                    from,
                    timeout: settings.http_timeout,
                }),
                Err(_) => Err("a valid NEXUS_SMTP_FROM".to_owned()),
            },
            (None, Some(_)) => Err("NEXUS_SMTP_HOST".to_owned()),
            (Some(_), None) => Err("NEXUS_SMTP_FROM".to_owned()),
            (None, None) => Err("NEXUS_SMTP_HOST and NEXUS_SMTP_FROM".to_owned()),
        };
        Self { config }
    }
}

fn mailboxes(param: &str, addresses: &[String]) -> Result<Vec<Mailbox>, ToolError> {
    addresses.iter().map(|a| parse_mailbox(a).map_err(|reason| invalid(param, reason))).collect()
}

fn transport(config: &SmtpConfig) -> Result<AsyncSmtpTransport<Tokio1Executor>, ToolError> {
    let builder = match config.tls {
        SmtpTls::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)),
        SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host),
        SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&config.host),
    }
    .map_err(|e| ToolError::Failed {
        message: format!("cannot set up SMTP to {}: {e}", config.host),
        transient: false,
    })?;
    let builder = builder.port(config.port).timeout(Some(config.timeout));
    let builder = match &config.credentials {
        Some(credentials) => builder.credentials(credentials.clone()),
        None => builder,
    };
    Ok(builder.build())
}

/// SMTP failures: 5xx replies, malformed replies and TLS problems are permanent; refused
/// connections, network errors, timeouts and 4xx replies may pass on retry.
fn smtp_failed(error: &lettre::transport::smtp::Error) -> ToolError {
    let permanent = error.is_permanent() || error.is_client() || error.is_response() || error.is_tls();
    ToolError::Failed { message: format!("sending the email failed: {error}"), transient: !permanent }
}

#[async_trait]
impl Tool for SendEmail {
    fn definition(&self) -> ToolDefinition {
        ToolDefinition {
            name: NAME.to_owned(),
            description: "Send a plain-text email. Needs human approval.".to_owned(),
            parameters: schema::<Params>(),
            risk_level: RiskLevel::High,
            resource_pattern: "email:*".to_owned(),
            resource_args: vec![
                ResourceArg { param: "to".to_owned(), kind: ResourceKind::Email, default: None, optional: false },
                // Copies are recipients too: the scope gate must see them.
                ResourceArg { param: "cc".to_owned(), kind: ResourceKind::Email, default: None, optional: true },
            ],
            timeout_seconds: 60,
            requires_approval: true,
            state_changing: true,
            untrusted_output: false,
        }
    }

    fn availability(&self) -> Availability {
        match &self.config {
            Ok(_) => Availability::Available,
            Err(missing) => Availability::Unconfigured { missing: missing.clone() },
        }
    }

    async fn call(&self, _context: &ToolContext, params: Value) -> Result<Value, ToolError> {
        let config = self
            .config
            .as_ref()
            .map_err(|missing| ToolError::Unavailable { tool: NAME.to_owned(), reason: format!("set {missing}") })?;
        let params: Params = parse(params)?;
        let to = match params.to {
            Recipients::One(address) => vec![address],
            Recipients::Many(addresses) => addresses,
        };
        if to.is_empty() {
            return Err(invalid("to", "needs at least one recipient"));
        }
        if to.len() + params.cc.len() > MAX_RECIPIENTS {
            return Err(invalid("to", format!("at most {MAX_RECIPIENTS} recipients (to and cc together)")));
        }
        let to_boxes = mailboxes("to", &to)?;
        let cc_boxes = mailboxes("cc", &params.cc)?;
        if params.subject.chars().any(char::is_control) {
            return Err(invalid("subject", "must be one line without control characters"));
        }
        if params.body.len() > MAX_BODY_BYTES {
            return Err(invalid("body", format!("{} bytes exceed the {MAX_BODY_BYTES}-byte cap", params.body.len())));
        }

        let mut builder = Message::builder().from(config.from.clone()).subject(params.subject).message_id(None);
        for mailbox in to_boxes {
            builder = builder.to(mailbox);
        }
        for mailbox in cc_boxes {
            builder = builder.cc(mailbox);
        }
        let message = builder
            .header(ContentType::TEXT_PLAIN)
            .body(params.body)
            .map_err(|e| ToolError::Failed { message: format!("cannot build the email: {e}"), transient: false })?;
        let message_id = message.headers().get_raw("Message-ID").map(str::to_owned);

        transport(config)?.send(message).await.map_err(|e| smtp_failed(&e))?;
        tracing::info!(recipients = to.len() + params.cc.len(), "send_email sent an email");
        Ok(json!({ "sent": true, "to": to, "cc": params.cc, "message_id": message_id }))
    }
}
