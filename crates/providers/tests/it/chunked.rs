//! A stream whose bytes arrive in awkward pieces over a real socket: cuts inside `data:` lines,
//! inside multi-byte characters and inside `[DONE]`. The fake server runs alongside the client
//! in the same task (`tokio::join!`), so nothing is spawned.

use std::time::Duration;

use providers::{FinishReason, ModelProvider, Usage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::support::{assemble, openai, weather_call, weather_request};

const BODY: &str = concat!(
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Il fait \"},\"finish_reason\":null}]}\n\n",
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"très beau 🌞 à Paris.\"},\"finish_reason\":null}]}\n\n",
    ": keep-alive\n\n",
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}]},\"finish_reason\":null}]}\n\n",
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"location\\\": \\\"Pa\"}}]},\"finish_reason\":null}]}\n\n",
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"ris\\\"}\"}}]},\"finish_reason\":\"tool_calls\"}]}\n\n",
    "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":7,\"total_tokens\":18}}\n\n",
    "data: [DONE]\n\n",
);

/// Byte offsets to cut the body at: inside the sun emoji and the `è`, inside a `data:` field
/// name, between a line's `\n` and the blank line, and inside `[DONE]`.
fn cuts() -> Vec<usize> {
    let sun = BODY.find('🌞').expect("the body has a sun");
    let grave = BODY.find('è').expect("the body has an è");
    let third_data = BODY.match_indices("data:").nth(2).expect("three events").0;
    let first_break = BODY.find("\n\n").expect("a blank line");
    let done = BODY.find("[DONE]").expect("the end marker");
    let mut cuts = vec![grave + 1, sun + 1, sun + 2, sun + 3, third_data + 2, first_break + 1, done + 3];
    cuts.sort_unstable();
    cuts.dedup();
    cuts
}

/// Answers one request with `BODY` in chunked transfer encoding, one HTTP chunk per piece,
/// pausing between pieces so they reach the client as separate reads.
async fn serve_in_pieces(listener: TcpListener) {
    let (mut socket, _) = listener.accept().await.expect("accept");
    let mut request = Vec::new();
    let mut buffer = [0_u8; 4096];
    loop {
        let read = socket.read(&mut buffer).await.expect("read the request");
        request.extend_from_slice(&buffer[..read]);
        if let Some(header_end) = request.windows(4).position(|window| window == b"\r\n\r\n") {
            let headers = String::from_utf8_lossy(&request[..header_end]).to_lowercase();
            let length: usize = headers
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .map_or(0, |value| value.trim().parse().expect("a numeric content-length"));
            if request.len() >= header_end + 4 + length {
                break;
            }
        }
        assert_ne!(read, 0, "client closed before sending its request");
    }
    let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
    socket.write_all(head.as_bytes()).await.expect("write the response");
    let bytes = BODY.as_bytes();
    let mut start = 0;
    for end in cuts().into_iter().chain([bytes.len()]) {
        let piece = &bytes[start..end];
        socket.write_all(format!("{:x}\r\n", piece.len()).as_bytes()).await.expect("write the response");
        socket.write_all(piece).await.expect("write the response");
        socket.write_all(b"\r\n").await.expect("write the response");
        socket.flush().await.expect("write the response");
        tokio::time::sleep(Duration::from_millis(15)).await;
        start = end;
    }
    socket.write_all(b"0\r\n\r\n").await.expect("write the response");
    socket.flush().await.expect("write the response");
}

#[tokio::test]
async fn events_split_anywhere_on_the_wire_are_reassembled() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    let provider = openai(&base_url);

    let client = async {
        let stream = provider.stream(&weather_request("gpt-4o-mini")).await.unwrap();
        assemble(stream).await.unwrap()
    };
    let ((), answer) = tokio::join!(serve_in_pieces(listener), client);

    assert_eq!(answer.text, "Il fait très beau 🌞 à Paris.");
    assert_eq!(answer.tool_calls, vec![weather_call("call_1")]);
    assert_eq!(answer.usage, Some(Usage { input_tokens: 11, output_tokens: 7 }));
    assert_eq!(answer.finish_reason, Some(FinishReason::ToolCalls));
}
