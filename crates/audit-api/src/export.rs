//! The export: events written row by row to an unnamed temporary file (xlsx in
//! rust_xlsxwriter's constant-memory mode, or CSV), then streamed to the client. Memory stays
//! flat whatever the row count; the file disappears when the response is done.

use crate::db::{self, Database};
use crate::error::ApiError;
use crate::search::{EventRecord, ExportFormat, format_timestamp};
use crate::sql;
use crate::sql::EVENT_COLUMNS;
use audit_core::spreadsheet::csv_cell;
use rust_xlsxwriter::{Format, Workbook, Worksheet, XlsxError};

/// Integers beyond 2^53 lose digits as Excel numbers: those are written as text.
fn write_integer(
    sheet: &mut Worksheet,
    row: u32,
    column: u16,
    value: i64,
) -> Result<(), XlsxError> {
    const EXACT: i64 = 1 << 53;
    if (-EXACT..=EXACT).contains(&value) {
        sheet.write_number(row, column, value as f64)?;
    } else {
        sheet.write_string(row, column, value.to_string())?;
    }
    Ok(())
}
use std::fs::File;
use std::io::{BufWriter, Seek as _, SeekFrom};
use std::path::Path;

/// Data rows per worksheet: Excel's 1,048,576 rows minus the header. Past it the export
/// continues on a new sheet ("Audit Events (2)", ...).
pub const ROWS_PER_SHEET: u32 = 1_048_575;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("xlsx: {0}")]
    Xlsx(#[from] XlsxError),
    #[error("csv: {0}")]
    Csv(#[from] csv::Error),
    #[error("temporary file: {0}")]
    Io(#[from] std::io::Error),
}

/// Writes rows as they come. Build with [`EventWriter::new`], feed with [`EventWriter::push`],
/// finish with [`EventWriter::finish`] for the file (rewound) and the row count.
pub enum EventWriter {
    Xlsx(Box<XlsxSink>),
    Csv(Box<csv::Writer<BufWriter<File>>>, u64),
}

impl std::fmt::Debug for EventWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EventWriter::Xlsx(_) => "EventWriter::Xlsx",
            EventWriter::Csv(..) => "EventWriter::Csv",
        })
    }
}

/// The xlsx side of [`EventWriter`].
pub struct XlsxSink {
    workbook: Workbook,
    tempdir: std::path::PathBuf,
    rows_per_sheet: u32,
    /// Rows written on the current sheet (0: none yet, not even the sheet).
    row: u32,
    rows: u64,
    sheets: u32,
    header: Format,
}

impl EventWriter {
    /// `tempdir` holds the temporary files (on Lambda, `/tmp`).
    pub fn new(
        format: ExportFormat,
        tempdir: &Path,
        rows_per_sheet: u32,
    ) -> Result<Self, ExportError> {
        Ok(match format {
            ExportFormat::Xlsx => EventWriter::Xlsx(Box::new(XlsxSink {
                workbook: Workbook::new(),
                tempdir: tempdir.to_owned(),
                rows_per_sheet: rows_per_sheet.max(1),
                row: 0,
                rows: 0,
                sheets: 0,
                header: Format::new().set_bold(),
            })),
            ExportFormat::Csv => {
                let file = tempfile::tempfile_in(tempdir)?;
                let mut writer = csv::Writer::from_writer(BufWriter::new(file));
                writer.write_record(EVENT_COLUMNS.iter().map(|(_, header)| *header))?;
                EventWriter::Csv(Box::new(writer), 0)
            }
        })
    }

    pub fn push(&mut self, event: &EventRecord) -> Result<(), ExportError> {
        match self {
            EventWriter::Xlsx(sink) => sink.push(event),
            EventWriter::Csv(writer, rows) => {
                // Text a client sent (`=HYPERLINK(...)`, `@SUM(...)`) must not run as a
                // formula in the spreadsheet that opens the export. (The xlsx export writes
                // strings as strings: Excel does not evaluate them.)
                let text = |t: &str| csv_cell(t).into_owned();
                writer.write_record([
                    event.id.to_string(),
                    format_timestamp(&event.event_timestamp),
                    text(&event.functionality),
                    text(&event.event_type),
                    event.store_id.map(|v| v.to_string()).unwrap_or_default(),
                    event.company_id.map(|v| v.to_string()).unwrap_or_default(),
                    text(event.user.as_deref().unwrap_or_default()),
                    text(event.message.as_deref().unwrap_or_default()),
                    text(&event.status),
                    event
                        .additional_data
                        .as_ref()
                        .map(|v| text(v.as_str()))
                        .unwrap_or_default(),
                ])?;
                *rows += 1;
                Ok(())
            }
        }
    }

    /// The finished file, positioned at its start, and the number of event rows.
    pub fn finish(self) -> Result<(File, u64), ExportError> {
        match self {
            EventWriter::Xlsx(mut sink) => {
                if sink.sheets == 0 {
                    sink.new_sheet()?;
                }
                let mut file = tempfile::tempfile_in(&sink.tempdir)?;
                sink.workbook.save_to_writer(&mut file)?;
                file.seek(SeekFrom::Start(0))?;
                Ok((file, sink.rows))
            }
            EventWriter::Csv(writer, rows) => {
                let mut file = writer
                    .into_inner()
                    .map_err(|e| e.into_error())?
                    .into_inner()
                    .map_err(|e| e.into_error())?;
                file.seek(SeekFrom::Start(0))?;
                Ok((file, rows))
            }
        }
    }
}

impl std::fmt::Debug for XlsxSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XlsxSink")
            .field("rows", &self.rows)
            .field("sheets", &self.sheets)
            .finish_non_exhaustive()
    }
}

impl XlsxSink {
    fn new_sheet(&mut self) -> Result<(), ExportError> {
        self.sheets += 1;
        if self.sheets == 1 {
            self.workbook.set_tempdir(&self.tempdir)?;
        }
        let sheet = self.workbook.add_worksheet_with_constant_memory()?;
        sheet.set_name(if self.sheets == 1 {
            "Audit Events".to_owned()
        } else {
            format!("Audit Events ({})", self.sheets)
        })?;
        for (column, (_, header)) in EVENT_COLUMNS.iter().enumerate() {
            sheet.write_string_with_format(0, column as u16, *header, &self.header)?;
        }
        for (column, width) in [10.0, 24.0, 18.0, 28.0, 10.0, 11.0, 16.0, 60.0, 9.0, 40.0]
            .into_iter()
            .enumerate()
        {
            sheet.set_column_width(column as u16, width)?;
        }
        self.row = 1;
        Ok(())
    }

    fn push(&mut self, event: &EventRecord) -> Result<(), ExportError> {
        if self.sheets == 0 || self.row > self.rows_per_sheet {
            self.new_sheet()?;
        }
        let index = self.workbook.worksheets().len() - 1;
        let sheet = self.workbook.worksheet_from_index(index)?;
        let row = self.row;
        write_integer(sheet, row, 0, event.id)?;
        sheet.write_string(row, 1, format_timestamp(&event.event_timestamp))?;
        sheet.write_string(row, 2, excel_cell_text(&event.functionality))?;
        sheet.write_string(row, 3, excel_cell_text(&event.event_type))?;
        if let Some(store) = event.store_id {
            write_integer(sheet, row, 4, store)?;
        }
        if let Some(company) = event.company_id {
            write_integer(sheet, row, 5, company)?;
        }
        if let Some(user) = &event.user {
            sheet.write_string(row, 6, excel_cell_text(user))?;
        }
        if let Some(message) = &event.message {
            sheet.write_string(row, 7, excel_cell_text(message))?;
        }
        sheet.write_string(row, 8, &event.status)?;
        if let Some(data) = &event.additional_data {
            sheet.write_string(row, 9, excel_cell_text(&data.to_string()))?;
        }
        self.row += 1;
        self.rows += 1;
        Ok(())
    }
}

/// Runs `statement` and writes every event it returns into a temporary file in `tempdir`:
/// rows stream from the database on one task while a blocking task writes them, so memory
/// stays bounded whatever the export's size. Returns the file and its row count.
pub async fn write_export(
    db: &Database,
    statement: &sql::Statement,
    format: ExportFormat,
    rows_per_sheet: u32,
    tempdir: &std::path::Path,
) -> Result<(std::fs::File, u64), ApiError> {
    let (sender, mut receiver) = tokio::sync::mpsc::channel(1024);
    let tempdir = tempdir.to_owned();
    let writer = tokio::task::spawn_blocking(move || {
        let mut writer = EventWriter::new(format, &tempdir, rows_per_sheet)?;
        while let Some(event) = receiver.blocking_recv() {
            writer.push(&event)?;
        }
        writer.finish()
    });
    let streamed = db::stream_events(db, statement, sender).await;
    let written = writer
        .await
        .map_err(|e| ApiError::Internal(format!("export writer: {e}")))?
        .map_err(|e| ApiError::Internal(format!("export: {e}")))?;
    streamed?;
    Ok(written)
}

/// Text as one export cell: Excel holds at most 32,767 characters per cell, so longer text is
/// cut and says so (the CSV export keeps it whole).
pub fn excel_cell_text(text: &str) -> std::borrow::Cow<'_, str> {
    const LIMIT: usize = 32_767;
    if text.chars().count() <= LIMIT {
        return text.into();
    }
    let total = text.chars().count();
    let marker = format!(" [truncated: {total} characters; export as CSV for the full text]");
    let keep = LIMIT - marker.chars().count();
    let mut out: String = text.chars().take(keep).collect();
    out.push_str(&marker);
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excel_cells_say_when_text_was_cut() {
        assert_eq!(excel_cell_text("short"), "short");
        let long = "é".repeat(40_000);
        let cell = excel_cell_text(&long);
        assert_eq!(cell.chars().count(), 32_767);
        assert!(cell.ends_with("[truncated: 40000 characters; export as CSV for the full text]"));
    }
}
