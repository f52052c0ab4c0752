//! `DownloadDBLogFilePortion`: pages of at most 1 MB with opaque `n:offset` markers; a line
//! that does not fit is cut, marked with the truncation notice, and its rest skipped; marker
//! `0` starts at the beginning, no marker returns the tail.

use super::*;

pub(crate) fn download_portion(state: &DoubleState, params: &HashMap<String, String>) -> Response {
    state
        .calls
        .lock()
        .expect("calls lock")
        .push("DownloadDBLogFilePortion".into());
    if let Some(fault) = injected_fault(&state.faults) {
        return fault;
    }
    let dir = match instance_dir(state, params) {
        Ok((_, dir)) => dir,
        Err(response) => return response,
    };
    let name = params.get("LogFileName").cloned().unwrap_or_default();
    let Ok(data) = std::fs::read(dir.join(&name)) else {
        return xml_error(
            StatusCode::NOT_FOUND,
            "DBLogFileNotFoundFault",
            &format!("DBLogFile {name} not found"),
        );
    };
    let lines_wanted: Option<usize> = params.get("NumberOfLines").and_then(|v| v.parse().ok());
    let (page_no, offset) = match params.get("Marker").map(String::as_str) {
        // Without a marker RDS returns the tail: the last 10,000 lines.
        None => (0, tail_offset(&data, 10_000)),
        Some("0") => (0, 0),
        Some(marker) => match marker
            .split_once(':')
            .and_then(|(n, o)| Some((n.parse::<u64>().ok()?, o.parse::<usize>().ok()?)))
        {
            Some((n, o)) if o <= data.len() => (n, o),
            _ => {
                return xml_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidParameterValue",
                    "invalid marker",
                );
            }
        },
    };
    let (page, next) = portion_page(&data[offset..], lines_wanted);
    let next_offset = offset + next;
    let mut pending = next_offset < data.len();
    if pending && take(&state.faults.end_early) {
        pending = false; // the documented early end: more data, but RDS says there is none
    }
    let text = String::from_utf8_lossy(&page);
    xml_ok(
        "DownloadDBLogFilePortion",
        &format!(
            "<LogFileData>{}</LogFileData><AdditionalDataPending>{pending}</AdditionalDataPending><Marker>{}:{next_offset}</Marker>",
            xml_escape(&text),
            page_no + 1
        ),
    )
}

fn tail_offset(data: &[u8], lines: usize) -> usize {
    let mut seen = 0;
    for (i, b) in data.iter().enumerate().rev().skip(1) {
        if *b == b'\n' {
            seen += 1;
            if seen == lines {
                return i + 1;
            }
        }
    }
    0
}

/// One Portion page from `rest`: whole lines up to `lines_wanted` and 1 MB. When the next line
/// does not fit, RDS does not stop before it: it fills the page to 1 MB, cuts the line, appends
/// the truncation notice, and continues after the cut line. Returns the page and how many
/// bytes of `rest` it consumed.
fn portion_page(rest: &[u8], lines_wanted: Option<usize>) -> (Vec<u8>, usize) {
    let mut end = 0;
    let mut lines = 0;
    while end < rest.len() && lines_wanted.is_none_or(|n| lines < n) {
        let line_end = rest[end..]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(rest.len(), |p| end + p + 1);
        if line_end > PORTION_PAGE_BYTES {
            if lines_wanted.is_some() && lines > 0 {
                break; // an explicit line count that fits in whole lines: a clean page
            }
            // The quirk: cut the line at the page limit and skip the rest of it.
            let mut cut = PORTION_PAGE_BYTES.min(rest.len());
            while cut > end && (rest[cut - 1] & 0xC0) == 0x80 {
                cut -= 1; // do not split a UTF-8 sequence (RDS returns text)
            }
            let mut page = rest[..cut].to_vec();
            page.extend_from_slice(TRUNCATION_NOTICE.as_bytes());
            page.push(b'\n');
            return (page, line_end);
        }
        end = line_end;
        lines += 1;
    }
    (rest[..end].to_vec(), end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_that_would_split_a_line_cuts_it_and_skips_its_rest() {
        let mut data = vec![b'a'; PORTION_PAGE_BYTES - 10];
        data.push(b'\n');
        data.extend(vec![b'b'; 100]);
        data.push(b'\n');
        let (page, used) = portion_page(&data, None);
        assert!(page.ends_with(format!("{TRUNCATION_NOTICE}\n").as_bytes()));
        assert_eq!(used, data.len(), "the cut line is skipped");
        // Asking for fewer lines gives a clean page ending at a line boundary.
        let (page, used) = portion_page(&data, Some(1));
        assert_eq!(page.len(), PORTION_PAGE_BYTES - 9);
        assert_eq!(used, PORTION_PAGE_BYTES - 9);
    }
}
