//! A real registry: Debian's `docker-registry` (CNCF distribution 2.8.2) as a child process.

use std::path::Path;
use std::time::{Duration, Instant};

use super::process::{on_a_free_port, Process};
use super::token::TokenService;
use super::{base_url, basic_auth_value, ca_file, client_builder, pki, scratch, write};

/// Where Debian's `docker-registry` package puts the binary.
pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// The realm of the htpasswd challenge (`WWW-Authenticate: Basic realm="..."`).
pub const HTPASSWD_REALM: &str = "pullcheck-test";

/// The user the harness pushes with on an htpasswd registry. It is added to every htpasswd file
/// on top of the test's users, so pushing never depends on them.
const PUSHER: &str = "pullcheck-harness-pusher";

/// How the registry authenticates pulls.
pub enum RegistryAuth {
    /// Anyone may pull and push.
    None,
    /// `auth.htpasswd`: every repository needs one of these users (Basic auth). distribution has
    /// no per-repository rules in this mode, so every repository is private.
    Htpasswd { users: Vec<(String, String)> },
    /// `auth.token`: the registry trusts tokens from this service, which decides who may pull
    /// what. The registry owns the service from now on: reach it with
    /// [`TestRegistry::token_service`].
    Token { service: TokenService },
}

impl RegistryAuth {
    /// Htpasswd with the given `(user, password)` pairs.
    pub fn htpasswd(users: &[(&str, &str)]) -> RegistryAuth {
        RegistryAuth::Htpasswd {
            users: users
                .iter()
                .map(|(u, p)| ((*u).to_string(), (*p).to_string()))
                .collect(),
        }
    }
}

enum PushAuth {
    None,
    Basic(String),
    Token,
}

/// One line of the registry's access log (Apache combined format).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessLogEntry {
    pub method: String,
    /// Path and query, as requested.
    pub target: String,
    pub status: u16,
}

impl AccessLogEntry {
    /// The path without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or(&self.target)
    }
}

/// A running `docker-registry serve` over TLS on 127.0.0.1, storage in its own temporary
/// directory. Dropping it kills the process (see [`Process`]).
pub struct TestRegistry {
    addr: String,
    tls: bool,
    /// The users of an htpasswd registry, or those the token service's rules know.
    pub users: Vec<(String, String)>,
    process: Process,
    token: Option<TokenService>,
    push_auth: PushAuth,
    client: reqwest::Client,
    // Last, so the directory is removed after the process has been reaped.
    _dir: tempfile::TempDir,
}

impl TestRegistry {
    /// Starts a registry (HTTPS) and waits until it answers `GET /v2/` (20 to 50 ms).
    ///
    /// Panics with the registry's log if it does not come up.
    pub async fn start(auth: RegistryAuth) -> TestRegistry {
        Self::start_inner(auth, true).await
    }

    /// Like [`Self::start`] over plain HTTP (an "insecure registry").
    pub async fn start_plain_http(auth: RegistryAuth) -> TestRegistry {
        Self::start_inner(auth, false).await
    }

    async fn start_inner(auth: RegistryAuth, tls: bool) -> TestRegistry {
        super::install_crypto_provider();
        assert!(
            Path::new(REGISTRY_BIN).exists(),
            "{REGISTRY_BIN} is missing: run ./scripts/test.sh, or \
             apt-get install -y --no-install-recommends docker-registry"
        );
        let dir = scratch::dir("registry");
        let root = dir.path().to_path_buf();
        let path = |name: &str| root.join(name);
        write(&path("tls.crt"), &pki().leaf.cert_pem);
        write(&path("tls.key"), &pki().leaf.key_pem);
        std::fs::create_dir(path("storage")).expect("storage dir");

        let (auth_yaml, users, push_auth, token) = match auth {
            RegistryAuth::None => (String::new(), Vec::new(), PushAuth::None, None),
            RegistryAuth::Htpasswd { users } => {
                let pusher_password = random_secret();
                let mut htpasswd = String::new();
                for (user, password) in users.iter().chain(std::iter::once(&(
                    PUSHER.to_string(),
                    pusher_password.clone(),
                ))) {
                    // Cost 4: the registry runs bcrypt on every Basic-authenticated request.
                    let hash = bcrypt::hash(password, 4).expect("bcrypt");
                    htpasswd.push_str(&format!("{user}:{hash}\n"));
                }
                write(&path("htpasswd"), &htpasswd);
                let yaml = format!(
                    "auth:\n  htpasswd:\n    realm: {HTPASSWD_REALM}\n    path: {}\n",
                    path("htpasswd").display()
                );
                let push = PushAuth::Basic(basic_auth_value(PUSHER, &pusher_password));
                (yaml, users, push, None)
            }
            RegistryAuth::Token { service } => {
                write(&path("token-bundle.pem"), service.signing_cert_pem());
                let yaml = format!(
                    "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    \
                     rootcertbundle: {}\n",
                    service.realm(),
                    service.service(),
                    service.issuer(),
                    path("token-bundle.pem").display()
                );
                (yaml, service.users(), PushAuth::Token, Some(service))
            }
        };

        let client = client_builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("registry client");
        let log_path = path("registry.log");
        let started = on_a_free_port("address already in use", async |port| {
            let addr = format!("127.0.0.1:{port}");
            // Sent back on every response: a server that took the port cannot pass for ours.
            let id = random_secret();
            write(
                &path("config.yml"),
                &config_yaml(&root, &addr, &id, &auth_yaml, tls),
            );
            let mut command = Process::command(REGISTRY_BIN);
            command.arg("serve").arg(path("config.yml"));
            let mut process = Process::spawn(command, &log_path);
            let ping = format!("{}/v2/", base_url(&addr, tls));
            process
                .wait_ready(Duration::from_secs(10), async |_| {
                    let Ok(response) = client.get(&ping).send().await else {
                        return false;
                    };
                    response
                        .headers()
                        .get("x-pullcheck-registry")
                        .is_some_and(|v| v.as_bytes() == id.as_bytes())
                })
                .await?;
            Ok((addr, process))
        })
        .await;
        let (addr, process) =
            started.unwrap_or_else(|log| panic!("docker-registry did not start; its log:\n{log}"));
        TestRegistry {
            addr,
            tls,
            users,
            process,
            token,
            push_auth,
            client,
            _dir: dir,
        }
    }

    /// `127.0.0.1:PORT`: the registry host as it appears in an image reference.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// `https://127.0.0.1:PORT` (`http://` for [`Self::start_plain_http`]).
    pub fn url(&self) -> String {
        base_url(&self.addr, self.tls)
    }

    /// `127.0.0.1:PORT/<repository>:<tag>`.
    pub fn image(&self, repository: &str, tag: &str) -> String {
        format!("{}/{repository}:{tag}", self.addr)
    }

    /// Path of a file holding the PEM of the CA that signed the registry's certificate (the
    /// shared test CA).
    pub fn ca_file(&self) -> &'static Path {
        ca_file()
    }

    /// The harness's own client (trusts the CA, sends no credentials by itself).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The token service of a token-auth registry.
    pub fn token_service(&self) -> Option<&TokenService> {
        self.token.as_ref()
    }

    /// `(user, password)` of the first test user; panics when there is none.
    pub fn first_user(&self) -> (&str, &str) {
        let (user, password) = self.users.first().expect("the registry has no users");
        (user, password)
    }

    /// The requests in the access log. The registry writes a line after it has answered, so
    /// this waits until the log has not grown for 50 ms (at most 2 s).
    pub fn access_log(&self) -> Vec<AccessLogEntry> {
        let log_path = self.process.log_path();
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut size = std::fs::metadata(log_path).map_or(0, |m| m.len());
        loop {
            std::thread::sleep(Duration::from_millis(50));
            let now = std::fs::metadata(log_path).map_or(0, |m| m.len());
            if now == size || Instant::now() > deadline {
                break;
            }
            size = now;
        }
        self.process
            .log()
            .lines()
            .filter_map(parse_access_line)
            .collect()
    }

    /// How many requests with `method` on `path` (no query) the access log holds.
    pub fn count_requests(&self, method: &str, path: &str) -> usize {
        self.access_log()
            .iter()
            .filter(|e| e.method == method && e.path() == path)
            .count()
    }

    /// The `Authorization` value the harness pushes with for `repository`, if any.
    pub(super) fn push_authorization(&self, repository: &str) -> Option<String> {
        match &self.push_auth {
            PushAuth::None => None,
            PushAuth::Basic(value) => Some(value.clone()),
            PushAuth::Token => {
                let service = self.token.as_ref().expect("token registry has a service");
                let token = service.mint(PUSHER, repository, &["pull", "push", "delete"]);
                Some(format!("Bearer {token}"))
            }
        }
    }
}

fn config_yaml(dir: &Path, addr: &str, id: &str, auth_yaml: &str, tls: bool) -> String {
    let d = dir.display();
    let tls = if tls {
        format!("  tls:\n    certificate: {d}/tls.crt\n    key: {d}/tls.key\n")
    } else {
        String::new()
    };
    format!(
        "version: 0.1\n\
         log:\n  level: warn\n  accesslog:\n    disabled: false\n\
         storage:\n  filesystem:\n    rootdirectory: {d}/storage\n  delete:\n    enabled: true\n  \
         maintenance:\n    uploadpurging:\n      enabled: false\n\
         http:\n  addr: {addr}\n  secret: pullcheck-test-secret\n\
         {tls}  \
         headers:\n    X-Pullcheck-Registry: [\"{id}\"]\n\
         health:\n  storagedriver:\n    enabled: false\n\
         {auth_yaml}"
    )
}

/// `127.0.0.1 - - [date] "HEAD /v2/x/manifests/v1 HTTP/2.0" 200 0 "" "ua"` -> entry.
fn parse_access_line(line: &str) -> Option<AccessLogEntry> {
    let (_, rest) = line.split_once("] \"")?;
    let (request, rest) = rest.split_once("\" ")?;
    let mut parts = request.split(' ');
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    if !parts.next()?.starts_with("HTTP/") {
        return None;
    }
    let status = rest.split(' ').next()?.parse().ok()?;
    Some(AccessLogEntry {
        method,
        target,
        status,
    })
}

/// 32 hex characters from the OS random source.
fn random_secret() -> String {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("random bytes");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
