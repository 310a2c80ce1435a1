//! The console's texts in English and Italian: two TOML catalogues compiled into the binary,
//! flattened to `section.key`, and the language chosen per request (the user's setting, then
//! `Accept-Language`, then English). Never process-global: each page carries its catalogue.

use std::collections::HashMap;
use std::sync::LazyLock;

/// A language the console speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    It,
}

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::En, Lang::It];

    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::It => "it",
        }
    }

    /// The language's own name, for the picker.
    pub fn native_name(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::It => "Italiano",
        }
    }

    pub fn parse(code: &str) -> Option<Lang> {
        let primary = code.trim().split(['-', '_']).next().unwrap_or_default().to_ascii_lowercase();
        match primary.as_str() {
            "en" => Some(Lang::En),
            "it" => Some(Lang::It),
            _ => None,
        }
    }

    /// The user's choice if any, else the best of `Accept-Language` (by q-value), else English.
    pub fn choose(user: Option<&str>, accept_language: Option<&str>) -> Lang {
        if let Some(lang) = user.and_then(Lang::parse) {
            return lang;
        }
        let mut best: Option<(f32, Lang)> = None;
        for part in accept_language.unwrap_or_default().split(',') {
            let mut pieces = part.split(';');
            let Some(lang) = pieces.next().and_then(Lang::parse) else { continue };
            let q = pieces.find_map(|p| p.trim().strip_prefix("q=").and_then(|q| q.parse::<f32>().ok())).unwrap_or(1.0);
            if q > 0.0 && best.is_none_or(|(b, _)| q > b) {
                best = Some((q, lang));
            }
        }
        best.map_or(Lang::En, |(_, lang)| lang)
    }

    pub fn catalog(self) -> &'static Catalog {
        match self {
            Lang::En => &EN,
            Lang::It => &IT,
        }
    }
}

/// One language's texts.
#[derive(Debug)]
pub struct Catalog {
    texts: HashMap<String, String>,
}

impl Catalog {
    fn parse(source: &str, name: &str) -> Catalog {
        let mut texts = HashMap::new();
        match source.parse::<toml::Table>() {
            Ok(table) => flatten("", &table, &mut texts),
            // The catalogues are compiled in and checked by a test; a broken one shows keys.
            Err(error) => tracing::error!(%error, catalogue = name, "console catalogue does not parse"),
        }
        Catalog { texts }
    }

    /// The text for `key`; the key itself when missing (a test keeps that from shipping).
    pub fn get<'a>(&'a self, key: &'a str) -> &'a str {
        self.texts.get(key).map_or(key, String::as_str)
    }

    /// The text with `{name}` placeholders filled.
    pub fn fill(&self, key: &str, values: &[(&str, &str)]) -> String {
        let mut text = self.get(key).to_owned();
        for (name, value) in values {
            text = text.replace(&format!("{{{name}}}"), value);
        }
        text
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.texts.keys().map(String::as_str)
    }
}

fn flatten(prefix: &str, table: &toml::Table, out: &mut HashMap<String, String>) {
    for (key, value) in table {
        let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        match value {
            toml::Value::Table(inner) => flatten(&path, inner, out),
            toml::Value::String(text) => {
                out.insert(path, text.clone());
            }
            other => {
                out.insert(path, other.to_string());
            }
        }
    }
}

static EN: LazyLock<Catalog> = LazyLock::new(|| Catalog::parse(include_str!("../locales/en.toml"), "en.toml"));
static IT: LazyLock<Catalog> = LazyLock::new(|| Catalog::parse(include_str!("../locales/it.toml"), "it.toml"));

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn both_catalogues_parse_and_have_the_same_keys() {
        for (name, source) in [("en", include_str!("../locales/en.toml")), ("it", include_str!("../locales/it.toml"))] {
            source.parse::<toml::Table>().unwrap_or_else(|e| panic!("{name}.toml: {e}"));
        }
        let en: BTreeSet<&str> = Lang::En.catalog().keys().collect();
        let it: BTreeSet<&str> = Lang::It.catalog().keys().collect();
        assert!(en.len() > 50, "{}", en.len());
        let only_en: Vec<_> = en.difference(&it).collect();
        let only_it: Vec<_> = it.difference(&en).collect();
        assert!(only_en.is_empty() && only_it.is_empty(), "missing in it: {only_en:?}; missing in en: {only_it:?}");
    }

    #[test]
    fn every_key_the_templates_and_code_use_exists() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut used = BTreeSet::new();
        for dir in ["templates", "src"] {
            for entry in std::fs::read_dir(root.join(dir)).expect("dir") {
                let path = entry.expect("entry").path();
                let text = std::fs::read_to_string(&path).expect("read");
                // Keys appear as page.tr(…), a fill(…) call or a `key:` / `label:` field, each with
                // a quoted dotted name.
                for marker in ["tr(\"", "fill(\"", "key: \"", "label: \"", "get(\""] {
                    for piece in text.split(marker).skip(1) {
                        if let Some(key) = piece.split('"').next().filter(|k| k.contains('.') && !k.contains(' ')) {
                            used.insert(key.to_owned());
                        }
                    }
                }
            }
        }
        assert!(used.len() > 40, "found {} keys: the scan is broken", used.len());
        for lang in Lang::ALL {
            let missing: Vec<_> = used.iter().filter(|k| lang.catalog().get(k) == k.as_str()).collect();
            assert!(missing.is_empty(), "{}: missing {missing:?}", lang.code());
        }
    }

    #[test]
    fn the_user_setting_wins_then_the_browser_by_quality() {
        assert_eq!(Lang::choose(Some("it"), Some("en")), Lang::It);
        assert_eq!(Lang::choose(None, Some("it-IT,it;q=0.9,en;q=0.8")), Lang::It);
        assert_eq!(Lang::choose(None, Some("de,en;q=0.5,it;q=0.7")), Lang::It);
        assert_eq!(Lang::choose(None, Some("fr")), Lang::En);
        assert_eq!(Lang::choose(Some("xx"), None), Lang::En);
        assert_eq!(
            Lang::It.catalog().fill("login.throttled", &[("secs", "30")]),
            "Troppi tentativi. Riprova tra 30 secondi."
        );
    }
}
