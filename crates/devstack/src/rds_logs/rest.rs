//! The REST `GET /v13/downloadCompleteLogFile/{instance}/{file}`: the whole file, streamed,
//! for a request whose SigV4 signature (service `rds`) verifies against the double's
//! credentials.

use super::*;

pub(crate) async fn download_complete(
    State(state): State<Arc<DoubleState>>,
    Path((instance, file)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    state
        .calls
        .lock()
        .expect("calls lock")
        .push("downloadCompleteLogFile".into());
    if state.faults.refuse_rest.load(Ordering::SeqCst) {
        return (StatusCode::FORBIDDEN, "refused by the test double").into_response();
    }
    if let Err(problem) = verify_sigv4(&method, &uri, &headers) {
        return (StatusCode::FORBIDDEN, problem).into_response();
    }
    if let Some(fault) = injected_fault(&state.faults) {
        return fault;
    }
    let path = state.root.join(&instance).join(&file);
    let Ok(mut handle) = std::fs::File::open(&path) else {
        return xml_error(
            StatusCode::NOT_FOUND,
            "DBLogFileNotFoundFault",
            &format!("{file} not found"),
        );
    };
    let len = handle.metadata().map(|m| m.len()).unwrap_or(0);
    let limit = if take(&state.faults.end_early) {
        len / 2
    } else {
        len
    };
    // Stream the file in 256 KiB chunks without a Content-Length, as a chunked response: an
    // early end then looks like a complete, shorter file (the failure a copier must catch).
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let mut sent = 0u64;
        let mut buffer = vec![0u8; 256 * 1024];
        let _ = handle.seek(SeekFrom::Start(0));
        while sent < limit {
            let want = buffer.len().min((limit - sent) as usize);
            match handle.read(&mut buffer[..want]) {
                Ok(0) => break,
                Ok(n) => {
                    sent += n as u64;
                    if tx
                        .blocking_send(Ok(Bytes::copy_from_slice(&buffer[..n])))
                        .is_err()
                    {
                        break;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    break;
                }
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/plain")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Checks a header-signed SigV4 request for service `rds` by signing it again with the
/// double's secret and comparing signatures.
fn verify_sigv4(method: &Method, uri: &Uri, headers: &HeaderMap) -> Result<(), String> {
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or("missing Authorization: the request is not signed")?;
    let field = |name: &str| {
        authorization
            .split([' ', ','])
            .find_map(|part| part.strip_prefix(name))
            .map(str::to_owned)
    };
    let credential = field("Credential=").ok_or("no Credential in Authorization")?;
    let signed_headers = field("SignedHeaders=").ok_or("no SignedHeaders in Authorization")?;
    let signature = field("Signature=").ok_or("no Signature in Authorization")?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key, _date, region, service, "aws4_request"] = scope.as_slice() else {
        return Err(format!("malformed credential scope {credential}"));
    };
    if *service != "rds" || *access_key != ACCESS_KEY {
        return Err(format!(
            "credential scope {credential} is not for rds with the test key"
        ));
    }
    let amz_date = headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .ok_or("missing x-amz-date")?;
    let time = parse_amz_date(amz_date).ok_or("bad x-amz-date")?;
    let to_sign: Vec<(&str, &str)> = signed_headers
        .split(';')
        .filter(|h| *h != "host")
        .filter_map(|h| Some((h, headers.get(h)?.to_str().ok()?)))
        .collect();
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let url = format!(
        "http://{host}{}",
        uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let identity = Credentials::new(
        ACCESS_KEY,
        SECRET_KEY,
        headers
            .get("x-amz-security-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        None,
        "double",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("rds")
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let request = SignableRequest::new(
        method.as_str(),
        &url,
        to_sign.into_iter(),
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| e.to_string())?;
    let (instructions, _) = sign(request, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    let expected = instructions
        .headers()
        .find(|(name, _)| name.eq_ignore_ascii_case("authorization"))
        .and_then(|(_, value)| value.split("Signature=").nth(1).map(str::to_owned))
        .unwrap_or_default();
    if expected == signature {
        Ok(())
    } else {
        Err("SignatureDoesNotMatch".into())
    }
}

/// `20261122T101500Z` as a time.
fn parse_amz_date(value: &str) -> Option<SystemTime> {
    let digits = |range: std::ops::Range<usize>| value.get(range)?.parse::<i64>().ok();
    let (y, m, d) = (digits(0..4)?, digits(4..6)?, digits(6..8)?);
    let (hh, mm, ss) = (digits(9..11)?, digits(11..13)?, digits(13..15)?);
    // Days since the epoch for a civil date (Howard Hinnant's algorithm).
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amz_dates_parse() {
        let t = parse_amz_date("20240104T083010Z").unwrap();
        assert_eq!(
            t.duration_since(UNIX_EPOCH).unwrap().as_secs(),
            1_704_357_010
        );
    }
}
