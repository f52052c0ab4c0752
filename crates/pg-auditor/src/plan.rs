//! Pure decisions: how each table is counted, which statements read it, and how their
//! answers become figures. No I/O; every SQL text here is built from identifiers PostgreSQL
//! quoted itself ([`crate::catalog`]), never from names quoted or escaped here. Each is one
//! statement, sent alone through the extended protocol (a name that smuggles in `; COMMIT;
//! ...` cannot become a second statement), calls only `pg_catalog` functions, and returns
//! text columns.

use crate::catalog::{CatalogColumn, CatalogTable, ColumnStatistics};
use crate::settings::{CountMode, Settings, TableName};

/// The audit columns the original looks for.
pub const AUDIT_COLUMNS: [&str; 4] = ["created_by", "created_at", "updated_by", "updated_at"];

/// What a redacted value reads in every row the report copies.
pub const REDACTED: &str = "[redacted]";

/// Where an estimated row count comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EstimateSource {
    /// `pg_class.reltuples` (as of the last VACUUM/ANALYZE), scaled to the current size.
    Planner,
    /// `pg_stat_all_tables.n_live_tup`: the statistics collector's hint, for tables never
    /// analyzed.
    Statistics,
}

/// How a table's record count is obtained.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CountPlan {
    Exact,
    Estimate {
        rows: f64,
        source: EstimateSource,
    },
    /// `estimate` mode on a table with no statistics at all.
    Unknown,
}

/// The catalog's estimate of a table's rows, without touching the table.
pub fn catalog_estimate(table: &CatalogTable) -> Option<(f64, EstimateSource)> {
    if table.is_partitioned {
        // A partitioned table has no rows of its own: the sum of its leaves.
        let leaves = table.leaves.as_deref().unwrap_or_default();
        if leaves.iter().any(|leaf| leaf.reltuples < 0.0) {
            return None;
        }
        return Some((
            leaves.iter().map(|leaf| leaf.reltuples).sum(),
            EstimateSource::Planner,
        ));
    }
    if table.reltuples >= 0.0 {
        Some((table.reltuples, EstimateSource::Planner))
    } else {
        table
            .live_tuples_hint
            .filter(|&hint| hint > 0)
            .map(|hint| (hint as f64, EstimateSource::Statistics))
    }
}

/// `auto`: exact up to the threshold and whenever nothing is known (a table never analyzed
/// may hold anything; the statement timeout bounds the cost); estimates above it.
pub fn count_plan(table: &CatalogTable, mode: CountMode, threshold: u64) -> CountPlan {
    let estimate = catalog_estimate(table);
    match (mode, estimate) {
        (CountMode::Exact, _) => CountPlan::Exact,
        (CountMode::Auto, None) => CountPlan::Exact,
        (CountMode::Auto, Some((rows, _))) if rows <= threshold as f64 => CountPlan::Exact,
        (_, Some((rows, source))) => CountPlan::Estimate { rows, source },
        (CountMode::Estimate, None) => CountPlan::Unknown,
    }
}

/// The planner's own scaling: rows per page at the last ANALYZE times the pages now.
pub fn scaled_estimate(
    reltuples: f64,
    relpages: i64,
    current_bytes: Option<i64>,
    block_size: i64,
) -> f64 {
    match current_bytes {
        Some(bytes) if relpages > 0 && block_size > 0 => {
            (reltuples / relpages as f64 * (bytes as f64 / block_size as f64)).round()
        }
        _ => reltuples.max(0.0).round(),
    }
}

/// Whether a column name matches one of the sensitive patterns (case-insensitive substring).
pub fn is_sensitive(column: &str, patterns: &[String]) -> bool {
    let column = column.to_lowercase();
    patterns
        .iter()
        .any(|pattern| !pattern.is_empty() && column.contains(pattern.as_str()))
}

/// `json` (PostgreSQL's JSON output: sample rows, table contents) with the value of every
/// object key that matches a sensitive pattern replaced by `"[redacted]"`, at any depth: a
/// `profile` jsonb column's `password` is redacted as a `password` column is. Everything else
/// is copied byte for byte (numbers keep every digit). Text that is not JSON is replaced
/// whole: nothing unread passes.
pub fn redact_json_keys(json: &str, patterns: &[String]) -> String {
    if patterns.iter().all(String::is_empty) {
        return json.to_owned();
    }
    let mut scanner = JsonRedactor {
        input: json.as_bytes(),
        at: 0,
        out: String::with_capacity(json.len()),
        patterns,
    };
    match scanner.value(0) {
        Some(()) if scanner.rest_is_blank() => scanner.out,
        _ => format!("\"{REDACTED}\""),
    }
}

/// The deepest nesting followed; PostgreSQL's jsonb allows more, and deeper text is redacted.
const MAX_JSON_DEPTH: usize = 200;

struct JsonRedactor<'a> {
    input: &'a [u8],
    at: usize,
    out: String,
    patterns: &'a [String],
}

impl JsonRedactor<'_> {
    fn blank(&mut self) {
        while self.input.get(self.at).is_some_and(u8::is_ascii_whitespace) {
            self.at += 1;
        }
    }

    fn rest_is_blank(&mut self) -> bool {
        self.blank();
        self.at == self.input.len()
    }

    /// The raw text of the string starting at `self.at` (quotes included).
    fn string(&mut self) -> Option<&str> {
        let start = self.at;
        if self.input.get(self.at) != Some(&b'"') {
            return None;
        }
        self.at += 1;
        loop {
            match self.input.get(self.at)? {
                b'\\' => self.at += 2,
                b'"' => {
                    self.at += 1;
                    return std::str::from_utf8(&self.input[start..self.at]).ok();
                }
                _ => self.at += 1,
            }
        }
    }

    /// An object or array at `self.at`: its opening character, `element` for each member
    /// (separated by commas), `close`.
    fn sequence(
        &mut self,
        close: u8,
        mut element: impl FnMut(&mut Self) -> Option<()>,
    ) -> Option<()> {
        self.out.push(char::from(self.input[self.at]));
        self.at += 1;
        self.blank();
        if self.input.get(self.at) == Some(&close) {
            self.at += 1;
            self.out.push(char::from(close));
            return Some(());
        }
        loop {
            self.blank();
            element(self)?;
            self.blank();
            match *self.input.get(self.at)? {
                b',' => {
                    self.at += 1;
                    self.out.push(',');
                }
                b if b == close => {
                    self.at += 1;
                    self.out.push(char::from(close));
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// Copies one value to the output, redacting inside it.
    fn value(&mut self, depth: usize) -> Option<()> {
        self.blank();
        if depth > MAX_JSON_DEPTH {
            return None;
        }
        match *self.input.get(self.at)? {
            b'{' => self.sequence(b'}', |this| {
                let key = this.string()?.to_owned();
                this.out.push_str(&key);
                this.blank();
                if this.input.get(this.at) != Some(&b':') {
                    return None;
                }
                this.at += 1;
                this.out.push(':');
                let name: String = serde_json::from_str(&key).ok()?;
                if is_sensitive(&name, this.patterns) {
                    let kept = this.out.len();
                    this.value(depth + 1)?;
                    this.out.truncate(kept);
                    this.out.push_str(&format!("\"{REDACTED}\""));
                    Some(())
                } else {
                    this.value(depth + 1)
                }
            }),
            b'[' => self.sequence(b']', |this| this.value(depth + 1)),
            b'"' => {
                let text = self.string()?.to_owned();
                self.out.push_str(&text);
                Some(())
            }
            _ => {
                // A number or a literal: up to the next delimiter.
                let start = self.at;
                while self
                    .input
                    .get(self.at)
                    .is_some_and(|b| !matches!(b, b',' | b']' | b'}') && !b.is_ascii_whitespace())
                {
                    self.at += 1;
                }
                let token = std::str::from_utf8(&self.input[start..self.at]).ok()?;
                if token.is_empty() {
                    return None;
                }
                self.out.push_str(token);
                Some(())
            }
        }
    }
}

/// The select list that copies a row with sensitive columns replaced in the database, so
/// their values never reach the auditor.
pub fn redacted_select_list(columns: &[&CatalogColumn], patterns: &[String]) -> String {
    columns
        .iter()
        .map(|column| {
            if is_sensitive(&column.column_name, patterns) {
                format!("'{REDACTED}'::text AS {}", column.quoted)
            } else {
                column.quoted.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The statements that read one table; each runs under its own savepoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableProbe {
    /// `count(*)` plus, in the same scan, the creators and the creation range.
    pub exact: Option<String>,
    /// Current size (for scaling estimates) and the redacted sample rows.
    pub sample: String,
    /// `EXISTS`: loaded or empty, for a seed table whose count is not exact.
    pub emptiness: Option<String>,
}

/// Which audit columns a table has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditColumns {
    pub created_by: bool,
    pub created_at: bool,
    pub updated_by: bool,
    pub updated_at: bool,
}

impl AuditColumns {
    pub fn of(columns: &[&CatalogColumn]) -> Self {
        let has = |name: &str| columns.iter().any(|c| c.column_name == name);
        AuditColumns {
            created_by: has("created_by"),
            created_at: has("created_at"),
            updated_by: has("updated_by"),
            updated_at: has("updated_at"),
        }
    }

    pub fn any(self) -> bool {
        self.created_by || self.created_at || self.updated_by || self.updated_at
    }
}

/// The statements for one table.
pub fn probe(
    table: &CatalogTable,
    columns: &[&CatalogColumn],
    plan: CountPlan,
    is_seed_table: bool,
    settings: &Settings,
) -> TableProbe {
    let audit = AuditColumns::of(columns);
    let target = &table.qualified;
    let exact = (plan == CountPlan::Exact).then(|| {
        let range = if audit.created_at {
            "CASE WHEN pg_catalog.count(created_at) = 0 THEN NULL \
             ELSE pg_catalog.json_build_object('min', pg_catalog.min(created_at), \
             'max', pg_catalog.max(created_at))::text END"
        } else {
            "NULL::text"
        };
        let creators = if audit.created_by {
            // One more than the cap tells whether the list was cut.
            format!(
                "pg_catalog.to_json((pg_catalog.array_agg(DISTINCT created_by) \
                 FILTER (WHERE created_by IS NOT NULL))[1:{}])::text",
                settings.max_created_by_values + 1
            )
        } else {
            "NULL::text".to_owned()
        };
        format!("SELECT pg_catalog.count(*)::text, {range}, {creators} FROM {target}")
    });
    let rows = if settings.sample_rows == 0 {
        "'[]'::text".to_owned()
    } else {
        format!(
            "(SELECT coalesce(pg_catalog.json_agg(r), '[]') FROM (SELECT {} FROM {target} LIMIT {}) r)::text",
            redacted_select_list(columns, &settings.sensitive_column_patterns),
            settings.sample_rows
        )
    };
    let size = if table.is_partitioned {
        "NULL::text".to_owned()
    } else {
        format!("pg_catalog.pg_relation_size({}::oid)::text", table.oid)
    };
    TableProbe {
        exact,
        sample: format!("SELECT {size}, {rows}"),
        emptiness: (is_seed_table && plan != CountPlan::Exact)
            .then(|| format!("SELECT (EXISTS (SELECT 1 FROM {target}))::text")),
    }
}

/// How many small tables one statement reads. Each table's statements cost a round trip, a
/// savepoint and a plan; at 100,000 tables that was most of the audit's time. A batch that
/// fails (a lock timeout, a permission) is read again table by table, so a failure is still
/// recorded against its own table only: the cap bounds what a failure costs.
pub const TABLES_PER_BATCH: usize = 64;

/// Whether a table's statements can be read in a batch: an exact count (a small table, by
/// estimate or by mode) and nothing else besides the sample.
pub fn batchable(probe: &TableProbe) -> bool {
    probe.exact.is_some() && probe.emptiness.is_none()
}

/// Which of a batch's tables (`$1`, oids) hold no row at all, found without planning a read of
/// each: a plain table whose main fork has no pages has no tuple for any snapshot to see (rows
/// our snapshot sees cannot be vacuumed away, and `TRUNCATE` empties the table for every
/// snapshot alike). What a count and a sample of such a table return is known
/// ([`crate::reading::TableReading::of_empty_table`]), and planning those reads was most of
/// the audit's time on a database of many small tables, most of them empty. A partitioned
/// table, a table with inheritance children (its count includes theirs) and a table the
/// auditor may not read are read as before; so are tables another session holds (the size
/// waits for its lock, the statement fails, and the batch is read as a whole).
pub const EMPTY_TABLES_SQL: &str = r#"
SELECT c.oid::int8
FROM pg_catalog.pg_class c
WHERE c.oid = ANY ($1::int8[]::oid[])
  AND CASE WHEN c.relkind = 'r' AND NOT c.relhassubclass
                AND pg_catalog.has_table_privilege(c.oid, 'SELECT')
           THEN pg_catalog.pg_relation_size(c.oid) = 0
           ELSE false END
"#;

/// One statement reading several [`batchable`] tables: one row per table, its position in
/// `probes` first, then the exact statement's three columns and the sample's two (all text).
/// `None` when a table is not batchable.
pub fn batch_sql(probes: &[&TableProbe]) -> Option<String> {
    let parts = probes
        .iter()
        .enumerate()
        .map(|(i, probe)| {
            let exact = probe.exact.as_deref().filter(|_| batchable(probe))?;
            Some(format!(
                "SELECT {i}::text, e.*, s.* FROM ({exact}) e CROSS JOIN ({sample}) s",
                sample = probe.sample
            ))
        })
        .collect::<Option<Vec<_>>>()?;
    Some(parts.join(" UNION ALL "))
}

/// The statement that copies a whole (small) table, redacted, capped at `limit` rows, with its
/// exact count.
pub fn contents_sql(
    table: &CatalogTable,
    columns: &[&CatalogColumn],
    settings: &Settings,
) -> String {
    let first = columns
        .first()
        .map(|c| format!(" ORDER BY {}", c.quoted))
        .unwrap_or_default();
    format!(
        "SELECT (SELECT pg_catalog.count(*) FROM {t})::text, (SELECT coalesce(pg_catalog.json_agg(r), '[]') FROM \
         (SELECT {list} FROM {t}{first} LIMIT {limit}) r)::text",
        t = table.qualified,
        list = redacted_select_list(columns, &settings.sensitive_column_patterns),
        limit = settings.max_versioning_rows
    )
}

/// Whether `table` is one of the configured names.
pub fn is_listed(schema: &str, table: &str, names: &[TableName]) -> bool {
    names.iter().any(|n| n.schema == schema && n.table == table)
}

/// Elements of a PostgreSQL array literal (`{a,"b c",NULL}`), as text; `NULL` elements are
/// skipped. Handles the quoting `array_out` produces.
pub fn parse_array_literal(literal: &str) -> Vec<String> {
    let inner = literal
        .trim()
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .unwrap_or_default();
    let mut items = Vec::new();
    let mut chars = inner.chars().peekable();
    while chars.peek().is_some() {
        let mut item = String::new();
        let mut quoted = false;
        if chars.peek() == Some(&'"') {
            quoted = true;
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => item.extend(chars.next()),
                    '"' => break,
                    c => item.push(c),
                }
            }
            // Skip to the separator.
            for c in chars.by_ref() {
                if c == ',' {
                    break;
                }
            }
        } else {
            for c in chars.by_ref() {
                if c == ',' {
                    break;
                }
                item.push(c);
            }
        }
        if quoted || item != "NULL" {
            items.push(item);
        }
    }
    items
}

/// Creators and creation range estimated from `pg_stats`, for a table too large to scan.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EstimatedAuditFields {
    /// The most common `created_by` values; complete only when `n_distinct` says so.
    pub created_by_values: Vec<String>,
    pub created_by_complete: bool,
    pub created_at_range: Option<(String, String)>,
}

pub fn estimated_audit_fields(statistics: &[&ColumnStatistics]) -> EstimatedAuditFields {
    let mut fields = EstimatedAuditFields::default();
    for stats in statistics {
        match stats.column_name.as_str() {
            "created_by" => {
                let mut values = stats
                    .most_common_vals
                    .as_deref()
                    .map(parse_array_literal)
                    .unwrap_or_default();
                // n_distinct > 0 is a count; < 0 a fraction of the rows (many values).
                fields.created_by_complete =
                    stats.n_distinct > 0.0 && values.len() as f64 >= stats.n_distinct;
                sort_values(&mut values);
                fields.created_by_values = values;
            }
            "created_at" => {
                let bounds = stats
                    .histogram_bounds
                    .as_deref()
                    .map(parse_array_literal)
                    .unwrap_or_default();
                let mut common = stats
                    .most_common_vals
                    .as_deref()
                    .map(parse_array_literal)
                    .unwrap_or_default();
                // Histogram bounds are in the type's order; common values are not, but
                // timestamps in ISO output order the same way as text within one zone.
                common.extend(bounds);
                common.sort();
                if let (Some(first), Some(last)) = (common.first(), common.last()) {
                    fields.created_at_range = Some((first.clone(), last.clone()));
                }
            }
            _ => {}
        }
    }
    fields
}

/// Numbers in numeric order, everything else as text.
pub fn sort_values(values: &mut [String]) {
    values.sort_by(|a, b| match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x.total_cmp(&y),
        _ => a.cmp(b),
    });
}

/// Tables are read largest first so the slow ones start early and the connections finish
/// together.
pub fn read_order(estimates: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..estimates.len()).collect();
    order.sort_by(|&a, &b| estimates[b].total_cmp(&estimates[a]));
    order
}

/// The statements' units of work, in `order` (largest first, [`read_order`]): consecutive
/// [`batchable`] tables grouped up to [`TABLES_PER_BATCH`], every other table alone.
pub fn batches(order: &[usize], batchable: impl Fn(usize) -> bool) -> Vec<Vec<usize>> {
    let mut batches: Vec<Vec<usize>> = Vec::new();
    let mut open = false;
    for &table in order {
        let small = batchable(table);
        match batches.last_mut() {
            Some(batch) if small && open && batch.len() < TABLES_PER_BATCH => batch.push(table),
            _ => batches.push(vec![table]),
        }
        open = small;
    }
    batches
}

/// A timestamp as PostgreSQL's text output writes it (`2025-09-22 21:56:26.5+00`) in the
/// ISO 8601 form its JSON output uses (`2025-09-22T21:56:26.5+00:00`), so estimated and exact
/// ranges read alike. Anything else is returned as it is.
pub fn iso_timestamp(text: &str) -> String {
    let bytes = text.as_bytes();
    if bytes.len() < 19
        || bytes[10] != b' '
        || !bytes[..10].iter().all(|b| b.is_ascii_digit() || *b == b'-')
    {
        return text.to_owned();
    }
    let mut iso = format!("{}T{}", &text[..10], &text[11..]);
    // A zone offset of whole hours (`+00`) gains its minutes (`+00:00`).
    let len = iso.len();
    if len > 3 {
        let tail = &iso.as_bytes()[len - 3..];
        if (tail[0] == b'+' || tail[0] == b'-')
            && tail[1].is_ascii_digit()
            && tail[2].is_ascii_digit()
        {
            iso.push_str(":00");
        }
    }
    iso
}

#[cfg(test)]
mod tests;
