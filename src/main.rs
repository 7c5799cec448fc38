use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // One crypto provider for every TLS user in the process (kube, reqwest, the server).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = pullcheck::config::Cli::parse();
    match pullcheck::run(cli).await {
        Ok(pullcheck::Conclusion::Done) => std::process::ExitCode::SUCCESS,
        // `explain`: the kubelet's pull would fail.
        Ok(pullcheck::Conclusion::PullFails) => std::process::ExitCode::from(1),
        Ok(pullcheck::Conclusion::Interrupted(code)) => std::process::ExitCode::from(code),
        Err(e) => {
            // Our error types already name their cause in their own words.
            eprintln!("pullcheck: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
