//! The real `isobox serve` for the service's integration tests
//! (`tests/serve*.rs`, which include it with `#[path]`): started on a
//! loopback port, driven with a blocking reqwest client, stopped with
//! SIGTERM; and the commands the tests send most.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// A running `isobox serve`, stopped with SIGTERM when dropped.
pub struct Server {
    pub child: Option<Child>,
    pub url: String,
    /// `http://ADDR` of --metrics-listen, when given.
    pub metrics: Option<String>,
    pub token: Option<String>,
    pub client: reqwest::blocking::Client,
}

impl Server {
    pub fn start(extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_isobox"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(if extra.contains(&"--parallelism") {
                &[][..]
            } else {
                &["--parallelism", "1"][..]
            })
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting isobox serve");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut address = None;
        let mut metrics = None;
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(found) = line.strip_prefix("isobox serve: metrics on ") {
                metrics = Some(format!("http://{found}"));
                continue;
            }
            if let Some(found) = line.strip_prefix("isobox serve: listening on ") {
                address = Some(found.to_string());
                break;
            }
            eprintln!("server: {line}");
        }
        let Some(address) = address else {
            let status = child.wait().unwrap();
            panic!("isobox serve did not start ({status})");
        };
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                eprintln!("server: {line}");
            }
        });
        Self {
            child: Some(child),
            url: format!("http://{address}"),
            metrics,
            token: None,
            client: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn request(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> reqwest::blocking::RequestBuilder {
        let builder = self.client.request(method, format!("{}{path}", self.url));
        match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    /// POST /run with a raw body: (HTTP status, JSON answer).
    pub fn post_raw(&self, body: impl Into<reqwest::blocking::Body>) -> (u16, Value) {
        let response = self
            .request(reqwest::Method::POST, "/run")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .expect("POST /run");
        let status = response.status().as_u16();
        let text = response.text().unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    pub fn post(&self, body: &Value) -> (u16, Value) {
        self.post_raw(body.to_string())
    }

    /// Runs one command; its result.
    pub fn run(&self, cmd: Value) -> Value {
        let (status, answer) = self.post(&json!({ "cmd": [cmd] }));
        assert_eq!(status, 200, "{answer}");
        answer[0].clone()
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .request(reqwest::Method::GET, path)
            .send()
            .expect("GET");
        let status = response.status().as_u16();
        let text = response.text().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// SIGTERM, then the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        // SAFETY: kill only signals the server this test started and has not
        // reaped yet, so its pid cannot have been reused.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("isobox serve did not stop within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.stop();
        }
    }
}

/// A shell command with go-judge's usual stdio: empty stdin, stdout and
/// stderr collected.
pub fn sh(script: &str) -> Value {
    json!({
        "args": ["/bin/sh", "-c", script],
        "env": ["PATH=/usr/bin:/bin"],
        "files": [{"content": ""}, {"name": "stdout", "max": 10240}, {"name": "stderr", "max": 10240}],
        "cpuLimit": 2_000_000_000u64,
        "memoryLimit": 256u64 << 20,
        "procLimit": 50,
    })
}

/// `base` with the fields of `extra` set over it.
pub fn with(mut base: Value, extra: Value) -> Value {
    for (key, value) in extra.as_object().unwrap() {
        base[key] = value.clone();
    }
    base
}

pub fn file_error_types(result: &Value) -> Vec<String> {
    result["fileError"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|error| error["type"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Directory of a test program, to serve as --src-prefix.
pub fn dir_of(path: &str) -> String {
    Path::new(path).parent().unwrap().display().to_string()
}
