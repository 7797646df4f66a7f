//! Per-workload request options reach the server: a loopback server records
//! every request body and path, and each entry's API, model, streaming, stop
//! sequences and extra body fields are checked on the requests it sent — and
//! with a `tokenizer.json` in the plan, prompts are made only of words that
//! are one token each for it.

use stampede_tests::{Proc, bin, plan_file};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Seen = Arc<Mutex<Vec<(String, serde_json::Value)>>>;

/// Serve one keep-alive connection: record each POST, answer it (SSE when
/// the body asks to stream).
fn serve(stream: TcpStream, seen: Seen) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut out = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0usize;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            if h == "\r\n" {
                break;
            }
            if let Some((k, v)) = h.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let path = request_line.split(' ').nth(1).unwrap_or("").to_string();
        let (content_type, reply) = if request_line.starts_with("POST") {
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let stream = v["stream"] == true;
            seen.lock().unwrap().push((path, v));
            let chunk = r#"{"choices":[{"index":0,"text":"hi","delta":{"content":"hi"},"message":{"role":"assistant","content":"hi"},"finish_reason":"length"}]"#;
            let usage = r#""usage":{"prompt_tokens":5,"completion_tokens":1}}"#;
            if stream {
                (
                    "text/event-stream",
                    format!(
                        "data: {chunk}}}\n\ndata: {{\"choices\":[],{usage}\n\ndata: [DONE]\n\n"
                    ),
                )
            } else {
                ("application/json", format!("{chunk},{usage}"))
            }
        } else {
            ("application/json", r#"{"data":[]}"#.to_string())
        };
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n",
            reply.len()
        );
        if out.write_all(head.as_bytes()).is_err() || out.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

const ENTRIES: &str = r#"
[[workload]]
name = "options"
input = { dist = "fixed", value = 5 }
output = { dist = "fixed", value = 3 }
api = "completions"
model = "other-model"
stream = false
stop = ["\n\n", "END"]
extra_body = { top_p = 0.5, seed = 7, chat_template_kwargs = { enable_thinking = false } }

[[workload]]
name = "plain"
input = { dist = "fixed", value = 5 }
output = { dist = "fixed", value = 3 }
"#;

fn plan(url: &str, entries: &str) -> String {
    format!(
        r#"
[agents]
local = 1
[target]
url = "{url}"
model = "base-model"
tokenizer = "tokenizer.json"
{entries}
[[phase]]
kind = "baseline"
requests = 30
duration = "30s"
"#
    )
}

#[test]
fn each_entrys_options_are_in_the_bodies_it_sends() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen: Seen = Arc::default();
    let recorder = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let seen = recorder.clone();
            std::thread::spawn(move || serve(stream, seen));
        }
    });
    let (dir, path) = plan_file(&plan(&url, ENTRIES));
    // A word-level tokenizer: these words one token each, the rest unknown.
    let vocab = [
        "the", "of", "and", "to", "in", "is", "that", "water", "point", "hand",
    ];
    std::fs::write(dir.path().join("tokenizer.json"), word_level(&vocab)).unwrap();
    let mut cmd = Command::new(bin("controller"));
    cmd.arg("validate").arg(&path);
    let (code, out) = Proc::spawn(cmd).wait_exit(Duration::from_secs(30));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("prompts from 10 one-token words"), "{out}");
    let from_vocab = |text: &str| text.split_whitespace().all(|w| vocab.contains(&w));
    let mut cmd = Command::new(bin("controller"));
    cmd.arg("run")
        .arg(&path)
        .arg("--out")
        .arg(dir.path().join("run"));
    let (code, out) = Proc::spawn(cmd).wait_exit(Duration::from_secs(120));
    assert_eq!(code, Some(0), "{out}");
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("run/summary.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(summary["phases"][0]["requests"]["ok"], 30, "{summary}");

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 30);
    let (mut options, mut plain) = (0, 0);
    for (path, body) in seen.iter() {
        match path.as_str() {
            "/v1/completions" => {
                options += 1;
                assert_eq!(body["model"], "other-model", "{body}");
                assert_eq!(body["stream"], false, "{body}");
                assert!(body.get("stream_options").is_none(), "{body}");
                assert_eq!(body["stop"], serde_json::json!(["\n\n", "END"]), "{body}");
                assert_eq!(body["top_p"], 0.5, "{body}");
                assert_eq!(body["seed"], 7, "{body}");
                assert_eq!(
                    body["chat_template_kwargs"]["enable_thinking"], false,
                    "{body}"
                );
                let prompt = body["prompt"].as_str().unwrap();
                assert_eq!(prompt.split_whitespace().count(), 5);
                assert!(from_vocab(prompt), "{prompt}");
                assert_eq!(body["max_tokens"], 3, "{body}");
            }
            "/v1/chat/completions" => {
                plain += 1;
                assert_eq!(body["model"], "base-model", "{body}");
                assert_eq!(body["stream"], true, "{body}");
                assert_eq!(body["stream_options"]["include_usage"], true, "{body}");
                assert!(
                    body.get("stop").is_none() && body.get("top_p").is_none(),
                    "{body}"
                );
                let content = body["messages"][0]["content"].as_str().unwrap();
                assert!(from_vocab(content), "{content}");
            }
            other => panic!("request to {other}: {body}"),
        }
    }
    assert!(options > 0 && plain > 0, "{options} / {plain}");
}

/// A word-level tokenizer.json (whitespace pre-tokenizer, `[UNK]` for the rest).
fn word_level(words: &[&str]) -> String {
    let vocab: Vec<String> = std::iter::once("[UNK]")
        .chain(words.iter().copied())
        .enumerate()
        .map(|(i, w)| format!("\"{w}\": {i}"))
        .collect();
    format!(
        r#"{{"version": "1.0", "truncation": null, "padding": null, "added_tokens": [], "normalizer": null,
  "pre_tokenizer": {{"type": "Whitespace"}}, "post_processor": null, "decoder": null,
  "model": {{"type": "WordLevel", "vocab": {{{}}}, "unk_token": "[UNK]"}}}}"#,
        vocab.join(", ")
    )
}

#[test]
fn bad_request_options_are_named() {
    let cases = [
        // No tokenizer.json beside the plan.
        ("", "target.tokenizer"),
        (
            "extra_body = { max_tokens = 5 }",
            "workload[0].extra_body.max_tokens",
        ),
        ("api = \"embeddings\"", "workload[0].api"),
        ("stop = [\"\"]", "workload[0].stop[0]"),
    ];
    for (line, key) in cases {
        let entries = format!(
            "[[workload]]\ninput = {{ dist = \"fixed\", value = 5 }}\noutput = {{ dist = \"fixed\", value = 3 }}\n{line}\n"
        );
        let (_dir, path) = plan_file(&plan("http://127.0.0.1:9", &entries));
        let mut cmd = Command::new(bin("controller"));
        cmd.arg("validate").arg(&path);
        let (code, out) = Proc::spawn(cmd).wait_exit(Duration::from_secs(30));
        assert_eq!(code, Some(2), "{line}: {out}");
        assert!(out.contains(key), "{line}: {out}");
    }
}
