//! `weather`: current conditions for a place from a wttr.in-style service (`?format=j1`),
//! as structured data plus a one-line summary with an emoji, the way a chat assistant shows it.

use std::time::Duration;

use async_trait::async_trait;
use domain::persona::RiskLevel;
use domain::tool::ToolDefinition;
use reqwest::StatusCode;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use url::Url;

use super::params::{invalid, parse, schema};
use super::{BuiltinSettings, http};
use crate::{Availability, Tool, ToolContext, ToolError};

pub const NAME: &str = "weather";
const MAX_LOCATION_CHARS: usize = 100;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Params {
    /// A city or place name, e.g. "Paris" or "New York".
    location: String,
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    current_condition: Vec<Current>,
    #[serde(default)]
    nearest_area: Vec<Area>,
}

#[derive(Deserialize)]
struct Current {
    #[serde(rename = "temp_C")]
    temp_c: Number,
    #[serde(rename = "FeelsLikeC")]
    feels_like_c: Number,
    humidity: Number,
    #[serde(rename = "windspeedKmph")]
    wind_kmph: Number,
    #[serde(rename = "weatherDesc", default)]
    weather_desc: Vec<Text>,
}

#[derive(Deserialize)]
struct Area {
    #[serde(rename = "areaName", default)]
    area_name: Vec<Text>,
    #[serde(default)]
    country: Vec<Text>,
}

#[derive(Deserialize)]
struct Text {
    value: String,
}

/// wttr.in sends numbers as strings; accept either.
#[derive(Deserialize)]
#[serde(untagged)]
enum Number {
    Number(f64),
    Text(String),
}

impl Number {
    fn value(&self, field: &str) -> Result<f64, ToolError> {
        let parsed = match self {
            Number::Number(n) => Some(*n),
            Number::Text(text) => text.trim().parse::<f64>().ok(),
        };
        parsed.filter(|n| n.is_finite()).ok_or_else(|| ToolError::Failed {
            message: format!("weather: the service sent a malformed {field}"),
            transient: false,
        })
    }
}

/// Reports the weather.
pub struct Weather {
    /// The service's base URL, or what is wrong with the configured one.
    base_url: Result<Url, String>,
    timeout: Duration,
}

impl Weather {
    pub fn new(settings: &BuiltinSettings) -> Self {
        let base_url = Url::parse(&settings.weather_base_url)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https") && !url.cannot_be_a_base())
            .ok_or_else(|| "a valid NEXUS_WEATHER_BASE_URL".to_owned());
        Self { base_url, timeout: settings.http_timeout }
    }
}

/// An emoji for a condition description.
fn emoji(condition: &str) -> &'static str {
    let condition = condition.to_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| condition.contains(w));
    if has(&["thunder"]) {
        "⛈️"
    } else if has(&["snow", "sleet", "blizzard", "ice", "hail"]) {
        "❄️"
    } else if has(&["rain", "drizzle", "shower"]) {
        "🌧️"
    } else if has(&["fog", "mist", "haze"]) {
        "🌫️"
    } else if has(&["partly"]) {
        "⛅"
    } else if has(&["cloud", "overcast"]) {
        "☁️"
    } else if has(&["sun", "clear"]) {
        "☀️"
    } else {
        "🌡️"
    }
}

/// `12`, not `12.0`.
fn number(value: f64) -> String {
    if value.fract() == 0.0 { format!("{value:.0}") } else { format!("{value:.1}") }
}

fn describe(requested: &str, answer: Answer) -> Result<Value, ToolError> {
    let current = answer.current_condition.into_iter().next().ok_or_else(|| ToolError::Failed {
        message: format!("weather: no current conditions for {requested:?}"),
        transient: false,
    })?;
    let temperature = current.temp_c.value("temp_C")?;
    let feels_like = current.feels_like_c.value("FeelsLikeC")?;
    let humidity = current.humidity.value("humidity")?;
    let wind = current.wind_kmph.value("windspeedKmph")?;
    let condition = current.weather_desc.into_iter().next().map(|t| t.value.trim().to_owned()).unwrap_or_default();
    let area = answer.nearest_area.into_iter().next();
    let area_name = area.as_ref().and_then(|a| a.area_name.first()).map(|t| t.value.trim().to_owned());
    let country = area.as_ref().and_then(|a| a.country.first()).map(|t| t.value.trim().to_owned());
    let place = area_name.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| requested.to_owned());
    let shown_condition = if condition.is_empty() { "Unknown conditions" } else { condition.as_str() };
    let summary = format!(
        "{} {place}: {shown_condition}, {}°C (feels like {}°C), humidity {}%, wind {} km/h",
        emoji(&condition),
        number(temperature),
        number(feels_like),
        number(humidity),
        number(wind),
    );
    Ok(json!({
        "location": requested,
        "area": area_name,
        "country": country,
        "condition": condition,
        "temperature_c": temperature,
        "feels_like_c": feels_like,
        "humidity_percent": humidity,
        "wind_kmph": wind,
        "summary": summary,
    }))
}

#[async_trait]
impl Tool for Weather {
    fn definition(&self) -> ToolDefinition {
        ToolDefinition {
            name: NAME.to_owned(),
            description: "Current weather for a place: temperature, feels-like, humidity, wind and a summary."
                .to_owned(),
            parameters: schema::<Params>(),
            risk_level: RiskLevel::Low,
            resource_pattern: "weather:*".to_owned(),
            resource_args: Vec::new(),
            timeout_seconds: u32::try_from(self.timeout.as_secs().saturating_add(5)).unwrap_or(u32::MAX),
            requires_approval: false,
            state_changing: false,
            untrusted_output: true,
        }
    }

    fn availability(&self) -> Availability {
        match &self.base_url {
            Ok(_) => Availability::Available,
            Err(missing) => Availability::Unconfigured { missing: missing.clone() },
        }
    }

    async fn call(&self, _context: &ToolContext, params: Value) -> Result<Value, ToolError> {
        let base_url = self
            .base_url
            .as_ref()
            .map_err(|missing| ToolError::Unavailable { tool: NAME.to_owned(), reason: format!("set {missing}") })?;
        let params: Params = parse(params)?;
        let location = params.location.trim();
        if location.is_empty() {
            return Err(invalid("location", "must not be empty"));
        }
        if location.chars().count() > MAX_LOCATION_CHARS || location.chars().any(char::is_control) {
            return Err(invalid("location", format!("must be one line of at most {MAX_LOCATION_CHARS} characters")));
        }
        let mut url = base_url.clone();
        url.path_segments_mut()
            .map_err(|()| ToolError::Unavailable {
                tool: NAME.to_owned(),
                reason: "the base URL cannot take a path".to_owned(),
            })?
            .pop_if_empty()
            .push(location);
        url.query_pairs_mut().append_pair("format", "j1");

        let response =
            http::service_client(self.timeout)?.get(url).send().await.map_err(|e| http::request_failed(NAME, &e))?;
        match response.status() {
            status if status.is_success() => {}
            StatusCode::NOT_FOUND => {
                return Err(ToolError::Failed {
                    message: format!("weather: unknown location {location:?}"),
                    transient: false,
                });
            }
            status => return Err(http::status_failed(NAME, status)),
        }
        let answer: Answer = http::read_json(NAME, response).await?;
        describe(location, answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_get_an_emoji() {
        let cases = [
            ("Sunny", "☀️"),
            ("Clear", "☀️"),
            ("Partly cloudy", "⛅"),
            ("Overcast", "☁️"),
            ("Light rain shower", "🌧️"),
            ("Patchy light drizzle", "🌧️"),
            ("Moderate or heavy snow with thunder", "⛈️"),
            ("Light sleet", "❄️"),
            ("Mist", "🌫️"),
            ("", "🌡️"),
        ];
        for (condition, expected) in cases {
            assert_eq!(emoji(condition), expected, "{condition}");
        }
        assert_eq!(number(12.0), "12");
        assert_eq!(number(-3.5), "-3.5");
    }
}
