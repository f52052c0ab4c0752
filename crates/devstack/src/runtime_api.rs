//! A local Lambda Runtime API that runs a function's real binary.
//!
//! It serves the four endpoints a custom runtime uses (`invocation/next`, `invocation/{id}/
//! response`, `invocation/{id}/error`, `init/error`) on a loopback port, starts the binary with
//! the environment Lambda sets (and nothing else from the caller's environment unless asked),
//! and hands it events one at a time. So a test or the demo exercises `main.rs`, the
//! configuration loader and the runtime loop, not only library calls.
//!
//! Responses follow Lambda's documented limits: a buffered response over 6 MB
//! ([`MAX_BUFFERED_RESPONSE`]) is the function error `Function.ResponseSizeTooLarge`, and a
//! streamed one (`Lambda-Runtime-Function-Response-Mode: streaming`, chunked, with the HTTP
//! metadata prelude and its eight-NUL delimiter when the content type is
//! `application/vnd.awslambda.http-integration-response`) reaches
//! [`LocalLambda::invoke_with_response_stream`] chunk by chunk, as it arrives, so a test can
//! read more than 6 MB while the function's memory is measured.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{mpsc, oneshot, watch};

/// An error a function reported (`errorType`, `errorMessage`), as Lambda returns it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FunctionErrorBody {
    #[serde(rename = "errorType")]
    pub error_type: String,
    #[serde(rename = "errorMessage")]
    pub error_message: String,
}

/// Why an invocation did not produce a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvokeError {
    /// The handler returned an error (Lambda's `FunctionError: Unhandled`).
    Function(FunctionErrorBody),
    /// The runtime reported an init error (cold start failed) and exited.
    Init {
        error: FunctionErrorBody,
        logs: String,
    },
    /// The process exited without reporting anything.
    Exited { code: Option<i32>, logs: String },
    /// No answer within the function's timeout.
    Timeout(Duration),
}

impl std::fmt::Display for InvokeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InvokeError::Function(e) => {
                write!(f, "function error {}: {}", e.error_type, e.error_message)
            }
            InvokeError::Init { error, .. } => write!(
                f,
                "init error {}: {}",
                error.error_type, error.error_message
            ),
            InvokeError::Exited { code, logs } => write!(f, "process exited ({code:?}):\n{logs}"),
            InvokeError::Timeout(t) => write!(f, "no response within {t:?}"),
        }
    }
}

/// Lambda's cap on a buffered (synchronous) response: 6 MB, as its error message counts it.
pub const MAX_BUFFERED_RESPONSE: usize = 6_291_556;

/// The content type of a streamed HTTP response: a JSON prelude, 8 NUL bytes, the body.
const HTTP_INTEGRATION_RESPONSE: &str = "application/vnd.awslambda.http-integration-response";

enum Outcome {
    Response(Bytes),
    Error(FunctionErrorBody),
    Stream(StreamedResponse),
}

/// A response as `InvokeWithResponseStream` delivers it: the HTTP metadata prelude when the
/// function sent one, then the payload chunk by chunk. A buffered response is one chunk.
#[derive(Debug)]
pub struct StreamedResponse {
    /// `statusCode`, `headers`, `cookies`: what a function URL turns into the HTTP status
    /// line and headers.
    pub prelude: Option<serde_json::Value>,
    chunks: mpsc::Receiver<Result<Bytes, FunctionErrorBody>>,
}

impl StreamedResponse {
    /// The next chunk; `Err` when the function reported an error mid-stream (the
    /// `Lambda-Runtime-Function-Error-Type`/`-Body` trailers) or the stream broke off.
    pub async fn next_chunk(&mut self) -> Option<Result<Bytes, FunctionErrorBody>> {
        self.chunks.recv().await
    }

    /// The prelude's `statusCode` (200 when it has none, as a function URL answers).
    pub fn status(&self) -> u16 {
        self.prelude
            .as_ref()
            .and_then(|p| p["statusCode"].as_u64())
            .and_then(|s| u16::try_from(s).ok())
            .unwrap_or(200)
    }

    /// A header of the prelude, by name in any case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.prelude.as_ref()?["headers"]
            .as_object()?
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))?
            .1
            .as_str()
    }

    /// The whole payload, for small responses.
    pub async fn collect(mut self) -> Result<Vec<u8>, FunctionErrorBody> {
        let mut body = Vec::new();
        while let Some(chunk) = self.next_chunk().await {
            body.extend_from_slice(&chunk?);
        }
        Ok(body)
    }

    fn buffered(body: Bytes) -> Self {
        let (sender, chunks) = mpsc::channel(1);
        let _ = sender.try_send(Ok(body));
        StreamedResponse {
            prelude: None,
            chunks,
        }
    }
}

struct Invocation {
    request_id: String,
    payload: Bytes,
    reply: oneshot::Sender<Outcome>,
}

struct ApiState {
    function_arn: String,
    timeout: Duration,
    queue: tokio::sync::Mutex<mpsc::UnboundedReceiver<Invocation>>,
    inflight: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    init_error: watch::Sender<Option<FunctionErrorBody>>,
    first_poll: OnceLock<Instant>,
}

/// Starts a [`LocalLambda`].
#[derive(Debug, Clone)]
pub struct LocalLambdaBuilder {
    binary: PathBuf,
    name: String,
    envs: Vec<(String, String)>,
    timeout: Duration,
    memory_mb: u32,
    echo_logs: bool,
}

impl LocalLambdaBuilder {
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.to_owned();
        self
    }
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.envs.push((key.to_owned(), value.to_owned()));
        self
    }
    pub fn envs<K: Into<String>, V: Into<String>>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.envs
            .extend(vars.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }
    /// The function timeout (deadline header and [`InvokeError::Timeout`]); default 60 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
    /// Print the function's log lines to stderr as they arrive (the demo does).
    pub fn echo_logs(mut self, echo: bool) -> Self {
        self.echo_logs = echo;
        self
    }

    pub async fn start(self) -> Result<LocalLambda, String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let region = self
            .envs
            .iter()
            .find(|(k, _)| k == "AWS_REGION")
            .map_or("us-east-1", |(_, v)| v.as_str())
            .to_owned();
        let (queue_tx, queue_rx) = mpsc::unbounded_channel();
        let (init_error, init_error_rx) = watch::channel(None);
        let state = Arc::new(ApiState {
            function_arn: format!(
                "arn:aws:lambda:{region}:000000000000:function:{}",
                self.name
            ),
            timeout: self.timeout,
            queue: tokio::sync::Mutex::new(queue_rx),
            inflight: Mutex::new(HashMap::new()),
            init_error,
            first_poll: OnceLock::new(),
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error_endpoint))
            .with_state(state.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });

        let lambda_env = [
            ("AWS_LAMBDA_FUNCTION_NAME", self.name.clone()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
            (
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                self.memory_mb.to_string(),
            ),
            (
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{}", self.name),
            ),
            (
                "AWS_LAMBDA_LOG_STREAM_NAME",
                "2026/01/01/[$LATEST]devstack".into(),
            ),
            ("AWS_LAMBDA_RUNTIME_API", addr.to_string()),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".into()),
            ("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023".into()),
            ("AWS_REGION", region.clone()),
            ("AWS_DEFAULT_REGION", region),
            ("LAMBDA_TASK_ROOT", "/var/task".into()),
            ("_HANDLER", "bootstrap".into()),
            ("TZ", ":UTC".into()),
            ("LANG", "en_US.UTF-8".into()),
            ("PATH", "/usr/local/bin:/usr/bin:/bin".into()),
        ];
        let spawned_at = Instant::now();
        let mut child = tokio::process::Command::new(&self.binary)
            .env_clear()
            .envs(lambda_env)
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.binary.display()))?;

        let pid = child.id();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        for (pipe, echo) in [
            (
                Box::new(stdout) as Box<dyn tokio::io::AsyncRead + Send + Unpin>,
                self.echo_logs,
            ),
            (Box::new(stderr), self.echo_logs),
        ] {
            let logs = logs.clone();
            let name = self.name.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(pipe).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if echo {
                        eprintln!("  [{name}] {line}");
                    }
                    logs.lock().expect("log lock").push(line);
                }
            });
        }
        let (exit_tx, exit_rx) = watch::channel(None);
        let waiter = tokio::spawn(async move {
            let status = child.wait().await.ok().and_then(|s| s.code());
            let _ = exit_tx.send(Some(status));
            // keep the sender alive so receivers see the final value
            std::future::pending::<()>().await;
        });
        Ok(LocalLambda {
            state,
            queue: queue_tx,
            logs,
            exit: exit_rx,
            init_error: init_error_rx,
            spawned_at,
            pid,
            next_id: AtomicU64::new(1),
            server,
            waiter,
        })
    }
}

/// A function binary running under the local Runtime API. Dropping it kills the process.
#[derive(Debug)]
pub struct LocalLambda {
    state: Arc<ApiState>,
    queue: mpsc::UnboundedSender<Invocation>,
    logs: Arc<Mutex<Vec<String>>>,
    exit: watch::Receiver<Option<Option<i32>>>,
    init_error: watch::Receiver<Option<FunctionErrorBody>>,
    spawned_at: Instant,
    pid: Option<u32>,
    next_id: AtomicU64,
    server: tokio::task::JoinHandle<()>,
    waiter: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("function_arn", &self.function_arn)
            .finish_non_exhaustive()
    }
}

impl Drop for LocalLambda {
    fn drop(&mut self) {
        self.server.abort();
        self.waiter.abort(); // drops the child, which kills it (kill_on_drop)
    }
}

impl LocalLambda {
    /// A builder for `binary` (the function's `main.rs`, e.g. `env!("CARGO_BIN_EXE_db-scanner")`).
    pub fn builder(binary: impl Into<PathBuf>) -> LocalLambdaBuilder {
        let binary = binary.into();
        let name = binary
            .file_name()
            .map_or_else(|| "function".into(), |n| n.to_string_lossy().into_owned());
        LocalLambdaBuilder {
            binary,
            name,
            envs: Vec::new(),
            timeout: Duration::from_secs(60),
            memory_mb: 128,
            echo_logs: false,
        }
    }

    /// Invokes the function with a JSON event and returns its JSON response.
    pub async fn invoke(
        &self,
        event: &serde_json::Value,
    ) -> Result<serde_json::Value, InvokeError> {
        let body = self
            .invoke_raw(serde_json::to_vec(event).expect("JSON serialises"))
            .await?;
        Ok(serde_json::from_slice(&body).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&body).into_owned())
        }))
    }

    /// Invokes the function with raw payload bytes.
    pub async fn invoke_raw(&self, payload: Vec<u8>) -> Result<Bytes, InvokeError> {
        match self.invoke_outcome(payload).await? {
            Outcome::Response(body) => Ok(body),
            Outcome::Error(error) => Err(InvokeError::Function(error)),
            // `Invoke` of a function that streams: the bytes as sent, prelude included, up to
            // the buffered cap.
            Outcome::Stream(mut stream) => {
                let mut body = stream
                    .prelude
                    .take()
                    .map(|p| {
                        let mut raw = serde_json::to_vec(&p).expect("JSON serialises");
                        raw.extend_from_slice(&[0; 8]);
                        raw
                    })
                    .unwrap_or_default();
                while let Some(chunk) = stream.next_chunk().await {
                    body.extend_from_slice(&chunk.map_err(InvokeError::Function)?);
                    if body.len() > MAX_BUFFERED_RESPONSE {
                        return Err(InvokeError::Function(too_large(body.len())));
                    }
                }
                Ok(body.into())
            }
        }
    }

    /// Invokes the function as `InvokeWithResponseStream` (and a function URL in
    /// `RESPONSE_STREAM` mode) do: a streamed response arrives chunk by chunk, a buffered one
    /// as a single chunk.
    pub async fn invoke_with_response_stream(
        &self,
        event: &serde_json::Value,
    ) -> Result<StreamedResponse, InvokeError> {
        match self
            .invoke_outcome(serde_json::to_vec(event).expect("JSON serialises"))
            .await?
        {
            Outcome::Response(body) => Ok(StreamedResponse::buffered(body)),
            Outcome::Error(error) => Err(InvokeError::Function(error)),
            Outcome::Stream(stream) => Ok(stream),
        }
    }

    async fn invoke_outcome(&self, payload: Vec<u8>) -> Result<Outcome, InvokeError> {
        let request_id = format!(
            "devstack-{:08}-{}",
            self.next_id.fetch_add(1, Ordering::Relaxed),
            std::process::id()
        );
        let (reply, outcome) = oneshot::channel();
        let sent = self.queue.send(Invocation {
            request_id,
            payload: payload.into(),
            reply,
        });
        if sent.is_err() {
            return Err(self.exited_error());
        }
        let mut exit = self.exit.clone();
        let mut init_error = self.init_error.clone();
        tokio::select! {
            outcome = outcome => outcome.map_err(|_| self.exited_error()),
            _ = exit.wait_for(Option::is_some) => {
                tokio::time::sleep(Duration::from_millis(50)).await; // let the last log lines arrive
                Err(self.exited_error())
            }
            _ = init_error.wait_for(Option::is_some) => {
                let mut exit = self.exit.clone();
                let _ = tokio::time::timeout(Duration::from_secs(2), exit.wait_for(Option::is_some)).await;
                Err(self.exited_error())
            }
            _ = tokio::time::sleep(self.state.timeout) => Err(InvokeError::Timeout(self.state.timeout)),
        }
    }

    /// Waits until the runtime asks for its first event (the end of its cold start) and
    /// returns the time from process start to that request.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<Duration, InvokeError> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Some(at) = self.state.first_poll.get() {
                return Ok(at.duration_since(self.spawned_at));
            }
            if self.exit.borrow().is_some() {
                tokio::time::sleep(Duration::from_millis(50)).await;
                return Err(self.exited_error());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Err(InvokeError::Timeout(timeout))
    }

    /// The function process's id (for reading its peak memory from `/proc`).
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// Every line the function has written to stdout and stderr so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().expect("log lock").clone()
    }

    /// The function's JSON log lines that parse as objects.
    pub fn json_logs(&self) -> Vec<serde_json::Value> {
        self.logs()
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(serde_json::Value::is_object)
            .collect()
    }

    fn exited_error(&self) -> InvokeError {
        let logs = self.logs().join("\n");
        if let Some(error) = self.init_error.borrow().clone() {
            return InvokeError::Init { error, logs };
        }
        InvokeError::Exited {
            code: self.exit.borrow().flatten(),
            logs,
        }
    }
}

async fn next(State(state): State<Arc<ApiState>>) -> impl IntoResponse {
    let _ = state.first_poll.set(Instant::now());
    let invocation = state.queue.lock().await.recv().await;
    let Some(invocation) = invocation else {
        return (StatusCode::GONE, HeaderMap::new(), Bytes::new());
    };
    let deadline = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        + state.timeout;
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        headers.insert(name, HeaderValue::from_str(&value).expect("ASCII header"));
    };
    set(
        "lambda-runtime-aws-request-id",
        invocation.request_id.clone(),
    );
    set(
        "lambda-runtime-deadline-ms",
        deadline.as_millis().to_string(),
    );
    set(
        "lambda-runtime-invoked-function-arn",
        state.function_arn.clone(),
    );
    set(
        "lambda-runtime-trace-id",
        "Root=1-00000000-000000000000000000000000;Sampled=0".into(),
    );
    state
        .inflight
        .lock()
        .expect("inflight lock")
        .insert(invocation.request_id, invocation.reply);
    (StatusCode::OK, headers, invocation.payload)
}

fn complete(state: &ApiState, id: &str, outcome: Outcome) -> StatusCode {
    match state.inflight.lock().expect("inflight lock").remove(id) {
        Some(reply) => {
            let _ = reply.send(outcome);
            StatusCode::ACCEPTED
        }
        None => StatusCode::BAD_REQUEST,
    }
}

fn too_large(size: usize) -> FunctionErrorBody {
    FunctionErrorBody {
        error_type: "Function.ResponseSizeTooLarge".into(),
        error_message: format!(
            "Response payload size ({size} bytes) exceeded maximum allowed payload size \
             ({MAX_BUFFERED_RESPONSE} bytes)."
        ),
    }
}

async fn response(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> StatusCode {
    let streaming = headers
        .get("lambda-runtime-function-response-mode")
        .is_some_and(|mode| mode.as_bytes().eq_ignore_ascii_case(b"streaming"));
    if streaming {
        let http = headers
            .get(axum::http::header::CONTENT_TYPE)
            .is_some_and(|t| t.as_bytes() == HTTP_INTEGRATION_RESPONSE.as_bytes());
        return stream_response(&state, &id, http, body).await;
    }
    let outcome = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(body) if body.len() > MAX_BUFFERED_RESPONSE => Outcome::Error(too_large(body.len())),
        Ok(body) => Outcome::Response(body),
        Err(e) => Outcome::Error(FunctionErrorBody {
            error_type: "Runtime.ResponseUnreadable".into(),
            error_message: e.to_string(),
        }),
    };
    complete(&state, &id, outcome)
}

/// Relays a streamed response: the invoker gets it once the prelude (when `http`) has
/// arrived, then each chunk as it comes; a full channel holds the function back, as a slow
/// client does. Error trailers end the stream with the function's error.
async fn stream_response(
    state: &ApiState,
    id: &str,
    http: bool,
    mut body: axum::body::Body,
) -> StatusCode {
    use http_body_util::BodyExt as _;
    let Some(reply) = state.inflight.lock().expect("inflight lock").remove(id) else {
        return StatusCode::BAD_REQUEST;
    };
    let (sender, chunks) = mpsc::channel(4);
    let mut reply = Some((reply, chunks));
    let mut prelude = Vec::new();
    let mut in_prelude = http;
    let broke = |why: String| FunctionErrorBody {
        error_type: "Runtime.StreamError".into(),
        error_message: why,
    };
    loop {
        let frame = match body.frame().await {
            None => break,
            Some(Ok(frame)) => frame,
            Some(Err(e)) => {
                let _ = sender.send(Err(broke(e.to_string()))).await;
                break;
            }
        };
        let data = match frame.into_data() {
            Ok(data) => data,
            Err(frame) => {
                if let Some(error) = frame.trailers_ref().and_then(trailer_error) {
                    let _ = sender.send(Err(error)).await;
                }
                continue;
            }
        };
        let data = if in_prelude {
            prelude.extend_from_slice(&data);
            let Some(end) = prelude.windows(8).position(|w| w == [0; 8]) else {
                continue;
            };
            in_prelude = false;
            let rest = Bytes::copy_from_slice(&prelude[end + 8..]);
            prelude.truncate(end);
            rest
        } else {
            data
        };
        if let Some((reply, chunks)) = reply.take() {
            let prelude = http.then(|| {
                serde_json::from_slice(&prelude)
                    .unwrap_or_else(|e| serde_json::json!({"unparsable_prelude": e.to_string()}))
            });
            let _ = reply.send(Outcome::Stream(StreamedResponse { prelude, chunks }));
        }
        if !data.is_empty() && sender.send(Ok(data)).await.is_err() {
            break; // the invoker stopped reading
        }
    }
    if let Some((reply, _)) = reply.take() {
        // Ended before the prelude's delimiter (or sent nothing at all).
        let _ = reply.send(if in_prelude {
            Outcome::Error(broke(
                "the stream ended before the prelude's 8-NUL delimiter".into(),
            ))
        } else {
            Outcome::Response(Bytes::new())
        });
    }
    StatusCode::ACCEPTED
}

/// The error a streaming function reports in its trailers (the body is base64).
fn trailer_error(trailers: &HeaderMap) -> Option<FunctionErrorBody> {
    use base64::Engine as _;
    let error_type = trailers
        .get("lambda-runtime-function-error-type")?
        .to_str()
        .ok()?
        .to_owned();
    let body = trailers
        .get("lambda-runtime-function-error-body")
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.as_bytes())
                .ok()
        })
        .unwrap_or_default();
    Some(FunctionErrorBody {
        error_type,
        error_message: String::from_utf8_lossy(&body).into_owned(),
    })
}

async fn error(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    complete(&state, &id, Outcome::Error(parse_error(&body)))
}

async fn init_error_endpoint(State(state): State<Arc<ApiState>>, body: Bytes) -> StatusCode {
    let _ = state.init_error.send(Some(parse_error(&body)));
    StatusCode::ACCEPTED
}

fn parse_error(body: &[u8]) -> FunctionErrorBody {
    serde_json::from_slice(body).unwrap_or_else(|_| FunctionErrorBody {
        error_type: "Unparsable".into(),
        error_message: String::from_utf8_lossy(body).into_owned(),
    })
}
