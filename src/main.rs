use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // One crypto provider for every TLS user in the process (kube, reqwest, the server).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = pullcheck::config::Cli::parse();
    match pullcheck::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Our error types already name their cause in their own words.
            eprintln!("pullcheck: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
