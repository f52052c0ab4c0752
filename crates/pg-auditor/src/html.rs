//! The HTML report: one self-contained file (inline CSS and a few lines of script, no
//! external resource) that a browser opens offline: summary, validations, seed tables, and
//! every table, sortable by clicking a column header.

use crate::report::{AuditReport, Method, display_value};
use html_escape::encode_text as text;
use std::fmt::Write;

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}\
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}\
th{background:#f3f3f3;cursor:pointer;user-select:none}td.n{text-align:right;font-variant-numeric:tabular-nums}\
.warn{color:#a40}.ok{color:#070}.est{color:#666;font-style:italic}small{color:#666}";

/// Sorts a table by the clicked column: numbers numerically (from `data-v`), text otherwise;
/// a second click reverses.
const SCRIPT: &str = "document.querySelectorAll('table.sortable th').forEach(function(th,i){\
th.addEventListener('click',function(){var t=th.closest('table'),b=t.tBodies[0],\
rows=Array.from(b.rows),dir=th.dataset.dir==='desc'?1:-1;th.dataset.dir=dir===1?'asc':'desc';\
rows.sort(function(a,c){var x=a.cells[i].dataset.v,y=c.cells[i].dataset.v;\
if(x!==undefined&&y!==undefined)return dir*(parseFloat(x)-parseFloat(y));\
return dir*a.cells[i].textContent.localeCompare(c.cells[i].textContent)});\
rows.forEach(function(r){b.appendChild(r)})})});";

fn list(out: &mut String, title: &str, items: &[String]) {
    checked_list(out, title, items, true);
}

/// A validation's findings; a check that did not run says so, never "None.".
fn checked_list(out: &mut String, title: &str, items: &[String], ran: bool) {
    if !ran {
        let _ = write!(
            out,
            "<h3>{} (not run)</h3><p class=warn>Not run: see \u{201c}Checks that could not run\u{201d}.</p>",
            text(title)
        );
        return;
    }
    let _ = write!(out, "<h3>{} ({})</h3>", text(title), items.len());
    if items.is_empty() {
        out.push_str("<p class=ok>None.</p>");
        return;
    }
    out.push_str("<ul>");
    for item in items {
        let _ = write!(out, "<li>{}</li>", text(item));
    }
    out.push_str("</ul>");
}

/// Renders the report.
pub fn render(report: &AuditReport) -> String {
    let mut out = String::with_capacity(64 * 1024 + report.tables.len() * 400);
    let info = &report.database_info;
    let s = &report.summary;
    let _ = write!(
        out,
        "<!doctype html><html lang=en><meta charset=utf-8><title>Database audit: {db} {ts}</title>\
         <style>{STYLE}</style><h1>Database audit: {db}</h1>\
         <p>{ts} &middot; user {user} &middot; {version}</p>\
         <p><small>One read-only snapshot (repeatable read); counts: {mode} mode; \
         {connections} connection(s); {ms} ms.</small></p>",
        db = text(&info.database_name),
        ts = text(&report.audit_timestamp),
        user = text(&info.session_user),
        version = text(&info.postgresql_version),
        mode = report.audit_settings.count_mode,
        connections = report.audit_settings.connections,
        ms = report.audit_settings.duration_ms,
    );
    out.push_str("<h2>Summary</h2><table>");
    for (label, value) in [
        ("Tables", s.total_tables),
        ("Records (partitions once)", s.total_records as usize),
        ("Exact counts", s.exact_counts),
        ("Estimated counts", s.estimated_counts),
        ("Unavailable counts", s.unavailable_counts),
        ("Empty tables", s.empty_tables),
        ("Tables with audit fields", s.tables_with_audit_fields),
        ("Tables with the audit trigger", s.tables_with_audit_trigger),
        ("Tables with read errors", s.tables_with_errors),
        ("Versioning tables found (of 4)", s.versioning_tables_found),
        ("Indexes", s.indexes),
        ("Foreign keys", s.foreign_keys),
        ("Triggers", s.triggers),
        ("Functions", s.functions),
    ] {
        let _ = write!(
            out,
            "<tr><th>{}</th><td class=n>{value}</td></tr>",
            text(label)
        );
    }
    out.push_str("</table>");

    out.push_str("<h2>Validations</h2>");
    list(
        &mut out,
        "Tables with created_by but no audit trigger",
        &report.validation.tables_missing_audit_trigger,
    );
    list(
        &mut out,
        "Tables attributed to the system user only",
        &report.validation.tables_attributed_to_system_only,
    );
    let v = &report.versioning_system.validation;
    let json_items = |items: &[serde_json::Value]| -> Vec<String> {
        items.iter().map(|i| i.to_string()).collect()
    };
    checked_list(
        &mut out,
        "Version families without an active version",
        &json_items(&v.families_without_active_version),
        v.active_version_checks_ran,
    );
    checked_list(
        &mut out,
        "Version families with several active versions",
        &v.families_with_multiple_active_versions
            .iter()
            .map(|a| serde_json::to_string(a).unwrap_or_default())
            .collect::<Vec<_>>(),
        v.active_version_checks_ran,
    );
    checked_list(
        &mut out,
        "Expected versioned tables missing from domain_family_map",
        &v.domain_map_missing_tables,
        v.domain_map_checks_ran,
    );
    checked_list(
        &mut out,
        "Tables in domain_family_map that are not expected",
        &v.domain_map_unexpected_tables,
        v.domain_map_checks_ran,
    );
    if !v.unavailable.is_empty() {
        list(&mut out, "Checks that could not run", &v.unavailable);
    }

    if !report.seed_tables.is_empty() {
        out.push_str(
            "<h2>Seed tables</h2><table class=sortable><thead><tr><th>Table</th><th>Status</th>\
             <th>Records</th></tr></thead><tbody>",
        );
        for seed in &report.seed_tables {
            let status = serde_json::to_value(seed.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let class = if status == "loaded" { "ok" } else { "warn" };
            let _ = write!(
                out,
                "<tr><td>{}.{}</td><td class={class}>{status}</td>{}</tr>",
                text(&seed.schema),
                text(&seed.table),
                count_cell(seed.record_count, seed.record_count_method),
            );
        }
        out.push_str("</tbody></table>");
    }

    out.push_str(
        "<h2>Tables</h2><p><small>Click a header to sort. Estimates are in italics.</small></p>\
         <table class=sortable><thead><tr><th>Schema</th><th>Table</th><th>Records</th>\
         <th>Columns</th><th>created_by</th><th>created_at</th><th>updated_by</th>\
         <th>updated_at</th><th>Audit trigger</th><th>Creators</th><th>Owner</th>\
         <th>Errors</th></tr></thead><tbody>",
    );
    let yes = |b: bool| if b { "yes" } else { "" };
    for table in &report.tables {
        let f = &table.audit_fields;
        let creators = f
            .created_by_values
            .iter()
            .map(|v| display_value(v))
            .collect::<Vec<_>>()
            .join(", ");
        let errors = table
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.step, e.message))
            .collect::<Vec<_>>()
            .join("; ");
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td>{}<td class=n data-v={}>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=warn>{}</td></tr>",
            text(&table.schema),
            text(&table.table),
            count_cell(table.record_count, table.record_count_method),
            table.column_count,
            table.column_count,
            yes(f.has_created_by),
            yes(f.has_created_at),
            yes(f.has_updated_by),
            yes(f.has_updated_at),
            yes(table.has_audit_trigger),
            text(&creators),
            text(&table.owner),
            text(&errors),
        );
    }
    out.push_str("</tbody></table>");
    let _ = writeln!(out, "<script>{SCRIPT}</script></html>");
    out
}

fn count_cell(count: Option<u64>, method: Method) -> String {
    match (count, method) {
        (Some(n), Method::Estimate) => format!("<td class='n est' data-v={n}>~{n}</td>"),
        (Some(n), _) => format!("<td class=n data-v={n}>{n}</td>"),
        (None, _) => "<td class=n data-v=-1>unavailable</td>".to_owned(),
    }
}
