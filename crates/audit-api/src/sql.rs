//! The SQL for a selection of events: the select list, the predicates a search's filters
//! become (each value a bound parameter, `message_pattern` a literal substring), keyset
//! paging and the capped count an export makes first. Statements are built, not run, here.

use crate::search::{Page, SearchFilters};
use crate::trigram::PatternLookup;
use tokio_postgres::types::ToSql;

/// `message_pattern` as a literal, case-insensitive substring: LIKE's `%`, `_` and the
/// escape character `\` are escaped (the original service passed them through as wildcards).
pub fn like_substring(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 2);
    out.push('%');
    for c in pattern.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// A statement and its parameters.
#[derive(Debug)]
pub struct Statement {
    pub sql: String,
    pub params: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Statement {
    pub fn param_refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

/// The columns every event query returns, in [`EVENT_COLUMNS`] order.
pub const EVENT_SELECT: &str = "SELECT e.id, e.eventtimestamp, f.name, t.name, e.storelocationid, \
     e.companyid, e.username, e.message, e.status, e.additionaldata::text \
     FROM auditevents e \
     JOIN auditfunctionalities f ON f.id = e.functionalityid \
     JOIN auditeventtypes t ON t.id = e.eventtypeid";

/// The event fields in output order: JSON keys, and the export's header.
pub const EVENT_COLUMNS: [(&str, &str); 10] = [
    ("id", "ID"),
    ("event_timestamp", "Event Timestamp"),
    ("functionality", "Functionality"),
    ("event_type", "Event Type"),
    ("store_id", "Store ID"),
    ("company_id", "Company ID"),
    ("user", "User"),
    ("message", "Message"),
    ("status", "Status"),
    ("additional_data", "Additional Data"),
];

/// Which rows a query may see: all, or only those of the companies a scoped key holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    All,
    Companies(Vec<i64>),
}

/// What to select: filters (already checked against the scope), functionality resolved.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub filters: SearchFilters,
    pub functionality_id: Option<i32>,
    pub companies: Option<Vec<i64>>,
    /// How the trigram indexes find `message_pattern`'s rows ([`crate::trigram::lookup`]).
    pub message_lookup: PatternLookup,
}

impl Selection {
    /// The pattern's trigrams when its rows are to be found hour by hour, newest first: the
    /// pattern's words are all common and nothing else narrows the rows (a company, store,
    /// user or functionality has its own index in time order, and within it the pattern's
    /// rows are fewer than an hour's probe is worth).
    pub fn hourly_trigrams(&self) -> Option<&[String]> {
        let f = &self.filters;
        let narrowed = self.functionality_id.is_some()
            || f.store_id.is_some()
            || f.company_id.is_some()
            || f.user.is_some()
            || self.companies.is_some();
        match &self.message_lookup {
            PatternLookup::ByHour(trigrams) if !narrowed => Some(trigrams),
            _ => None,
        }
    }
}

/// The search statement for a selection: only the present filters become predicates (a
/// generic `$1 IS NULL OR ...` plan cannot use the per-filter indexes), newest first, below
/// `page`'s cursor when there is one, at most `limit` rows (a search asks for one more than
/// its page size, to know whether another page follows).
pub fn select_events(selection: &Selection, page: Option<&Page>, limit: Option<i64>) -> Statement {
    let (predicates, mut params) = event_predicates(selection, page);
    let bind = |params: &mut Vec<Box<dyn ToSql + Sync + Send>>,
                value: Box<dyn ToSql + Sync + Send>| {
        params.push(value);
        format!("${}", params.len())
    };
    let mut sql = String::from(EVENT_SELECT);
    if !predicates.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&predicates.join(" AND "));
    }
    sql.push_str(" ORDER BY e.eventtimestamp DESC, e.id DESC");
    if let Some(limit) = limit {
        let p = bind(&mut params, Box::new(limit));
        sql.push_str(&format!(" LIMIT {p}"));
    }
    if let (Some(Page::Number(n)), Some(limit)) = (page, limit) {
        // `limit` includes the lookahead row; the offset counts whole pages.
        let offset = (n - 1).saturating_mul(limit - 1);
        if offset > 0 {
            let p = bind(&mut params, Box::new(offset));
            sql.push_str(&format!(" OFFSET {p}"));
        }
    }
    Statement { sql, params }
}

/// How many rows a search for a pattern of common words reads newest first before it turns
/// to the hours: ten per row wanted (such a pattern's trigrams are each in more than one
/// message in twenty, [`crate::trigram::lookup`]), at least 2,000. ~0.5 µs a row.
pub fn walk_budget(limit: i64) -> i64 {
    limit.saturating_mul(10).clamp(2_000, 50_000)
}

/// The first statement of a search for a pattern of common words: of the newest `budget`
/// rows of the selection, those that match the pattern, newest first, at most `limit`. It
/// stops as soon as the page is full, which is the usual case; when it is not, the newest
/// rows did not match (a burst of other events) and the hours ([`select_events_by_hour`])
/// answer instead.
pub fn walk_events(selection: &Selection, page: &Page, limit: i64, budget: i64) -> Statement {
    let (predicates, mut params) = unpatterned_predicates(selection, page);
    let bind = |params: &mut Params, value: Box<dyn ToSql + Sync + Send>| {
        params.push(value);
        format!("${}", params.len())
    };
    let pattern = selection.filters.message_pattern.as_deref().unwrap_or("");
    let pattern = bind(&mut params, Box::new(like_substring(pattern)));
    let budget = bind(&mut params, Box::new(budget));
    let limit = bind(&mut params, Box::new(limit));
    // `|| ''`: the pattern is checked on these rows, never looked up in the trigram index.
    // The names are joined to the page's rows only, after the LIMIT: a join inside would
    // let PostgreSQL hash it and sort all `budget` rows instead of stopping at a full page.
    let sql = format!(
        "SELECT e.id, e.eventtimestamp, f.name, t.name, e.storelocationid, e.companyid, \
         e.username, e.message, e.status, e.additionaldata::text \
         FROM (SELECT w.* FROM (SELECT e.* FROM auditevents e{filter} \
                                ORDER BY e.eventtimestamp DESC, e.id DESC LIMIT {budget}) w \
               WHERE (w.message || '') ILIKE {pattern} \
               ORDER BY w.eventtimestamp DESC, w.id DESC LIMIT {limit}) e \
         JOIN auditfunctionalities f ON f.id = e.functionalityid \
         JOIN auditeventtypes t ON t.id = e.eventtypeid \
         ORDER BY e.eventtimestamp DESC, e.id DESC",
        filter = where_clause(&predicates),
    );
    Statement { sql, params }
}

/// Whether a walk that found `found` rows for a page of `limit` leaves rows to the hours.
pub fn walk_fell_short(found: usize, limit: i64) -> bool {
    (found as i64) < limit
}

fn unpatterned_predicates(selection: &Selection, page: &Page) -> (Vec<String>, Params) {
    let mut unpatterned = selection.clone();
    unpatterned.filters.message_pattern = None;
    event_predicates(&unpatterned, Some(page))
}

fn where_clause(predicates: &[String]) -> String {
    if predicates.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", predicates.join(" AND "))
    }
}

/// The second statement of a search for a pattern of common words
/// ([`PatternLookup::ByHour`]), below `page`'s cursor if any (else its first page): the hours from the
/// newest selected event's to the oldest's, newest first, each asked of the hour-keyed
/// trigram index (migration 0003) for its rows holding `trigrams`, which are then checked
/// against the pattern; the first `limit` rows in (hour, time, id) order are the newest
/// `limit` of the selection, as [`select_events`] would return them. An hour costs one index
/// descent per key and partition (~65 µs over a year of monthly partitions) and its matching
/// rows; rows that do not hold the trigrams cost nothing.
pub fn select_events_by_hour(
    selection: &Selection,
    trigrams: &[String],
    page: &Page,
    limit: i64,
) -> Statement {
    let (predicates, mut params) = predicates_with(selection, Some(page), Served::CheckedOnly);
    let bind = |params: &mut Params, value: Box<dyn ToSql + Sync + Send>| {
        params.push(value);
        format!("${}", params.len())
    };
    // The range of hours: only the dates and the cursor bound it (a wider range is still
    // right, the rows are filtered within each hour). The oldest hour ignores the cursor.
    let f = &selection.filters;
    let mut oldest_bounds = Vec::new();
    if let Some(from) = &f.from_date {
        let p = bind(&mut params, Box::new(from.0.clone()));
        oldest_bounds.push(format!("x.eventtimestamp >= {p}::text::timestamptz"));
    }
    if let Some(to) = &f.to_date {
        let p = bind(&mut params, Box::new(to.0.clone()));
        oldest_bounds.push(format!("x.eventtimestamp <= {p}::text::timestamptz"));
    }
    let mut newest_bounds = oldest_bounds.clone();
    if let Page::After(cursor) = page {
        let t = bind(&mut params, Box::new(cursor.timestamp));
        let i = bind(&mut params, Box::new(cursor.id));
        newest_bounds.push(format!("(x.eventtimestamp, x.id) < ({t}, {i})"));
    }
    let keys = bind(&mut params, Box::new(trigrams.to_vec()));
    let limit = bind(&mut params, Box::new(limit));
    // No time range in the probe: it would let PostgreSQL skip other months' partitions,
    // but also AND the hour's whole time-index range into the bitmap, which costs every row
    // of the hour: the burst this path exists to skip.
    let sql = format!(
        "SELECT e.id, e.eventtimestamp, f.name, t.name, e.storelocationid, e.companyid, \
         e.username, e.message, e.status, e.additionaldata::text \
         FROM (SELECT e.* FROM pg_catalog.generate_series(\
                 audit_api_event_hour((SELECT max(x.eventtimestamp) FROM auditevents x{newest})), \
                 audit_api_event_hour((SELECT min(x.eventtimestamp) FROM auditevents x{oldest})), \
                 -1) WITH ORDINALITY AS h (hour, n) \
               CROSS JOIN LATERAL (SELECT e.* FROM auditevents e \
                 WHERE audit_api_message_hours(e.message, e.eventtimestamp) \
                   @> audit_api_hour_keys({keys}::text[], h.hour) AND {predicates} \
                 ORDER BY e.eventtimestamp DESC, e.id DESC LIMIT {limit}) e \
               ORDER BY h.n, e.eventtimestamp DESC, e.id DESC LIMIT {limit}) e \
         JOIN auditfunctionalities f ON f.id = e.functionalityid \
         JOIN auditeventtypes t ON t.id = e.eventtypeid \
         ORDER BY e.eventtimestamp DESC, e.id DESC",
        newest = where_clause(&newest_bounds),
        oldest = where_clause(&oldest_bounds),
        predicates = predicates.join(" AND "),
    );
    Statement { sql, params }
}

/// How many events a selection matches, counting no further than `cap`: an export checks
/// its size before writing a row.
pub fn count_events(selection: &Selection, cap: i64) -> Statement {
    let (predicates, mut params) = event_predicates(selection, None);
    let mut sql = String::from("SELECT count(*) FROM (SELECT 1 FROM auditevents e");
    if !predicates.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&predicates.join(" AND "));
    }
    params.push(Box::new(cap));
    sql.push_str(&format!(" LIMIT ${}) capped", params.len()));
    Statement { sql, params }
}

type Params = Vec<Box<dyn ToSql + Sync + Send>>;

/// The predicates of a selection (and a cursor page), with their parameters.
fn event_predicates(selection: &Selection, page: Option<&Page>) -> (Vec<String>, Params) {
    predicates_with(selection, page, Served::ByAnyIndex)
}

/// Whether the pattern and time predicates may be served by an index.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Served {
    /// By any, the pattern as the selection's [`PatternLookup`] says: the planner's choice.
    ByAnyIndex,
    /// By none: they are checked on the rows the hour-keyed index found. PostgreSQL would
    /// otherwise AND into its bitmap every row of the pattern in the partition (trigram
    /// index) or every row of the range (time index, which for a cursor or `from_date` is
    /// most of the table).
    CheckedOnly,
}

fn predicates_with(
    selection: &Selection,
    page: Option<&Page>,
    served: Served,
) -> (Vec<String>, Params) {
    let mut predicates: Vec<String> = Vec::new();
    let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
    let bind = |params: &mut Vec<Box<dyn ToSql + Sync + Send>>,
                value: Box<dyn ToSql + Sync + Send>| {
        params.push(value);
        format!("${}", params.len())
    };
    // `IS TRUE` is the same test in a form no index serves.
    let time = |predicate: String| match served {
        Served::ByAnyIndex => predicate,
        Served::CheckedOnly => format!("({predicate}) IS TRUE"),
    };
    let f = &selection.filters;
    if let Some(from) = &f.from_date {
        let p = bind(&mut params, Box::new(from.0.clone()));
        predicates.push(time(format!("e.eventtimestamp >= {p}::text::timestamptz")));
    }
    if let Some(to) = &f.to_date {
        let p = bind(&mut params, Box::new(to.0.clone()));
        predicates.push(time(format!("e.eventtimestamp <= {p}::text::timestamptz")));
    }
    if let Some(id) = selection.functionality_id {
        let p = bind(&mut params, Box::new(id));
        predicates.push(format!("e.functionalityid = {p}"));
    }
    if let Some(store) = f.store_id {
        let p = bind(&mut params, Box::new(store));
        predicates.push(format!("e.storelocationid = {p}"));
    }
    if let Some(company) = f.company_id {
        let p = bind(&mut params, Box::new(company));
        predicates.push(format!("e.companyid = {p}"));
    }
    if let Some(companies) = &selection.companies {
        let p = bind(&mut params, Box::new(companies.clone()));
        predicates.push(format!("e.companyid = ANY({p})"));
    }
    if let Some(user) = &f.user {
        let p = bind(&mut params, Box::new(user.clone()));
        predicates.push(format!("e.username = {p}"));
    }
    if let Some(pattern) = f.message_pattern.as_deref().filter(|p| !p.is_empty()) {
        if served == Served::CheckedOnly {
            let p = bind(&mut params, Box::new(like_substring(pattern)));
            predicates.push(format!("(e.message || '') ILIKE {p}"));
        } else if let PatternLookup::RareWord(core) = &selection.message_lookup {
            // The index looks up only the rare word; the whole pattern is checked on what it
            // finds, written so that the index cannot serve it (an indexable second ILIKE
            // would put every common trigram back into the lookup).
            let c = bind(&mut params, Box::new(like_substring(core)));
            predicates.push(format!("e.message ILIKE {c}"));
            let p = bind(&mut params, Box::new(like_substring(pattern)));
            predicates.push(format!("(e.message || '') ILIKE {p}"));
        } else {
            let p = bind(&mut params, Box::new(like_substring(pattern)));
            predicates.push(format!("e.message ILIKE {p}"));
        }
    }
    if let Some(Page::After(cursor)) = page {
        let t = bind(&mut params, Box::new(cursor.timestamp));
        let i = bind(&mut params, Box::new(cursor.id));
        predicates.push(time(format!("(e.eventtimestamp, e.id) < ({t}, {i})")));
    }
    (predicates, params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::tests::filters;
    use crate::search::{Cursor, parse_search};
    use chrono::DateTime;
    #[test]
    fn message_patterns_are_literal_substrings() {
        assert_eq!(like_substring("100%"), "%100\\%%");
        assert_eq!(like_substring("a_b"), "%a\\_b%");
        assert_eq!(like_substring("C:\\temp"), "%C:\\\\temp%");
        assert_eq!(like_substring(""), "%%");
    }

    #[test]
    fn only_present_filters_become_predicates() {
        let request = parse_search(&filters(&[])).expect("valid");
        let statement = select_events(
            &Selection {
                filters: request.filters,
                ..Selection::default()
            },
            Some(&request.page),
            Some(request.page_size + 1),
        );
        assert!(
            statement
                .sql
                .ends_with("ORDER BY e.eventtimestamp DESC, e.id DESC LIMIT $1")
        );
        assert!(!statement.sql.contains("WHERE"));

        let request = parse_search(&filters(&[
            ("company_id", "5001"),
            ("message_pattern", "50%"),
            ("page_number", "3"),
            ("page_size", "10"),
        ]))
        .expect("valid");
        let statement = select_events(
            &Selection {
                filters: request.filters,
                functionality_id: Some(2),
                companies: Some(vec![5001]),
                message_lookup: PatternLookup::Whole,
            },
            Some(&request.page),
            Some(request.page_size + 1),
        );
        assert!(
            statement.sql.contains(
                "WHERE e.functionalityid = $1 AND e.companyid = $2 AND e.companyid = ANY($3) \
             AND e.message ILIKE $4 ORDER BY e.eventtimestamp DESC, e.id DESC LIMIT $5 OFFSET $6"
            ),
            "{}",
            statement.sql
        );
        assert_eq!(format!("{:?}", statement.params[3]), "\"%50\\\\%%\"");
        assert_eq!(
            format!("{:?}", statement.params[5]),
            "20",
            "two whole pages skipped"
        );

        // With a core word: the index is asked for the word, the pattern checked on the rows.
        let request = parse_search(&filters(&[("message_pattern", "SKU-004_17")])).expect("valid");
        let statement = select_events(
            &Selection {
                filters: request.filters,
                message_lookup: PatternLookup::RareWord("004".into()),
                ..Selection::default()
            },
            Some(&request.page),
            Some(501),
        );
        assert!(
            statement
                .sql
                .contains("WHERE e.message ILIKE $1 AND (e.message || '') ILIKE $2 ORDER BY"),
            "{}",
            statement.sql
        );
        assert_eq!(format!("{:?}", statement.params[0]), "\"%004%\"");
        assert_eq!(format!("{:?}", statement.params[1]), "\"%SKU-004\\\\_17%\"");

        let cursor = Cursor {
            timestamp: DateTime::UNIX_EPOCH,
            id: 7,
        };
        let request = parse_search(&filters(&[("cursor", &cursor.encode())])).expect("valid");
        assert_eq!(request.page, Page::After(cursor));
        let statement = select_events(&Selection::default(), Some(&request.page), Some(501));
        assert!(
            statement
                .sql
                .contains("WHERE (e.eventtimestamp, e.id) < ($1, $2)")
        );
        assert!(!statement.sql.contains("OFFSET"));
    }

    #[test]
    fn the_walk_is_bounded_and_the_hours_take_over_only_when_it_falls_short() {
        assert!(!walk_fell_short(501, 501));
        assert!(walk_fell_short(500, 501));
        assert!(walk_fell_short(0, 1));
        assert_eq!(walk_budget(501), 5_010);
        assert_eq!(walk_budget(1), 2_000);
        assert_eq!(walk_budget(5001), 50_000);
        let request = parse_search(&filters(&[
            ("message_pattern", "SKU-00"),
            ("company_id", "7"),
        ]))
        .expect("valid");
        let selection = Selection {
            filters: request.filters,
            ..Selection::default()
        };
        let walk = walk_events(&selection, &request.page, 11, 2_000);
        assert!(
            walk.sql.contains(
                "FROM (SELECT e.* FROM auditevents e WHERE e.companyid = $1 \
                 ORDER BY e.eventtimestamp DESC, e.id DESC LIMIT $3) w"
            ),
            "the budget bounds the rows read, the other filters choose them: {}",
            walk.sql
        );
    }

    #[test]
    fn a_common_pattern_goes_by_hour_only_when_nothing_else_narrows_the_rows() {
        let hourly = |filters: &[(&str, &str)], companies: Option<Vec<i64>>| {
            let request = parse_search(&crate::search::tests::filters(filters)).expect("valid");
            Selection {
                filters: request.filters,
                companies,
                message_lookup: PatternLookup::ByHour(vec![" 00".into()]),
                ..Selection::default()
            }
            .hourly_trigrams()
            .is_some()
        };
        assert!(hourly(&[("message_pattern", "SKU-00")], None));
        assert!(hourly(
            &[
                ("message_pattern", "SKU-00"),
                ("from_date", "2026-01-01T00:00:00Z")
            ],
            None
        ));
        assert!(!hourly(
            &[("message_pattern", "SKU-00"), ("company_id", "7")],
            None
        ));
        assert!(!hourly(
            &[("message_pattern", "SKU-00"), ("user", "u")],
            None
        ));
        assert!(!hourly(&[("message_pattern", "SKU-00")], Some(vec![7])));
    }

    #[test]
    fn the_hour_statement_checks_the_pattern_and_leaves_the_time_ranges_to_the_bounds() {
        let request = parse_search(&filters(&[
            ("message_pattern", "SKU-00"),
            ("to_date", "2026-01-01T00:00:00Z"),
        ]))
        .expect("valid");
        let selection = Selection {
            filters: request.filters,
            message_lookup: PatternLookup::ByHour(vec![" 00".into()]),
            ..Selection::default()
        };
        let after = Page::After(Cursor {
            timestamp: DateTime::UNIX_EPOCH,
            id: 7,
        });
        let statement = select_events_by_hour(&selection, &[" 00".into()], &after, 11);
        // Checked, never looked up: an indexable ILIKE would read the partition's matches.
        assert!(
            statement.sql.contains("(e.message || '') ILIKE"),
            "{}",
            statement.sql
        );
        assert!(
            !statement.sql.contains(" e.message ILIKE"),
            "{}",
            statement.sql
        );
        // The cursor and to_date bound the newest hour; to_date the oldest. Within an hour
        // they are checked, in a form the time index cannot serve.
        assert!(
            statement.sql.contains("(x.eventtimestamp, x.id) <"),
            "{}",
            statement.sql
        );
        assert!(
            statement
                .sql
                .contains("((e.eventtimestamp, e.id) < ($3, $4)) IS TRUE")
                && statement
                    .sql
                    .contains("(e.eventtimestamp <= $1::text::timestamptz) IS TRUE"),
            "{}",
            statement.sql
        );
        assert!(
            statement
                .sql
                .contains("ORDER BY h.n, e.eventtimestamp DESC, e.id DESC LIMIT")
        );
        assert!(
            statement
                .sql
                .ends_with("ORDER BY e.eventtimestamp DESC, e.id DESC")
        );
        let walk = walk_events(&selection, &request.page, 11, 10_000);
        assert!(
            walk.sql.contains("WHERE (w.message || '') ILIKE"),
            "{}",
            walk.sql
        );
        assert!(
            !walk.sql.contains("e.message ILIKE"),
            "the walk reads rows, it does not look up"
        );
    }
}
