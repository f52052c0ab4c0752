//! The command line: `audit-api serve [--bind ADDR]`, `audit-api migrate`,
//! `audit-api maintain`. Configuration comes from the same variables as the Lambda.

use crate::{Clients, Config};
use std::sync::Arc;

const USAGE: &str = "usage: audit-api serve [--bind 127.0.0.1:8080] | migrate | maintain
       | verify [--company ID|none] [--json]
configuration: DATABASE_URL (or DB_SECRET_ARN), API_KEYS (or API_KEYS_SECRET_ARN), see README
verify exits 0 when every chain verifies, 1 when one does not (or on an error)";

/// Runs a command and returns the process exit code.
pub async fn main(args: Vec<String>) -> i32 {
    let command = args.first().map(String::as_str).unwrap_or("");
    let bind = match args.iter().position(|a| a == "--bind") {
        Some(i) => match args.get(i + 1) {
            Some(addr) => addr.clone(),
            None => {
                eprintln!("--bind needs an address\n{USAGE}");
                return 2;
            }
        },
        None => "127.0.0.1:8080".to_owned(),
    };
    if !matches!(command, "serve" | "migrate" | "maintain" | "verify") {
        eprintln!("{USAGE}");
        return 2;
    }
    let chains = match args.iter().position(|a| a == "--company") {
        None => crate::chain::Chains::All,
        Some(i) => match args.get(i + 1).map(String::as_str) {
            Some("none") => crate::chain::Chains::Company(None),
            Some(id) => match id.parse::<i64>() {
                Ok(id) => crate::chain::Chains::Company(Some(id)),
                Err(_) => {
                    eprintln!("--company needs a company id or `none`, not {id:?}\n{USAGE}");
                    return 2;
                }
            },
            None => {
                eprintln!("--company needs a company id or `none`\n{USAGE}");
                return 2;
            }
        },
    };
    let options = Options {
        bind,
        chains,
        json: args.iter().any(|a| a == "--json"),
    };
    let config = audit_core::startup::init(Config::from_env).await;
    let clients = if config.needs_aws() {
        Some(Clients::new(audit_core::aws::sdk_config().await))
    } else {
        None
    };
    match run(command, &options, &config, clients.as_ref()).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("audit-api {command}: {e}");
            1
        }
    }
}

/// A command's options.
struct Options {
    bind: String,
    chains: crate::chain::Chains,
    json: bool,
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
enum CommandError {
    #[error(transparent)]
    Start(#[from] crate::StartError),
    #[error(transparent)]
    Database(#[from] crate::db::DbError),
    #[error(transparent)]
    Maintenance(#[from] crate::maintain::MaintenanceError),
    #[error("database not ready: {0:?}")]
    NotReady(crate::error::ApiError),
    #[error("cannot bind {bind}: {source}")]
    Bind {
        bind: String,
        source: std::io::Error,
    },
    #[error("maintenance report: {0}")]
    Report(#[from] serde_json::Error),
    #[error(transparent)]
    Anchor(#[from] crate::anchor::AnchorError),
    #[error("{invalid} of {chains} chains do not verify")]
    NotVerified { invalid: usize, chains: usize },
}

async fn run(
    command: &str,
    options: &Options,
    config: &Config,
    clients: Option<&Clients>,
) -> Result<(), CommandError> {
    let app = crate::build_app(config, clients).await?;
    match command {
        "migrate" => {
            let applied = crate::db::migrate(&app.owner_db).await?;
            let created = crate::maintain::ensure_partitions(
                &app.owner_db,
                &app.maintenance,
                chrono::Utc::now(),
            )
            .await?;
            println!("migrations applied: {applied}; partitions created: {created:?}");
            Ok(())
        }
        "verify" => {
            app.ensure_ready().await.map_err(CommandError::NotReady)?;
            let anchors = match &app.anchor {
                Some(target) => Some(crate::anchor::history(target).await?),
                None => None,
            };
            let request = crate::chain::VerifyRequest {
                chains: options.chains,
                from: None,
                to: None,
            };
            let verification =
                crate::chain::verify(&app.db, request, anchors.as_deref(), None).await?;
            if options.json {
                println!("{}", serde_json::to_string_pretty(&verification)?);
            } else {
                print!("{}", crate::chain::describe(&verification));
            }
            let invalid = verification.chains.iter().filter(|c| !c.verified).count();
            if invalid > 0 {
                return Err(CommandError::NotVerified {
                    invalid,
                    chains: verification.chains.len(),
                });
            }
            Ok(())
        }
        "maintain" => {
            app.ensure_ready().await.map_err(CommandError::NotReady)?;
            let outcome =
                crate::maintain::run(&app.owner_db, &app.maintenance, chrono::Utc::now()).await;
            let diverged = outcome.as_ref().err().map_or(0, |e| e.chains_diverged());
            app.metrics.maintained(diverged);
            let report = outcome?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        _ => {
            // Pending migrations first: a server that cannot reach its schema does not start.
            app.ensure_ready().await.map_err(CommandError::NotReady)?;
            let bind = options.bind.as_str();
            let bound = |source| CommandError::Bind {
                bind: bind.to_owned(),
                source,
            };
            let listener = tokio::net::TcpListener::bind(bind).await.map_err(bound)?;
            let local = listener.local_addr().map_err(bound)?;
            let base = app.base_path.clone();
            let app = Arc::new(app);
            let router = crate::router(Arc::clone(&app));
            let _liveness =
                crate::server::keep_liveness(Arc::clone(&app), crate::health::PROBE_EVERY);
            let _metrics = crate::server::flush_metrics(
                Arc::clone(&app),
                crate::metrics::SERVER_FLUSH_INTERVAL,
            );
            let _partitions =
                crate::server::keep_partitions(app, crate::server::PARTITION_CHECK_INTERVAL);
            println!(
                "audit-api listening on http://{local}{base} (docs: http://{local}{base}/docs)"
            );
            crate::server::serve(listener, router, config.server, shutdown()).await;
            Ok(())
        }
    }
}

async fn shutdown() {
    let interrupt = tokio::signal::ctrl_c();
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return interrupt.await.unwrap_or(()),
        };
    tokio::select! {
        _ = interrupt => {}
        _ = terminate.recv() => {}
    }
}
