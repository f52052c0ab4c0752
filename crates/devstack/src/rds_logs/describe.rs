//! `DescribeDBLogFiles`: the instance's files with size and `LastWritten` (epoch ms), the
//! `FilenameContains`, `FileLastWritten` and `FileSize` filters, `Marker`/`MaxRecords` paging.

use super::*;

pub(crate) fn describe_log_files(
    state: &DoubleState,
    params: &HashMap<String, String>,
) -> Response {
    state
        .calls
        .lock()
        .expect("calls lock")
        .push("DescribeDBLogFiles".into());
    if let Some(fault) = injected_fault(&state.faults) {
        return fault;
    }
    let dir = match instance_dir(state, params) {
        Ok((_, dir)) => dir,
        Err(response) => return response,
    };
    if params.keys().any(|k| k.starts_with("Filters.")) {
        return xml_error(
            StatusCode::BAD_REQUEST,
            "InvalidParameterValue",
            "Filters is not supported",
        );
    }
    let contains = params.get("FilenameContains");
    let since: i64 = params
        .get("FileLastWritten")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let larger: u64 = params
        .get("FileSize")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let max: usize = params
        .get("MaxRecords")
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let start: usize = params
        .get("Marker")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let matching: Vec<_> = list_files(&dir)
        .into_iter()
        .filter(|(name, size, written)| {
            contains.is_none_or(|c| name.contains(c.as_str()))
                && *written >= since
                && *size >= larger
        })
        .collect();
    let page: String = matching
        .iter()
        .skip(start)
        .take(max)
        .map(|(name, size, written)| {
            format!(
                "<DescribeDBLogFilesDetails><LastWritten>{written}</LastWritten><LogFileName>{}</LogFileName><Size>{size}</Size></DescribeDBLogFilesDetails>",
                xml_escape(name)
            )
        })
        .collect();
    let marker = if start + max < matching.len() {
        format!("<Marker>{}</Marker>", start + max)
    } else {
        String::new()
    };
    xml_ok(
        "DescribeDBLogFiles",
        &format!("<DescribeDBLogFiles>{page}</DescribeDBLogFiles>{marker}"),
    )
}
