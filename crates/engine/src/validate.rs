//! Output validation: PII and secrets in tool results and answers, and QA specs (JSON with
//! format, completeness and security checks) for final answers.

use std::sync::OnceLock;

use regex::Regex;
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindingKind {
    Ssn,
    CardNumber,
    Email,
    ProviderKey,
    NexusKey,
    PrivateKey,
}

impl FindingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::Ssn => "US social security number",
            FindingKind::CardNumber => "payment card number",
            FindingKind::Email => "email address",
            FindingKind::ProviderKey => "provider API key",
            FindingKind::NexusKey => "Nexus API key",
            FindingKind::PrivateKey => "private key",
        }
    }
}

/// Something sensitive found in a text. `masked` shows only its edges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub kind: FindingKind,
    pub masked: String,
    /// Byte range in the scanned text.
    pub range: std::ops::Range<usize>,
}

struct Patterns {
    ssn: Regex,
    card: Regex,
    email: Regex,
    provider: Regex,
    nexus: Regex,
    private_key: Regex,
}

fn patterns() -> &'static Patterns {
    static PATTERNS: OnceLock<Patterns> = OnceLock::new();
    PATTERNS.get_or_init(|| {
        // Constant patterns: a typo fails every test that scans, never a user's request.
        #[allow(clippy::expect_used)]
        let re = |p: &str| Regex::new(p).expect("constant pattern compiles");
        Patterns {
            ssn: re(r"\b(\d{3})-(\d{2})-(\d{4})\b"),
            card: re(r"\b\d(?:[ -]?\d){12,18}\b"),
            email: re(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b"),
            provider: re(
                r"\b(?:sk-ant-[A-Za-z0-9_-]{20,}|sk-(?:proj-)?[A-Za-z0-9_-]{20,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{36,}|xox[abprs]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35})",
            ),
            nexus: re(r"\bnxs_[A-Za-z0-9_-]{16,}"),
            private_key: re(r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----"),
        }
    })
}

fn mask(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= 6 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 2..].iter().collect();
    format!("{head}…{tail}")
}

/// The Luhn checksum, which real card numbers pass and most digit runs do not.
pub fn luhn_valid(digits: &str) -> bool {
    let digits: Vec<u32> = digits.chars().filter_map(|c| c.to_digit(10)).collect();
    if digits.len() < 13 {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| if i % 2 == 1 { if d * 2 > 9 { d * 2 - 9 } else { d * 2 } } else { *d })
        .sum();
    sum.is_multiple_of(10)
}

/// Scans a text for PII and secrets. Emails count only where they are unexpected.
pub fn scan(text: &str, emails_expected: bool) -> Vec<Finding> {
    let p = patterns();
    let mut found = Vec::new();
    for caps in p.ssn.captures_iter(text) {
        let (area, group, serial) = (&caps[1], &caps[2], &caps[3]);
        let plausible = area != "000" && area != "666" && !area.starts_with('9') && group != "00" && serial != "0000";
        if plausible {
            let whole = caps.get(0).map_or(0..0, |m| m.range());
            found.push(Finding { kind: FindingKind::Ssn, masked: mask(&caps[0]), range: whole });
        }
    }
    for m in p.card.find_iter(text) {
        if luhn_valid(m.as_str()) {
            found.push(Finding { kind: FindingKind::CardNumber, masked: mask(m.as_str()), range: m.range() });
        }
    }
    if !emails_expected {
        for m in p.email.find_iter(text) {
            found.push(Finding { kind: FindingKind::Email, masked: mask(m.as_str()), range: m.range() });
        }
    }
    for (regex, kind) in [
        (&p.provider, FindingKind::ProviderKey),
        (&p.nexus, FindingKind::NexusKey),
        (&p.private_key, FindingKind::PrivateKey),
    ] {
        for m in regex.find_iter(text) {
            found.push(Finding { kind, masked: mask(m.as_str()), range: m.range() });
        }
    }
    found
}

/// The text with every finding replaced by `[redacted: kind]`.
pub fn redact(text: &str, findings: &[Finding]) -> String {
    let mut ranges: Vec<(std::ops::Range<usize>, FindingKind)> =
        findings.iter().map(|f| (f.range.clone(), f.kind)).collect();
    ranges.sort_by_key(|(r, _)| r.start);
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (range, kind) in ranges {
        if range.start < at || range.end > text.len() {
            continue;
        }
        out.push_str(&text[at..range.start]);
        out.push_str(&format!("[redacted: {}]", kind.as_str()));
        at = range.end;
    }
    out.push_str(&text[at..]);
    out
}

/// Every string in a JSON value with secrets and PII redacted (email addresses are kept: in a
/// seal they say who an action addressed).
pub fn redact_json(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(text) => {
            let findings = scan(&text, true);
            if findings.is_empty() { Value::String(text) } else { Value::String(redact(&text, &findings)) }
        }
        Value::Array(items) => Value::Array(items.into_iter().map(redact_json).collect()),
        Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (k, redact_json(v))).collect()),
        other => other,
    }
}

/// A QA spec: JSON with a `name` and optional `format`, `completeness` and `security` checks.
/// Fields about running commands (`command`, `timeout_seconds`, `expected_exit_code`,
/// `code_execution`) apply to work orders, not to model answers, and are refused rather than
/// silently ignored.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QaSpec {
    pub name: String,
    #[serde(default)]
    pub format: Option<FormatCheck>,
    #[serde(default)]
    pub completeness: Option<CompletenessCheck>,
    #[serde(default)]
    pub security: Option<SecurityCheck>,
    #[serde(default)]
    command: Option<serde_json::Value>,
    #[serde(default)]
    timeout_seconds: Option<serde_json::Value>,
    #[serde(default)]
    expected_exit_code: Option<serde_json::Value>,
    #[serde(default)]
    code_execution: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormatCheck {
    /// `json`, `text` or `markdown`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub required_keys: Vec<String>,
    /// A regular expression the whole answer must match somewhere.
    #[serde(default)]
    pub pattern: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompletenessCheck {
    #[serde(default)]
    pub required_substrings: Vec<String>,
    #[serde(default)]
    pub forbidden_substrings: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityCheck {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub check_placeholders: bool,
    #[serde(default)]
    pub forbidden_patterns: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QaSpecError {
    #[error("QA spec is not valid JSON of the expected shape: {0}")]
    Malformed(String),
    #[error("QA spec {name:?}: field {field} runs commands, which does not apply to model answers")]
    Unsupported { name: String, field: &'static str },
    #[error("QA spec {name:?}: format.type {kind:?} is not json, text or markdown")]
    UnknownFormat { name: String, kind: String },
    #[error("QA spec {name:?}: pattern {pattern:?} is not a valid regular expression: {reason}")]
    BadPattern { name: String, pattern: String, reason: String },
}

/// What a QA check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QaReport {
    pub spec: String,
    pub failures: Vec<String>,
}

impl QaReport {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

const PLACEHOLDERS: &[&str] = &["TODO", "FIXME", "TBD", "lorem ipsum", "<placeholder>", "[insert"];

impl QaSpec {
    /// Parses and checks a spec, compiling its patterns once.
    pub fn parse(json: &str) -> Result<Self, QaSpecError> {
        let spec: QaSpec = serde_json::from_str(json).map_err(|e| QaSpecError::Malformed(e.to_string()))?;
        let name = spec.name.clone();
        if spec.command.is_some() || spec.expected_exit_code.is_some() || spec.timeout_seconds.is_some() {
            return Err(QaSpecError::Unsupported { name, field: "command" });
        }
        if spec.code_execution.as_ref().is_some_and(|c| c.get("enabled").and_then(|e| e.as_bool()).unwrap_or(false)) {
            return Err(QaSpecError::Unsupported { name, field: "code_execution" });
        }
        if let Some(format) = &spec.format {
            if !matches!(format.kind.as_str(), "json" | "text" | "markdown") {
                return Err(QaSpecError::UnknownFormat { name, kind: format.kind.clone() });
            }
            if let Some(pattern) = &format.pattern {
                Regex::new(pattern).map_err(|e| QaSpecError::BadPattern {
                    name: name.clone(),
                    pattern: pattern.clone(),
                    reason: e.to_string(),
                })?;
            }
        }
        for pattern in spec.security.iter().flat_map(|s| &s.forbidden_patterns) {
            Regex::new(pattern).map_err(|e| QaSpecError::BadPattern {
                name: name.clone(),
                pattern: pattern.clone(),
                reason: e.to_string(),
            })?;
        }
        Ok(spec)
    }

    /// Checks an answer against the spec.
    pub fn check(&self, answer: &str) -> QaReport {
        let mut failures = Vec::new();
        if let Some(format) = &self.format {
            if format.kind == "json" {
                match serde_json::from_str::<serde_json::Value>(answer.trim()) {
                    Err(e) => failures.push(format!("format: answer is not JSON ({e})")),
                    Ok(value) => {
                        for key in &format.required_keys {
                            if value.get(key).is_none() {
                                failures.push(format!("format: required key {key:?} is missing"));
                            }
                        }
                    }
                }
            }
            if let Some(pattern) = &format.pattern
                && let Ok(re) = Regex::new(pattern)
                && !re.is_match(answer)
            {
                failures.push(format!("format: answer does not match {pattern:?}"));
            }
        }
        if let Some(c) = &self.completeness {
            for s in &c.required_substrings {
                if !answer.contains(s.as_str()) {
                    failures.push(format!("completeness: {s:?} is missing"));
                }
            }
            for s in &c.forbidden_substrings {
                if answer.contains(s.as_str()) {
                    failures.push(format!("completeness: forbidden {s:?} present"));
                }
            }
        }
        if let Some(sec) = self.security.as_ref().filter(|s| s.enabled) {
            for finding in scan(answer, false) {
                failures.push(format!("security: {} present ({})", finding.kind.as_str(), finding.masked));
            }
            if sec.check_placeholders {
                let lower = answer.to_lowercase();
                for p in PLACEHOLDERS.iter().filter(|p| lower.contains(&p.to_lowercase())) {
                    failures.push(format!("security: placeholder {p:?} present"));
                }
            }
            for pattern in &sec.forbidden_patterns {
                if Regex::new(pattern).is_ok_and(|re| re.is_match(answer)) {
                    failures.push(format!("security: forbidden pattern {pattern:?} matched"));
                }
            }
        }
        QaReport { spec: self.name.clone(), failures }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str, emails_expected: bool) -> Vec<FindingKind> {
        scan(text, emails_expected).into_iter().map(|f| f.kind).collect()
    }

    #[test]
    fn finds_pii_and_secrets_and_spares_lookalikes() {
        assert_eq!(kinds("ssn 123-45-6789", true), [FindingKind::Ssn]);
        assert!(kinds("ticket 000-12-3456 and 123-00-4567", true).is_empty(), "invalid SSN ranges");
        assert_eq!(kinds("card 4111 1111 1111 1111", true), [FindingKind::CardNumber]);
        assert!(kinds("order 4111 1111 1111 1112", true).is_empty(), "fails Luhn");
        assert_eq!(kinds("mail me at ada@example.org", false), [FindingKind::Email]);
        assert!(kinds("mail me at ada@example.org", true).is_empty(), "emails expected here");
        assert_eq!(kinds("key sk-ant-api03-abcdefghijklmnopqrstuvwxyz", true), [FindingKind::ProviderKey]);
        assert_eq!(kinds("AKIAIOSFODNN7EXAMPLE", true), [FindingKind::ProviderKey]);
        assert_eq!(kinds("nxs_0123456789abcdefXYZ", true), [FindingKind::NexusKey]);
        assert_eq!(kinds("-----BEGIN PRIVATE KEY-----", true), [FindingKind::PrivateKey]);
        assert!(kinds("The meeting is at 10:30 on 2026-11-21, room 4.", false).is_empty());
        let f = &scan("sk-proj-abcdefghijklmnopqrstuvwxyz", true)[0];
        assert!(!f.masked.contains("abcdefghij"), "findings never echo the secret");
        let text = "call 123-45-6789 or write ada@example.org";
        assert_eq!(
            redact(text, &scan(text, false)),
            "call [redacted: US social security number] or write [redacted: email address]"
        );
    }

    #[test]
    fn json_values_are_redacted_string_by_string() {
        let value = serde_json::json!({"task": "pay with 4111 1111 1111 1111", "to": ["ada@example.org"], "n": 3});
        let clean = redact_json(value);
        assert_eq!(clean["task"], "pay with [redacted: payment card number]");
        assert_eq!(clean["to"][0], "ada@example.org", "emails stay: they say who was addressed");
        assert_eq!(clean["n"], 3);
    }

    #[test]
    fn qa_specs_in_seed_001_format_check_answers() {
        let spec = QaSpec::parse(
            r#"{"name": "json answer", "format": {"type": "json", "required_keys": ["status", "result"]},
                "completeness": {"required_substrings": ["success"], "forbidden_substrings": ["TODO"]},
                "security": {"enabled": true, "check_placeholders": true, "forbidden_patterns": ["sk-[a-zA-Z0-9]{20,}"]}}"#,
        )
        .expect("valid spec");
        assert!(spec.check(r#"{"status": "success", "result": 3}"#).passed());
        let report = spec.check(r#"{"status": "TODO"}"#);
        assert!(!report.passed());
        assert!(report.failures.iter().any(|f| f.contains("\"result\" is missing")), "{report:?}");
        assert!(report.failures.iter().any(|f| f.contains("\"success\" is missing")));
        assert!(report.failures.iter().any(|f| f.contains("placeholder")));
        assert!(!spec.check("not json").passed());
    }

    #[test]
    fn bad_specs_are_refused_with_the_reason() {
        assert!(matches!(QaSpec::parse("{"), Err(QaSpecError::Malformed(_))));
        assert!(matches!(QaSpec::parse(r#"{"name":"x","surprise":1}"#), Err(QaSpecError::Malformed(_))));
        assert!(matches!(QaSpec::parse(r#"{"name":"x","command":"echo"}"#), Err(QaSpecError::Unsupported { .. })));
        assert!(matches!(
            QaSpec::parse(r#"{"name":"x","format":{"type":"xml"}}"#),
            Err(QaSpecError::UnknownFormat { .. })
        ));
        assert!(matches!(
            QaSpec::parse(r#"{"name":"x","security":{"enabled":true,"forbidden_patterns":["("]}}"#),
            Err(QaSpecError::BadPattern { .. })
        ));
    }
}
