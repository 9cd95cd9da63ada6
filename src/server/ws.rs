//! `GET /ws`: go-judge's WebSocket face. Each text (or binary) message is a
//! request as for `POST /run`, with its `requestId`, or
//! `{"cancelRequestId": ID}`; each answer is `{requestId, results, error?}`,
//! in the order runs end. Requests of one connection run concurrently;
//! a closed connection kills what it still had running.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::http::{kill_from_now_on, process, Shared};
use super::model::{CmdResult, Request};
use super::run::Cancel;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WsRequest {
    #[serde(flatten)]
    request: Request,
    #[serde(default)]
    cancel_request_id: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct WsResponse {
    request_id: String,
    results: Vec<CmdResult>,
    #[serde(skip_serializing_if = "String::is_empty")]
    error: String,
}

pub async fn ws_handler(State(state): State<Shared>, upgrade: WebSocketUpgrade) -> Response {
    let limit = usize::try_from(state.max_body).unwrap_or(usize::MAX);
    upgrade
        .max_message_size(limit)
        .on_upgrade(move |socket| session(state, socket))
}

async fn session(state: Shared, mut socket: WebSocket) {
    let (answers, mut to_send) = mpsc::channel::<WsResponse>(128);
    // Dropped at the end of the session: aborting the tasks drops their
    // futures, whose guards kill the runs.
    let mut tasks = JoinSet::new();
    let mut running: HashMap<String, Arc<Cancel>> = HashMap::new();
    loop {
        tokio::select! {
            message = socket.recv() => {
                let text = match message {
                    Some(Ok(Message::Text(text))) => text.as_str().as_bytes().to_vec(),
                    Some(Ok(Message::Binary(bytes))) => bytes.to_vec(),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    _ => break,
                };
                let parsed: WsRequest = match serde_json::from_slice(&text) {
                    Ok(parsed) => parsed,
                    Err(err) => {
                        let _ = answers.try_send(WsResponse {
                            request_id: String::new(),
                            results: Vec::new(),
                            error: format!("bad request: {err}"),
                        });
                        continue;
                    }
                };
                if let Some(id) = parsed.cancel_request_id.filter(|id| !id.is_empty()) {
                    if let Some(cancel) = running.get(&id) {
                        kill_from_now_on(cancel, state.settings.caps.clock * 2);
                    }
                    continue;
                }
                let request_id = parsed.request.request_id.clone();
                if running.get(&request_id).is_some_and(|cancel| !cancel.is_done()) {
                    let _ = answers.try_send(WsResponse {
                        request_id,
                        results: Vec::new(),
                        error: "a request with this id is still running".into(),
                    });
                    continue;
                }
                running.retain(|_, cancel| !cancel.is_done());
                let cancel = Arc::new(Cancel::default());
                running.insert(request_id.clone(), cancel.clone());
                let (state, answers) = (state.clone(), answers.clone());
                tasks.spawn(async move {
                    let answer = match process(state, parsed.request, cancel).await {
                        Ok(results) => WsResponse { request_id, results, error: String::new() },
                        Err((_, error)) => WsResponse { request_id, results: Vec::new(), error },
                    };
                    let _ = answers.send(answer).await;
                });
            }
            Some(answer) = to_send.recv() => {
                let Ok(text) = serde_json::to_string(&answer) else { continue };
                if socket.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
}
