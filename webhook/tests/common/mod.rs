//! Setup shared by the server tests.

use std::path::Path;
use std::time::Duration;

use tollgate_engine::rvm::Evaluator;

use tollgate::serve::config::{EvaluateOn, Exemptions, LogFormat, ServeConfig, TlsSource};

/// A server on loopback ports picked by the OS, with a generated certificate (its CA written
/// to `dir/ca.pem`), no policies of its own and the flags' defaults otherwise, but a quick
/// reload poll and drain.
pub fn loopback_config(dir: &Path) -> ServeConfig {
    ServeConfig {
        listen: "127.0.0.1:0".parse().expect("a socket address"),
        probe_listen: "127.0.0.1:0".parse().expect("a socket address"),
        policies: Vec::new(),
        with_embedded_pack: false,
        tls: TlsSource::Generated {
            ca_file: dir.join("ca.pem"),
        },
        client_ca: None,
        exemptions: Exemptions::default(),
        fail_open: false,
        expand: true,
        reload_interval: Duration::from_millis(100),
        eval_budget: Duration::from_secs(2),
        evaluate_on: EvaluateOn::RequestTaskThenPool,
        inline_budget: Duration::from_millis(5),
        evaluator: Evaluator::default(),
        request_timeout: Duration::from_secs(10),
        shutdown_grace: Duration::from_secs(10),
        log_format: LogFormat::Text,
        cluster: None,
    }
}
