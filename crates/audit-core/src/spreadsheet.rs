//! CSV cells that a spreadsheet shows as text, never runs as a formula.
//!
//! Excel, LibreOffice and Google Sheets evaluate a cell that starts with `=`, `+`, `-` or `@`
//! (and some strip a leading tab or carriage return first), so a table named
//! `=HYPERLINK(...)` or an audit message `+cmd|' /C calc'!A0` would run on the reader's
//! machine. OWASP's rule: prefix such text with `'`, which spreadsheets show as text.
//!
//! Only text columns go through [`csv_cell`]; numeric columns are written as numbers by the
//! caller. So a text cell that looks like a number (a user named `+1`, a message `-2`) is
//! prefixed too: left bare, a spreadsheet would show the number 1 and lose the text.

use std::borrow::Cow;

/// `text` (a text column's value) as a CSV cell a spreadsheet shows as that text: never
/// evaluated as a formula, never read as a number.
pub fn csv_cell(text: &str) -> Cow<'_, str> {
    let risky = matches!(
        text.as_bytes().first(),
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r')
    );
    if risky {
        Cow::Owned(format!("'{text}"))
    } else {
        Cow::Borrowed(text)
    }
}

#[cfg(test)]
mod tests {
    use super::csv_cell;

    #[test]
    fn formulas_and_signed_numbers_in_text_stay_text() {
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
            // A user named +1 is the text "+1", not the number 1.
            ("+1", "'+1"),
            ("-1", "'-1"),
            ("+3.5", "'+3.5"),
            ("-1e3", "'-1e3"),
            ("12", "12"),
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
