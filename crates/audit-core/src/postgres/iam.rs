//! IAM authentication: the password replaced with a SigV4-presigned token.

use super::{SslMode, Target, TargetError};

/// Replaces the password with an IAM authentication token (SigV4-presigned, valid 15
/// minutes, enough to open this run's connections) and insists on TLS that verifies the
/// server (`verify-full`): a token sent to an unverified server can be replayed by whoever
/// answered. `allow_unverified` (`DB_ALLOW_UNVERIFIED_TLS`) accepts a weaker mode the target
/// names; TLS itself is never optional.
pub async fn use_iam_token(
    target: &mut Target,
    sdk: &aws_config::SdkConfig,
    allow_unverified: bool,
) -> Result<(), TargetError> {
    if target.ssl_mode_given && target.ssl_mode < SslMode::VerifyFull && !allow_unverified {
        return Err(TargetError(format!(
            "IAM authentication sends a token: sslmode must be verify-full (the target says {}; \
             set DB_ALLOW_UNVERIFIED_TLS=true to accept it)",
            target.ssl_mode.name()
        )));
    }
    if target.ssl_mode < SslMode::Require {
        return Err(TargetError(
            "IAM authentication needs TLS: sslmode must be verify-full".to_owned(),
        ));
    }
    let host = match target.config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        _ => {
            return Err(TargetError(
                "IAM authentication needs a TCP host name".to_owned(),
            ));
        }
    };
    let port = target.config.get_ports().first().copied().unwrap_or(5432);
    let user = target
        .config
        .get_user()
        .ok_or_else(|| TargetError("IAM authentication needs a user name".to_owned()))?
        .to_owned();
    let generator = aws_sdk_rds::auth_token::AuthTokenGenerator::new(
        aws_sdk_rds::auth_token::Config::builder()
            .hostname(&host)
            .port(u64::from(port))
            .username(&user)
            .build()
            .map_err(|e| TargetError(format!("IAM token: {e}")))?,
    );
    let token = generator
        .auth_token(sdk)
        .await
        .map_err(|e| TargetError(format!("IAM token: {e}")))?;
    target.config.password(token.as_str());
    Ok(())
}
