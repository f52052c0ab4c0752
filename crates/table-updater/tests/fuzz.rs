//! Random inputs for the request parser and the condition grammar: 100,000 in all, from fixed
//! seeds so a failure reproduces. None may panic; every rejection is a 400 with a message; every
//! accepted condition uses only placeholders, each defined exactly once.

#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

use table_updater::condition::{self, EmittedCondition};
use table_updater::request::plan;
use table_updater::{KeyAttribute, KeyKind, KeySchema};

const PIECES: &[&str] = &[
    "a",
    "b.c",
    "d[1]",
    "size(",
    "attribute_exists(",
    "attribute_not_exists(",
    "attribute_type(",
    "begins_with(",
    "contains(",
    "(",
    ")",
    "[",
    "]",
    ",",
    ".",
    "AND",
    "or",
    "Not",
    "BETWEEN",
    "IN",
    "=",
    "<>",
    "<",
    "<=",
    ">",
    ">=",
    "'x'",
    "\"y\\\"z\"",
    "'",
    "\"",
    "`",
    "`odd name`",
    "1",
    "-2.5e3",
    "1e999",
    "0.5",
    ".5",
    "true",
    "FALSE",
    ":v",
    "#n",
    ";",
    "--",
    "é",
    "\u{0}",
    "\\",
    "status",
    "values",
    "x_y-z",
    "9",
    "[0]",
    "size",
];

/// A condition from the grammar (so about half the inputs are valid before mutation).
fn grammatical(rng: &mut fastrand::Rng, depth: usize) -> String {
    let path = |rng: &mut fastrand::Rng| {
        [
            "a",
            "status",
            "b.c",
            "d[1]",
            "`odd name`",
            "x_y-z",
            "values",
        ][rng.usize(..7)]
        .to_owned()
    };
    let operand = |rng: &mut fastrand::Rng| match rng.u8(..4) {
        0 => path(rng),
        1 => "'x'".to_owned(),
        2 => ["1", "-2.5e3", "0.5", "true"][rng.usize(..4)].to_owned(),
        _ => format!("size({})", path(rng)),
    };
    match rng.u8(..if depth > 3 { 6 } else { 9 }) {
        0 => format!(
            "{} {} {}",
            operand(rng),
            ["=", "<>", "<", "<=", ">", ">="][rng.usize(..6)],
            operand(rng)
        ),
        1 => format!(
            "{} BETWEEN {} AND {}",
            operand(rng),
            operand(rng),
            operand(rng)
        ),
        2 => format!("{} IN ({}, {})", operand(rng), operand(rng), operand(rng)),
        3 => format!("attribute_exists({})", path(rng)),
        4 => format!("begins_with({}, {})", path(rng), operand(rng)),
        5 => format!("attribute_type({}, 'S')", path(rng)),
        6 => format!("({})", grammatical(rng, depth + 1)),
        7 => format!("NOT {}", grammatical(rng, depth + 1)),
        _ => format!(
            "{} {} {}",
            grammatical(rng, depth + 1),
            ["AND", "OR"][rng.usize(..2)],
            grammatical(rng, depth + 1)
        ),
    }
}

fn random_condition(rng: &mut fastrand::Rng) -> String {
    if rng.bool() {
        let mut text = grammatical(rng, 0);
        // Half of those get one random change: a piece inserted, or a stretch cut out.
        if rng.bool() && !text.is_empty() {
            let mut at = rng.usize(..text.len());
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            if rng.bool() {
                text.insert_str(at, PIECES[rng.usize(..PIECES.len())]);
            } else {
                let mut end = (at + rng.usize(1..6)).min(text.len());
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                text.replace_range(at..end, "");
            }
        }
        return text;
    }
    if rng.u8(..10) == 0 {
        // Arbitrary characters, not just grammar pieces.
        return (0..rng.usize(..40)).map(|_| rng.char(..)).collect();
    }
    let mut text = String::new();
    for _ in 0..rng.usize(..24) {
        text.push_str(PIECES[rng.usize(..PIECES.len())]);
        if rng.bool() {
            text.push(' ');
        }
    }
    text
}

/// Every `#x`/`:x` in the expression is defined, and every definition is used.
fn placeholders_are_consistent(c: &EmittedCondition) {
    assert!(!c.expression.contains(['\'', '"', '`']), "{}", c.expression);
    let used = |prefix: char| {
        let mut found: Vec<String> = c
            .expression
            .match_indices(prefix)
            .map(|(at, _)| {
                c.expression[at..]
                    .chars()
                    .take_while(|ch| *ch == prefix || ch.is_ascii_alphanumeric())
                    .collect()
            })
            .collect();
        found.sort();
        found.dedup();
        found
    };
    let mut names: Vec<String> = c.names.keys().cloned().collect();
    names.sort();
    let mut values: Vec<String> = c.values.keys().cloned().collect();
    values.sort();
    assert_eq!(used('#'), names, "{}", c.expression);
    assert_eq!(used(':'), values, "{}", c.expression);
}

#[test]
fn fifty_thousand_random_conditions_parse_or_are_refused_with_a_position() {
    let mut rng = fastrand::Rng::with_seed(0x5eed_0001);
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..50_000 {
        let text = random_condition(&mut rng);
        match condition::parse(&text) {
            Ok(c) => {
                placeholders_are_consistent(&c);
                // What was emitted is itself in the grammar (placeholders aside).
                accepted += 1;
            }
            Err(e) => {
                assert!(!e.message.is_empty(), "{text:?}");
                assert!(e.at <= text.len(), "{text:?}: {e}");
                refused += 1;
            }
        }
    }
    // The generator reaches both sides of the grammar.
    assert!(
        accepted > 500 && refused > 500,
        "{accepted} accepted, {refused} refused"
    );
}

fn random_json_value(rng: &mut fastrand::Rng, depth: usize) -> String {
    match rng.u8(..10) {
        0 if depth < 4 => format!(
            "{{{}}}",
            (0..rng.usize(..4))
                .map(|i| format!("\"k{i}\":{}", random_json_value(rng, depth + 1)))
                .collect::<Vec<_>>()
                .join(",")
        ),
        1 if depth < 4 => format!(
            "[{}]",
            (0..rng.usize(..4))
                .map(|_| random_json_value(rng, depth + 1))
                .collect::<Vec<_>>()
                .join(",")
        ),
        2 => ["true", "false", "null"][rng.usize(..3)].to_owned(),
        3 => [
            "1e999",
            "-0",
            "12345678901234567890123456789012345678901",
            "1.5E-130",
            "7",
        ][rng.usize(..5)]
        .to_owned(),
        4 => "\"\"".to_owned(),
        _ => serde_json::to_string(&random_condition(rng)).unwrap(),
    }
}

#[test]
fn fifty_thousand_random_requests_are_planned_or_refused_with_a_400() {
    let schemas = [
        KeySchema {
            partition: KeyAttribute {
                name: "id".into(),
                kind: KeyKind::S,
            },
            sort: None,
        },
        KeySchema {
            partition: KeyAttribute {
                name: "pk".into(),
                kind: KeyKind::S,
            },
            sort: Some(KeyAttribute {
                name: "sk".into(),
                kind: KeyKind::N,
            }),
        },
    ];
    let mut rng = fastrand::Rng::with_seed(0x5eed_0002);
    let fields = [
        "id",
        "sort_key",
        "attributes",
        "enable_logging",
        "condition_expression",
        "idempotency_key",
        "extra",
    ];
    let (mut accepted, mut refused) = (0, 0);
    for i in 0..50_000 {
        let body = if i % 20 == 0 {
            // Not even JSON, sometimes.
            random_condition(&mut rng)
        } else {
            let mut parts = Vec::new();
            for field in fields {
                if rng.u8(..8) == 0 {
                    continue;
                }
                let value = match (field, rng.u8(..6)) {
                    ("enable_logging", 0..=4) => ["true", "false"][rng.usize(..2)].to_owned(),
                    ("idempotency_key", 0..=4) => "\"retry-1\"".to_owned(),
                    ("sort_key", 0..=4) => ["7", "\"42\""][rng.usize(..2)].to_owned(),
                    ("condition_expression", 0..=2) => {
                        serde_json::to_string(&grammatical(&mut rng, 0)).unwrap()
                    }
                    ("id", 0..=4) => {
                        format!("\"{}\"", ["u-1", "7", "", "x y"][rng.usize(..4)])
                    }
                    ("attributes", 0..=1) => {
                        random_json_value(&mut rng, 0).replacen('[', "{\"a\":[", 0)
                    }
                    ("condition_expression", 3..=4) => {
                        serde_json::to_string(&random_condition(&mut rng)).unwrap()
                    }
                    _ => random_json_value(&mut rng, 0),
                };
                parts.push(format!("\"{field}\":{value}"));
            }
            format!("{{{}}}", parts.join(","))
        };
        let schema = &schemas[i % 2];
        match plan(&body, schema, rng.bool(), None) {
            Ok(p) => {
                assert!(!p.attributes.is_empty());
                assert!(p.update_expression.starts_with("SET #u0 = :u0"));
                accepted += 1;
            }
            Err(e) => {
                assert_eq!(e.status(), 400, "{body}: {e}");
                assert!(!e.to_string().is_empty(), "{body}");
                refused += 1;
            }
        }
    }
    assert!(
        accepted > 500 && refused > 500,
        "{accepted} accepted, {refused} refused"
    );
}
