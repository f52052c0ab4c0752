//! The SQL for a selection of events: the select list, the predicates a search's filters
//! become (each value a bound parameter, `message_pattern` a literal substring), keyset
//! paging and the capped count an export makes first. Statements are built, not run, here.

use crate::search::{Page, SearchFilters};
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
    /// The word of `message_pattern` the trigram index looks up instead of the whole
    /// pattern ([`crate::trigram::index_core`]); `None`: the whole pattern.
    pub message_core: Option<String>,
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
    let mut predicates: Vec<String> = Vec::new();
    let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
    let bind = |params: &mut Vec<Box<dyn ToSql + Sync + Send>>,
                value: Box<dyn ToSql + Sync + Send>| {
        params.push(value);
        format!("${}", params.len())
    };
    let f = &selection.filters;
    if let Some(from) = &f.from_date {
        let p = bind(&mut params, Box::new(from.0.clone()));
        predicates.push(format!("e.eventtimestamp >= {p}::text::timestamptz"));
    }
    if let Some(to) = &f.to_date {
        let p = bind(&mut params, Box::new(to.0.clone()));
        predicates.push(format!("e.eventtimestamp <= {p}::text::timestamptz"));
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
        if let Some(core) = &selection.message_core {
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
        predicates.push(format!("(e.eventtimestamp, e.id) < ({t}, {i})"));
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
                message_core: None,
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
                message_core: Some("004".into()),
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
}
