//! The HTML report, as a DBA reads it: one self-contained file (inline CSS and a little
//! script, no external resource) that opens offline and starts with what is wrong.
//!
//! Order: a **Problems** block (red: data the audit could not read or versioning broken;
//! amber: attribution gaps; grey: checks that did not run, never shown as passing), read
//! errors in their own section, the summary, the versioning checks as tables, seed tables,
//! then every table: schema-qualified, largest first, filterable (also from the URL:
//! `#filter=orders`), a header that stays in view, indexes/foreign keys/triggers folded per
//! table, creators named from the `developer` table when it has them. Lists are capped with a
//! "+N more" that expands, so 500 failures are one line until asked for.

use crate::catalog::{ForeignKey, IndexInfo, TriggerInfo};
use crate::report::{AuditReport, Method, TableEntry, display_value, qualified};
use html_escape::encode_text as text;
use std::collections::HashMap;
use std::fmt::Write;

/// Items shown before "+N more".
pub const SHOWN: usize = 10;

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:1.5em 2em;color:#1d1d1f}\
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.2em;margin-top:1.8em}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #d0d0d5;padding:.25em .6em;text-align:left;vertical-align:top}\
th{background:#f3f3f6}table.sortable th{cursor:pointer;user-select:none}\
thead th{position:sticky;top:0;z-index:1;box-shadow:0 1px 0 #d0d0d5}\
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\
.est{color:#666;font-style:italic}small,.muted{color:#666}\
.problems{border:1px solid #d0d0d5;border-radius:6px;padding:.4em 1em;margin:1em 0}\
.p{margin:.5em 0;padding:.4em .7em;border-left:5px solid}.p h3{margin:0;font-size:1em}\
.red{border-color:#b3261e;background:#fdecea}.red h3{color:#b3261e}\
.amber{border-color:#b26a00;background:#fff4e5}.amber h3{color:#8a5300}\
.grey{border-color:#8e8e93;background:#f2f2f4}.grey h3{color:#555}\
.ok{color:#1e7b34}.bad{color:#b3261e;font-weight:600}\
details.more>summary,details.fold>summary{cursor:pointer;color:#0b57d0}\
ul{margin:.3em 0;padding-left:1.4em}#filter{font:inherit;padding:.3em .5em;width:22em}";

/// Filter (from the box or `#filter=` in the URL), sort by a clicked header (numbers from
/// `data-v`), then mark the page ready (a test reads the mark).
const SCRIPT: &str = "(function(){var body=document.getElementById('tables-body'),\
box=document.getElementById('filter'),shown=document.getElementById('shown');\
function apply(){var q=box.value.trim().toLowerCase(),n=0;\
for(var i=0;i<body.rows.length;i++){var r=body.rows[i],hit=!q||r.dataset.name.indexOf(q)>=0;\
r.hidden=!hit;if(hit)n++}shown.textContent=n.toLocaleString('en-US');}\
var m=/[#&]filter=([^&]*)/.exec(location.hash);if(m)box.value=decodeURIComponent(m[1]);\
box.addEventListener('input',apply);apply();\
document.querySelectorAll('table.sortable th').forEach(function(th,i){\
th.addEventListener('click',function(){var t=th.closest('table'),b=t.tBodies[0],\
rows=Array.from(b.rows),dir=th.dataset.dir==='desc'?1:-1;th.dataset.dir=dir===1?'asc':'desc';\
rows.sort(function(a,c){var x=a.cells[i].dataset.v,y=c.cells[i].dataset.v;\
if(x!==undefined&&y!==undefined)return dir*(parseFloat(x)-parseFloat(y));\
return dir*a.cells[i].textContent.localeCompare(c.cells[i].textContent)});\
rows.forEach(function(r){b.appendChild(r)})})});\
document.body.dataset.ready='1';})();";

/// `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The audit could not read something, or the data is broken.
    Red,
    /// Something to fix, nothing lost.
    Amber,
    /// A check that did not run: unknown, never "fine".
    NotRun,
}

impl Severity {
    fn class(self) -> &'static str {
        match self {
            Severity::Red => "red",
            Severity::Amber => "amber",
            Severity::NotRun => "grey",
        }
    }
}

/// One line of the Problems block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub severity: Severity,
    pub title: String,
    pub items: Vec<String>,
    /// Where the details are on the page.
    pub anchor: &'static str,
}

/// JSON object rows as `key=value, key=value` (a version family, for instance).
fn compact(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Object(map) => map
            .iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => format!("{k}={s}"),
                other => format!("{k}={other}"),
            })
            .collect::<Vec<_>>()
            .join(", "),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Everything wrong, worst first; an empty list means every check ran and found nothing.
pub fn problems(report: &AuditReport) -> Vec<Problem> {
    let mut out = Vec::new();
    // A problem is listed only when it has items; its title counts them.
    let mut add = |severity, items: Vec<String>, title: &dyn Fn(usize) -> String, anchor| {
        if !items.is_empty() {
            out.push(Problem {
                severity,
                title: title(items.len()),
                items,
                anchor,
            });
        }
    };
    let families = |n: usize| if n == 1 { "family" } else { "families" };
    let errors: Vec<String> = report
        .tables
        .iter()
        .filter(|t| !t.errors.is_empty())
        .map(|t| {
            let steps: Vec<&str> = t.errors.iter().map(|e| e.step.as_str()).collect();
            format!("{} ({})", qualified(&t.schema, &t.table), steps.join(", "))
        })
        .collect();
    add(
        Severity::Red,
        errors,
        &|n| format!("{n} table{} could not be read in full", plural(n)),
        "read-errors",
    );
    let v = &report.versioning_system.validation;
    if v.active_version_checks_ran {
        add(
            Severity::Red,
            v.families_without_active_version
                .iter()
                .map(compact)
                .collect(),
            &|n| format!("{n} version {} without an active version", families(n)),
            "versioning",
        );
        add(
            Severity::Red,
            several_active(v),
            &|n| format!("{n} version {} with several active versions", families(n)),
            "versioning",
        );
    }
    add(
        Severity::Amber,
        (report.validation.missing_audit_trigger_qualified.iter())
            .map(str::to_owned)
            .collect(),
        &|n| {
            format!(
                "{n} table{} with created_by but no audit trigger",
                plural(n)
            )
        },
        "tables",
    );
    add(
        Severity::Amber,
        (report.validation.system_only_qualified.iter())
            .map(str::to_owned)
            .collect(),
        &|n| format!("{n} table{} attributed to the system user only", plural(n)),
        "tables",
    );
    if v.domain_map_checks_ran {
        add(
            Severity::Amber,
            v.domain_map_missing_tables.clone(),
            &|n| format!("{n} expected versioned table(s) missing from domain_family_map"),
            "versioning",
        );
        add(
            Severity::Amber,
            v.domain_map_unexpected_tables.clone(),
            &|n| format!("{n} table(s) in domain_family_map that are not expected"),
            "versioning",
        );
    }
    let seeds: Vec<String> = report
        .seed_tables
        .iter()
        .filter(|s| !matches!(s.status, crate::report::SeedStatus::Loaded))
        .map(|s| {
            let status = serde_json::to_value(s.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned));
            format!(
                "{} ({})",
                qualified(&s.schema, &s.table),
                status.unwrap_or_default()
            )
        })
        .collect();
    add(
        Severity::Amber,
        seeds,
        &|n| format!("{n} seed table{} not loaded", plural(n)),
        "seed-tables",
    );
    let unavailable: Vec<String> = report
        .tables
        .iter()
        .filter(|t| t.record_count_method == Method::Unavailable)
        .map(|t| qualified(&t.schema, &t.table))
        .collect();
    add(
        Severity::NotRun,
        unavailable,
        &|n| format!("{n} record count{} unavailable", plural(n)),
        "tables",
    );
    let mut not_run = v.unavailable.clone();
    // The reasons the checks give themselves, or else which checks did not run.
    if not_run.is_empty() && !v.active_version_checks_ran {
        not_run.push("active versions per family (the versioning tables could not be read)".into());
    }
    if v.unavailable.is_empty() && !v.domain_map_checks_ran {
        not_run.push(if v.expected_versioned_tables_configured {
            "domain_family_map against the expected tables (the map could not be read)".into()
        } else {
            "domain_family_map against the expected tables (EXPECTED_VERSIONED_TABLES not set)"
                .into()
        });
    }
    add(
        Severity::NotRun,
        not_run,
        &|n| format!("{n} check{} not run", plural(n)),
        "versioning",
    );
    out
}

/// `family 2: versions 2, 3` for each family with several active versions.
fn several_active(v: &crate::versioning::VersioningValidation) -> Vec<String> {
    v.families_with_multiple_active_versions
        .iter()
        .map(|a| {
            let ids: Vec<String> = a.active_version_ids.iter().map(compact).collect();
            format!(
                "family {}: versions {}",
                compact(&a.version_family_id),
                ids.join(", ")
            )
        })
        .collect()
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// A list of at most [`SHOWN`] items, the rest behind "+N more".
fn capped(out: &mut String, items: &[String]) {
    let (shown, rest) = items.split_at(items.len().min(SHOWN));
    out.push_str("<ul>");
    for item in shown {
        let _ = write!(out, "<li>{}</li>", text(item));
    }
    out.push_str("</ul>");
    if !rest.is_empty() {
        let _ = write!(
            out,
            "<details class=more><summary>+{} more</summary><ul>",
            thousands(rest.len() as u64)
        );
        for item in rest {
            let _ = write!(out, "<li>{}</li>", text(item));
        }
        out.push_str("</ul></details>");
    }
}

/// `developer.id` → its name (`display_name`, `name`, `full_name`, else `email`), when the
/// developer table was read.
pub fn developer_names(developers: &str) -> HashMap<String, String> {
    let rows: Vec<serde_json::Value> = serde_json::from_str(developers).unwrap_or_default();
    rows.iter()
        .filter_map(|row| {
            let id = match row.get("id")? {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                _ => return None,
            };
            let name = ["display_name", "name", "full_name", "email"]
                .iter()
                .find_map(|k| {
                    row.get(*k)
                        .and_then(|v| v.as_str())
                        .filter(|s| !s.is_empty())
                })?;
            Some((id, name.to_owned()))
        })
        .collect()
}

/// The per-table objects, found by `(schema, table)`.
struct Objects<'a> {
    indexes: HashMap<(&'a str, &'a str), Vec<&'a IndexInfo>>,
    foreign_keys: HashMap<(&'a str, &'a str), Vec<&'a ForeignKey>>,
    triggers: HashMap<(&'a str, &'a str), Vec<&'a TriggerInfo>>,
}

impl<'a> Objects<'a> {
    fn of(objects: &'a crate::catalog::SchemaObjects) -> Self {
        let mut o = Objects {
            indexes: HashMap::new(),
            foreign_keys: HashMap::new(),
            triggers: HashMap::new(),
        };
        for i in &objects.indexes {
            o.indexes
                .entry((&i.schema, &i.table_name))
                .or_default()
                .push(i);
        }
        for f in &objects.foreign_keys {
            o.foreign_keys
                .entry((&f.schema, &f.table_name))
                .or_default()
                .push(f);
        }
        for t in &objects.triggers {
            o.triggers
                .entry((&t.schema, &t.table_name))
                .or_default()
                .push(t);
        }
        o
    }
}

fn count_cell(count: Option<u64>, method: Method) -> String {
    match (count, method) {
        (Some(n), Method::Estimate) => {
            format!(
                "<td class='n est' data-v={n} title=estimate>~{}</td>",
                thousands(n)
            )
        }
        (Some(n), _) => format!("<td class=n data-v={n}>{}</td>", thousands(n)),
        (None, _) => "<td class='n muted' data-v=-1>unavailable</td>".to_owned(),
    }
}

fn table_row(
    out: &mut String,
    t: &TableEntry,
    objects: &Objects<'_>,
    names: &HashMap<String, String>,
) {
    let name = qualified(&t.schema, &t.table);
    let f = &t.audit_fields;
    let tick = |b: bool| if b { "\u{2713}" } else { "" };
    let mut creators: Vec<String> = f
        .created_by_values
        .iter()
        .map(|v| {
            let id = display_value(v);
            match names.get(&id) {
                Some(n) => format!("{id} ({n})"),
                None => id,
            }
        })
        .collect();
    if f.created_by_values_truncated {
        creators.push("\u{2026}".into());
    }
    let key = (t.schema.as_str(), t.table.as_str());
    let indexes = objects.indexes.get(&key).map_or(&[][..], Vec::as_slice);
    let fks = objects
        .foreign_keys
        .get(&key)
        .map_or(&[][..], Vec::as_slice);
    let triggers = objects.triggers.get(&key).map_or(&[][..], Vec::as_slice);
    let _ = write!(
        out,
        "<tr data-name=\"{}\"><td>{}</td>{}<td class=n data-v={}>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>",
        html_escape::encode_double_quoted_attribute(&name.to_lowercase()),
        text(&name),
        count_cell(t.record_count, t.record_count_method),
        t.column_count,
        t.column_count,
        tick(f.has_created_by),
        tick(f.has_created_at),
        tick(f.has_updated_by),
        tick(f.has_updated_at),
        if t.has_audit_trigger { "\u{2713}" } else { "" },
        text(&creators.join(", ")),
        text(&t.owner),
    );
    if indexes.len() + fks.len() + triggers.len() > 0 {
        let _ = write!(
            out,
            "<details class=fold><summary>{} index{} \u{b7} {} FK \u{b7} {} trigger{}</summary>",
            indexes.len(),
            if indexes.len() == 1 { "" } else { "es" },
            fks.len(),
            triggers.len(),
            plural(triggers.len())
        );
        for i in indexes {
            let _ = write!(
                out,
                "<div><b>{}</b>{} <small>{}</small></div>",
                text(&i.index_name),
                if i.is_primary {
                    " (primary key)"
                } else if i.is_unique {
                    " (unique)"
                } else {
                    ""
                },
                text(
                    i.definition
                        .as_deref()
                        .unwrap_or("definition not read: table locked")
                )
            );
        }
        for k in fks {
            let _ = write!(
                out,
                "<div>FK <b>{}</b>: {} \u{2192} {}({}) <small>on delete {}</small></div>",
                text(&k.constraint_name),
                text(&k.column_name),
                text(&qualified(&k.ref_schema, &k.ref_table)),
                text(&k.ref_column),
                text(&k.delete_rule)
            );
        }
        for tr in triggers {
            let _ = write!(
                out,
                "<div>trigger <b>{}</b> {} {} \u{2192} {}</div>",
                text(&tr.trigger_name),
                text(&tr.timing),
                text(&tr.events.join("/")),
                text(&format!("{}.{}", tr.function_schema, tr.function_name))
            );
        }
        out.push_str("</details>");
    }
    let _ = write!(
        out,
        "</td><td class=n data-v={}>{}</td></tr>",
        t.errors.len(),
        if t.errors.is_empty() {
            String::new()
        } else {
            format!("<span class=bad>{}</span>", t.errors.len())
        }
    );
}

/// Renders the report.
pub fn render(report: &AuditReport) -> String {
    let mut out = head(report, report.tables.len());
    out.reserve(report.tables.len() * 700);
    let mut tables: Vec<&TableEntry> = report.tables.iter().collect();
    tables.sort_by(|a, b| {
        row_order(a.record_count)
            .cmp(&row_order(b.record_count))
            .then_with(|| (&a.schema, &a.table).cmp(&(&b.schema, &b.table)))
    });
    let objects = Objects::of(&report.objects);
    let names = developer_names(report.versioning_system.developers.get());
    for t in tables {
        table_row(&mut out, t, &objects, &names);
    }
    out.push_str(&tail());
    out
}

/// Where a table's row goes in the page: largest first, unknown counts last (ties in
/// `(schema, table)` order, which the caller keeps).
pub fn row_order(count: Option<u64>) -> std::cmp::Reverse<i64> {
    std::cmp::Reverse(count.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX)))
}

/// What follows the table rows.
pub fn tail() -> String {
    format!("</tbody></table><script>{SCRIPT}</script></body></html>\n")
}

/// The rows of one part of the report (the caller orders them, [`row_order`]), each rendered
/// alone: `names` from [`developer_names`].
pub fn rows(part: &crate::report::PartReport, names: &HashMap<String, String>) -> Vec<String> {
    let objects = Objects::of(&part.objects);
    part.entries
        .iter()
        .map(|t| {
            let mut out = String::with_capacity(700);
            table_row(&mut out, t, &objects, names);
            out
        })
        .collect()
}

/// The page up to its first table row. `report.tables` needs only the tables with errors
/// (they are listed apart); `total_tables` is how many rows follow.
pub fn head(report: &AuditReport, total_tables: usize) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let info = &report.database_info;
    let s = &report.summary;
    let _ = write!(
        out,
        "<!doctype html><html lang=en><head><meta charset=utf-8>\
         <meta name=viewport content='width=device-width,initial-scale=1'>\
         <title>Database audit: {db} {ts}</title><style>{STYLE}</style></head><body>\
         <h1>Database audit: {db}</h1>\
         <p class=muted>{ts} &middot; user {user} &middot; {version} &middot; one read-only snapshot \
         &middot; counts: {mode} mode &middot; {connections} connection(s) &middot; {secs} s</p>",
        db = text(&info.database_name),
        ts = text(&report.audit_timestamp),
        user = text(&info.session_user),
        version = text(&info.postgresql_version),
        mode = report.audit_settings.count_mode,
        connections = report.audit_settings.connections,
        secs = format_args!("{:.1}", report.audit_settings.duration_ms as f64 / 1000.0),
    );

    out.push_str("<h2 id=problems>Problems</h2><div class=problems>");
    let found = problems(report);
    if found.is_empty() {
        out.push_str("<p class=ok>No problems found: every check ran.</p>");
    }
    for p in &found {
        let _ = write!(
            out,
            "<div class='p {}'><h3>{} <small><a href='#{}'>details</a></small></h3>",
            p.severity.class(),
            text(&p.title),
            p.anchor
        );
        capped(&mut out, &p.items);
        out.push_str("</div>");
    }
    out.push_str("</div>");

    let with_errors: Vec<&TableEntry> = report
        .tables
        .iter()
        .filter(|t| !t.errors.is_empty())
        .collect();
    if !with_errors.is_empty() {
        let _ = write!(
            out,
            "<h2 id=read-errors>Read errors ({})</h2><table><thead><tr><th>Table</th><th>Step</th>\
             <th>SQLSTATE</th><th>Message</th></tr></thead><tbody>",
            thousands(with_errors.len() as u64)
        );
        let rows: Vec<String> = with_errors
            .iter()
            .flat_map(|t| {
                t.errors.iter().map(move |e| {
                    format!(
                        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                        text(&qualified(&t.schema, &t.table)),
                        text(&e.step),
                        text(e.sqlstate.as_deref().unwrap_or("")),
                        text(&e.message)
                    )
                })
            })
            .collect();
        for row in rows.iter().take(SHOWN * 5) {
            out.push_str(row);
        }
        out.push_str("</tbody></table>");
        if rows.len() > SHOWN * 5 {
            let _ = write!(
                out,
                "<details class=more><summary>+{} more</summary><table><tbody>{}</tbody></table></details>",
                thousands((rows.len() - SHOWN * 5) as u64),
                rows[SHOWN * 5..].concat()
            );
        }
    }

    out.push_str("<h2>Summary</h2><table>");
    for (label, value) in [
        ("Tables", s.total_tables as u64),
        ("Records (partitions once)", s.total_records),
        ("Exact counts", s.exact_counts as u64),
        ("Estimated counts", s.estimated_counts as u64),
        ("Unavailable counts", s.unavailable_counts as u64),
        ("Empty tables", s.empty_tables as u64),
        (
            "Tables with audit fields",
            s.tables_with_audit_fields as u64,
        ),
        (
            "Tables with the audit trigger",
            s.tables_with_audit_trigger as u64,
        ),
        ("Tables with read errors", s.tables_with_errors as u64),
        (
            "Versioning tables found (of 4)",
            s.versioning_tables_found as u64,
        ),
        ("Indexes", s.indexes as u64),
        ("Foreign keys", s.foreign_keys as u64),
        ("Triggers", s.triggers as u64),
        ("Functions", s.functions as u64),
    ] {
        let _ = write!(
            out,
            "<tr><th>{}</th><td class=n>{}</td></tr>",
            text(label),
            thousands(value)
        );
    }
    out.push_str("</table>");

    versioning_section(&mut out, report);

    if !report.seed_tables.is_empty() {
        out.push_str(
            "<h2 id=seed-tables>Seed tables</h2><table><thead><tr><th>Table</th><th>Status</th>\
             <th class=n>Records</th></tr></thead><tbody>",
        );
        for seed in &report.seed_tables {
            let status = serde_json::to_value(seed.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let class = if status == "loaded" { "ok" } else { "bad" };
            let _ = write!(
                out,
                "<tr><td>{}</td><td class={class}>{status}</td>{}</tr>",
                text(&qualified(&seed.schema, &seed.table)),
                count_cell(seed.record_count, seed.record_count_method),
            );
        }
        out.push_str("</tbody></table>");
    }

    let _ = write!(
        out,
        "<h2 id=tables>Tables (<span id=shown>{n}</span> of {n})</h2>\
         <p><input id=filter type=search placeholder='Filter by schema.table' aria-label='Filter tables'> \
         <small>Largest first; click a header to sort. Estimates are in italics.</small></p>\
         <table class=sortable><thead><tr><th>Table</th><th class=n>Records</th><th class=n>Columns</th>\
         <th>created_by</th><th>created_at</th><th>updated_by</th><th>updated_at</th>\
         <th>Audit trigger</th><th>Creators</th><th>Owner</th><th>Indexes, keys, triggers</th>\
         <th class=n>Errors</th></tr></thead><tbody id=tables-body>",
        n = thousands(total_tables as u64)
    );
    out
}

fn versioning_section(out: &mut String, report: &AuditReport) {
    let v = &report.versioning_system.validation;
    out.push_str("<h2 id=versioning>Versioning checks</h2><table><thead><tr><th>Check</th><th>Result</th></tr></thead><tbody>");
    let row = |out: &mut String, check: &str, ran: bool, items: Vec<String>| {
        let _ = write!(out, "<tr><td>{}</td><td>", text(check));
        if !ran {
            out.push_str("<span class=muted>not run</span>");
        } else if items.is_empty() {
            out.push_str("<span class=ok>none</span>");
        } else {
            let _ = write!(
                out,
                "<span class=bad>{}</span>",
                thousands(items.len() as u64)
            );
            capped(out, &items);
        }
        out.push_str("</td></tr>");
    };
    row(
        out,
        "Version families without an active version",
        v.active_version_checks_ran,
        v.families_without_active_version
            .iter()
            .map(compact)
            .collect(),
    );
    row(
        out,
        "Version families with several active versions",
        v.active_version_checks_ran,
        several_active(v),
    );
    row(
        out,
        "Expected versioned tables missing from domain_family_map",
        v.domain_map_checks_ran,
        v.domain_map_missing_tables.clone(),
    );
    row(
        out,
        "Tables in domain_family_map that are not expected",
        v.domain_map_checks_ran,
        v.domain_map_unexpected_tables.clone(),
    );
    out.push_str("</tbody></table>");
    if !v.unavailable.is_empty() {
        out.push_str("<p class=muted>Checks that could not run:</p>");
        capped(out, &v.unavailable);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_get_thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn a_long_list_shows_ten_and_folds_the_rest() {
        let items: Vec<String> = (0..500).map(|i| format!("t{i}")).collect();
        let mut out = String::new();
        capped(&mut out, &items);
        assert_eq!(out.matches("<li>").count(), 500, "all there, folded");
        let (shown, folded) = out.split_once("<details").unwrap();
        assert_eq!(shown.matches("<li>").count(), SHOWN);
        assert!(folded.contains("+490 more"));
        let mut short = String::new();
        capped(&mut short, &items[..3]);
        assert!(!short.contains("details"));
    }

    #[test]
    fn hostile_names_are_escaped_and_qualified_unambiguously() {
        assert_eq!(qualified("public", "orders"), "public.orders");
        assert_eq!(qualified("public", "a.b"), "public.\"a.b\"");
        assert_eq!(qualified("Sales", "x\"y"), "\"Sales\".\"x\"\"y\"");
        let mut out = String::new();
        capped(&mut out, &["<script>alert(1)</script>".into()]);
        assert!(!out.contains("<script>"));
    }
}
