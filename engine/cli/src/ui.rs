//! `reprise ui`: the web UI on its own listener.

use anyhow::Context as _;
use reprise_engine::{Client, Store};
use reprise_ui::{Ui, UiOptions, check_listen_address};

/// What `reprise ui` serves with.
pub(crate) struct Serve<'a> {
    pub(crate) url: &'a str,
    /// Acts (the CLI's own client: its role, codecs and chain key).
    pub(crate) writer: Client,
    /// The writer's store: the reader shares its chain key and clock.
    pub(crate) store: Store,
    pub(crate) listen: std::net::SocketAddr,
    pub(crate) token: Option<String>,
    pub(crate) read_only: bool,
    pub(crate) read_role: String,
}

/// Serves until Ctrl-C.
pub(crate) async fn serve(serve: Serve<'_>) -> anyhow::Result<()> {
    let options = UiOptions {
        access_token: serve.token,
        read_only: serve.read_only,
        base_path: String::new(),
    };
    check_listen_address(serve.listen, &options)?;
    // Reads as the observer role, which can change nothing; the login's rights when the
    // login is not a member of it (a development database).
    let reader_pool = match reprise_engine::connect_as(serve.url, &serve.read_role).await {
        Ok(pool) => pool,
        Err(e) if e.is_permission_denied() => {
            eprintln!(
                "reprise ui: cannot read as {} ({e}); reading with the login's own rights",
                serve.read_role
            );
            serve.store.pool().clone()
        }
        Err(e) => return Err(e.into()),
    };
    let reader = Client::new(serve.store.with_pool(reader_pool))
        .with_converter(serve.writer.converter().clone());
    let ui = Ui::new(reader, Some(serve.writer), options.clone());
    let listener = tokio::net::TcpListener::bind(serve.listen)
        .await
        .with_context(|| format!("listening on {}", serve.listen))?;
    eprintln!(
        "reprise ui: http://{}{}",
        listener.local_addr()?,
        if options.read_only {
            " (read-only)"
        } else {
            ""
        }
    );
    ui.serve(listener, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
