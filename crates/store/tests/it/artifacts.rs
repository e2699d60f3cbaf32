//! The artifact store (issue 22, item 5) on a local directory and on a real S3 server (SeaweedFS from
//! testkit): content-addressed bundles stored once, names and their immutability, every fetched file
//! checked (hashes, paths, limits), and the errors of bad credentials and an unreachable endpoint.

use std::path::Path;
use std::time::{Duration, Instant};

use rvbbit_store::Error;
use rvbbit_store::artifacts::{
    ArtifactOptions, Artifacts, BundleFile, BundleLimits, BundleRef, Manifest, Tagged, sha256_hex,
};
use rvbbit_testkit::s3::{self, TestS3};
use tempfile::TempDir;

fn options(url: String) -> ArtifactOptions {
    ArtifactOptions {
        url,
        endpoint: None,
        region: "us-east-1".into(),
        allow_http: false,
        access_key_id: None,
        secret_access_key: None,
        session_token: None,
        timeout: Duration::from_secs(10),
        limits: BundleLimits::default(),
    }
}

fn s3_options(server: &TestS3, prefix: &str) -> ArtifactOptions {
    ArtifactOptions {
        endpoint: Some(server.endpoint()),
        allow_http: true,
        access_key_id: Some(s3::ACCESS_KEY_ID.into()),
        secret_access_key: Some(s3::SECRET_ACCESS_KEY.into()),
        ..options(server.url(prefix))
    }
}

fn files(version: &str) -> Vec<(String, Vec<u8>)> {
    vec![
        (
            "flows/main.yaml".into(),
            b"cascade_id: main\ncells: []\n".to_vec(),
        ),
        (
            "traits/tool.yaml".into(),
            format!("cascade_id: tool # {version}\n").into_bytes(),
        ),
        ("prompts/ask.md".into(), b"Ask nicely.\n".to_vec()),
    ]
}

/// Push, name, resolve and fetch: the same content is one hash stored once; a changed byte is a new
/// hash; a version is immutable unless forced; `latest` moves.
async fn round_trip(artifacts: &Artifacts, cache: &Path) {
    let first = artifacts
        .push("flows/main.yaml", vec![".".into()], files("v1"))
        .await
        .unwrap();
    assert_eq!((first.files, first.uploaded_files), (3, 3), "{first:?}");
    assert!(first.uploaded_manifest);
    let again = artifacts
        .push("flows/main.yaml", vec![".".into()], files("v1"))
        .await
        .unwrap();
    assert_eq!(again.hash, first.hash, "the same content is the same bundle");
    assert_eq!(
        (
            again.uploaded_files,
            again.uploaded_bytes,
            again.uploaded_manifest
        ),
        (0, 0, false)
    );
    let changed = artifacts
        .push("flows/main.yaml", vec![".".into()], files("v2"))
        .await
        .unwrap();
    assert_ne!(changed.hash, first.hash, "a changed file is a new bundle");
    assert_eq!(
        changed.uploaded_files, 1,
        "only the changed file is uploaded: {changed:?}"
    );

    assert_eq!(
        artifacts.tag("hello", "1", &first.hash, false).await.unwrap(),
        Tagged::Created
    );
    assert_eq!(
        artifacts.tag("hello", "1", &first.hash, false).await.unwrap(),
        Tagged::Unchanged
    );
    let taken = artifacts
        .tag("hello", "1", &changed.hash, false)
        .await
        .unwrap_err();
    assert_eq!(taken.code().code, "RVB-S024", "{taken}");
    assert!(taken.to_string().contains(&first.hash), "{taken}");
    assert_eq!(
        artifacts
            .tag("hello", "latest", &first.hash, false)
            .await
            .unwrap(),
        Tagged::Created
    );
    assert_eq!(
        artifacts
            .tag("hello", "latest", &changed.hash, false)
            .await
            .unwrap(),
        Tagged::Moved
    );
    assert_eq!(
        artifacts.tag("hello", "1", &changed.hash, true).await.unwrap(),
        Tagged::Moved
    );
    artifacts.tag("hello", "1", &first.hash, true).await.unwrap();

    let name = |v: &str| BundleRef::Name {
        name: "hello".into(),
        version: v.into(),
    };
    let hex = artifacts.resolve(&name("1")).await.unwrap();
    assert_eq!(format!("sha256:{hex}"), first.hash);
    let latest = artifacts.resolve(&name("latest")).await.unwrap();
    assert_eq!(format!("sha256:{latest}"), changed.hash);
    let missing = artifacts.resolve(&name("9")).await.unwrap_err();
    assert_eq!(missing.code().code, "RVB-S021", "{missing}");
    assert!(
        missing.to_string().contains("hello:9") && missing.to_string().contains(artifacts.url()),
        "{missing}"
    );

    let unpacked = artifacts.fetch(&hex, cache).await.unwrap();
    assert!(unpacked.fetched);
    assert_eq!(
        std::fs::read_to_string(&unpacked.entry).unwrap(),
        "cascade_id: main\ncells: []\n"
    );
    assert_eq!(
        std::fs::read_to_string(unpacked.root.join("traits/tool.yaml")).unwrap(),
        "cascade_id: tool # v1\n"
    );
    assert_eq!(unpacked.roots, vec![unpacked.root.clone()]);
    assert!(unpacked.root.starts_with(cache.join(&hex)));
    // A second fetch uses the cache; a damaged cached file is fetched again.
    assert!(!artifacts.fetch(&hex, cache).await.unwrap().fetched);
    std::fs::write(unpacked.root.join("traits/tool.yaml"), "tampered").unwrap();
    let again = artifacts.fetch(&hex, cache).await.unwrap();
    assert!(again.fetched, "a damaged copy is not used");
    assert_eq!(
        std::fs::read_to_string(again.root.join("traits/tool.yaml")).unwrap(),
        "cascade_id: tool # v1\n"
    );
    let unknown = artifacts.fetch(&"0".repeat(64), cache).await.unwrap_err();
    assert_eq!(unknown.code().code, "RVB-S021", "{unknown}");
}

#[tokio::test]
async fn bundles_on_a_local_directory() {
    let dir = TempDir::new().unwrap();
    let url = format!("file://{}", dir.path().join("store").display());
    let artifacts = Artifacts::open(&options(url)).unwrap();
    round_trip(&artifacts, &dir.path().join("cache")).await;
    // Blobs are stored once, by hash: 4 distinct files over three pushes.
    let blobs = std::fs::read_dir(dir.path().join("store/blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(blobs, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundles_on_a_real_s3_server() {
    let server = tokio::task::spawn_blocking(TestS3::start).await.unwrap();
    let dir = TempDir::new().unwrap();
    let artifacts = Artifacts::open(&s3_options(&server, "registry-test")).unwrap();
    round_trip(&artifacts, &dir.path().join("cache")).await;
    let out = artifacts
        .put_output("quiet-heron-0c1d2e3f4a5b6c7d", &serde_json::json!({"a": 1}))
        .await
        .unwrap();
    assert_eq!(
        out,
        format!(
            "{}/runs/quiet-heron-0c1d2e3f4a5b6c7d/output.json",
            server.url("registry-test")
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_and_an_unreachable_endpoint_are_coded_and_quick() {
    let server = tokio::task::spawn_blocking(TestS3::start).await.unwrap();
    let mut wrong = s3_options(&server, "x");
    wrong.secret_access_key = Some("not-the-secret".into());
    let e = Artifacts::open(&wrong)
        .unwrap()
        .push("a.yaml", vec![], vec![("a.yaml".into(), b"x".to_vec())])
        .await
        .unwrap_err();
    assert!(matches!(e, Error::ArtifactsUnavailable { .. }), "{e:?}");
    assert_eq!((e.code().code, e.code().exit_code()), ("RVB-S020", 5));
    assert!(
        !format!("{e:?}").contains("not-the-secret"),
        "the secret leaked: {e:?}"
    );
    assert!(
        !format!("{wrong:?}").contains("not-the-secret"),
        "the secret leaked: {wrong:?}"
    );

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut gone = s3_options(&server, "x");
    gone.endpoint = Some(format!("http://127.0.0.1:{port}"));
    let started = Instant::now();
    let e = Artifacts::open(&gone)
        .unwrap()
        .resolve(&BundleRef::parse("hello:1").unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.code().code, "RVB-S020", "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );

    let mut no_keys = s3_options(&server, "x");
    no_keys.access_key_id = None;
    let e = Artifacts::open(&no_keys).unwrap_err();
    assert_eq!(e.code().code, "RVB-C003", "{e}");
    assert!(e.to_string().contains("AWS_ACCESS_KEY_ID"), "{e}");
    let mut plain = s3_options(&server, "x");
    plain.allow_http = false;
    let e = Artifacts::open(&plain).unwrap_err();
    assert!(e.to_string().contains("allow_http"), "{e}");
}

/// Write a manifest straight into the store, as a hostile or broken pusher could; its hash.
fn plant(store: &Path, manifest: &Manifest, blobs: &[&[u8]]) -> String {
    let hash = manifest.hash();
    let hex = &hash[7..];
    std::fs::create_dir_all(store.join("bundles/sha256")).unwrap();
    std::fs::create_dir_all(store.join("blobs/sha256")).unwrap();
    std::fs::write(store.join("bundles/sha256").join(hex), manifest.canonical()).unwrap();
    for b in blobs {
        std::fs::write(store.join("blobs/sha256").join(sha256_hex(b)), b).unwrap();
    }
    hex.to_owned()
}

#[tokio::test]
async fn fetched_bundles_that_climb_lie_or_exceed_the_limits_are_refused() {
    let dir = TempDir::new().unwrap();
    let store = dir.path().join("store");
    let cache = dir.path().join("cache");
    let artifacts = Artifacts::open(&options(format!("file://{}", store.display()))).unwrap();
    let ok = b"cascade_id: a\ncells: []\n";
    let file = |path: &str, bytes: &[u8]| BundleFile {
        path: path.into(),
        sha256: sha256_hex(bytes),
        size: bytes.len() as u64,
    };
    for bad in ["../escaped.yaml", "/tmp/abs.yaml", "a/../../x.yaml"] {
        let m = Manifest::new("a.yaml".into(), vec![], vec![file("a.yaml", ok), file(bad, ok)]);
        let hex = plant(&store, &m, &[ok]);
        let e = artifacts.fetch(&hex, &cache).await.unwrap_err();
        assert_eq!(e.code().code, "RVB-S023", "{bad}: {e}");
    }
    assert!(!dir.path().join("escaped.yaml").exists());
    // A blob whose content is not its hash.
    let m = Manifest::new("a.yaml".into(), vec![], vec![file("a.yaml", ok)]);
    let hex = plant(&store, &m, &[]);
    std::fs::write(
        store.join("blobs/sha256").join(sha256_hex(ok)),
        b"cascade_id: evil\ncells: []\n",
    )
    .unwrap();
    let e = artifacts.fetch(&hex, &cache).await.unwrap_err();
    assert_eq!(e.code().code, "RVB-S023", "{e}");
    // A manifest edited in place no longer matches the hash it is stored under.
    let key = store.join("bundles/sha256").join(&hex);
    let edited = String::from_utf8(std::fs::read(&key).unwrap())
        .unwrap()
        .replace("a.yaml", "b.yaml");
    std::fs::write(&key, edited).unwrap();
    let e = artifacts.fetch(&hex, &cache).await.unwrap_err();
    assert!(e.to_string().contains("does not match its hash"), "{e}");
    // Limits are checked on the manifest, before any file is fetched.
    let mut small = options(format!("file://{}", store.display()));
    small.limits = BundleLimits {
        max_files: 1,
        max_bytes: 1 << 20,
    };
    let strict = Artifacts::open(&small).unwrap();
    let m = Manifest::new(
        "a.yaml".into(),
        vec![],
        vec![file("a.yaml", ok), file("b.yaml", b"missing blob")],
    );
    let hex = plant(&store, &m, &[ok]);
    let e = strict.fetch(&hex, &cache).await.unwrap_err();
    assert_eq!(e.code().code, "RVB-S022", "{e}");
    assert!(e.to_string().contains("artifacts.max_bundle_files"), "{e}");
    let e = strict
        .push(
            "a.yaml",
            vec![],
            vec![("a.yaml".into(), ok.to_vec()), ("b.yaml".into(), ok.to_vec())],
        )
        .await
        .unwrap_err();
    assert_eq!(e.code().code, "RVB-S022", "{e}");
    assert!(
        !store
            .join("blobs/sha256")
            .join(sha256_hex(b"missing blob"))
            .exists()
    );
}
