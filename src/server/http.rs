//! Routes, authentication and the translation of every failure into an
//! HTTP answer: 400 with a one-line reason for what the client got wrong,
//! 401 without the token, 413 for an oversized body, 503 when the queue is
//! full, 500 when the sandbox itself failed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Multipart, Path, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::net::TcpListener;

use isobox::pool::PoolError;

use super::model::{self, CmdResult};
use super::run::{self, Cancel};
use super::AppState;

pub(super) type Shared = Arc<AppState>;

/// A one-line reason, as a JSON string (what go-judge answers).
fn reason(status: StatusCode, text: impl AsRef<str>) -> Response {
    let line: String = text
        .as_ref()
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect();
    (status, Json(line)).into_response()
}

/// Serves until SIGTERM or SIGINT, then drains the requests in flight.
pub async fn serve(
    state: Shared,
    listen: SocketAddr,
    metrics_listen: Option<SocketAddr>,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|err| anyhow::anyhow!("listening on {listen}: {err}"))?;
    let metrics_listener = match metrics_listen {
        Some(address) => Some(
            TcpListener::bind(address)
                .await
                .map_err(|err| anyhow::anyhow!("listening on {address}: {err}"))?,
        ),
        None => None,
    };

    if let Some(ttl) = state.file_ttl {
        let store_state = state.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(
                (ttl / 4).clamp(Duration::from_millis(100), Duration::from_secs(60)),
            );
            loop {
                every.tick().await;
                let expired = store_state.store.expire(ttl);
                if expired > 0 {
                    tracing::info!("{expired} stored files expired");
                }
            }
        });
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("stopping: draining requests in flight");
        let _ = stop_tx.send(true);
    });
    if let Some(metrics_listener) = metrics_listener {
        crate::cli::print_note(format_args!(
            "isobox serve: metrics on {}\n",
            metrics_listener.local_addr()?
        ));
        let app = Router::new()
            .route("/metrics", get(metrics_handler))
            .with_state(state.clone());
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let _ = axum::serve(metrics_listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|stop| *stop).await;
                })
                .await;
        });
    }
    // Tests and scripts wait for this line to know the service is up
    // (the metrics line, when asked for, comes before it).
    crate::cli::print_note(format_args!(
        "isobox serve: listening on {}\n",
        listener.local_addr()?
    ));
    tracing::info!("listening on {}", listener.local_addr()?);
    let mut stop = stop_rx;
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|stop| *stop).await;
        })
        .await?;
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot watch SIGTERM/SIGINT; stop with SIGKILL leaves boxes behind");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

fn router(state: Shared) -> Router {
    let limit = usize::try_from(state.max_body).unwrap_or(usize::MAX);
    let protected = Router::new()
        .route("/run", post(run_handler))
        .route("/config", get(config_handler))
        .route("/file", get(file_list).post(file_upload))
        .route("/file/{id}", get(file_get).delete(file_delete))
        .route("/ws", get(super::ws::ws_handler))
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
    Router::new()
        .route("/version", get(version_handler))
        .merge(protected)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// Compares in time independent of where the first difference is.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

async fn authenticate(State(state): State<Shared>, request: Request, next: Next) -> Response {
    if let Some(token) = &state.token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        if !given.is_some_and(|given| same_secret(given.as_bytes(), token.as_bytes())) {
            return reason(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
        }
    }
    next.run(request).await
}

async fn version_handler() -> Response {
    Json(super::version_body()).into_response()
}

async fn config_handler(State(state): State<Shared>) -> Response {
    Json(super::config_body(&state)).into_response()
}

async fn metrics_handler(State(state): State<Shared>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(&state),
    )
        .into_response()
}

/// Kills the runs of a request from now on: again and again until they
/// are over, since a box may only be starting when the order comes.
pub(super) fn kill_from_now_on(cancel: &Arc<Cancel>, give_up_after: Duration) {
    if cancel.is_done() || cancel.is_cancelled() {
        return;
    }
    cancel.cancel();
    let cancel = cancel.clone();
    let give_up = std::time::Instant::now() + give_up_after;
    std::thread::spawn(move || {
        while !cancel.is_done() && std::time::Instant::now() < give_up {
            cancel.kill_runs();
            std::thread::sleep(Duration::from_millis(10));
        }
    });
}

/// Kills the run of a request whose client went away: axum drops the
/// handler's future when the connection closes, and with it this guard.
struct CancelOnDrop(Arc<Cancel>, Duration);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if !self.0.is_done() {
            kill_from_now_on(&self.0, self.1);
        }
    }
}

async fn run_handler(State(state): State<Shared>, body: Bytes) -> Response {
    let request: model::Request = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(err) => {
            state.metrics.request();
            state.metrics.bad_request();
            return reason(StatusCode::BAD_REQUEST, format!("bad request body: {err}"));
        }
    };
    drop(body);
    match process(state, request, Arc::default()).await {
        Ok(results) => Json(results).into_response(),
        Err((status, text)) => reason(status, text),
    }
}

/// Checks a request, runs it on a blocking thread and gives its results,
/// or the HTTP status and reason it failed with. Dropping the future (the
/// client left) or `cancel` kills its runs.
pub(super) async fn process(
    state: Shared,
    request: model::Request,
    cancel: Arc<Cancel>,
) -> Result<Vec<CmdResult>, (StatusCode, String)> {
    state.metrics.request();
    let bad = |text: String| {
        state.metrics.bad_request();
        Err((StatusCode::BAD_REQUEST, text))
    };
    if request.cmd.is_empty() {
        return bad("no cmd provided".into());
    }
    if request.cmd.len() > state.settings.caps.cmds {
        return bad(format!(
            "{} commands in one request; the server takes at most {}",
            request.cmd.len(),
            state.settings.caps.cmds
        ));
    }
    if let Err(err) = super::pipes::validate(&request, state.settings.caps.output) {
        return bad(err);
    }
    if !request.pipe_mapping.is_empty() && request.cmd.len() > state.parallelism {
        return bad(format!(
            "{} wired commands need as many boxes at once; the server runs {}",
            request.cmd.len(),
            state.parallelism
        ));
    }
    let mut jobs = Vec::new();
    for (index, cmd) in request.cmd.iter().enumerate() {
        match run::prepare(cmd, &state.settings) {
            Ok(job) => jobs.push(job),
            Err(err) => return bad(format!("cmd[{index}]: {err}")),
        }
    }
    let Ok(admitted) = state.admission.clone().try_acquire_owned() else {
        state.metrics.busy();
        return Err((
            StatusCode::SERVICE_UNAVAILABLE,
            "busy: every box is taken and the wait queue is full".into(),
        ));
    };
    let guard = CancelOnDrop(cancel.clone(), state.settings.caps.clock * 2);
    let worker = state.clone();
    let pipes = request.pipe_mapping;
    // As go-judge, the commands of one request run at once, each in its
    // own box, when the pool has boxes enough; otherwise one by one.
    let together = !pipes.is_empty() || (jobs.len() > 1 && jobs.len() <= state.parallelism);
    let ran = tokio::task::spawn_blocking(move || {
        let ran = if !together {
            run_jobs(&worker, jobs, &cancel)
        } else {
            super::pipes::run_piped(&worker, jobs, &pipes, &cancel)
        };
        cancel.set_done();
        drop(admitted);
        ran
    })
    .await;
    drop(guard);
    match ran {
        Ok(Ok(results)) => Ok(results),
        Ok(Err(PoolError::QueueFull { .. })) | Ok(Err(PoolError::Closed)) => {
            state.metrics.busy();
            Err((
                StatusCode::SERVICE_UNAVAILABLE,
                "busy: every box is taken and the wait queue is full".into(),
            ))
        }
        Ok(Err(err)) => Err((StatusCode::INTERNAL_SERVER_ERROR, err.to_string())),
        Err(err) => Err((
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("run failed: {err}"),
        )),
    }
}

/// Runs the commands of one request, one box each, in order.
fn run_jobs(
    state: &AppState,
    jobs: Vec<run::Job>,
    cancel: &Cancel,
) -> Result<Vec<CmdResult>, PoolError> {
    let mut results = Vec::with_capacity(jobs.len());
    let outcome: Result<(), PoolError> = (|| {
        for job in jobs {
            if cancel.is_cancelled() {
                state.metrics.cancelled();
                results.push(CmdResult::failed(
                    model::Verdict::InternalError,
                    "cancelled: the client went away",
                ));
                continue;
            }
            let mut lease = state.pool.acquire()?;
            let result = run::execute(
                job,
                &mut lease,
                &state.store,
                cancel,
                run::Wiring::default(),
            );
            // Reset before answering: the next request finds the box clean.
            drop(lease);
            state.metrics.result(result.status, result.run_time);
            results.push(result);
        }
        Ok(())
    })();
    outcome.map(|()| results)
}

async fn file_list(State(state): State<Shared>) -> Response {
    Json(state.store.list()).into_response()
}

async fn file_upload(State(state): State<Shared>, mut multipart: Multipart) -> Response {
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => return reason(StatusCode::BAD_REQUEST, "no form field named \"file\""),
            Err(err) => return (err.status(), Json(err.body_text())).into_response(),
        };
        if field.name() != Some("file") {
            continue;
        }
        let name = field.file_name().unwrap_or("file").to_string();
        return store_field(&state, name, field).await;
    }
}

async fn store_field(
    state: &AppState,
    name: String,
    mut field: axum::extract::multipart::Field<'_>,
) -> Response {
    let mut upload = match state.store.upload(&name) {
        Ok(upload) => upload,
        Err(err) => return reason(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()),
    };
    loop {
        match field.chunk().await {
            Ok(Some(chunk)) => {
                if let Err(err) = upload.write(&chunk) {
                    let status = match err {
                        super::store::StoreError::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
                        _ => StatusCode::PAYLOAD_TOO_LARGE,
                    };
                    return reason(status, err.to_string());
                }
            }
            Ok(None) => break,
            Err(err) => return (err.status(), Json(err.body_text())).into_response(),
        }
    }
    Json(upload.finish()).into_response()
}

async fn file_get(State(state): State<Shared>, Path(id): Path<String>) -> Response {
    let Some((name, file)) = state.store.open(&id) else {
        return reason(StatusCode::NOT_FOUND, "no such file");
    };
    // Stored files are bounded by --max-body; read whole, off the async
    // threads.
    let read = tokio::task::spawn_blocking(move || {
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut { file }, &mut data).map(|_| data)
    })
    .await;
    let data = match read {
        Ok(Ok(data)) => data,
        Ok(Err(err)) => return reason(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()),
        Err(err) => return reason(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()),
    };
    let disposition = format!(
        "attachment; filename=\"{}\"",
        name.replace(['"', '\\', '\r', '\n'], "_")
    );
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        Body::from(data),
    )
        .into_response()
}

async fn file_delete(State(state): State<Shared>, Path(id): Path<String>) -> Response {
    if state.store.remove(&id) {
        Json("").into_response()
    } else {
        reason(StatusCode::NOT_FOUND, "no such file")
    }
}
