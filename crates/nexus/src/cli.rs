//! The command line: global options that feed configuration, and the subcommands.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use domain::agent::ApprovalStatus;
use domain::knowledge::AccessLevel;
use domain::{ChainId, TenantId};

#[derive(Debug, Parser)]
#[command(name = "nexus", version, about = "Nexus: an accountable, self-hosted AI agent gateway")]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes; they override `nexus.toml` and `NEXUS_*` variables.
#[derive(Debug, Args, Default)]
pub struct GlobalArgs {
    /// Configuration file (default: ./nexus.toml if it exists). Env: NEXUS_CONFIG.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory: database, signing key, workspaces. Env: NEXUS_DATA_DIR.
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL, sqlite://PATH or postgres://… Env: NEXUS_DATABASE_URL.
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// Log filter, e.g. info or nexus=debug. Env: NEXUS_LOG_LEVEL.
    #[arg(long, global = true, value_name = "FILTER")]
    pub log_level: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server.
    Serve {
        /// Address to listen on (default 127.0.0.1:8420). Env: NEXUS_LISTEN.
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Create the demo tenant and the five default personas (safe to run again).
    Seed,
    /// Verify the ledger: the whole database, one tenant, one chain, or a proof bundle.
    Verify(VerifyArgs),
    /// Ledger checkpoints, proofs and the public key.
    #[command(subcommand)]
    Ledger(LedgerCommand),
    /// Print the resolved configuration.
    Config,
    /// Run a task: plan, gate, seal and execute it, streaming progress, then print the seals.
    Run(RunArgs),
    /// Show a recorded run: its steps, gates, seals and answer.
    Inspect(ChainArgs),
    /// Re-verify a recorded run against the ledger and show it.
    Replay(ChainArgs),
    /// Per-tenant accountability summary: runs, actions, blocked, escalated, cost.
    Audit {
        #[arg(long, value_parser = parse_tenant)]
        tenant: Option<TenantId>,
    },
    /// Approvals waiting for a human, and decisions on them.
    #[command(subcommand)]
    Approvals(ApprovalCommand),
    /// Personas: behavioral contracts.
    #[command(subcommand)]
    Persona(PersonaCommand),
    /// The tools the agent can use, and whether each is configured.
    Tools,
    /// API keys (`nxs_…`): created and shown once, stored only as hashes.
    #[command(subcommand)]
    Keys(KeyCommand),
    /// People who sign in to the web console (email and password).
    #[command(subcommand)]
    Users(UserCommand),
    /// Background jobs: list them, run one now, cancel or retry one.
    #[command(subcommand)]
    Jobs(JobCommand),
    /// Cron schedules that enqueue background jobs.
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// Add files to a tenant's knowledge base: text, Markdown, HTML and PDF; folders are walked.
    Ingest(IngestArgs),
    /// Take a consistent backup of the whole database (a running server may keep writing),
    /// verify its ledger, write its manifest and keep the newest ones.
    Backup {
        /// Where backups go (default: <data_dir>/backups).
        #[arg(long, value_name = "DIR")]
        to: Option<PathBuf>,
        /// How many backups to keep in that directory.
        #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=1000))]
        keep: u32,
    },
    /// Put a backup back in place of the database, after verifying it and keeping a safety copy
    /// of what it replaces. Stop every server first.
    Restore {
        /// The backup file (its manifest, FILE.manifest.json, must be beside it).
        file: PathBuf,
        /// Only verify the backup and say what would happen.
        #[arg(long)]
        dry_run: bool,
        /// Restore although a server seemed alive on the database in the last 15 s.
        #[arg(long)]
        force: bool,
    },
    /// Read and change the settings kept in the database (secrets sealed under the master key);
    /// running servers apply a change within a second.
    #[command(subcommand)]
    Settings(SettingsCommand),
    /// Plugins: the built-in optional capabilities and third-party MCP servers. Running servers
    /// follow a change within seconds.
    #[command(subcommand)]
    Plugins(PluginsCommand),
    /// What the assistant remembers of a person: list, forget (a tombstone), restore.
    #[command(subcommand)]
    Memory(MemoryCommand),
    /// Feeds and web pages watched on a schedule, their new items posted to a channel or a
    /// webhook: list, add, remove, poll now.
    #[command(subcommand)]
    Watchers(WatchersCommand),
    /// Measure the gates: replay recorded agent episodes through the real engine, gates,
    /// approvals and ledger on a scratch store.
    #[command(subcommand)]
    Eval(EvalCommand),
}

#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// Replay episodes (JSON Lines: task, calls with their recorded outputs) with a scripted
    /// model and recorded tools; say per call whether it executed, was held or was blocked.
    Replay {
        /// The episodes, one JSON object per line.
        #[arg(long, value_name = "FILE.jsonl")]
        episodes: PathBuf,
        /// The tools the episodes call: a JSON array of {name, description, parameters,
        /// state_changing}.
        #[arg(long, value_name = "FILE.tools.json")]
        tools: PathBuf,
        /// Print the summary as one JSON object.
        #[arg(long)]
        json: bool,
        /// Write each episode's result here, one JSON object per line.
        #[arg(long, value_name = "RESULTS.jsonl")]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum WatchersCommand {
    /// The tenant's watchers: what they watch, where they post, how their last poll went.
    List {
        #[arg(long, value_parser = parse_tenant, default_value = "demo")]
        tenant: TenantId,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Watch a feed (RSS, Atom, JSON Feed) or a part of a web page. The first poll records what
    /// exists without posting it; after that each new item is posted once.
    Add {
        /// A name, unique in the tenant.
        name: String,
        /// The feed's or page's http(s) URL.
        url: String,
        #[arg(long, value_parser = parse_tenant, default_value = "demo")]
        tenant: TenantId,
        /// Watch a web page instead of a feed: the text of the part `--selector` picks.
        #[arg(long)]
        page: bool,
        /// The CSS selector of the watched part of a page (default: its whole body).
        #[arg(long, requires = "page")]
        selector: Option<String>,
        /// Post to this Telegram chat (a number; groups and channels are negative).
        #[arg(long, group = "target")]
        telegram: Option<String>,
        /// Post to this Discord channel (its id).
        #[arg(long, group = "target")]
        discord: Option<String>,
        /// POST each item as JSON to this URL.
        #[arg(long, group = "target")]
        webhook: Option<String>,
        /// Summarise each item on this tier (trivial, normal, complex) before posting.
        #[arg(long)]
        summarise: Option<String>,
        /// At most this many posts per poll (default 5).
        #[arg(long)]
        max_posts: Option<u32>,
        /// When to poll, as a cron expression (default every 15 minutes).
        #[arg(long)]
        schedule: Option<String>,
        /// The schedule's IANA time zone (default UTC).
        #[arg(long)]
        timezone: Option<String>,
    },
    /// Stop watching: the watcher, its items and its schedule go.
    Remove {
        /// The watcher's id or name.
        watcher: String,
        #[arg(long, value_parser = parse_tenant, default_value = "demo")]
        tenant: TenantId,
    },
    /// Poll now and post what is new (within the watcher's cap).
    Poll {
        /// The watcher's id or name.
        watcher: String,
        #[arg(long, value_parser = parse_tenant, default_value = "demo")]
        tenant: TenantId,
    },
}

/// Whose memory a command is about.
#[derive(Debug, Args)]
pub struct MemoryOwner {
    #[arg(long, value_parser = parse_tenant, default_value = "demo")]
    pub tenant: TenantId,
    /// The person: a user id, or a subject such as `key:<id>`.
    #[arg(long)]
    pub user: String,
}

#[derive(Debug, Subcommand)]
pub enum MemoryCommand {
    /// The person's items, newest first.
    List {
        #[command(flatten)]
        owner: MemoryOwner,
        /// Only items whose text contains this.
        #[arg(long = "search", value_name = "TEXT")]
        search: Option<String>,
        /// Deleted items too.
        #[arg(long)]
        all: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete an item (a tombstone: its history stays, and `restore` brings it back).
    Forget {
        id: String,
        #[command(flatten)]
        owner: MemoryOwner,
    },
    /// Bring back an item's earlier text (default: the last before it was deleted).
    Restore {
        id: String,
        #[command(flatten)]
        owner: MemoryOwner,
        #[arg(long)]
        version: Option<i64>,
    },
}

#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// Every plugin with its state, tools and approved definitions.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Add an MCP server as a plugin (configured, not enabled: nothing runs until it is).
    /// Give `--command` (a local server over stdio, started with only the environment given
    /// here) or `--url` (a server over streamable HTTP).
    Add {
        name: String,
        /// The program of a stdio server.
        #[arg(long, conflicts_with = "url", required_unless_present = "url")]
        command: Option<String>,
        /// An argument for the program (repeat for several).
        #[arg(long = "arg", value_name = "ARG", allow_hyphen_values = true)]
        args: Vec<String>,
        /// A variable for the program, NAME=VALUE (repeat; values are sealed).
        #[arg(long = "env", value_name = "NAME=VALUE")]
        env: Vec<String>,
        /// The program's working directory.
        #[arg(long)]
        cwd: Option<String>,
        /// The address of a streamable HTTP server.
        #[arg(long)]
        url: Option<String>,
        /// A header for every request, NAME=VALUE (repeat; values are sealed).
        #[arg(long = "header", value_name = "NAME=VALUE")]
        headers: Vec<String>,
        #[command(flatten)]
        who: SettingsActor,
    },
    /// Switch a plugin on. For an MCP server this approves it: the tool definitions it shows
    /// now are pinned, and a later change to any of them disables it again.
    Enable {
        name: String,
        #[command(flatten)]
        who: SettingsActor,
    },
    /// Switch a plugin off: its tools are withdrawn, its server stopped.
    Disable {
        name: String,
        #[command(flatten)]
        who: SettingsActor,
    },
    /// Forget an MCP server.
    Remove {
        name: String,
        #[command(flatten)]
        who: SettingsActor,
    },
}

#[derive(Debug, Subcommand)]
pub enum SettingsCommand {
    /// Every setting: its value in force (secrets masked), where it comes from, when it applies.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One setting, with its type, default and documentation.
    Get { key: String },
    /// Store a value (checked against the whole configuration first; nothing changes on error).
    Set {
        key: String,
        /// The value; for a secret, leave it out to read it from standard input (kept out of
        /// the shell's history).
        value: Option<String>,
        #[command(flatten)]
        who: SettingsActor,
    },
    /// Forget the stored value: the setting falls back to its default.
    Unset {
        key: String,
        #[command(flatten)]
        who: SettingsActor,
    },
    /// Write the stored settings as JSON to standard output; secrets stay sealed (they open
    /// only under the same master key).
    Export,
    /// Store the settings of an export (a file, or - for standard input).
    Import {
        file: PathBuf,
        /// Also unset stored settings the export lacks.
        #[arg(long)]
        replace: bool,
        #[command(flatten)]
        who: SettingsActor,
    },
    /// Re-seal every secret under a new master key and write the key file (the old one is kept
    /// beside it as master.key.old). Restart every server with the new key afterwards.
    Rekey {
        /// A file holding the new key (64 hex digits); default: a new random key.
        #[arg(long, value_name = "FILE")]
        new_key_file: Option<PathBuf>,
    },
}

/// Whose ledger records a change made from the command line.
#[derive(Debug, Args)]
pub struct SettingsActor {
    /// The tenant whose ledger seals the change.
    #[arg(long, value_parser = parse_tenant, default_value = "demo")]
    pub tenant: TenantId,
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Files and folders to ingest (folders recursively, hidden entries skipped).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// The knowledge namespace to add them to, e.g. product_docs.
    #[arg(long)]
    pub namespace: String,
    #[arg(long, value_parser = parse_tenant, default_value = "demo")]
    pub tenant: TenantId,
    /// Who may read them: public, internal, restricted or confidential.
    #[arg(long, value_parser = parse_access, default_value = "internal")]
    pub access: AccessLevel,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create a key and print its secret (the only time it is shown).
    Create {
        #[arg(long, value_parser = parse_tenant, default_value = "demo")]
        tenant: TenantId,
        /// A label, e.g. the program that will use it.
        #[arg(long)]
        name: String,
        /// User level 0-5 the key acts at (3 and above may broadcast).
        #[arg(long, default_value_t = 0)]
        level: u8,
        /// `admin` keys may change personas and decide approvals; `member` keys may not.
        #[arg(long, default_value = "member", value_parser = ["member", "admin"])]
        role: String,
    },
    /// List a tenant's keys (prefixes only, never secrets).
    List {
        #[arg(long, value_parser = parse_tenant, default_value = "demo")]
        tenant: TenantId,
    },
    /// Revoke a key by id.
    Revoke {
        id: String,
        #[arg(long, value_parser = parse_tenant, default_value = "demo")]
        tenant: TenantId,
    },
}

#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// List a tenant's jobs, newest first.
    List {
        #[arg(long, value_parser = parse_tenant, default_value = "demo")]
        tenant: TenantId,
        /// Only jobs in this state: pending, running, completed, failed or cancelled.
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Enqueue a job and run it here, now, to its end; prints its result.
    Run {
        #[arg(long, value_parser = parse_tenant, default_value = "demo")]
        tenant: TenantId,
        #[command(flatten)]
        work: JobWork,
    },
    /// Cancel a pending job, or ask a running one to stop.
    Cancel {
        id: String,
        #[arg(long, value_parser = parse_tenant, default_value = "demo")]
        tenant: TenantId,
    },
    /// Make a failed or cancelled job pending again.
    Retry {
        id: String,
        #[arg(long, value_parser = parse_tenant, default_value = "demo")]
        tenant: TenantId,
    },
}

/// What a job does: exactly one of a piece of equipment, an agent task or a broadcast.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false, id = "work")]
pub struct JobWork {
    /// Run a piece of equipment (health_check, cost_report, log_rotate, ledger_checkpoint_export).
    #[arg(long)]
    pub equipment: Option<String>,
    /// Run an agent task (routed, gated, sealed and budgeted like any run).
    #[arg(long)]
    pub task: Option<String>,
    /// Send this message (Markdown) to the tenant's Telegram users.
    #[arg(long)]
    pub broadcast: Option<String>,
    /// The equipment's parameters as a JSON object, e.g. '{"days": 30}'.
    #[arg(long, requires = "equipment")]
    pub params: Option<String>,
    /// Only users at this level or above receive the broadcast.
    #[arg(long, requires = "broadcast")]
    pub min_level: Option<u8>,
}

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// List a tenant's schedules with their next planned runs.
    List {
        #[arg(long, value_parser = parse_tenant, default_value = "demo")]
        tenant: TenantId,
    },
    /// Add a schedule, e.g. `nexus schedule add nightly-health --cron "0 3 * * *" --timezone Europe/Rome --equipment health_check`.
    Add {
        name: String,
        /// Five fields (minute hour day-of-month month day-of-week) or six (seconds first).
        #[arg(long)]
        cron: String,
        /// An IANA time zone the expression is read in.
        #[arg(long, default_value = "UTC")]
        timezone: String,
        #[command(flatten)]
        work: JobWork,
        /// What to do about runs missed while no server ran: run_once or skip.
        #[arg(long, default_value = "run_once")]
        missed: String,
        #[arg(long, value_parser = parse_tenant, default_value = "demo")]
        tenant: TenantId,
    },
    /// Remove a schedule by id or name (the jobs it enqueued stay).
    Remove {
        schedule: String,
        #[arg(long, value_parser = parse_tenant, default_value = "demo")]
        tenant: TenantId,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a console user; prompts for the password (or reads it from stdin).
    Create {
        #[arg(long, value_parser = parse_tenant, default_value = "demo")]
        tenant: TenantId,
        /// What the person signs in with; unique across tenants.
        #[arg(long)]
        email: String,
        /// `admin` users manage keys, personas, users and approvals; `member` users may not.
        #[arg(long, value_parser = ["member", "admin"])]
        role: String,
        /// User level 0-5 (what the person may read; 3 and above may broadcast).
        #[arg(long, default_value_t = 0)]
        level: u8,
        /// Display name (default: the email).
        #[arg(long, default_value = "")]
        name: String,
        /// Read the password from the first line of stdin instead of prompting.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List a tenant's console users.
    List {
        #[arg(long, value_parser = parse_tenant, default_value = "demo")]
        tenant: TenantId,
    },
    /// Print a one-time code that links a Telegram or Discord account to a user: the person
    /// sends `/link CODE` to the bot within 15 minutes.
    LinkCode {
        #[arg(long, value_parser = parse_tenant, default_value = "demo")]
        tenant: TenantId,
        /// The console user's email.
        #[arg(long, conflicts_with = "user", required_unless_present = "user")]
        email: Option<String>,
        /// The user's id (for users without a console login, e.g. let in by an open channel).
        #[arg(long)]
        user: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// What to do, in plain words.
    pub task: String,
    /// Run every step as this persona.
    #[arg(long)]
    pub persona: Option<String>,
    /// Force the tier instead of the router's choice: trivial answers directly with no plan;
    /// normal and complex plan on that tier's model.
    #[arg(long, value_enum)]
    pub tier: Option<TierArg>,
    #[arg(long, value_parser = parse_tenant, default_value = "demo")]
    pub tenant: TenantId,
    /// A QA spec (JSON: format, completeness and security checks) the final answer must pass.
    #[arg(long, value_name = "FILE")]
    pub qa_spec: Option<PathBuf>,
    /// Who is asking (recorded; they cannot approve their own run's actions).
    #[arg(long, default_value = "cli")]
    pub user: String,
}

/// A model tier on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TierArg {
    Trivial,
    Normal,
    Complex,
}

impl From<TierArg> for engine::machine::ModelTier {
    fn from(tier: TierArg) -> Self {
        match tier {
            TierArg::Trivial => engine::machine::ModelTier::Trivial,
            TierArg::Normal => engine::machine::ModelTier::Normal,
            TierArg::Complex => engine::machine::ModelTier::Complex,
        }
    }
}

#[derive(Debug, Args)]
pub struct ChainArgs {
    #[arg(value_parser = parse_chain)]
    pub chain: ChainId,
    #[arg(long, value_parser = parse_tenant, default_value = "demo")]
    pub tenant: TenantId,
}

#[derive(Debug, Subcommand)]
pub enum ApprovalCommand {
    /// List approvals (default: pending).
    List {
        #[arg(long, value_parser = parse_tenant, default_value = "demo")]
        tenant: TenantId,
        /// pending, approved, denied, expired or all.
        #[arg(long, value_parser = parse_approval_filter, default_value = "pending")]
        status: ApprovalFilter,
    },
    /// Show one approval with the exact call it covers.
    Show {
        id: String,
        #[arg(long, value_parser = parse_tenant, default_value = "demo")]
        tenant: TenantId,
    },
    /// Approve the call and resume its run.
    Approve(DecisionArgs),
    /// Deny the call; its run stops.
    Deny(DecisionArgs),
}

#[derive(Debug, Args)]
pub struct DecisionArgs {
    pub id: String,
    #[arg(long, value_parser = parse_tenant, default_value = "demo")]
    pub tenant: TenantId,
    /// Who decides (must not be who asked).
    #[arg(long)]
    pub by: String,
    #[arg(long, default_value = "")]
    pub note: String,
}

#[derive(Debug, Subcommand)]
pub enum PersonaCommand {
    List {
        #[arg(long, value_parser = parse_tenant, default_value = "demo")]
        tenant: TenantId,
    },
    /// Add a persona (validated; the change is sealed in the ledger).
    Add {
        #[arg(long, value_parser = parse_tenant, default_value = "demo")]
        tenant: TenantId,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        /// Comma-separated tool names.
        #[arg(long, value_delimiter = ',')]
        tools: Vec<String>,
        /// Comma-separated resource scopes, e.g. kb:*,file:read:*.
        #[arg(long, value_delimiter = ',')]
        scopes: Vec<String>,
        /// Comma-separated intent patterns.
        #[arg(long, value_delimiter = ',')]
        intents: Vec<String>,
        #[arg(long, default_value_t = 120)]
        ttl: u32,
        /// low, medium, high or critical.
        #[arg(long, default_value = "medium")]
        risk: String,
    },
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Only this tenant.
    #[arg(long, value_parser = parse_tenant)]
    pub tenant: Option<TenantId>,
    /// Only this chain (needs --tenant).
    #[arg(long, requires = "tenant", value_parser = parse_chain)]
    pub chain: Option<ChainId>,
    /// Also check the database against a signed checkpoint kept elsewhere.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["chain", "bundle"])]
    pub checkpoint: Option<PathBuf>,
    /// Verify an inclusion-proof bundle offline, without a database.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["tenant", "chain"])]
    pub bundle: Option<PathBuf>,
    /// The ledger's public key (PEM, or the signed-note verifier key). Default: derived from
    /// the signing key file.
    #[arg(long, value_name = "FILE")]
    pub public_key: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Sign and print a checkpoint of a tenant's log (reuses the newest if nothing changed).
    Checkpoint {
        #[arg(long, value_parser = parse_tenant)]
        tenant: TenantId,
        /// Write to this file instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Export an inclusion-proof bundle for one entry, verifiable offline with `nexus verify --bundle`.
    Proof {
        #[arg(long, value_parser = parse_tenant)]
        tenant: TenantId,
        /// The entry's index in the tenant's log.
        #[arg(long)]
        index: u64,
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Print the ledger's public key.
    PublicKey {
        #[arg(long, value_enum, default_value_t = KeyFormat::Pem)]
        format: KeyFormat,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KeyFormat {
    /// SubjectPublicKeyInfo PEM (OpenSSL and most tools read it).
    Pem,
    /// The signed-note verifier key (`name+keyid+key`).
    Note,
}

fn parse_tenant(value: &str) -> Result<TenantId, String> {
    TenantId::parse(value).map_err(|e| e.to_string())
}

fn parse_access(value: &str) -> Result<AccessLevel, String> {
    AccessLevel::parse(value)
        .ok_or_else(|| format!("{value:?} is not an access level (public, internal, restricted, confidential)"))
}

/// Which approvals `nexus approvals list` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalFilter {
    All,
    Only(ApprovalStatus),
}

impl ApprovalFilter {
    /// The status to filter by, `None` for all.
    pub fn status(self) -> Option<ApprovalStatus> {
        match self {
            ApprovalFilter::All => None,
            ApprovalFilter::Only(status) => Some(status),
        }
    }
}

fn parse_approval_filter(value: &str) -> Result<ApprovalFilter, String> {
    if value == "all" {
        return Ok(ApprovalFilter::All);
    }
    value.parse::<ApprovalStatus>().map(ApprovalFilter::Only).map_err(|e| format!("{e} (or all)"))
}

fn parse_chain(value: &str) -> Result<ChainId, String> {
    ChainId::parse(value).map_err(|e| e.to_string())
}

impl Command {
    /// Whether the command serves (and so logs at `info` by default).
    pub fn is_server(&self) -> bool {
        matches!(self, Command::Serve { .. })
    }
}
