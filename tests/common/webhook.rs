//! The real `pullcheck serve` binary as a child process, and a client that talks to it the way
//! kube-apiserver does (HTTPS with the CA pinned, as a webhook's `caBundle` does). The reviews
//! it sends come from [`super::review`].
//!
//! The binary serves with the shared test PKI's leaf (`localhost`, `127.0.0.1`) and trusts the
//! shared test CA for registries (`--registry-ca`), so it reaches every [`super::TestRegistry`]
//! and [`super::FakeRegistry`] of the test binary. Its stdout and stderr go to a file
//! ([`Webhook::log`]); `--log-format json` makes each review one JSON line.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitStatus;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

use super::process::{on_a_free_port, Process};
use super::review::Review;
use super::LOOPBACK;
use super::{
    ca_file, ca_pem, client_builder_over, install_crypto_provider, pki, rustls_client_config,
    scratch, write, H2_AND_HTTP11,
};

/// How long a started binary may take to answer `GET /readyz` with 200.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Options for [`Webhook::start`]; every field maps to one flag of `pullcheck serve`.
#[derive(Clone, Debug)]
pub struct WebhookOptions {
    /// YAML written to a file and passed with `--config`.
    pub config: Option<String>,
    /// `--mode`.
    pub mode: Option<String>,
    /// `--timeout` (e.g. `1s`, `2500ms`).
    pub timeout: Option<String>,
    /// Pass the shared test CA with `--registry-ca` (true by default).
    pub registry_ca: bool,
    /// Any further arguments, verbatim.
    pub extra_args: Vec<String>,
    /// Environment variables for the binary. `KUBECONFIG` defaults to a file that does not
    /// exist, so no developer's cluster is ever reached: set it to a fake API server's.
    pub env: Vec<(String, String)>,
}

impl Default for WebhookOptions {
    fn default() -> Self {
        WebhookOptions {
            config: None,
            mode: None,
            timeout: None,
            registry_ca: true,
            extra_args: Vec::new(),
            env: Vec::new(),
        }
    }
}

impl WebhookOptions {
    pub fn config(mut self, yaml: &str) -> Self {
        self.config = Some(yaml.to_string());
        self
    }

    pub fn mode(mut self, mode: &str) -> Self {
        self.mode = Some(mode.to_string());
        self
    }

    pub fn timeout(mut self, timeout: &str) -> Self {
        self.timeout = Some(timeout.to_string());
        self
    }

    /// Do not pass `--registry-ca`: the test registries' certificates are then untrusted.
    pub fn without_registry_ca(mut self) -> Self {
        self.registry_ca = false;
        self
    }

    pub fn arg(mut self, arg: &str) -> Self {
        self.extra_args.push(arg.to_string());
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Starts the binary with these options (see [`Webhook::start`]).
    pub async fn start(self) -> Webhook {
        Webhook::start(self).await
    }
}

/// A running `pullcheck serve` on a free 127.0.0.1 port. Dropping it sends SIGTERM, and SIGKILL
/// if the process has not exited 2 s later.
pub struct Webhook {
    addr: SocketAddr,
    client: reqwest::Client,
    process: Process,
    // Last, so the files outlive the process.
    _dir: tempfile::TempDir,
}

/// What the webhook answered to one POST.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub text: String,
    /// The body as JSON, when it is JSON.
    pub json: Option<Value>,
}

impl Answer {
    /// `.response` of the returned AdmissionReview (panics when the body is not one).
    pub fn response(&self) -> &Value {
        let json = self
            .json
            .as_ref()
            .unwrap_or_else(|| panic!("HTTP {}: not JSON: {}", self.status, self.text));
        json.get("response")
            .unwrap_or_else(|| panic!("no response in {json}"))
    }

    pub fn allowed(&self) -> bool {
        self.response()["allowed"]
            .as_bool()
            .unwrap_or_else(|| panic!("response.allowed is not a boolean: {}", self.response()))
    }

    /// `response.status.code` (0 when absent).
    pub fn code(&self) -> i64 {
        self.response()["status"]["code"].as_i64().unwrap_or(0)
    }

    /// `response.status.message` ("" when absent).
    pub fn message(&self) -> String {
        self.response()["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// `response.warnings` (empty when absent).
    pub fn warnings(&self) -> Vec<String> {
        self.response()["warnings"]
            .as_array()
            .map(|w| {
                w.iter()
                    .map(|v| v.as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The `resolved-images` audit annotation, parsed (`None` when absent).
    pub fn resolved_images(&self) -> Option<Value> {
        let text = self.response()["auditAnnotations"]["resolved-images"].as_str()?;
        Some(
            serde_json::from_str(text)
                .unwrap_or_else(|e| panic!("resolved-images is not JSON ({e}): {text}")),
        )
    }

    /// The digest the audit annotation records for `location` (`container "app"`, ...).
    pub fn resolved_digest(&self, location: &str) -> Option<String> {
        self.resolved_images()?
            .get(location)?
            .get("digest")?
            .as_str()
            .map(str::to_string)
    }

    /// The whole answer as one line, for assertion messages.
    pub fn describe(&self) -> String {
        match &self.json {
            Some(json) => json.to_string(),
            None => format!("HTTP {} {}", self.status, self.text),
        }
    }
}

impl Webhook {
    /// Starts with default options: enforce mode, the embedded configuration, the shared test CA
    /// trusted for registries.
    pub async fn start_default() -> Webhook {
        Webhook::start(WebhookOptions::default()).await
    }

    /// Starts `pullcheck serve` and waits until `GET /readyz` answers 200, on another port when
    /// someone else took the first ([`on_a_free_port`]). Panics with the binary's log if it does
    /// not come up.
    pub async fn start(options: WebhookOptions) -> Webhook {
        install_crypto_provider();
        let dir = scratch::dir("webhook");
        let cert = dir.path().join("tls.crt");
        let key = dir.path().join("tls.key");
        write(&cert, &pki().leaf.cert_pem);
        write(&key, &pki().leaf.key_pem);
        let config = options.config.as_ref().map(|yaml| {
            let path = dir.path().join("config.yaml");
            write(&path, yaml);
            path
        });
        let client = api_server_client();
        let log_path = dir.path().join("pullcheck.log");

        let started = on_a_free_port("cannot listen", async |port| {
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
            let mut args: Vec<String> = vec![
                "serve".into(),
                "--listen".into(),
                addr.to_string(),
                "--tls-cert".into(),
                path_str(&cert),
                "--tls-key".into(),
                path_str(&key),
                "--log-format".into(),
                "json".into(),
            ];
            if options.registry_ca {
                args.extend(["--registry-ca".into(), path_str(ca_file())]);
            }
            // Every test registry listens on loopback, which the address policy refuses to
            // tenants by default.
            args.extend(["--allow-registry-address".into(), LOOPBACK.into()]);
            if let Some(path) = &config {
                args.extend(["--config".into(), path_str(path)]);
            }
            if let Some(mode) = &options.mode {
                args.extend(["--mode".into(), mode.clone()]);
            }
            if let Some(timeout) = &options.timeout {
                args.extend(["--timeout".into(), timeout.clone()]);
            }
            args.extend(options.extra_args.iter().cloned());

            let mut command = Process::command(env!("CARGO_BIN_EXE_pullcheck"));
            command
                .args(&args)
                // Nothing from the developer's environment may change the flags' defaults.
                .env_remove("PULLCHECK_CONFIG")
                .env_remove("PULLCHECK_MODE")
                .env_remove("PULLCHECK_TIMEOUT")
                .env_remove("PULLCHECK_REGISTRY_CA")
                .env_remove("PULLCHECK_INSECURE_REGISTRY")
                .env_remove("PULLCHECK_LOG")
                .env_remove("KUBERNETES_SERVICE_HOST")
                .env("KUBECONFIG", "/nonexistent/pullcheck-test-kubeconfig")
                .envs(options.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            let mut process = Process::spawn(command, &log_path);
            let readyz = format!("https://{addr}/readyz");
            // Our own process must say it serves, so a server of another test that took the
            // port cannot pass for ours.
            process
                .wait_ready(READY_TIMEOUT, async |process| {
                    process.log().contains("serving HTTPS")
                        && matches!(get(&client, &readyz).await, Ok((200, _)))
                })
                .await?;
            Ok((addr, process))
        })
        .await;
        let (addr, process) = started
            .unwrap_or_else(|log| panic!("pullcheck serve did not become ready; its log:\n{log}"));
        Webhook {
            addr,
            client,
            process,
            _dir: dir,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    /// The client the webhook is reached with (trusts only the test CA, HTTP/2 or HTTP/1.1).
    /// Send with [`post_json`] or inside [`on_client_runtime`], not on the test's runtime.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// POSTs `body` to `path` with `Content-Type: application/json`, as the API server does.
    pub async fn post(&self, path: &str, body: Vec<u8>) -> Answer {
        post_json(&self.client, &self.url(path), body)
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e:?}\nlog:\n{}", self.log()))
    }

    /// Sends `review` to `path` and checks what every answer must hold: HTTP 200, an
    /// `admission.k8s.io/v1` `AdmissionReview` and the request's uid.
    pub async fn review_at(&self, path: &str, review: &Review) -> Answer {
        let answer = self.post(path, review.body()).await;
        assert_eq!(
            answer.status, 200,
            "POST {path} answered {}: {}",
            answer.status, answer.text
        );
        let json = answer
            .json
            .as_ref()
            .unwrap_or_else(|| panic!("the answer is not JSON: {}", answer.text));
        assert_eq!(json["apiVersion"], "admission.k8s.io/v1", "{json}");
        assert_eq!(json["kind"], "AdmissionReview", "{json}");
        assert_eq!(json["response"]["uid"], review.uid(), "{json}");
        answer
    }

    /// [`Self::review_at`] on `/validate` (the configured default mode).
    pub async fn review(&self, review: &Review) -> Answer {
        self.review_at("/validate", review).await
    }

    /// `GET path` -> (status, body).
    pub async fn get(&self, path: &str) -> (u16, String) {
        self.try_get(path)
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e:?}"))
    }

    async fn try_get(&self, path: &str) -> Result<(u16, String), reqwest::Error> {
        get(&self.client, &self.url(path)).await
    }

    /// Everything the binary wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// The log lines that are JSON objects.
    pub fn log_json(&self) -> Vec<Value> {
        self.log()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(Value::is_object)
            .collect()
    }

    /// The JSON log lines of reviews (`"message": "review"`).
    pub fn review_log_lines(&self) -> Vec<Value> {
        self.log_json()
            .into_iter()
            .filter(|l| l["message"] == "review")
            .collect()
    }

    /// Sends `signal` (`-TERM`, `-KILL`, ...) to pullcheck.
    pub fn signal(&self, signal: &str) {
        self.process.signal(signal);
    }

    /// The exit status, if pullcheck has exited.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        self.process.try_exit()
    }

    /// Waits up to `timeout` for pullcheck to exit (async: the test's runtime keeps running).
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.process.wait_exit(timeout).await
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.process.terminate(Duration::from_secs(2));
    }
}

/// `GET url` -> (status, body), on the client's runtime.
async fn get(client: &reqwest::Client, url: &str) -> Result<(u16, String), reqwest::Error> {
    let (client, url) = (client.clone(), url.to_string());
    on_client_runtime(async move {
        let response = client.get(url).send().await?;
        let status = response.status().as_u16();
        Ok((status, response.text().await.unwrap_or_default()))
    })
    .await
}

/// Runs `future` on a runtime of its own, so the client's connections keep being served while
/// the test's thread is blocked: dropping a [`Webhook`] waits for the process to drain, and an
/// HTTP/2 drain needs the client to answer the server's GOAWAY ping. With the connection tasks
/// on a blocked current-thread test runtime, every drain would sit out its timeout.
pub async fn on_client_runtime<F>(future: F) -> F::Output
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    let runtime = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("api-server-client")
            .enable_all()
            .build()
            .expect("client runtime")
    });
    runtime
        .spawn(future)
        .await
        .unwrap_or_else(|e| panic!("client task failed: {e}"))
}

/// POSTs `body` as JSON to `url` (for a task that cannot borrow the [`Webhook`]).
pub async fn post_json(
    client: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
) -> Result<Answer, reqwest::Error> {
    let (client, url) = (client.clone(), url.to_string());
    on_client_runtime(async move { post_json_here(&client, &url, body).await }).await
}

async fn post_json_here(
    client: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
) -> Result<Answer, reqwest::Error> {
    let response = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(reqwest::header::ACCEPT, "application/json, */*")
        .body(body)
        .send()
        .await?;
    let status = response.status().as_u16();
    let bytes = response.bytes().await?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let json = serde_json::from_slice(&bytes).ok();
    Ok(Answer { status, text, json })
}

/// A client like kube-apiserver's webhook client: trusts exactly the CA of the webhook's
/// `caBundle` (the shared test CA), offers HTTP/2 and HTTP/1.1, no proxy.
pub fn api_server_client() -> reqwest::Client {
    client_builder_over(rustls_client_config(
        ca_pem(),
        rustls::DEFAULT_VERSIONS,
        H2_AND_HTTP11,
    ))
    .build()
    .expect("API server client")
}

fn path_str(path: &Path) -> String {
    path.to_str().expect("UTF-8 temp path").to_string()
}
