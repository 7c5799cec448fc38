//! Pushing test images to a [`TestRegistry`] over the registry HTTP API, and the standard fixtures.
//!
//! Order matters to distribution: blobs first, then image manifests (by digest), then an index
//! that refers to them; the registry refuses a manifest whose blobs or children it does not have.
//! It does not look inside layers, so a layer is a few bytes of text.

use std::fmt;

use serde_json::{json, Value};

use super::registry::TestRegistry;
use super::{Digest, DOCKER_LIST, DOCKER_MANIFEST, MANIFEST_ACCEPT, OCI_INDEX, OCI_MANIFEST};

/// An OS/architecture/variant triple, as in an index entry and an image config.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Platform {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
    /// `os.version`, for Windows images (e.g. `10.0.20348.2655`).
    pub os_version: Option<String>,
}

impl Platform {
    pub fn new(os: &str, arch: &str, variant: Option<&str>) -> Platform {
        Platform {
            os: os.to_string(),
            arch: arch.to_string(),
            variant: variant.map(str::to_string),
            os_version: None,
        }
    }

    pub fn with_os_version(mut self, version: &str) -> Platform {
        self.os_version = Some(version.to_string());
        self
    }

    /// `os/arch` or `os/arch/variant`.
    pub fn parse(text: &str) -> Platform {
        let parts: Vec<&str> = text.split('/').collect();
        match parts.as_slice() {
            [os, arch] => Platform::new(os, arch, None),
            [os, arch, variant] => Platform::new(os, arch, Some(variant)),
            _ => panic!("platform {text:?} is not os/arch[/variant]"),
        }
    }

    pub fn linux_amd64() -> Platform {
        Platform::new("linux", "amd64", None)
    }

    pub fn linux_arm64() -> Platform {
        Platform::new("linux", "arm64", None)
    }

    pub fn linux_arm64_v8() -> Platform {
        Platform::new("linux", "arm64", Some("v8"))
    }

    /// `unknown/unknown`: in [`TestRegistry::push_index`] this becomes a BuildKit-style
    /// attestation manifest attached to the first real platform of the index.
    pub fn attestation() -> Platform {
        Platform::new("unknown", "unknown", None)
    }

    pub fn is_attestation(&self) -> bool {
        self.os == "unknown" && self.arch == "unknown"
    }

    fn json(&self) -> Value {
        let mut platform = json!({"architecture": self.arch, "os": self.os});
        if let Some(variant) = &self.variant {
            platform["variant"] = json!(variant);
        }
        if let Some(version) = &self.os_version {
            platform["os.version"] = json!(version);
        }
        platform
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

/// Which kind of multi-platform manifest to push.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexFlavor {
    /// `application/vnd.oci.image.index.v1+json` over OCI image manifests.
    Oci,
    /// `application/vnd.docker.distribution.manifest.list.v2+json` over Docker schema 2 manifests.
    DockerList,
}

impl IndexFlavor {
    pub fn media_type(self) -> &'static str {
        match self {
            IndexFlavor::Oci => OCI_INDEX,
            IndexFlavor::DockerList => DOCKER_LIST,
        }
    }
}

/// A pushed index and its entries, in index order.
#[derive(Clone, Debug)]
pub struct PushedIndex {
    pub digest: Digest,
    pub children: Vec<(Platform, Digest)>,
}

impl PushedIndex {
    /// The digest of the entry for `platform`.
    pub fn child(&self, platform: &Platform) -> &Digest {
        self.children
            .iter()
            .find(|(p, _)| p == platform)
            .map(|(_, d)| d)
            .unwrap_or_else(|| panic!("no {platform} entry in the index"))
    }
}

/// A manifest pushed by digest, ready to be referenced from an index or tagged.
struct Pushed {
    digest: Digest,
    media_type: &'static str,
    body: Vec<u8>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Schema {
    Oci,
    Docker,
}

impl TestRegistry {
    fn authorized(
        &self,
        request: reqwest::RequestBuilder,
        repository: &str,
    ) -> reqwest::RequestBuilder {
        match self.push_authorization(repository) {
            Some(value) => request.header(reqwest::header::AUTHORIZATION, value),
            None => request,
        }
    }

    /// Uploads a blob (monolithic: POST for an upload URL, then one PUT with the bytes).
    pub async fn push_blob(&self, repository: &str, bytes: &[u8]) -> Digest {
        let digest = Digest::of(bytes);
        let start_url = format!("{}/v2/{repository}/blobs/uploads/", self.url());
        let request = self
            .authorized(self.client().post(&start_url), repository)
            .header(reqwest::header::CONTENT_LENGTH, "0");
        let started = send(request, 202, &format!("start blob upload in {repository}")).await;
        let location = header(&started, "location").expect("upload Location header");
        // Location may be absolute or relative, and already carries the upload state query.
        let mut upload = url::Url::parse(&self.url())
            .expect("registry URL")
            .join(&location)
            .expect("upload URL");
        upload
            .query_pairs_mut()
            .append_pair("digest", digest.as_str());
        let request = self
            .authorized(self.client().put(upload), repository)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(bytes.to_vec());
        send(request, 201, &format!("finish blob upload in {repository}")).await;
        digest
    }

    /// PUTs a manifest under `reference` (a tag or its own digest) and returns its digest, checked
    /// against the registry's `Docker-Content-Digest`.
    pub async fn push_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> Digest {
        let digest = Digest::of(body);
        let url = format!("{}/v2/{repository}/manifests/{reference}", self.url());
        let request = self
            .authorized(self.client().put(&url), repository)
            .header(reqwest::header::CONTENT_TYPE, media_type)
            .body(body.to_vec());
        let what = format!("push {media_type} to {repository}:{reference}");
        let response = send(request, 201, &what).await;
        assert_eq!(
            header(&response, "docker-content-digest").as_deref(),
            Some(digest.as_str()),
            "registry digest"
        );
        digest
    }

    /// Config blob + one layer + manifest (by digest). `salt` makes the content unique.
    async fn push_single(
        &self,
        repository: &str,
        platform: &Platform,
        schema: Schema,
        salt: &str,
    ) -> Pushed {
        let layer = format!("pullcheck test layer {salt} {platform}\n").into_bytes();
        let layer_digest = self.push_blob(repository, &layer).await;
        let (config_type, layer_type, manifest_type) = match schema {
            Schema::Oci if platform.is_attestation() => (
                "application/vnd.oci.image.config.v1+json",
                "application/vnd.in-toto+json",
                OCI_MANIFEST,
            ),
            Schema::Oci => (
                "application/vnd.oci.image.config.v1+json",
                "application/vnd.oci.image.layer.v1.tar+gzip",
                OCI_MANIFEST,
            ),
            Schema::Docker => (
                "application/vnd.docker.container.image.v1+json",
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
                DOCKER_MANIFEST,
            ),
        };
        let mut config = json!({
            "architecture": platform.arch,
            "os": platform.os,
            "config": {"Labels": {"org.pullcheck.test": salt}},
            "rootfs": {"type": "layers", "diff_ids": [layer_digest.as_str()]},
        });
        if let Some(variant) = &platform.variant {
            config["variant"] = json!(variant);
        }
        let config = serde_json::to_vec(&config).expect("config JSON");
        let config_digest = self.push_blob(repository, &config).await;
        let mut layer_descriptor =
            json!({"mediaType": layer_type, "digest": layer_digest.as_str(), "size": layer.len()});
        if platform.is_attestation() {
            layer_descriptor["annotations"] =
                json!({"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"});
        }
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": {"mediaType": config_type, "digest": config_digest.as_str(), "size": config.len()},
            "layers": [layer_descriptor],
        });
        let body = serde_json::to_vec(&manifest).expect("manifest JSON");
        let digest = Digest::of(&body);
        self.push_manifest(repository, digest.as_str(), manifest_type, &body)
            .await;
        Pushed {
            digest,
            media_type: manifest_type,
            body,
        }
    }

    /// Pushes a single-platform OCI image manifest (config carries `os`, `architecture`,
    /// `variant`) and tags it. Each (repository, tag) gets different content, so a digest.
    pub async fn push_image(&self, repository: &str, tag: &str, platform: Platform) -> Digest {
        self.push_tagged(repository, tag, &platform, Schema::Oci)
            .await
    }

    /// Like [`Self::push_image`] with a Docker schema 2 manifest
    /// (`application/vnd.docker.distribution.manifest.v2+json`).
    pub async fn push_docker_manifest(
        &self,
        repository: &str,
        tag: &str,
        platform: Platform,
    ) -> Digest {
        self.push_tagged(repository, tag, &platform, Schema::Docker)
            .await
    }

    async fn push_tagged(
        &self,
        repository: &str,
        tag: &str,
        platform: &Platform,
        schema: Schema,
    ) -> Digest {
        let salt = format!("{repository}:{tag}");
        let pushed = self.push_single(repository, platform, schema, &salt).await;
        self.push_manifest(repository, tag, pushed.media_type, &pushed.body)
            .await
    }

    /// Pushes one image manifest per platform (by digest), then an index listing them with their
    /// `platform`, under `tag`. An `unknown/unknown` platform ([`Platform::attestation`]) becomes
    /// an attestation manifest (OCI only) annotated as belonging to the first real entry.
    pub async fn push_index(
        &self,
        repository: &str,
        tag: &str,
        platforms: &[Platform],
        flavor: IndexFlavor,
    ) -> Digest {
        self.push_index_with_children(repository, tag, platforms, flavor)
            .await
            .digest
    }

    /// [`Self::push_index`], also returning the entries' digests.
    pub async fn push_index_with_children(
        &self,
        repository: &str,
        tag: &str,
        platforms: &[Platform],
        flavor: IndexFlavor,
    ) -> PushedIndex {
        let schema = match flavor {
            IndexFlavor::Oci => Schema::Oci,
            IndexFlavor::DockerList => Schema::Docker,
        };
        let mut children = Vec::new();
        let mut entries = Vec::new();
        for platform in platforms {
            assert!(
                !(platform.is_attestation() && flavor == IndexFlavor::DockerList),
                "a Docker manifest list cannot carry an attestation entry"
            );
            let salt = format!("{repository}:{tag}:{platform}");
            let pushed = self.push_single(repository, platform, schema, &salt).await;
            let mut entry = json!({
                "mediaType": pushed.media_type,
                "digest": pushed.digest.as_str(),
                "size": pushed.body.len(),
                "platform": platform.json(),
            });
            if platform.is_attestation() {
                // BuildKit's form: the attestation points at the image it describes.
                let subject = children
                    .iter()
                    .find(|(p, _): &&(Platform, Digest)| !p.is_attestation())
                    .map(|(_, d)| d.as_str().to_string())
                    .expect("an attestation entry must follow a real platform");
                entry["annotations"] = json!({
                    "vnd.docker.reference.digest": subject,
                    "vnd.docker.reference.type": "attestation-manifest",
                });
            }
            entries.push(entry);
            children.push((platform.clone(), pushed.digest));
        }
        let index = json!({
            "schemaVersion": 2,
            "mediaType": flavor.media_type(),
            "manifests": entries,
        });
        let body = serde_json::to_vec(&index).expect("index JSON");
        let digest = Digest::of(&body);
        self.push_manifest(repository, digest.as_str(), flavor.media_type(), &body)
            .await;
        self.push_manifest(repository, tag, flavor.media_type(), &body)
            .await;
        PushedIndex { digest, children }
    }

    /// Points `tag` at what `reference` (tag or digest) names, as `docker tag` + push would.
    pub async fn retag(&self, repository: &str, reference: &str, tag: &str) -> Digest {
        let url = format!("{}/v2/{repository}/manifests/{reference}", self.url());
        let request = self
            .authorized(self.client().get(&url), repository)
            .header(reqwest::header::ACCEPT, MANIFEST_ACCEPT);
        let response = send(request, 200, &format!("get {repository}:{reference}")).await;
        let media_type = header(&response, "content-type").expect("manifest Content-Type");
        let body = response.bytes().await.expect("manifest body");
        self.push_manifest(repository, tag, &media_type, &body)
            .await
    }

    /// HEAD with the four manifest types, as the harness's pusher: `Some((digest, content
    /// type))` on 200, `None` on 404, a panic on anything else.
    pub async fn head_manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Option<(Digest, String)> {
        let url = format!("{}/v2/{repository}/manifests/{reference}", self.url());
        let response = self
            .authorized(self.client().head(&url), repository)
            .header(reqwest::header::ACCEPT, MANIFEST_ACCEPT)
            .send()
            .await
            .expect("HEAD manifest");
        match response.status().as_u16() {
            200 => {
                let value = |name| header(&response, name).unwrap_or_default();
                Some((
                    Digest::from_header(&value("docker-content-digest")),
                    value("content-type"),
                ))
            }
            404 => None,
            other => panic!("HEAD {repository}:{reference} answered {other}"),
        }
    }

    /// Whether `repository:tag` exists (as seen by the harness's pusher).
    pub async fn tag_exists(&self, repository: &str, tag: &str) -> bool {
        self.head_manifest(repository, tag).await.is_some()
    }
}

/// One tagged fixture, for table-driven assertions.
#[derive(Clone, Debug)]
pub struct FixtureImage {
    pub repository: &'static str,
    pub tag: &'static str,
    pub digest: Digest,
    /// The `Content-Type` the registry answers for the tag.
    pub media_type: &'static str,
}

/// The standard images, pushed by [`Fixtures::seed`]:
///
/// | image | what |
/// |---|---|
/// | `public/app:v1.4.0`, `:v1.4.1`, `:v1.5.0` | OCI image manifest, linux/amd64, one digest each |
/// | `public/app:latest` | the same manifest as `v1.5.0` |
/// | `multi/app:v1` | OCI index: linux/amd64, linux/arm64/v8, attestation (unknown/unknown) |
/// | `multi/list:v1` | Docker manifest list: linux/amd64, linux/arm64/v8 |
/// | `arm/only:v1` | OCI index with only linux/arm64 |
/// | `docker/app:v1` | Docker schema 2 manifest, linux/amd64 |
/// | `private/app:v1` | OCI image manifest, linux/amd64 |
///
/// "public" and "private" only mean something on a token registry with the default
/// [`super::TokenRules`] (anonymous may pull `public/*`). On an htpasswd registry every
/// repository needs credentials; on a registry without auth every repository is open.
#[derive(Clone, Debug)]
pub struct Fixtures {
    pub app_v1_4_0: Digest,
    pub app_v1_4_1: Digest,
    pub app_v1_5_0: Digest,
    /// Equal to `app_v1_5_0`.
    pub app_latest: Digest,
    pub multi: PushedIndex,
    pub list: PushedIndex,
    pub arm_only: PushedIndex,
    pub docker: Digest,
    pub private_app: Digest,
}

impl Fixtures {
    pub const APP: &'static str = "public/app";
    pub const MULTI: &'static str = "multi/app";
    pub const LIST: &'static str = "multi/list";
    pub const ARM_ONLY: &'static str = "arm/only";
    pub const DOCKER: &'static str = "docker/app";
    pub const PRIVATE: &'static str = "private/app";

    /// Pushes every fixture (repositories concurrently) and returns their digests.
    pub async fn seed(registry: &TestRegistry) -> Fixtures {
        let app = async {
            let (v140, v141, v150) = tokio::join!(
                registry.push_image(Self::APP, "v1.4.0", Platform::linux_amd64()),
                registry.push_image(Self::APP, "v1.4.1", Platform::linux_amd64()),
                registry.push_image(Self::APP, "v1.5.0", Platform::linux_amd64()),
            );
            let latest = registry.retag(Self::APP, "v1.5.0", "latest").await;
            (v140, v141, v150, latest)
        };
        let multi_platforms = [
            Platform::linux_amd64(),
            Platform::linux_arm64_v8(),
            Platform::attestation(),
        ];
        let multi = registry.push_index_with_children(
            Self::MULTI,
            "v1",
            &multi_platforms,
            IndexFlavor::Oci,
        );
        let list_platforms = [Platform::linux_amd64(), Platform::linux_arm64_v8()];
        let list = registry.push_index_with_children(
            Self::LIST,
            "v1",
            &list_platforms,
            IndexFlavor::DockerList,
        );
        let arm_platforms = [Platform::linux_arm64()];
        let arm_only = registry.push_index_with_children(
            Self::ARM_ONLY,
            "v1",
            &arm_platforms,
            IndexFlavor::Oci,
        );
        let docker = registry.push_docker_manifest(Self::DOCKER, "v1", Platform::linux_amd64());
        let private = registry.push_image(Self::PRIVATE, "v1", Platform::linux_amd64());
        let (
            (app_v1_4_0, app_v1_4_1, app_v1_5_0, app_latest),
            multi,
            list,
            arm_only,
            docker,
            private_app,
        ) = tokio::join!(app, multi, list, arm_only, docker, private);
        Fixtures {
            app_v1_4_0,
            app_v1_4_1,
            app_v1_5_0,
            app_latest,
            multi,
            list,
            arm_only,
            docker,
            private_app,
        }
    }

    /// Every tagged fixture with the digest and `Content-Type` a HEAD must answer.
    pub fn all(&self) -> Vec<FixtureImage> {
        let image = |repository, tag, digest: &Digest, media_type| FixtureImage {
            repository,
            tag,
            digest: digest.clone(),
            media_type,
        };
        vec![
            image(Self::APP, "v1.4.0", &self.app_v1_4_0, OCI_MANIFEST),
            image(Self::APP, "v1.4.1", &self.app_v1_4_1, OCI_MANIFEST),
            image(Self::APP, "v1.5.0", &self.app_v1_5_0, OCI_MANIFEST),
            image(Self::APP, "latest", &self.app_latest, OCI_MANIFEST),
            image(Self::MULTI, "v1", &self.multi.digest, OCI_INDEX),
            image(Self::LIST, "v1", &self.list.digest, DOCKER_LIST),
            image(Self::ARM_ONLY, "v1", &self.arm_only.digest, OCI_INDEX),
            image(Self::DOCKER, "v1", &self.docker, DOCKER_MANIFEST),
            image(Self::PRIVATE, "v1", &self.private_app, OCI_MANIFEST),
        ]
    }
}

/// Sends `request` as the harness's pusher and returns the response, which must have `status`;
/// a panic naming `what` and the registry's answer otherwise.
async fn send(request: reqwest::RequestBuilder, status: u16, what: &str) -> reqwest::Response {
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    if response.status().as_u16() != status {
        let got = response.status();
        panic!(
            "{what}: HTTP {got}, not {status}: {}",
            response.text().await.unwrap_or_default()
        );
    }
    response
}

/// The value of header `name`, if it is there and text.
fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}
