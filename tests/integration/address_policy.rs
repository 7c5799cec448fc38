//! The address policy, attacked as a tenant would: image references, token realms and
//! redirects that point at loopback, another loopback address, or a name that resolves there.
//! A listener that records every connection proves that a refused one never happens.

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::{self, FakeRegistry, Reply};
use pullcheck::reason::Reason;
use pullcheck::reference::ImageRef;
use pullcheck::registry::address::{AddressPolicy, AddressRule};
use pullcheck::registry::{RegistryClient, RegistryError, RegistrySettings};

/// A TCP listener that counts the connections it accepts (and closes them at once).
struct Recorder {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
}

impl Recorder {
    fn on(ip: &str) -> Recorder {
        let listener = TcpListener::bind((ip, 0)).expect("bind the recorder");
        let addr = listener.local_addr().expect("address");
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                count.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
        Recorder { addr, accepted }
    }

    fn port(&self) -> u16 {
        self.addr.port()
    }

    fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

fn client(allow: &[&str], deny: &[&str]) -> RegistryClient {
    common::install_crypto_provider();
    let rules = |list: &[&str]| {
        list.iter()
            .map(|r| AddressRule::parse(r).expect("rule"))
            .collect()
    };
    RegistryClient::new(&RegistrySettings {
        address_policy: AddressPolicy {
            allow: rules(allow),
            deny: rules(deny),
        },
        extra_ca_files: vec![common::ca_file().to_path_buf()],
        connect_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(2),
        ..RegistrySettings::default()
    })
    .expect("client")
}

fn image(text: &str) -> ImageRef {
    ImageRef::parse_normalized(text).expect("reference")
}

#[tokio::test]
async fn node_local_registries_are_never_contacted() {
    let recorder = Recorder::on("127.0.0.1");
    let port = recorder.port();
    let client = client(&[], &[]);
    for reference in [
        format!("127.0.0.1:{port}/app:v1"),
        format!("localhost:{port}/app:v1"),
        format!("registry.localhost:{port}/app:v1"),
        // The URL parser reads these as 127.0.0.1 too.
        format!("2130706433:{port}/app:v1"),
        format!("0x7f000001:{port}/app:v1"),
    ] {
        let got = client.resolve(&image(&reference), None).await;
        assert_eq!(got, Err(RegistryError::NodeLocal), "{reference}");
        assert_eq!(RegistryError::NodeLocal.reason(), Reason::NodeLocal);
    }
    assert_eq!(recorder.connections(), 0);
}

#[tokio::test]
async fn an_explicitly_allowed_loopback_registry_is_checked() {
    let recorder = Recorder::on("127.0.0.1");
    let client = client(&["127.0.0.1/32"], &[]);
    let got = client
        .resolve(
            &image(&format!("127.0.0.1:{}/app:v1", recorder.port())),
            None,
        )
        .await;
    // The recorder is no registry: what matters is that the connection was made.
    assert!(got.is_err());
    assert!(recorder.connections() >= 1);
}

#[tokio::test]
async fn a_denied_address_is_refused_without_a_word_about_it() {
    let recorder = Recorder::on("127.0.0.2");
    let client = client(&["127.0.0.0/8"], &["127.0.0.2/32"]);
    let got = client
        .resolve(
            &image(&format!("127.0.0.2:{}/app:v1", recorder.port())),
            None,
        )
        .await;
    assert_eq!(got, Err(RegistryError::AddressNotAllowed));
    assert_eq!(recorder.connections(), 0);
}

#[tokio::test]
async fn token_realms_at_refused_addresses_get_no_request() {
    let recorder = Recorder::on("127.0.0.2");
    let realm_literal = format!("https://127.0.0.2:{}/token", recorder.port());
    // A name resolved by pullcheck's resolver: refused by a host rule here, so the resolver,
    // not the literal check, is what stops it.
    let realm_name = format!("https://localhost:{}/token", recorder.port());
    for realm in [realm_literal, realm_name] {
        let challenge = format!("Bearer realm=\"{realm}\",service=\"r\"");
        let fake = FakeRegistry::start(move |_| Reply::unauthorized(&challenge));
        let client = client(&["127.0.0.1/32"], &["localhost"]);
        let got = client.resolve(&image(&fake.image("app", "v1")), None).await;
        assert_eq!(got, Err(RegistryError::AddressNotAllowed), "{realm}");
        assert!(
            fake.requests()
                .iter()
                .all(|r| r.header("authorization").is_none()),
            "a token was obtained from {realm}"
        );
    }
    assert_eq!(recorder.connections(), 0);
}

#[tokio::test]
async fn redirects_to_refused_addresses_are_not_followed() {
    let recorder = Recorder::on("127.0.0.2");
    let target = format!("https://127.0.0.2:{}/v2/app/manifests/v1", recorder.port());
    let fake = FakeRegistry::start(move |_| Reply::status(307).header("location", &target));
    let client = client(&["127.0.0.1/32"], &[]);
    let got = client.resolve(&image(&fake.image("app", "v1")), None).await;
    assert_eq!(got, Err(RegistryError::AddressNotAllowed));
    assert_eq!(recorder.connections(), 0);
}

#[tokio::test]
async fn redirects_never_go_from_https_to_http_nor_on_forever() {
    let recorder = Recorder::on("127.0.0.1");
    let plain = format!("http://127.0.0.1:{}/v2/app/manifests/v1", recorder.port());
    let downgrade = FakeRegistry::start(move |_| Reply::status(307).header("location", &plain));
    let client = client(&["127.0.0.1/32"], &[]);
    let got = client
        .resolve(&image(&downgrade.image("app", "v1")), None)
        .await;
    assert!(got.is_err(), "{got:?}");
    assert_eq!(recorder.connections(), 0);

    // A registry redirecting to itself: a few hops, then an answer.
    let looping = FakeRegistry::start(|req| {
        Reply::status(307).header("location", &format!("{}{}", req.base_url, req.path))
    });
    let before = looping.total();
    let got = client
        .resolve(&image(&looping.image("app", "v1")), None)
        .await;
    assert!(got.is_err(), "{got:?}");
    assert!(
        looping.total() - before <= 5,
        "{} requests",
        looping.total()
    );
}
