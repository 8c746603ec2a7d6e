//! `tendon serve`: the one HTTP application (`tendon-http`) on its own
//! HTTP/1.1 server, the queue consumers and the periodic work, in one
//! process. On the local backend this is the embedded mode; with
//! `--backend aws` it polls the real queues.
use std::net::SocketAddr;

use crate::backend::Backend;

use crate::error::CliResult;

pub async fn serve<B: Backend>(
    backend: B,
    addr: SocketAddr,
    public_url: Option<String>,
    resync_minutes: u64,
) -> CliResult {
    let settings = tendon_http::Settings::from_env()?;
    let timeouts = settings.timeouts;
    backend.spawn_workers();
    let app = tendon_http::router(backend.clone(), settings);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    backend.spawn_dispatcher(public_url.unwrap_or_else(|| format!("http://{local}")));
    backend.spawn_cliniko_resync(resync_minutes);
    // The first line on stdout says where to post; scripts and tests read it.
    // Nobody reading it (a closed stdout) is no reason to stop serving: the
    // log says it too.
    let _ = crate::output::line(&format!("tendon serve listening on http://{local}"));
    tracing::info!(addr = %local, "listening");
    tendon_http::server::serve(listener, app, timeouts, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
