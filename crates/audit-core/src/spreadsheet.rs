//! CSV cells that a spreadsheet shows as text, never runs as a formula.
//!
//! Excel, LibreOffice and Google Sheets evaluate a cell that starts with `=`, `+`, `-` or `@`
//! (and some strip a leading tab or carriage return first), so a table named
//! `=HYPERLINK(...)` or an audit message `+cmd|' /C calc'!A0` would run on the reader's
//! machine. OWASP's rule: prefix such text with `'`, which spreadsheets show as text. A
//! number (`-1`, `+3.5`) stays as it is: it is data, not a formula, and scripts read it.

use std::borrow::Cow;

/// `text` as a CSV cell a spreadsheet will not evaluate.
pub fn csv_cell(text: &str) -> Cow<'_, str> {
    let risky = matches!(
        text.as_bytes().first(),
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r')
    );
    if risky && !is_plain_number(text) {
        Cow::Owned(format!("'{text}"))
    } else {
        Cow::Borrowed(text)
    }
}

/// A signed decimal number (`-12`, `+3.5`, `-1e3`): what a spreadsheet reads as a value.
fn is_plain_number(text: &str) -> bool {
    let digits = text.trim_start_matches(['+', '-']);
    digits.len() + 1 == text.len()
        && digits.starts_with(|c: char| c.is_ascii_digit() || c == '.')
        && digits.parse::<f64>().is_ok_and(f64::is_finite)
}

#[cfg(test)]
mod tests {
    use super::csv_cell;

    #[test]
    fn formulas_become_text_and_numbers_stay_numbers() {
        for (text, cell) in [
            (
                "=HYPERLINK(\"http://x\",\"y\")",
                "'=HYPERLINK(\"http://x\",\"y\")",
            ),
            ("@SUM(1+1)", "'@SUM(1+1)"),
            ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
            ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"),
            ("\t=1", "'\t=1"),
            ("\r=1", "'\r=1"),
            ("-", "'-"),
            ("+", "'+"),
            ("--1", "'--1"),
            ("-1", "-1"),
            ("+3.5", "+3.5"),
            ("-1e3", "-1e3"),
            ("-inf", "'-inf"),
            ("-NaN", "'-NaN"),
            ("plain", "plain"),
            ("a=b", "a=b"),
            ("", ""),
        ] {
            assert_eq!(csv_cell(text), cell, "{text:?}");
        }
    }
}
