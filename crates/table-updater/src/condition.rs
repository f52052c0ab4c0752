//! The caller's `condition_expression`: parsed against DynamoDB's condition grammar and
//! re-emitted with a placeholder for every name and every value, so caller text never reaches
//! DynamoDB verbatim and reserved words or odd names just work.
//!
//! ```text
//! condition := or
//! or        := and ("OR" and)*
//! and       := unary ("AND" unary)*
//! unary     := "NOT" unary | "(" condition ")" | function | operand tail
//! tail      := comparator operand | "BETWEEN" operand "AND" operand | "IN" "(" operand ("," operand)* ")"
//! function  := attribute_exists(path) | attribute_not_exists(path) | attribute_type(path, operand)
//!            | begins_with(path, operand) | contains(path, operand)
//! operand   := path | literal | size(path)
//! path      := name ("." name | "[" digits "]")*      name: letters, digits, _ and -; or `any text`
//! literal   := 'text' | "json string" | number | true | false
//! ```
//! Keywords and function names are case-insensitive. Limits follow DynamoDB's: 4 KB of text,
//! 32 levels of parentheses, 300 operators and functions, 100 operands in an IN list.

use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

pub const MAX_LENGTH: usize = 4096;
pub const MAX_DEPTH: usize = 32;
pub const MAX_OPERATORS: usize = 300;
pub const MAX_IN_OPERANDS: usize = 100;

/// Where and why the text does not follow the grammar (`at` is a byte offset).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at position {at}")]
pub struct ConditionError {
    pub at: usize,
    pub message: String,
}

/// The condition, re-emitted, with its placeholders.
#[derive(Debug, Clone, PartialEq)]
pub struct EmittedCondition {
    pub expression: String,
    pub names: HashMap<String, String>,
    pub values: HashMap<String, AttributeValue>,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Name(String),
    Str(String),
    Num(String),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Dot,
    Cmp(&'static str),
}

fn tokenize(text: &str) -> Result<Vec<(usize, Token)>, ConditionError> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    let error = |at: usize, message: &str| ConditionError {
        at,
        message: message.to_owned(),
    };
    while i < bytes.len() {
        let start = i;
        let token = match bytes[i] {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'(' => Token::LParen,
            b')' => Token::RParen,
            b'[' => Token::LBracket,
            b']' => Token::RBracket,
            b',' => Token::Comma,
            b'.' if !bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => Token::Dot,
            b'=' => Token::Cmp("="),
            b'<' => match bytes.get(i + 1) {
                Some(b'>') => {
                    i += 1;
                    Token::Cmp("<>")
                }
                Some(b'=') => {
                    i += 1;
                    Token::Cmp("<=")
                }
                _ => Token::Cmp("<"),
            },
            b'>' => match bytes.get(i + 1) {
                Some(b'=') => {
                    i += 1;
                    Token::Cmp(">=")
                }
                _ => Token::Cmp(">"),
            },
            b'\'' => {
                let end = text[i + 1..]
                    .find('\'')
                    .ok_or_else(|| error(start, "unterminated string"))?;
                let value = text[i + 1..i + 1 + end].to_owned();
                i += end + 1;
                Token::Str(value)
            }
            b'"' => {
                let mut j = i + 1;
                while j < bytes.len() && bytes[j] != b'"' {
                    j += if bytes[j] == b'\\' { 2 } else { 1 };
                }
                if j >= bytes.len() {
                    return Err(error(start, "unterminated string"));
                }
                let value: String = serde_json::from_str(&text[i..=j])
                    .map_err(|_| error(start, "invalid string escape"))?;
                i = j;
                Token::Str(value)
            }
            b'`' => {
                let end = text[i + 1..]
                    .find('`')
                    .ok_or_else(|| error(start, "unterminated `name`"))?;
                let name = text[i + 1..i + 1 + end].to_owned();
                if name.is_empty() {
                    return Err(error(start, "empty `name`"));
                }
                i += end + 1;
                Token::Name(name)
            }
            b'-' | b'0'..=b'9' | b'.' => {
                let mut j = i + 1;
                while j < bytes.len()
                    && (bytes[j].is_ascii_digit()
                        || matches!(bytes[j], b'.' | b'e' | b'E')
                        || (matches!(bytes[j], b'+' | b'-') && matches!(bytes[j - 1], b'e' | b'E')))
                {
                    j += 1;
                }
                let number = &text[i..j];
                if number.starts_with('.') || number.ends_with('.') || number.contains("-.") {
                    return Err(error(start, "a number needs digits on both sides of '.'"));
                }
                crate::json::check_number(number).map_err(|e| error(start, &e.to_string()))?;
                i = j - 1;
                Token::Num(number.to_owned())
            }
            b if b.is_ascii_alphabetic() || b == b'_' => {
                let mut j = i + 1;
                while j < bytes.len()
                    && (bytes[j].is_ascii_alphanumeric() || matches!(bytes[j], b'_' | b'-'))
                {
                    j += 1;
                }
                i = j - 1;
                Token::Name(text[start..j].to_owned())
            }
            _ => {
                let shown = text[i..].chars().next().unwrap_or('?');
                return Err(error(start, &format!("unexpected character {shown:?}")));
            }
        };
        tokens.push((start, token));
        i += 1;
    }
    Ok(tokens)
}

/// Parses `text` and emits it with placeholders `#c<n>` and `:c<n>`.
pub fn parse(text: &str) -> Result<EmittedCondition, ConditionError> {
    if text.len() > MAX_LENGTH {
        return Err(ConditionError {
            at: MAX_LENGTH,
            message: format!("longer than DynamoDB's {MAX_LENGTH} bytes"),
        });
    }
    let tokens = tokenize(text)?;
    if tokens.is_empty() {
        return Err(ConditionError {
            at: 0,
            message: "empty condition".into(),
        });
    }
    let mut parser = Parser {
        tokens,
        at: 0,
        end: text.len(),
        depth: 0,
        operators: 0,
        out: Emitter::default(),
    };
    parser.condition()?;
    if let Some((at, _)) = parser.tokens.get(parser.at) {
        return Err(ConditionError {
            at: *at,
            message: "expected AND, OR or the end".into(),
        });
    }
    let Emitter {
        expression,
        names,
        values,
        ..
    } = parser.out;
    Ok(EmittedCondition {
        expression,
        names: names.into_iter().map(|(name, ph)| (ph, name)).collect(),
        values,
    })
}

#[derive(Default)]
struct Emitter {
    expression: String,
    /// attribute name -> placeholder
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Emitter {
    fn name(&mut self, name: &str) {
        let next = self.names.len();
        let placeholder = self
            .names
            .entry(name.to_owned())
            .or_insert_with(|| format!("#c{next}"));
        self.expression.push_str(placeholder);
    }
    fn value(&mut self, value: AttributeValue) {
        let placeholder = format!(":c{}", self.values.len());
        self.expression.push_str(&placeholder);
        self.values.insert(placeholder, value);
    }
    fn push(&mut self, text: &str) {
        self.expression.push_str(text);
    }
}

struct Parser {
    tokens: Vec<(usize, Token)>,
    at: usize,
    end: usize,
    depth: usize,
    operators: usize,
    out: Emitter,
}

/// The type names `attribute_type` accepts.
pub const ATTRIBUTE_TYPES: [&str; 10] = ["S", "SS", "N", "NS", "B", "BS", "BOOL", "NULL", "L", "M"];

/// DynamoDB's deepest document path: 32 levels of nesting below the attribute.
pub const MAX_PATH_DEPTH: usize = 32;

const FUNCTIONS: &[&str] = &[
    "attribute_exists",
    "attribute_not_exists",
    "attribute_type",
    "begins_with",
    "contains",
];

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at).map(|(_, t)| t)
    }

    fn position(&self) -> usize {
        self.tokens.get(self.at).map_or(self.end, |(at, _)| *at)
    }

    fn error<T>(&self, message: impl Into<String>) -> Result<T, ConditionError> {
        Err(ConditionError {
            at: self.position(),
            message: message.into(),
        })
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Name(n)) if n.eq_ignore_ascii_case(word))
    }

    fn expect(&mut self, token: &Token, what: &str) -> Result<(), ConditionError> {
        if self.peek() == Some(token) {
            self.at += 1;
            Ok(())
        } else {
            self.error(format!("expected {what}"))
        }
    }

    fn count_operator(&mut self) -> Result<(), ConditionError> {
        self.operators += 1;
        if self.operators > MAX_OPERATORS {
            return self.error(format!("more than {MAX_OPERATORS} operators and functions"));
        }
        Ok(())
    }

    fn condition(&mut self) -> Result<(), ConditionError> {
        self.and()?;
        while self.keyword("OR") {
            self.at += 1;
            self.count_operator()?;
            self.out.push(" OR ");
            self.and()?;
        }
        Ok(())
    }

    fn and(&mut self) -> Result<(), ConditionError> {
        self.unary()?;
        while self.keyword("AND") {
            self.at += 1;
            self.count_operator()?;
            self.out.push(" AND ");
            self.unary()?;
        }
        Ok(())
    }

    fn unary(&mut self) -> Result<(), ConditionError> {
        if self.keyword("NOT") {
            self.at += 1;
            self.count_operator()?;
            self.out.push("NOT ");
            return self.unary();
        }
        if self.peek() == Some(&Token::LParen) {
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return self.error(format!("nested deeper than {MAX_DEPTH} parentheses"));
            }
            self.at += 1;
            self.out.push("(");
            self.condition()?;
            self.expect(&Token::RParen, "')'")?;
            self.out.push(")");
            self.depth -= 1;
            return Ok(());
        }
        if let Some(Token::Name(name)) = self.peek()
            && self.tokens.get(self.at + 1).map(|(_, t)| t) == Some(&Token::LParen)
        {
            let function = name.to_ascii_lowercase();
            if let Some(known) = FUNCTIONS.iter().find(|f| **f == function) {
                return self.function(known);
            }
            if function != "size" {
                return self.error(format!("unknown function {name}"));
            }
        }
        self.operand()?;
        match self.peek() {
            Some(Token::Cmp(op)) => {
                let op = *op;
                self.at += 1;
                self.count_operator()?;
                self.out.push(&format!(" {op} "));
                self.operand()
            }
            _ if self.keyword("BETWEEN") => {
                self.at += 1;
                self.count_operator()?;
                self.out.push(" BETWEEN ");
                self.operand()?;
                if !self.keyword("AND") {
                    return self.error("expected AND in BETWEEN");
                }
                self.at += 1;
                self.out.push(" AND ");
                self.operand()
            }
            _ if self.keyword("IN") => {
                self.at += 1;
                self.count_operator()?;
                self.out.push(" IN (");
                self.expect(&Token::LParen, "'(' after IN")?;
                let mut count = 0;
                loop {
                    if count > 0 {
                        self.out.push(", ");
                    }
                    self.operand()?;
                    count += 1;
                    if count > MAX_IN_OPERANDS {
                        return self.error(format!("more than {MAX_IN_OPERANDS} values in IN"));
                    }
                    if self.peek() == Some(&Token::Comma) {
                        self.at += 1;
                    } else {
                        break;
                    }
                }
                self.expect(&Token::RParen, "')' after the IN list")?;
                self.out.push(")");
                Ok(())
            }
            _ => self.error("expected a comparison (=, <>, <, <=, >, >=, BETWEEN or IN)"),
        }
    }

    fn function(&mut self, name: &'static str) -> Result<(), ConditionError> {
        self.at += 2; // name and '('
        self.count_operator()?;
        self.out.push(name);
        self.out.push("(");
        self.path()?;
        if matches!(name, "attribute_type" | "begins_with" | "contains") {
            self.expect(&Token::Comma, "',' and a second argument")?;
            self.out.push(", ");
            // DynamoDB types these arguments and answers a ValidationException otherwise:
            // refuse here, saying where.
            match (name, self.peek()) {
                ("attribute_type", Some(Token::Str(kind)))
                    if !ATTRIBUTE_TYPES.contains(&kind.as_str()) =>
                {
                    return self.error(format!(
                        "attribute_type takes one of {}, not {kind:?}",
                        ATTRIBUTE_TYPES.join(", ")
                    ));
                }
                ("attribute_type", Some(Token::Str(_))) => {}
                ("attribute_type", _) => {
                    return self.error("attribute_type takes a type name in quotes, such as 'S'");
                }
                ("begins_with", Some(Token::Num(_))) => {
                    return self.error("begins_with takes a string or an attribute, not a number");
                }
                ("begins_with", Some(Token::Name(n)))
                    if n.eq_ignore_ascii_case("true") || n.eq_ignore_ascii_case("false") =>
                {
                    return self.error("begins_with takes a string or an attribute, not a boolean");
                }
                _ => {}
            }
            self.operand()?;
        }
        self.expect(&Token::RParen, "')'")?;
        self.out.push(")");
        Ok(())
    }

    fn operand(&mut self) -> Result<(), ConditionError> {
        match self.peek().cloned() {
            Some(Token::Str(s)) => {
                self.at += 1;
                self.out.value(AttributeValue::S(s));
                Ok(())
            }
            Some(Token::Num(n)) => {
                self.at += 1;
                self.out.value(AttributeValue::N(n));
                Ok(())
            }
            Some(Token::Name(n))
                if n.eq_ignore_ascii_case("true") || n.eq_ignore_ascii_case("false") =>
            {
                self.at += 1;
                self.out
                    .value(AttributeValue::Bool(n.eq_ignore_ascii_case("true")));
                Ok(())
            }
            Some(Token::Name(n))
                if n.eq_ignore_ascii_case("size")
                    && self.tokens.get(self.at + 1).map(|(_, t)| t) == Some(&Token::LParen) =>
            {
                self.at += 2;
                self.count_operator()?;
                self.out.push("size(");
                self.path()?;
                self.expect(&Token::RParen, "')'")?;
                self.out.push(")");
                Ok(())
            }
            Some(Token::Name(_)) => self.path(),
            _ => self.error("expected an attribute name or a value"),
        }
    }

    fn path(&mut self) -> Result<(), ConditionError> {
        let Some(Token::Name(first)) = self.peek().cloned() else {
            return self.error("expected an attribute name");
        };
        if ["AND", "OR", "NOT", "BETWEEN", "IN"]
            .iter()
            .any(|k| first.eq_ignore_ascii_case(k))
        {
            return self.error(format!("expected an attribute name, found {first}"));
        }
        self.at += 1;
        self.out.name(&first);
        let mut depth = 0;
        loop {
            if matches!(self.peek(), Some(Token::Dot | Token::LBracket)) {
                depth += 1;
                if depth > MAX_PATH_DEPTH {
                    return self.error(format!(
                        "a document path nests at most {MAX_PATH_DEPTH} levels"
                    ));
                }
            }
            match self.peek() {
                Some(Token::Dot) => {
                    self.at += 1;
                    let Some(Token::Name(next)) = self.peek().cloned() else {
                        return self.error("expected a name after '.'");
                    };
                    self.at += 1;
                    self.out.push(".");
                    self.out.name(&next);
                }
                Some(Token::LBracket) => {
                    self.at += 1;
                    let Some(Token::Num(index)) = self.peek().cloned() else {
                        return self.error("expected a list index");
                    };
                    if !index.bytes().all(|b| b.is_ascii_digit()) || index.len() > 9 {
                        return self.error("a list index is a whole number");
                    }
                    self.at += 1;
                    self.expect(&Token::RBracket, "']'")?;
                    self.out.push(&format!("[{index}]"));
                }
                _ => return Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emitted(text: &str) -> EmittedCondition {
        parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn names_and_values_become_placeholders() {
        let c = emitted("attribute_not_exists(email)");
        assert_eq!(c.expression, "attribute_not_exists(#c0)");
        assert_eq!(c.names["#c0"], "email");
        assert!(c.values.is_empty());

        let c = emitted("status = 'active' AND (version >= 3 OR NOT begins_with(name, \"Jo\"))");
        assert_eq!(
            c.expression,
            "#c0 = :c0 AND (#c1 >= :c1 OR NOT begins_with(#c2, :c2))"
        );
        assert_eq!(c.names["#c0"], "status");
        assert_eq!(c.values[":c0"], AttributeValue::S("active".into()));
        assert_eq!(c.values[":c1"], AttributeValue::N("3".into()));
        assert_eq!(c.values[":c2"], AttributeValue::S("Jo".into()));
    }

    #[test]
    fn the_whole_grammar_is_accepted() {
        for text in [
            "a BETWEEN 1 AND 10",
            "a IN ('x', 'y', 3)",
            "size(tags) > 2",
            "attribute_type(a, 'N')",
            "contains(tags, 'gift')",
            "a.b[2].c <> true",
            "`odd name.with-dots` = 'x'",
            "NOT (a = 1) and b < -1.5e3",
            "a <= b",
        ] {
            let c = emitted(text);
            assert!(
                !c.expression.contains(['\'', '"', '`']),
                "{text} -> {}",
                c.expression
            );
        }
        let c = emitted("a.b[2].c <> true");
        assert_eq!(c.expression, "#c0.#c1[2].#c2 <> :c0");
        let c = emitted("`odd name.with-dots` = status AND status = 1");
        assert_eq!(c.names["#c0"], "odd name.with-dots");
        assert_eq!(
            c.expression, "#c0 = #c1 AND #c1 = :c0",
            "one placeholder per name"
        );
    }

    #[test]
    fn text_outside_the_grammar_is_refused_saying_where() {
        for (text, at, says) in [
            ("a = ", 4, "expected an attribute name or a value"),
            ("a == 1", 3, "expected an attribute name or a value"),
            ("(a = 1", 6, "expected ')'"),
            ("drop_table(x)", 0, "unknown function"),
            ("a = 1; DELETE", 5, "unexpected character"),
            ("a = :v", 4, "unexpected character"),
            ("a BETWEEN 1 OR 2", 12, "expected AND in BETWEEN"),
            ("a = 1 b", 6, "expected AND, OR or the end"),
            ("", 0, "empty condition"),
            ("a = 'open", 4, "unterminated string"),
            ("a[x] = 1", 2, "expected a list index"),
            ("a = 1e400", 4, "range"),
        ] {
            let error = parse(text).unwrap_err();
            assert_eq!(error.at, at, "{text}: {error}");
            assert!(error.message.contains(says), "{text}: {error}");
        }
    }

    #[test]
    fn limits_are_dynamodbs() {
        let deep = format!("{}a = 1{}", "(".repeat(33), ")".repeat(33));
        assert!(parse(&deep).unwrap_err().message.contains("32 parentheses"));
        let ok = format!("{}a = 1{}", "(".repeat(32), ")".repeat(32));
        assert!(parse(&ok).is_ok());
        let many = vec!["a = 1"; 151].join(" AND ");
        assert!(parse(&many).unwrap_err().message.contains("300 operators"));
        let list = (0..101)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",");
        assert!(
            parse(&format!("a IN ({list})"))
                .unwrap_err()
                .message
                .contains("100 values")
        );
        assert!(
            parse(&"a".repeat(5000))
                .unwrap_err()
                .message
                .contains("4096")
        );
    }
}
