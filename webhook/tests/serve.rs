//! `tollgate serve` over real HTTPS: responses, exemptions, reloads, certificate rotation by
//! symlink swap, malformed requests, readiness, metrics and graceful shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests assert by unwrapping

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};
use std::time::Duration;

use axum::body::Bytes;
use axum_server::accept::Accept as _;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use tollgate::serve::config::{EvaluateOn, Exemptions, ServeConfig, TlsSource};
use tollgate::serve::metrics::Metrics;
use tollgate::serve::publisher::SourceSnapshot;
use tollgate::serve::server::{MAX_BODY_BYTES, Server, https_acceptor};
use tollgate::serve::state::{AdmissionSettings, AppState};
use tollgate::serve::tls;

static CRYPTO: Once = Once::new();

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn config(dir: &Path) -> ServeConfig {
    common::loopback_config(dir)
}

struct Running {
    https: SocketAddr,
    probes: SocketAddr,
    /// PEM of the generated CA; empty when the test brings its own certificate.
    ca: String,
    client: reqwest::Client,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

fn client_trusting(cas: &[&str]) -> reqwest::Client {
    let certs = cas
        .iter()
        .map(|pem| reqwest::Certificate::from_pem(pem.as_bytes()).unwrap());
    reqwest::Client::builder()
        .tls_certs_only(certs)
        .build()
        .unwrap()
}

async fn start(config: ServeConfig) -> Running {
    CRYPTO.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    let server = Server::bind(config.clone()).await.unwrap();
    let https = server.https_addr().unwrap();
    let probes = server.probe_addr().unwrap();
    let ca = match &config.tls {
        TlsSource::Generated { .. } => server.dev_ca_pem().unwrap().to_string(),
        TlsSource::Files { .. } => String::new(),
    };
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(server.run(shutdown.clone()));
    let running = Running {
        https,
        probes,
        client: if ca.is_empty() {
            reqwest::Client::new()
        } else {
            client_trusting(&[&ca])
        },
        ca,
        shutdown,
        task,
    };
    for _ in 0..200 {
        if running.probe("/readyz").await.0 == 200 {
            return running;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("server never became ready");
}

impl Running {
    fn url(&self) -> String {
        format!("https://localhost:{}/v1/admit", self.https.port())
    }

    async fn admit_raw(&self, body: Vec<u8>) -> (u16, String) {
        let resp = self
            .client
            .post(self.url())
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    async fn admit(&self, review: &Value) -> Value {
        let (status, body) = self.admit_raw(serde_json::to_vec(review).unwrap()).await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    async fn probe(&self, path: &str) -> (u16, String) {
        let resp = reqwest::get(format!("http://{}{path}", self.probes))
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
    }
}

fn reference_pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "logistics-tracker", "namespace": "logistics"},
        "spec": {
            "runtimeClassName": "wasmedge",
            "nodeSelector": {"node-type": "edge"},
            "containers": [{
                "name": "logistics-tracker",
                "image": "registry.example.com/logistics-tracker:latest",
                "resources": {
                    "requests": {"cpu": "200m", "memory": "256Mi"},
                    "limits": {"cpu": "1000m", "memory": "1Gi"}
                },
                "ports": [{"containerPort": 8080, "name": "http"}]
            }]
        }
    })
}

fn review(version: &str, operation: &str, object: Option<Value>, old: Option<Value>) -> Value {
    let subject = object.clone().or(old.clone()).unwrap();
    json!({
        "apiVersion": format!("admission.k8s.io/{version}"),
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "name": subject["metadata"]["name"],
            "namespace": subject["metadata"]["namespace"],
            "operation": operation,
            "userInfo": {"username": "alice", "groups": ["system:authenticated"]},
            "object": object,
            "oldObject": old,
            "dryRun": false
        }
    })
}

fn pod_with(change: impl FnOnce(&mut Value)) -> Value {
    let mut pod = reference_pod();
    change(&mut pod);
    pod
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_match_gatekeepers_format() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(config(dir.path())).await;
    let warned = server
        .admit(&review("v1", "CREATE", Some(reference_pod()), None))
        .await;
    insta::assert_json_snapshot!("warned_reference_pod", warned);
    let pinned = pod_with(|p| {
        p["spec"]["containers"][0]["image"] = json!("registry.example.com/logistics-tracker:1.4.2")
    });
    let allowed = server
        .admit(&review("v1", "CREATE", Some(pinned), None))
        .await;
    insta::assert_json_snapshot!("allowed_pinned_pod", allowed);
    let runc = pod_with(|p| p["spec"]["runtimeClassName"] = json!("runc"));
    let denied = server
        .admit(&review("v1", "CREATE", Some(runc), None))
        .await;
    insta::assert_json_snapshot!("denied_runc_pod", denied);
    let two = pod_with(|p| {
        p["spec"]["runtimeClassName"] = json!("runc");
        p["spec"]["containers"][0]["image"] = json!("docker.io/library/nginx:1.27");
    });
    let denied_twice = server.admit(&review("v1", "CREATE", Some(two), None)).await;
    insta::assert_json_snapshot!("denied_by_two_constraints", denied_twice);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1beta1_is_answered_in_v1beta1() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(config(dir.path())).await;
    let runc = pod_with(|p| p["spec"]["runtimeClassName"] = json!("runc"));
    let resp = server
        .admit(&review("v1beta1", "CREATE", Some(runc), None))
        .await;
    assert_eq!(resp["apiVersion"], "admission.k8s.io/v1beta1");
    assert_eq!(resp["response"]["allowed"], false);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_reviews_see_the_old_object() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(config(dir.path())).await;
    let runc = pod_with(|p| p["spec"]["runtimeClassName"] = json!("runc"));
    let resp = server
        .admit(&review("v1", "DELETE", None, Some(runc)))
        .await;
    assert_eq!(resp["response"]["allowed"], false, "{resp}");
    assert!(
        resp["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .starts_with("[tracker-runtime-class] ")
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exempt_namespaces_and_own_service_account_skip_evaluation() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.exemptions = Exemptions {
        service_account: Some("system:serviceaccount:tollgate-system:tollgate".into()),
        namespaces: vec!["kube-system".into()],
        prefixes: vec!["logistics-sandbox-".into()],
        suffixes: vec!["-scratch".into()],
    };
    let server = start(cfg).await;
    let runc = |ns: &str| {
        pod_with(|p| {
            p["spec"]["runtimeClassName"] = json!("runc");
            p["metadata"]["namespace"] = json!(ns);
        })
    };
    // The tracker constraints match namespace "logistics" only; a catch-all would be needed to
    // show the bypass, so use logistics-named exempt namespaces plus the service account.
    let mut own = review("v1", "CREATE", Some(runc("logistics")), None);
    own["request"]["userInfo"]["username"] =
        json!("system:serviceaccount:tollgate-system:tollgate");
    assert_eq!(server.admit(&own).await["response"]["allowed"], true);
    let not_own = review("v1", "CREATE", Some(runc("logistics")), None);
    assert_eq!(server.admit(&not_own).await["response"]["allowed"], false);
    for ns in ["kube-system", "logistics-sandbox-1", "team-scratch"] {
        let r = review("v1", "CREATE", Some(runc(ns)), None);
        let resp = server.admit(&r).await;
        assert_eq!(resp["response"]["allowed"], true, "{ns}: {resp}");
    }
    server.stop().await;
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn catch_all_constraint(action: &str) -> String {
    format!(
        "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sRequiredRuntimeClass\nmetadata:\n  name: everywhere\nspec:\n  enforcementAction: {action}\n  match:\n    kinds: [{{apiGroups: [\"\"], kinds: [Pod]}}]\n    namespaces: [\"*\"]\n  parameters:\n    runtimeClassNames: [wasmedge]\n"
    )
}

fn runtime_class_template() -> String {
    std::fs::read_to_string(root().join("constraints/k8srequiredruntimeclass/template.yaml"))
        .unwrap()
}

async fn wait_for_metric(server: &Running, needle: &str) {
    for _ in 0..300 {
        let (_, text) = server.probe("/metrics").await;
        if text.lines().any(|l| l.starts_with(needle)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, text) = server.probe("/metrics").await;
    panic!("metric {needle} never appeared:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extra_policies_can_sit_beside_the_embedded_pack() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    write(
        &policies.join("constraint.yaml"),
        &catch_all_constraint("deny"),
    );
    let mut cfg = config(dir.path());
    cfg.policies = vec![policies];
    cfg.with_embedded_pack = true;
    let server = start(cfg).await;
    let runc = |ns: &str| {
        pod_with(|p| {
            p["spec"]["runtimeClassName"] = json!("runc");
            p["metadata"]["namespace"] = json!(ns);
        })
    };
    // The extra constraint uses the pack's template and applies everywhere ...
    let other = server
        .admit(&review("v1", "CREATE", Some(runc("default")), None))
        .await;
    let message = other["response"]["status"]["message"].as_str().unwrap();
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(message.starts_with("[everywhere] "), "{message}");
    // ... and the pack's own constraints still apply in logistics.
    let tracker = server
        .admit(&review("v1", "CREATE", Some(runc("logistics")), None))
        .await;
    let message = tracker["response"]["status"]["message"].as_str().unwrap();
    assert!(message.contains("[tracker-runtime-class] "), "{message}");
    assert!(message.contains("[everywhere] "), "{message}");
    server.stop().await;
}

/// A server reading `dir/policies`, which holds the runtime-class template and the catch-all
/// constraint (deny); the directory comes back for the test to rewrite.
async fn start_with_runtime_class_files(dir: &Path) -> (Running, PathBuf) {
    let policies = dir.join("policies");
    write(&policies.join("template.yaml"), &runtime_class_template());
    write(
        &policies.join("constraint.yaml"),
        &catch_all_constraint("deny"),
    );
    let mut cfg = config(dir);
    cfg.policies = vec![policies.clone()];
    (start(cfg).await, policies)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reload_rejects_a_broken_set_and_keeps_enforcing_the_last_good_one() {
    let dir = tempfile::tempdir().unwrap();
    let (server, policies) = start_with_runtime_class_files(dir.path()).await;
    let runc = pod_with(|p| {
        p["spec"]["runtimeClassName"] = json!("runc");
        p["metadata"]["namespace"] = json!("default");
    });
    let r = review("v1", "CREATE", Some(runc), None);
    assert_eq!(server.admit(&r).await["response"]["allowed"], false);

    write(
        &policies.join("constraint.yaml"),
        "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sRequiredRuntimeClass\nmetadata:\n  name: everywhere\nspec:\n  parameters:\n    runtimeClassNames: wasmedge\n",
    );
    wait_for_metric(
        &server,
        "tollgate_policy_reloads_total{result=\"failure\"} 1",
    )
    .await;
    let resp = server.admit(&r).await;
    assert_eq!(
        resp["response"]["allowed"], false,
        "the last good set must still deny: {resp}"
    );

    write(
        &policies.join("constraint.yaml"),
        &catch_all_constraint("dryrun"),
    );
    wait_for_metric(
        &server,
        "tollgate_policy_reloads_total{result=\"success\"} 1",
    )
    .await;
    let resp = server.admit(&r).await;
    assert_eq!(
        resp["response"]["allowed"], true,
        "dry-run is not enforced: {resp}"
    );
    insta::assert_json_snapshot!("dryrun_catch_all", resp);
    wait_for_metric(
        &server,
        "tollgate_violations_total{constraint=\"everywhere\",enforcement_action=\"dryrun\"} 1",
    )
    .await;
    server.stop().await;
}

/// The per-constraint timings are resolved once per published set: after a reload, the new
/// set's constraints (a new one, and the same one compiled again) are counted, the same
/// constraint in the same series.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evaluation_timings_follow_a_reloaded_policy_set() {
    let dir = tempfile::tempdir().unwrap();
    let (server, policies) = start_with_runtime_class_files(dir.path()).await;
    let pod = pod_with(|p| p["metadata"]["namespace"] = json!("default"));
    let r = review("v1", "CREATE", Some(pod), None);
    server.admit(&r).await;
    let count = |name: &str, n: u32| {
        format!(
            "tollgate_constraint_evaluation_duration_seconds_count{{kind=\"K8sRequiredRuntimeClass\",name=\"{name}\"}} {n}"
        )
    };
    wait_for_metric(&server, &count("everywhere", 1)).await;

    write(
        &policies.join("second.yaml"),
        &catch_all_constraint("deny").replace("name: everywhere", "name: second"),
    );
    wait_for_metric(
        &server,
        "tollgate_policy_reloads_total{result=\"success\"} 1",
    )
    .await;
    server.admit(&r).await;
    server.admit(&r).await;
    let (_, text) = server.probe("/metrics").await;
    for line in [count("everywhere", 3), count("second", 2)] {
        assert!(text.lines().any(|l| l == line), "missing {line}:\n{text}");
    }
    server.stop().await;
}

/// Lays out a Secret volume as kubelet does: files are links through `..data`, which points
/// at a timestamped directory and is replaced atomically on rotation.
fn kubelet_volume(dir: &Path, generation: &str, cert: &tls::DevCertificate) {
    let data = dir.join(generation);
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("tls.crt"), &cert.cert_pem).unwrap();
    std::fs::write(data.join("tls.key"), &cert.key_pem).unwrap();
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(generation, &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    for f in ["tls.crt", "tls.key"] {
        let link = dir.join(f);
        if link.symlink_metadata().is_err() {
            std::os::unix::fs::symlink(format!("..data/{f}"), &link).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_rotation_by_symlink_swap_serves_the_new_certificate_without_failures() {
    let dir = tempfile::tempdir().unwrap();
    let volume = dir.path().join("certs");
    let first = tls::generate_dev_certificate(&[]).unwrap();
    let second = tls::generate_dev_certificate(&[]).unwrap();
    kubelet_volume(&volume, "..2026_11_26_00_00_00.1", &first);
    let mut cfg = config(dir.path());
    cfg.tls = TlsSource::Files {
        cert: volume.join("tls.crt"),
        key: volume.join("tls.key"),
    };
    let mut server = start(cfg).await;
    server.client = client_trusting(&[&first.ca_pem]);
    let pod = review("v1", "CREATE", Some(reference_pod()), None);
    assert_eq!(server.admit(&pod).await["response"]["allowed"], true);

    let both = client_trusting(&[&first.ca_pem, &second.ca_pem]);
    let only_new = client_trusting(&[&second.ca_pem]);
    kubelet_volume(&volume, "..2026_11_26_01_00_00.2", &second);
    let mut rotated = false;
    let mut failures = 0;
    for _ in 0..300 {
        // A fresh connection each time: the certificate is chosen at handshake.
        let resp = both
            .post(server.url())
            .json(&pod)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .ok();
        if resp != Some(200) {
            failures += 1;
        }
        let fresh = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(second.ca_pem.as_bytes()).unwrap()])
            .build()
            .unwrap();
        if fresh.post(server.url()).json(&pod).send().await.is_ok() {
            rotated = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(rotated, "the new certificate was never served");
    assert_eq!(failures, 0, "requests failed during rotation");
    let resp = only_new.post(server.url()).json(&pod).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    wait_for_metric(&server, "tollgate_tls_reloads_total{result=\"success\"} 1").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_clear_answers_and_never_a_5xx() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(config(dir.path())).await;
    let refused = |body: &str| -> (bool, String, String) {
        let v: Value = serde_json::from_str(body).unwrap();
        (
            v["response"]["allowed"].as_bool().unwrap(),
            v["response"]["status"]["message"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            v["response"]["uid"].as_str().unwrap_or("").to_string(),
        )
    };
    let (status, body) = server.admit_raw(b"this is not json".to_vec()).await;
    assert_eq!(status, 400);
    assert!(body.contains("not a valid JSON AdmissionReview"), "{body}");

    let cases: Vec<(Value, &str, &str)> = vec![
        (json!({}), "unsupported AdmissionReview apiVersion \"\"", ""),
        (
            json!({"apiVersion": "admission.k8s.io/v2", "kind": "AdmissionReview", "request": {"uid": "u2"}}),
            "unsupported AdmissionReview apiVersion \"admission.k8s.io/v2\"",
            "u2",
        ),
        (
            json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}),
            "request: missing",
            "",
        ),
        (
            json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": "x"}),
            "request: expected an object",
            "",
        ),
        (
            json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": "u3", "operation": 7}}),
            "request.operation: expected a string",
            "u3",
        ),
        (
            json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": "u4", "object": "pod"}}),
            "request.object: expected an object",
            "u4",
        ),
        (
            json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": "u5", "operation": "CREATE"}}),
            "no object or oldObject found to review",
            "u5",
        ),
        (
            json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": "u6", "operation": "DELETE", "object": {"kind": "Pod"}}}),
            "oldObject cannot be nil for DELETE operations",
            "u6",
        ),
    ];
    for (review, message, uid) in cases {
        let (status, body) = server.admit_raw(serde_json::to_vec(&review).unwrap()).await;
        assert_eq!(status, 200, "{review}: {body}");
        let (allowed, got, got_uid) = refused(&body);
        assert!(!allowed, "{review}: {body}");
        assert!(got.contains(message), "{review}: {got}");
        assert_eq!(got_uid, uid);
    }

    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let (status, body) = server.admit_raw(deep.into_bytes()).await;
    assert_eq!(status, 400, "{body}");

    let huge = format!("{{\"apiVersion\": \"{}\"}}", "x".repeat(8 * 1024 * 1024));
    let (status, _) = server.admit_raw(huge.into_bytes()).await;
    assert_eq!(status, 413);

    let resp = server.client.get(server.url()).send().await.unwrap();
    assert_eq!(resp.status(), 405);

    // The server is still healthy after all of that.
    let ok = server
        .admit(&review("v1", "CREATE", Some(reference_pod()), None))
        .await;
    assert_eq!(ok["response"]["allowed"], true);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_use_gatekeepers_names() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(config(dir.path())).await;
    let runc = pod_with(|p| p["spec"]["runtimeClassName"] = json!("runc"));
    server
        .admit(&review("v1", "CREATE", Some(runc), None))
        .await;
    server
        .admit(&review("v1", "CREATE", Some(reference_pod()), None))
        .await;
    let (status, text) = server.probe("/metrics").await;
    assert_eq!(status, 200);
    for line in [
        "gatekeeper_validation_request_count_total{admission_status=\"deny\",admission_dryrun=\"false\"} 1",
        "gatekeeper_validation_request_count_total{admission_status=\"allow\",admission_dryrun=\"false\"} 1",
        "gatekeeper_validation_request_duration_seconds_bucket{le=\"10.0\",admission_status=\"deny\"} 1",
        "gatekeeper_constraint_templates{status=\"active\"} 5",
        "gatekeeper_constraints{enforcement_action=\"deny\",status=\"active\"} 4",
        "gatekeeper_constraints{enforcement_action=\"warn\",status=\"active\"} 1",
        "tollgate_violations_total{constraint=\"tracker-runtime-class\",enforcement_action=\"deny\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line}:\n{text}");
    }
    assert!(text.contains("tollgate_constraint_evaluation_duration_seconds_count{kind=\"K8sEdgeResources\",name=\"tracker-edge-resources\"} 2"), "{text}");
    assert_eq!(server.probe("/healthz").await.0, 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_opens_only_once_every_policy_source_is_published_and_tls_is_bound() {
    CRYPTO.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::bind(config(dir.path())).await.unwrap();
    // A source that has not delivered yet, as the cluster before its first list.
    let late = server.add_source("late");
    assert!(!server.state().is_ready(), "ready before serving");
    let probes = server.probe_addr().unwrap();
    let state = server.state().clone();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(server.run(shutdown.clone()));
    let readyz = || async {
        let resp = reqwest::get(format!("http://{probes}/readyz"))
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    };
    // The pack is published meanwhile (reviews are answered from it), but not ready.
    for _ in 0..300 {
        if state.policies.load().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        state.policies.load().is_some(),
        "the pack was never published"
    );
    let (status, body) = readyz().await;
    assert_eq!(
        (status, body.as_str()),
        (503, "not ready: waiting for late\n")
    );
    late.send(SourceSnapshot::default());
    let mut last = (0, String::new());
    for _ in 0..300 {
        last = readyz().await;
        if last.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!((last.0, last.1.as_str()), (200, "ready\n"));
    shutdown.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn before_the_first_policy_set_is_published_reviews_are_refused() {
    CRYPTO.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    let settings = |fail_open| AdmissionSettings {
        exemptions: Exemptions::default(),
        fail_open,
        expand: true,
        evaluate_on: EvaluateOn::RequestTaskThenPool,
        inline_budget: Duration::from_millis(5),
    };
    for fail_open in [false, true] {
        let state = AppState::new(settings(fail_open), Arc::new(Metrics::new()));
        assert_eq!(
            state.not_ready_because().as_deref(),
            Some("waiting for the first policy set")
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = tollgate::serve::server::router(state, Duration::from_secs(10));
        let served = tokio::spawn(async move { axum::serve(listener, app).await });
        let body = review("v1", "CREATE", Some(reference_pod()), None);
        let resp: Value = reqwest::Client::new()
            .post(format!("http://{addr}/v1/admit"))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let r = &resp["response"];
        if fail_open {
            assert_eq!(r["allowed"], true, "{resp}");
            assert_eq!(r["status"]["code"], 299, "{resp}");
            assert_eq!(
                r["warnings"][0],
                "tollgate could not evaluate this request: tollgate has not published its policies yet"
            );
        } else {
            assert_eq!(r["allowed"], false, "{resp}");
            assert_eq!(r["status"]["code"], 500);
            assert_eq!(
                r["status"]["message"],
                "tollgate has not published its policies yet"
            );
        }
        served.abort();
    }
}

fn broken_template(name: &str, kind: &str) -> String {
    format!(
        "apiVersion: templates.gatekeeper.sh/v1\nkind: ConstraintTemplate\nmetadata:\n  name: {name}\nspec:\n  crd:\n    spec:\n      names:\n        kind: {kind}\n  targets:\n  - target: admission.k8s.gatekeeper.sh\n    rego: |\n      package {name}\n      violation[{{\"msg\": msg}}] {{\n        msg := \"unterminated\n      }}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_that_does_not_compile_is_reported_and_never_takes_the_others_down() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    write(
        &policies.join("runtime-template.yaml"),
        &runtime_class_template(),
    );
    write(
        &policies.join("runtime-constraint.yaml"),
        &catch_all_constraint("deny"),
    );
    // Broken from the start: it never compiled, so it is left out; its constraint too.
    write(
        &policies.join("broken-template.yaml"),
        &broken_template("k8sbroken", "K8sBroken"),
    );
    write(
        &policies.join("broken-constraint.yaml"),
        "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sBroken\nmetadata:\n  name: broken\n",
    );
    let mut cfg = config(dir.path());
    cfg.policies = vec![policies.clone()];
    let server = start(cfg).await;
    let (status, body) = server.probe("/readyz").await;
    assert_eq!(
        status, 200,
        "a broken template must not make a replica unready: {body}"
    );
    // One problem: the broken template's constraint is not a second one.
    assert!(
        body.starts_with("ready\n1 policy problem(s); everything else is enforced:\n"),
        "{body}"
    );
    assert!(body.contains("broken-template.yaml: document 1 (ConstraintTemplate \"k8sbroken\"): spec.targets[0].rego: failed to compile Rego"), "{body}");
    assert!(
        body.contains("broken-template.yaml:15:"),
        "the Rego error points into the file: {body}"
    );
    wait_for_metric(
        &server,
        "gatekeeper_constraint_templates{status=\"error\"} 1",
    )
    .await;
    wait_for_metric(
        &server,
        "gatekeeper_constraint_templates{status=\"active\"} 1",
    )
    .await;
    wait_for_metric(&server, "tollgate_policy_problems{enforced=\"nothing\"} 1").await;
    let runc = pod_with(|p| {
        p["spec"]["runtimeClassName"] = json!("runc");
        p["metadata"]["namespace"] = json!("default");
    });
    let r = review("v1", "CREATE", Some(runc), None);
    let resp = server.admit(&r).await;
    assert_eq!(resp["response"]["allowed"], false, "{resp}");
    assert!(
        resp["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .starts_with("[everywhere] ")
    );

    // Editing a constraint does not compile any template again.
    let compiled = "gatekeeper_constraint_template_ingestion_count_total{status=\"active\"} 1";
    wait_for_metric(&server, compiled).await;
    write(
        &policies.join("runtime-constraint.yaml"),
        &catch_all_constraint("warn"),
    );
    wait_for_metric(
        &server,
        "tollgate_policy_reloads_total{result=\"failure\"} 1",
    )
    .await;
    let resp = server.admit(&r).await;
    assert_eq!(resp["response"]["allowed"], true, "{resp}");
    wait_for_metric(&server, compiled).await;

    // Breaking the good template keeps its last good version enforced.
    write(
        &policies.join("runtime-template.yaml"),
        &runtime_class_template().replace(
            "_pod := input.review.object",
            "_pod := input.review.object\n          broken := [",
        ),
    );
    wait_for_metric(
        &server,
        "tollgate_policy_reloads_total{result=\"failure\"} 2",
    )
    .await;
    wait_for_metric(
        &server,
        "tollgate_policy_problems{enforced=\"last-good\"} 1",
    )
    .await;
    let (_, body) = server.probe("/readyz").await;
    assert!(
        body.contains(
            "runtime-template.yaml: document 1 (ConstraintTemplate \"k8srequiredruntimeclass\")"
        ),
        "{body}"
    );
    assert!(
        body.contains("(the last good version stays enforced)"),
        "{body}"
    );
    let resp = server.admit(&r).await;
    assert_eq!(resp["response"]["allowed"], true, "{resp}");
    assert!(
        resp["response"]["warnings"][0]
            .as_str()
            .unwrap()
            .starts_with("[everywhere] "),
        "{resp}"
    );

    // Fixing both clears every problem.
    write(
        &policies.join("runtime-template.yaml"),
        &runtime_class_template(),
    );
    std::fs::remove_file(policies.join("broken-template.yaml")).unwrap();
    std::fs::remove_file(policies.join("broken-constraint.yaml")).unwrap();
    wait_for_metric(
        &server,
        "tollgate_policy_reloads_total{result=\"success\"} 1",
    )
    .await;
    assert_eq!(server.probe("/readyz").await, (200, "ready\n".to_string()));
    wait_for_metric(
        &server,
        "gatekeeper_constraint_templates{status=\"error\"} 0",
    )
    .await;
    server.stop().await;
}

fn slow_template() -> &'static str {
    "apiVersion: templates.gatekeeper.sh/v1\nkind: ConstraintTemplate\nmetadata:\n  name: k8sslow\nspec:\n  crd:\n    spec:\n      names:\n        kind: K8sSlow\n      validation:\n        openAPIV3Schema:\n          properties:\n            size:\n              type: string\n  targets:\n  - target: admission.k8s.gatekeeper.sh\n    rego: |\n      package k8sslow\n      violation[{\"msg\": msg}] {\n        r := numbers.range(1, to_number(input.parameters.size))\n        n := count({x | x := (r[_] * r[_]) % 7})\n        n < 0\n        msg := \"never\"\n      }\n"
}

fn slow_constraint(size: u64) -> String {
    format!(
        "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sSlow\nmetadata:\n  name: slow\nspec:\n  parameters:\n    size: \"{size}\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runaway_template_is_stopped_by_the_budget_and_reported_as_its_violation() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    write(&policies.join("template.yaml"), slow_template());
    write(&policies.join("constraint.yaml"), &slow_constraint(20_000));
    let mut cfg = config(dir.path());
    cfg.policies = vec![policies];
    cfg.eval_budget = Duration::from_millis(100);
    let server = start(cfg).await;
    let resp = server
        .admit(&review("v1", "CREATE", Some(reference_pod()), None))
        .await;
    assert_eq!(resp["response"]["allowed"], false, "{resp}");
    let msg = resp["response"]["status"]["message"].as_str().unwrap();
    assert!(msg.starts_with("[slow] "), "{msg}");
    assert!(msg.contains("exceeded time limit"), "{msg}");
    server.stop().await;
}

/// A template that builds an ever larger array (size² strings) instead of looping quietly.
fn hoarding_template() -> &'static str {
    "apiVersion: templates.gatekeeper.sh/v1\nkind: ConstraintTemplate\nmetadata:\n  name: k8shoard\nspec:\n  crd:\n    spec:\n      names:\n        kind: K8sHoard\n      validation:\n        openAPIV3Schema:\n          properties:\n            size:\n              type: string\n  targets:\n  - target: admission.k8s.gatekeeper.sh\n    rego: |\n      package k8shoard\n      violation[{\"msg\": msg}] {\n        r := numbers.range(1, to_number(input.parameters.size))\n        big := [s | a := r[_]; b := r[_]; s := sprintf(\"%v-%v\", [a, b])]\n        count(big) < 0\n        msg := \"never\"\n      }\n"
}

/// Runaway constraints confined to namespace `runaway`: one that loops, one that hoards.
fn runaway_constraints() -> String {
    "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sSlow\nmetadata:\n  name: slow\nspec:\n  match:\n    namespaces: [runaway]\n  parameters:\n    size: \"20000\"\n---\napiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sHoard\nmetadata:\n  name: hoard\nspec:\n  match:\n    namespaces: [runaway]\n  parameters:\n    size: \"100000\"\n".to_string()
}

/// While more runaway evaluations than the runtime has workers are in flight, other requests
/// are still accepted and answered: every one of them finishes before any runaway does (an
/// ordering, not a timing, so a loaded machine cannot make it flaky). Then each runaway ends
/// as its constraint's violation, stopped by the budget.
/// Both modes that keep runaways off the runtime workers are checked; with `request-task` this
/// test fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runaway_evaluations_do_not_hold_up_other_requests() {
    for evaluate_on in [EvaluateOn::RequestTaskThenPool, EvaluateOn::BlockingPool] {
        runaways_alongside_ordinary_requests(evaluate_on).await;
    }
}

async fn runaways_alongside_ordinary_requests(evaluate_on: EvaluateOn) {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    write(&policies.join("slow.yaml"), slow_template());
    write(&policies.join("hoard.yaml"), hoarding_template());
    write(&policies.join("constraints.yaml"), &runaway_constraints());
    let mut cfg = config(dir.path());
    cfg.policies = vec![policies];
    cfg.eval_budget = Duration::from_secs(4);
    cfg.evaluate_on = evaluate_on;
    let server = start(cfg).await;
    let runaway_pod = pod_with(|p| p["metadata"]["namespace"] = json!("runaway"));
    let mut runaway = Vec::new();
    for _ in 0..4 {
        let client = server.client.clone();
        let url = server.url();
        let mut body = review("v1", "CREATE", Some(runaway_pod.clone()), None);
        body["request"]["namespace"] = json!("runaway");
        runaway.push(tokio::spawn(async move {
            let resp = client.post(url).json(&body).send().await?;
            resp.json::<Value>().await
        }));
    }
    // Let the runaways reach evaluation (TLS and parsing take milliseconds; the budget is 4s).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ordinary = review("v1", "CREATE", Some(reference_pod()), None);
    for i in 0..20 {
        let resp = server.admit(&ordinary).await;
        assert_eq!(resp["response"]["allowed"], true, "request {i}: {resp}");
    }
    let finished = runaway.iter().filter(|h| h.is_finished()).count();
    assert_eq!(
        finished, 0,
        "{evaluate_on:?}: a runaway evaluation finished before the ordinary requests were all answered"
    );
    for handle in runaway {
        let resp = handle.await.unwrap().unwrap();
        assert_eq!(resp["response"]["allowed"], false, "{resp}");
        let msg = resp["response"]["status"]["message"].as_str().unwrap();
        assert!(msg.contains("[slow] ") && msg.contains("[hoard] "), "{msg}");
        assert_eq!(msg.matches("exceeded time limit").count(), 2, "{msg}");
    }
    server.stop().await;
}

/// A template that takes a while and then gives a real violation.
fn counting_template() -> &'static str {
    "apiVersion: templates.gatekeeper.sh/v1\nkind: ConstraintTemplate\nmetadata:\n  name: k8scounted\nspec:\n  crd:\n    spec:\n      names:\n        kind: K8sCounted\n      validation:\n        openAPIV3Schema:\n          properties:\n            size:\n              type: string\n  targets:\n  - target: admission.k8s.gatekeeper.sh\n    rego: |\n      package k8scounted\n      violation[{\"msg\": msg}] {\n        r := numbers.range(1, to_number(input.parameters.size))\n        n := count({x | x := (r[_] * r[_]) % 7})\n        msg := sprintf(\"counted %d residues\", [n])\n      }\n"
}

/// A review that runs past the inline budget is evaluated again on the blocking pool with the
/// full budget: it gets the template's real answer, not a time-out, and the move is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_review_past_the_inline_budget_is_answered_from_the_blocking_pool() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    write(&policies.join("template.yaml"), counting_template());
    write(
        &policies.join("constraint.yaml"),
        "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sCounted\nmetadata:\n  name: counted\nspec:\n  parameters:\n    size: \"400\"\n",
    );
    let mut cfg = config(dir.path());
    cfg.policies = vec![policies];
    cfg.evaluate_on = EvaluateOn::RequestTaskThenPool;
    // 160,000 products take far longer than a microsecond, and far less than a minute.
    cfg.inline_budget = Duration::from_micros(1);
    cfg.eval_budget = Duration::from_secs(60);
    let server = start(cfg).await;
    let resp = server
        .admit(&review("v1", "CREATE", Some(reference_pod()), None))
        .await;
    assert_eq!(resp["response"]["allowed"], false, "{resp}");
    assert_eq!(
        resp["response"]["status"]["message"], "[counted] counted 7 residues",
        "{resp}"
    );
    let (_, text) = server.probe("/metrics").await;
    assert!(
        text.contains("tollgate_reviews_moved_to_blocking_pool_total 1\n"),
        "{text}"
    );
    // Evaluated twice (inline, then on the pool), counted once.
    assert!(
        text.contains(
            "tollgate_constraint_evaluation_duration_seconds_count{kind=\"K8sCounted\",name=\"counted\"} 1\n"
        ),
        "{text}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_open_admits_what_could_not_be_evaluated_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    write(&policies.join("template.yaml"), slow_template());
    write(&policies.join("constraint.yaml"), &slow_constraint(20_000));
    let mut cfg = config(dir.path());
    cfg.policies = vec![policies];
    cfg.eval_budget = Duration::from_millis(100);
    cfg.fail_open = true;
    let server = start(cfg).await;
    let resp = server
        .admit(&review("v1", "CREATE", Some(reference_pod()), None))
        .await;
    assert_eq!(resp["response"]["allowed"], true, "{resp}");
    // Allowed with a warning: Gatekeeper's httpStatusWarning.
    assert_eq!(resp["response"]["status"]["code"], 299, "{resp}");
    let warning = resp["response"]["warnings"][0].as_str().unwrap();
    assert!(
        warning.starts_with("[slow] not evaluated (fail-open): "),
        "{warning}"
    );
    assert!(warning.contains("exceeded time limit"), "{warning}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_is_negotiated_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(config(dir.path())).await;
    let resp = server
        .client
        .post(server.url())
        .json(&review("v1", "CREATE", Some(reference_pod()), None))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_requests_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    write(&policies.join("template.yaml"), slow_template());
    write(&policies.join("constraint.yaml"), &slow_constraint(1000));
    let mut cfg = config(dir.path());
    cfg.policies = vec![policies];
    cfg.eval_budget = Duration::from_secs(60);
    let server = start(cfg).await;
    let review = review("v1", "CREATE", Some(reference_pod()), None);
    let mut in_flight = Vec::new();
    for _ in 0..4 {
        let client = server.client.clone();
        let url = server.url();
        let body = review.clone();
        in_flight.push(tokio::spawn(async move {
            let resp = client.post(url).json(&body).send().await?;
            let status = resp.status().as_u16();
            let v: Value = resp.json().await?;
            Ok::<_, reqwest::Error>((status, v))
        }));
    }
    tokio::time::sleep(Duration::from_millis(30)).await;
    let unfinished = in_flight.iter().filter(|h| !h.is_finished()).count();
    assert!(
        unfinished > 0,
        "every request finished before shutdown began"
    );
    let Running { shutdown, task, .. } = server;
    shutdown.cancel();
    for request in in_flight {
        let (status, v) = request.await.unwrap().unwrap();
        assert_eq!(status, 200);
        assert_eq!(v["response"]["allowed"], true, "{v}");
    }
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_are_required_when_a_client_ca_is_set() {
    let dir = tempfile::tempdir().unwrap();
    let server_cert = tls::generate_dev_certificate(&[]).unwrap();
    let client_ca = tls::generate_dev_certificate(&[]).unwrap();
    let stranger = tls::generate_dev_certificate(&[]).unwrap();
    write(&dir.path().join("tls.crt"), &server_cert.cert_pem);
    write(&dir.path().join("tls.key"), &server_cert.key_pem);
    write(&dir.path().join("client-ca.crt"), &client_ca.ca_pem);
    let mut cfg = config(dir.path());
    cfg.tls = TlsSource::Files {
        cert: dir.path().join("tls.crt"),
        key: dir.path().join("tls.key"),
    };
    cfg.client_ca = Some(dir.path().join("client-ca.crt"));
    let server = start(cfg).await;
    let pod = review("v1", "CREATE", Some(reference_pod()), None);
    let with_identity = |cert: &tls::DevCertificate| {
        let pem = format!("{}{}", cert.cert_pem, cert.key_pem);
        reqwest::Client::builder()
            .tls_certs_only([
                reqwest::Certificate::from_pem(server_cert.ca_pem.as_bytes()).unwrap(),
            ])
            .identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap())
            .build()
            .unwrap()
    };
    let anonymous = client_trusting(&[&server_cert.ca_pem]);
    assert!(
        anonymous
            .post(server.url())
            .json(&pod)
            .send()
            .await
            .is_err()
    );
    assert!(
        with_identity(&stranger)
            .post(server.url())
            .json(&pod)
            .send()
            .await
            .is_err()
    );
    let resp = with_identity(&client_ca)
        .post(server.url())
        .json(&pod)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    server.stop().await;
}

/// Cluster mode's Namespace handling, with the API server's live read stood in by a function:
/// a cached Namespace is used as is, a miss is read live, a missing one is Gatekeeper's 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_come_from_the_cache_then_a_live_read_then_gatekeepers_500() {
    CRYPTO.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tollgate::serve::state::NamespaceReader;

    let root = root();
    let mut sources = tollgate_engine::Sources::default();
    for f in ["template.yaml", "constraint.yaml"] {
        sources
            .add_path(&root.join("tests/e2e/manifests/namespace-selector").join(f))
            .unwrap();
    }
    let set = tollgate_engine::PolicySet::build(&sources).unwrap();
    let settings = AdmissionSettings {
        exemptions: Exemptions::default(),
        fail_open: false,
        expand: true,
        evaluate_on: EvaluateOn::RequestTaskThenPool,
        inline_budget: Duration::from_millis(5),
    };
    let mut state = AppState::with_policies(set, settings, Arc::new(Metrics::new()));
    let namespace = |name: &str, team: &str| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {"team": team}}});
    let mut cached = tollgate_engine::DataSnapshot::default();
    cached.set_namespace(namespace("payments", "payments"));
    cached.set_namespace(namespace("open", "other"));
    state.data.store(Arc::new(cached));
    let reads = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&reads);
    state.set_namespace_reader(NamespaceReader(Arc::new(move |name: String| {
        counted.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            match name.as_str() {
                "fresh" => Ok(Some(json!({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": "fresh", "labels": {"team": "payments"}}}))),
                "unreachable" => Err(
                    "Get \"https://10.0.0.1/api/v1/namespaces/unreachable\": connection refused"
                        .to_string(),
                ),
                _ => Ok(None),
            }
        })
    })));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = tollgate::serve::server::router(state, Duration::from_secs(10));
    let served = tokio::spawn(async move { axum::serve(listener, app).await });
    let admit = |object: Value, kind: &str| {
        let mut body = review("v1", "CREATE", Some(object), None);
        body["request"]["kind"]["kind"] = json!(kind);
        async move {
            let resp: Value = reqwest::Client::new()
                .post(format!("http://{addr}/v1/admit"))
                .json(&body)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            resp["response"].clone()
        }
    };
    let pod_in = |ns: &str| pod_with(|p| p["metadata"]["namespace"] = json!(ns));

    // Cached: no live read; the selector and namespaceObject see the cached labels.
    let r = admit(pod_in("payments"), "Pod").await;
    assert_eq!(r["status"]["code"], 403, "{r}");
    assert!(
        r["status"]["message"]
            .as_str()
            .unwrap()
            .ends_with("is denied in a namespace of team payments"),
        "{r}"
    );
    assert_eq!(admit(pod_in("open"), "Pod").await["allowed"], true);
    assert_eq!(reads.load(Ordering::SeqCst), 0);
    // Not cached yet: read live, and enforced.
    let r = admit(pod_in("fresh"), "Pod").await;
    assert_eq!(r["status"]["code"], 403, "{r}");
    assert_eq!(reads.load(Ordering::SeqCst), 1);
    // Missing, or unreadable: Gatekeeper's answer, whatever the constraints.
    let r = admit(pod_in("missing"), "Pod").await;
    assert_eq!(
        (
            &r["allowed"],
            &r["status"]["code"],
            r["status"]["message"].as_str().unwrap()
        ),
        (
            &json!(false),
            &json!(500),
            "failed to create augmentedReview: namespaces \"missing\" not found"
        )
    );
    let r = admit(pod_in("unreachable"), "Pod").await;
    assert_eq!(r["status"]["code"], 500, "{r}");
    assert!(
        r["status"]["message"]
            .as_str()
            .unwrap()
            .starts_with("failed to create augmentedReview: Get "),
        "{r}"
    );
    // A request for a Namespace object never looks one up.
    let before = reads.load(Ordering::SeqCst);
    let mut ns_object = namespace("brand-new", "payments");
    ns_object["metadata"]["namespace"] = json!("brand-new");
    assert_eq!(admit(ns_object, "Namespace").await["allowed"], true);
    assert_eq!(reads.load(Ordering::SeqCst), before);
    served.abort();
}

// === clients that write a whole body before they read ===

type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

impl Running {
    /// A TLS connection that offers only `alpn` (`h2` or `http/1.1`), trusting the generated CA.
    async fn tls(&self, alpn: &[u8]) -> Tls {
        tls_connect(self.https, &self.ca, alpn).await
    }
}

async fn tls_connect(addr: SocketAddr, ca_pem: &str, alpn: &[u8]) -> Tls {
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(alpn));
    tls
}

/// A JSON document of exactly `len` bytes.
fn json_of_len(len: usize) -> Bytes {
    let frame = "{\"apiVersion\": \"\"}";
    let text = format!("{{\"apiVersion\": \"{}\"}}", "x".repeat(len - frame.len()));
    assert_eq!(text.len(), len);
    Bytes::from(text)
}

fn h1_head(length: usize, extra: &str) -> String {
    format!(
        "POST /v1/admit HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {length}\r\n{extra}\r\n"
    )
}

/// Reads one HTTP/1.1 response: the status, the head (lower case) and the body (the response
/// must have a Content-Length, as tollgate's do).
async fn read_h1_response(
    tls: &mut (impl AsyncRead + Unpin),
) -> std::io::Result<(u16, String, String)> {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        if tls.read(&mut byte).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        raw.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&raw).to_lowercase();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut body = vec![0; length];
    tls.read_exact(&mut body).await?;
    Ok((status, head, String::from_utf8_lossy(&body).into_owned()))
}

/// Sends one request over HTTP/2 and, only once the whole body is sent (END_STREAM included),
/// reads the response: what curl does, which reports a reset stream as an error even after a
/// complete response.
async fn h2_exchange(
    send: &h2::client::SendRequest<Bytes>,
    url: &str,
    mut body: Bytes,
) -> Result<(u16, String), String> {
    let request = axum::http::Request::post(url)
        .header("content-type", "application/json")
        .header("content-length", body.len())
        .body(())
        .unwrap();
    let mut send = send.clone().ready().await.map_err(|e| e.to_string())?;
    let (response, mut stream) = send
        .send_request(request, false)
        .map_err(|e| e.to_string())?;
    while !body.is_empty() {
        stream.reserve_capacity(body.len());
        let granted = std::future::poll_fn(|cx| stream.poll_capacity(cx))
            .await
            .ok_or_else(|| format!("the stream closed with {} bytes unsent", body.len()))?
            .map_err(|e| format!("{e} with {} bytes unsent", body.len()))?;
        let chunk = body.split_to(granted.min(body.len()));
        stream
            .send_data(chunk, body.is_empty())
            .map_err(|e| e.to_string())?;
    }
    let response = response.await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let mut received = response.into_body();
    let mut text = Vec::new();
    while let Some(chunk) = received.data().await {
        let chunk = chunk.map_err(|e| e.to_string())?;
        let _ = received.flow_control().release_capacity(chunk.len());
        text.extend_from_slice(&chunk);
    }
    Ok((status, String::from_utf8_lossy(&text).into_owned()))
}

fn names_the_limit(text: &str) -> bool {
    text.contains(&MAX_BODY_BYTES.to_string())
}

/// Python's `http.client` writes the whole body, then reads. A server that stops reading at the
/// limit and closes resets the connection under the client's write, and the 413 is lost. The
/// body here is far larger than socket buffers past the limit, so only a server that reads the
/// rest lets the write finish; the connection then serves the next review.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_written_whole_over_http1_gets_its_413() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(config(dir.path())).await;
    let mut tls = server.tls(b"http/1.1").await;
    let body = json_of_len(3 * MAX_BODY_BYTES);
    tls.write_all(h1_head(body.len(), "").as_bytes())
        .await
        .unwrap();
    tls.write_all(&body)
        .await
        .expect("the whole body is written before anything is read");
    tls.flush().await.unwrap();
    let (status, _, text) = read_h1_response(&mut tls)
        .await
        .expect("an answer once the body is written");
    assert_eq!(status, 413, "{text}");
    assert!(names_the_limit(&text), "{text}");

    let review = serde_json::to_vec(&review("v1", "CREATE", Some(reference_pod()), None)).unwrap();
    tls.write_all(h1_head(review.len(), "").as_bytes())
        .await
        .unwrap();
    tls.write_all(&review).await.unwrap();
    let (status, _, text) = read_h1_response(&mut tls).await.unwrap();
    assert_eq!(
        status, 200,
        "the same connection answers the next review: {text}"
    );
    let (_, metrics) = server.probe("/metrics").await;
    assert!(
        metrics.contains("tollgate_oversized_requests_total{body=\"drained\"} 1\n"),
        "{metrics}"
    );
    server.stop().await;
}

/// curl over HTTP/2 sends the whole body before it reads. A server that answers at the limit
/// and resets the rest of the stream (RST_STREAM NO_ERROR, which the RFC allows) makes curl fail
/// with "Stream error in the HTTP/2 framing layer" and no response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_written_whole_over_http2_gets_its_413() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(config(dir.path())).await;
    let (send, connection) = h2::client::handshake(server.tls(b"h2").await)
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let body = json_of_len(MAX_BODY_BYTES + 5 * 1024 * 1024);
    let (status, text) = h2_exchange(&send, &server.url(), body)
        .await
        .expect("the whole body is sent, then the answer read");
    assert_eq!(status, 413, "{text}");
    assert!(names_the_limit(&text), "{text}");

    let review = serde_json::to_vec(&review("v1", "CREATE", Some(reference_pod()), None)).unwrap();
    let (status, text) = h2_exchange(&send, &server.url(), Bytes::from(review))
        .await
        .unwrap();
    assert_eq!(
        status, 200,
        "the same connection answers the next review: {text}"
    );
    server.stop().await;
}

/// A body the server would not read to its end anyway is refused from its Content-Length,
/// without waiting for it: a client that asks first (`Expect: 100-continue`, as curl does over
/// HTTP/1.1) hears the 413 instead of a 100 Continue and never sends the body, and one that
/// announces more than the server discards hears it at once. Both are told the connection
/// closes, since the body they may still send will not be read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_announced_too_large_is_refused_before_it_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(config(dir.path())).await;
    for (length, extra) in [
        (MAX_BODY_BYTES + 1, "expect: 100-continue\r\n"),
        (1 << 30, ""),
    ] {
        let mut tls = server.tls(b"http/1.1").await;
        tls.write_all(h1_head(length, extra).as_bytes())
            .await
            .unwrap();
        let (status, head, text) = read_h1_response(&mut tls).await.unwrap();
        assert_eq!(status, 413, "{length} {extra:?}: {head}{text}");
        assert!(head.contains("\r\nconnection: close\r\n"), "{head}");
        assert!(names_the_limit(&text), "{text}");
    }
    let (_, metrics) = server.probe("/metrics").await;
    assert!(
        metrics.contains("tollgate_oversized_requests_total{body=\"unread\"} 2\n"),
        "{metrics}"
    );
    server.stop().await;
}

/// The server side of an accepted admission connection, through the acceptor chain the server
/// runs, has Nagle's algorithm off (`TCP_NODELAY`), as Go servers have: with it on, the
/// response waits behind the unacknowledged session tickets for the client's delayed ACK.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_admission_connections_have_nagle_off() {
    CRYPTO.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    let dev = tls::generate_dev_certificate(&[]).unwrap();
    let config = tls::server_config(dev.cert_pem.as_bytes(), dev.key_pem.as_bytes(), None).unwrap();
    let acceptor = https_acceptor(
        axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(config)),
        Duration::from_secs(10),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client = tokio::spawn(async move { tls_connect(addr, &dev.ca_pem, b"h2").await });
    let (tcp, _) = listener.accept().await.unwrap();
    assert!(
        !tcp.nodelay().unwrap(),
        "a fresh socket starts with Nagle on"
    );
    let (tls, _) = acceptor.accept(tcp, ()).await.unwrap();
    assert!(tls.get_ref().0.nodelay().unwrap(), "TCP_NODELAY is not set");
    client.await.unwrap();
}

/// `--tls-key` pointing at a certificate names the file and the likely mistake.
#[test]
fn a_key_file_holding_a_certificate_is_named_with_the_likely_mistake() {
    let dir = tempfile::tempdir().unwrap();
    let dev = tls::generate_dev_certificate(&[]).unwrap();
    let cert = dir.path().join("tls.crt");
    std::fs::write(&cert, &dev.cert_pem).unwrap();
    let err = tls::load_files(&cert, &cert, None).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "failed to parse the private key in {}: no items found (the file holds a CERTIFICATE: are --tls-cert and --tls-key swapped?)",
            cert.display()
        )
    );
}
