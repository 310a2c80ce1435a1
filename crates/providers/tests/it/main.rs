//! The providers crate's one integration-test binary: each vendor client against a fake server
//! speaking that vendor's real wire format, plus retries, breakers, deadlines and fallbacks.

mod anthropic;
mod chunked;
mod config;
mod fallback;
mod ollama;
mod openai;
mod resilience;
mod support;
