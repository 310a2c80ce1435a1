//! `weather` against a wttr.in-style mock: success, unknown places and malformed answers.

use serde_json::json;
use tools::builtin::Weather;
use tools::{BuiltinSettings, Tool};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{failed, invalid_param, no_files, settings};

fn weather(server: &MockServer) -> Weather {
    Weather::new(&BuiltinSettings { weather_base_url: server.uri(), ..settings() })
}

fn j1(temp: &str, condition: &str) -> serde_json::Value {
    json!({
        "current_condition": [{
            "FeelsLikeC": "-2", "humidity": "81", "temp_C": temp, "windspeedKmph": "15",
            "weatherDesc": [{"value": condition}], "pressure": "1012"
        }],
        "nearest_area": [{"areaName": [{"value": "New York"}], "country": [{"value": "United States of America"}]}],
        "weather": []
    })
}

#[tokio::test]
async fn current_conditions_are_summarised() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/New%20York"))
        .and(query_param("format", "j1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(j1("1", "Light snow")))
        .expect(1)
        .mount(&server)
        .await;
    let result = weather(&server).call(&no_files(), json!({"location": " New York "})).await.unwrap();
    assert_eq!(
        result,
        json!({
            "location": "New York",
            "area": "New York",
            "country": "United States of America",
            "condition": "Light snow",
            "temperature_c": 1.0,
            "feels_like_c": -2.0,
            "humidity_percent": 81.0,
            "wind_kmph": 15.0,
            "summary": "❄️ New York: Light snow, 1°C (feels like -2°C), humidity 81%, wind 15 km/h",
        })
    );
}

#[tokio::test]
async fn an_unknown_location_fails_for_good() {
    let server = MockServer::start().await;
    Mock::given(path("/Atlantis"))
        .respond_with(ResponseTemplate::new(404).set_body_string("Unknown location"))
        .mount(&server)
        .await;
    let (message, transient) = failed(weather(&server).call(&no_files(), json!({"location": "Atlantis"})).await);
    assert!(message.contains("Atlantis") && !transient, "{message}");
}

#[tokio::test]
async fn malformed_answers_fail() {
    let server = MockServer::start().await;
    Mock::given(path("/Broken"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{not json"))
        .mount(&server)
        .await;
    Mock::given(path("/Empty"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"current_condition": []})))
        .mount(&server)
        .await;
    Mock::given(path("/Garbled"))
        .respond_with(ResponseTemplate::new(200).set_body_json(j1("warm", "Sunny")))
        .mount(&server)
        .await;
    Mock::given(path("/Down")).respond_with(ResponseTemplate::new(503)).mount(&server).await;
    let tool = weather(&server);
    for location in ["Broken", "Empty", "Garbled"] {
        let (_, transient) = failed(tool.call(&no_files(), json!({"location": location})).await);
        assert!(!transient, "{location}");
    }
    let (_, transient) = failed(tool.call(&no_files(), json!({"location": "Down"})).await);
    assert!(transient);
}

#[tokio::test]
async fn bad_locations_are_refused() {
    let tool = Weather::new(&settings());
    for params in
        [json!({}), json!({"location": ""}), json!({"location": "a\nb"}), json!({"location": "x".repeat(101)})]
    {
        assert_eq!(invalid_param(tool.call(&no_files(), params).await), "location");
    }
    assert_eq!(invalid_param(tool.call(&no_files(), json!({"location": "Paris", "units": "F"})).await), "units");
}
