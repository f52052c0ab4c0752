//! Where the report files go: a folder, or S3 under the original's key names. Neither ever
//! replaces an existing report: files are created new, objects written with `If-None-Match`.
//!
//! The reports grow with the catalog (the JSON 2.7 KB a table: 272 MB at 100,000 tables), so
//! the audit hands them over part by part ([`PartSink`]): [`StreamedReport`] writes each
//! part's JSON elements, CSV lines and HTML rows to temporary files as it arrives, and joins
//! them in order at the end into three unnamed temporary files, copied or uploaded from
//! there. Nothing report-sized is ever held in memory. [`Collected`] keeps the parts instead,
//! for a report wanted in memory (tests, small databases).

use crate::csv_summary::{ReportLocations, csv_header, csv_rows, tables_csv};
use crate::report::{AuditReport, PartReport};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::os::unix::fs::FileExt as _;
use std::path::Path;

/// The three files of one audit.
#[derive(Debug)]
pub struct ReportFiles {
    pub json_name: String,
    pub csv_name: String,
    pub html_name: String,
    pub json: ReportFile,
    pub csv: ReportFile,
    pub html: ReportFile,
}

/// One report file, in an unnamed temporary file (gone when dropped).
#[derive(Debug)]
pub struct ReportFile {
    file: std::fs::File,
    len: u64,
}

fn temporary(source: std::io::Error) -> OutputError {
    OutputError::File {
        path: "(temporary report file)".to_owned(),
        source,
    }
}

impl ReportFile {
    /// A report given as bytes (tests, and reports made elsewhere).
    pub fn from_bytes(bytes: &[u8]) -> std::io::Result<Self> {
        let mut file = tempfile::tempfile()?;
        file.write_all(bytes)?;
        Ok(ReportFile {
            file,
            len: bytes.len() as u64,
        })
    }

    /// Writes a file through `write`, buffered.
    fn write_with(
        write: impl FnOnce(&mut dyn std::io::Write) -> Result<(), OutputError>,
    ) -> Result<Self, OutputError> {
        let file = tempfile::tempfile().map_err(temporary)?;
        let mut writer = std::io::BufWriter::with_capacity(1 << 20, file);
        write(&mut writer)?;
        let file = writer.into_inner().map_err(|e| temporary(e.into_error()))?;
        let len = file.metadata().map_err(temporary)?.len();
        Ok(ReportFile { file, len })
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A reader from the start (each call rewinds: the file is read once per destination).
    pub fn reader(&self) -> std::io::Result<std::fs::File> {
        let mut file = self.file.try_clone()?;
        file.seek(SeekFrom::Start(0))?;
        Ok(file)
    }

    /// The whole file in memory: for tests and small reports.
    pub fn to_vec(&self) -> std::io::Result<Vec<u8>> {
        let mut bytes = Vec::with_capacity(usize::try_from(self.len).unwrap_or(0));
        self.reader()?.read_to_end(&mut bytes)?;
        Ok(bytes)
    }
}

/// Where each part of the report goes once it is assembled. Parts arrive in any order;
/// `index` is the part's place in schema order. `names`: developer ids to names, for the page.
pub trait PartSink {
    fn part(
        &mut self,
        index: usize,
        part: PartReport,
        names: &HashMap<String, String>,
    ) -> Result<(), OutputError>;
}

/// Keeps the parts, to put them into an in-memory [`AuditReport`] ([`AuditReport::with_parts`]).
#[derive(Debug, Default)]
pub struct Collected(BTreeMap<usize, PartReport>);

impl Collected {
    /// The parts in schema order.
    pub fn into_parts(self) -> impl Iterator<Item = PartReport> {
        self.0.into_values()
    }
}

impl PartSink for Collected {
    fn part(
        &mut self,
        index: usize,
        part: PartReport,
        _: &HashMap<String, String>,
    ) -> Result<(), OutputError> {
        self.0.insert(index, part);
        Ok(())
    }
}

/// serde_json's pretty printing (two spaces a level, as `to_writer_pretty`), starting `depth`
/// levels in: a value written this way reads as if it were written inside the whole report.
struct Nested {
    depth: usize,
    has_value: bool,
}

impl Nested {
    fn indent(&self, writer: &mut (impl std::io::Write + ?Sized)) -> std::io::Result<()> {
        for _ in 0..self.depth {
            writer.write_all(b"  ")?;
        }
        Ok(())
    }
}

impl Nested {
    /// `[` or `{`: one level deeper, nothing in it yet.
    fn open(
        &mut self,
        w: &mut (impl std::io::Write + ?Sized),
        bracket: &[u8],
    ) -> std::io::Result<()> {
        self.depth += 1;
        self.has_value = false;
        w.write_all(bracket)
    }

    /// `]` or `}`: on its own line at its level when the container was not empty.
    fn close(
        &mut self,
        w: &mut (impl std::io::Write + ?Sized),
        bracket: &[u8],
    ) -> std::io::Result<()> {
        self.depth -= 1;
        if self.has_value {
            w.write_all(b"\n")?;
            self.indent(w)?;
        }
        w.write_all(bracket)
    }

    /// Before an element or a key: a new line at the current level.
    fn item(&mut self, w: &mut (impl std::io::Write + ?Sized), first: bool) -> std::io::Result<()> {
        w.write_all(if first { b"\n" } else { b",\n" })?;
        self.indent(w)
    }
}

impl serde_json::ser::Formatter for Nested {
    fn begin_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.open(w, b"[")
    }
    fn end_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.close(w, b"]")
    }
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.item(w, first)
    }
    fn end_array_value<W: ?Sized + std::io::Write>(&mut self, _: &mut W) -> std::io::Result<()> {
        self.has_value = true;
        Ok(())
    }
    fn begin_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.open(w, b"{")
    }
    fn end_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.close(w, b"}")
    }
    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.item(w, first)
    }
    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b": ")
    }
    fn end_object_value<W: ?Sized + std::io::Write>(&mut self, _: &mut W) -> std::io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}

/// Writes `value` as it would appear `depth` levels into a pretty-printed document.
fn write_nested(
    out: &mut (impl std::io::Write + ?Sized),
    value: &impl Serialize,
    depth: usize,
) -> Result<(), serde_json::Error> {
    let formatter = Nested {
        depth,
        has_value: false,
    };
    value.serialize(&mut serde_json::Serializer::with_formatter(out, formatter))
}

/// One stream of the report (a JSON list, the CSV lines, the HTML rows): each part's bytes
/// appended to a temporary file as the part arrives, and where they are.
#[derive(Debug)]
struct Section {
    file: std::fs::File,
    len: u64,
    spans: BTreeMap<usize, (u64, u64)>,
}

impl Section {
    fn new() -> Result<Self, OutputError> {
        Ok(Section {
            file: tempfile::tempfile().map_err(temporary)?,
            len: 0,
            spans: BTreeMap::new(),
        })
    }

    /// Appends what `write` writes (through a small buffer: a part's list is megabytes);
    /// returns where it is. The file is only ever appended to: its position is its end.
    fn append(
        &mut self,
        write: impl FnOnce(&mut dyn std::io::Write) -> Result<(), OutputError>,
    ) -> Result<(u64, u64), OutputError> {
        let mut writer = std::io::BufWriter::with_capacity(64 * 1024, &self.file);
        let mut counted = Counted {
            inner: &mut writer,
            written: 0,
        };
        write(&mut counted)?;
        let written = counted.written;
        writer.flush().map_err(temporary)?;
        let span = (self.len, written);
        self.len += written;
        Ok(span)
    }

    fn add_part(
        &mut self,
        index: usize,
        write: impl FnOnce(&mut dyn std::io::Write) -> Result<(), OutputError>,
    ) -> Result<(), OutputError> {
        let span = self.append(write)?;
        self.spans.insert(index, span);
        Ok(())
    }

    /// Copies the bytes at `(offset, len)` into `out`.
    fn copy(
        &self,
        (mut offset, len): (u64, u64),
        out: &mut dyn std::io::Write,
        buffer: &mut [u8],
    ) -> Result<(), OutputError> {
        let end = offset + len;
        while offset < end {
            let n = buffer
                .len()
                .min(usize::try_from(end - offset).unwrap_or(usize::MAX));
            self.file
                .read_exact_at(&mut buffer[..n], offset)
                .map_err(temporary)?;
            out.write_all(&buffer[..n]).map_err(temporary)?;
            offset += n as u64;
        }
        Ok(())
    }

    /// The non-empty parts in order, `separator` between them.
    fn join(
        &self,
        out: &mut dyn std::io::Write,
        separator: &[u8],
        buffer: &mut [u8],
    ) -> Result<(), OutputError> {
        let mut any = false;
        for &span in self.spans.values().filter(|(_, len)| *len > 0) {
            if any {
                out.write_all(separator).map_err(temporary)?;
            }
            self.copy(span, out, buffer)?;
            any = true;
        }
        Ok(())
    }
}

/// The report's top-level lists that grow with the database, in the report's key order.
const LISTS: [&str; 7] = [
    "indexes",
    "foreign_keys",
    "check_constraints",
    "unique_constraints",
    "triggers",
    "functions",
    "tables",
];

/// One HTML row: where it goes in the page (its count, then its part and place in the part)
/// and where its bytes are; 32 bytes, one per table.
#[derive(Debug)]
struct PageRow {
    order: (std::cmp::Reverse<i64>, u32, u32),
    offset: u64,
    len: u32,
}

/// The report written part by part (see the module's documentation).
#[derive(Debug)]
pub struct StreamedReport {
    lists: [Section; 7],
    csv: Section,
    rows: Section,
    page_rows: Vec<PageRow>,
}

impl StreamedReport {
    pub fn new() -> Result<Self, OutputError> {
        Ok(StreamedReport {
            lists: [
                Section::new()?,
                Section::new()?,
                Section::new()?,
                Section::new()?,
                Section::new()?,
                Section::new()?,
                Section::new()?,
            ],
            csv: Section::new()?,
            rows: Section::new()?,
            page_rows: Vec::new(),
        })
    }

    /// The three files: `head` is the report from [`crate::report::Totals::finish`] (every
    /// field but the parts); `stamp` is `YYYYMMDD_HHMMSS`.
    pub fn finish(self, head: &AuditReport, stamp: &str) -> Result<ReportFiles, OutputError> {
        let StreamedReport {
            lists,
            csv: csv_lines,
            rows,
            mut page_rows,
        } = self;
        let mut buffer = vec![0u8; 64 * 1024];
        let json = ReportFile::write_with(|out| {
            let field = |out: &mut dyn std::io::Write, key: &str, first: bool| {
                let separator = if first { "" } else { "," };
                write!(out, "{separator}\n  \"{key}\": ").map_err(temporary)
            };
            // `AuditReport`'s keys in its order (the objects flattened in place): a key added
            // there and not here fails the test comparing these files with `render`'s.
            out.write_all(b"{").map_err(temporary)?;
            field(out, "audit_timestamp", true)?;
            write_nested(out, &head.audit_timestamp, 1)?;
            field(out, "database_info", false)?;
            write_nested(out, &head.database_info, 1)?;
            field(out, "versioning_system", false)?;
            write_nested(out, &head.versioning_system, 1)?;
            for (key, list) in LISTS.iter().zip(&lists) {
                field(out, key, false)?;
                if list.spans.values().any(|&(_, len)| len > 0) {
                    out.write_all(b"[\n").map_err(temporary)?;
                    list.join(out, b",\n", &mut buffer)?;
                    out.write_all(b"\n  ]").map_err(temporary)?;
                } else {
                    out.write_all(b"[]").map_err(temporary)?;
                }
            }
            field(out, "validation", false)?;
            write_nested(out, &head.validation, 1)?;
            field(out, "seed_tables", false)?;
            write_nested(out, &head.seed_tables, 1)?;
            field(out, "audit_settings", false)?;
            write_nested(out, &head.audit_settings, 1)?;
            field(out, "summary", false)?;
            write_nested(out, &head.summary, 1)?;
            out.write_all(b"\n}\n").map_err(temporary)?;
            Ok(())
        });
        let json = json?;
        // Each stream's temporary file goes as soon as its report is joined: at the peak the
        // disk holds the streams and one joined report, not all of both.
        drop(lists);
        let csv = ReportFile::write_with(|out| {
            out.write_all(&csv_header()?).map_err(temporary)?;
            csv_lines.join(out, b"", &mut buffer)?;
            Ok(())
        })?;
        drop(csv_lines);
        page_rows.sort_by_key(|row| row.order);
        let html = ReportFile::write_with(|out| {
            let total = page_rows.len();
            out.write_all(crate::html::head(head, total).as_bytes())
                .map_err(temporary)?;
            for row in &page_rows {
                rows.copy((row.offset, u64::from(row.len)), out, &mut buffer)?;
            }
            out.write_all(crate::html::tail().as_bytes())
                .map_err(temporary)?;
            Ok(())
        })?;
        Ok(ReportFiles {
            json_name: format!("audit_{stamp}.json"),
            csv_name: format!("tables_summary_{stamp}.csv"),
            html_name: format!("audit_{stamp}.html"),
            json,
            csv,
            html,
        })
    }
}
/// A writer that counts what goes through it.
struct Counted<'a> {
    inner: &'a mut dyn std::io::Write,
    written: u64,
}

impl std::io::Write for Counted<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(bytes)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A part's elements of one list, each as it appears in the report (four spaces in, two
/// levels deep), separated as the report separates them.
fn write_list<T: Serialize>(out: &mut dyn std::io::Write, items: &[T]) -> Result<(), OutputError> {
    for (i, item) in items.iter().enumerate() {
        out.write_all(if i == 0 { b"    " } else { b",\n    " })
            .map_err(temporary)?;
        write_nested(out, item, 2)?;
    }
    Ok(())
}

impl PartSink for StreamedReport {
    fn part(
        &mut self,
        index: usize,
        part: PartReport,
        names: &HashMap<String, String>,
    ) -> Result<(), OutputError> {
        let objects = &part.objects;
        let [
            indexes,
            foreign_keys,
            checks,
            uniques,
            triggers,
            functions,
            tables,
        ] = &mut self.lists;
        indexes.add_part(index, |out| write_list(out, &objects.indexes))?;
        foreign_keys.add_part(index, |out| write_list(out, &objects.foreign_keys))?;
        checks.add_part(index, |out| write_list(out, &objects.check_constraints))?;
        uniques.add_part(index, |out| write_list(out, &objects.unique_constraints))?;
        triggers.add_part(index, |out| write_list(out, &objects.triggers))?;
        functions.add_part(index, |out| write_list(out, &objects.functions))?;
        tables.add_part(index, |out| write_list(out, &part.entries))?;
        let csv = csv_rows(&part.entries)?;
        self.csv
            .add_part(index, |out| out.write_all(&csv).map_err(temporary))?;
        let rows = crate::html::rows(&part, names);
        let (mut offset, _) = self.rows.append(|out| {
            rows.iter()
                .try_for_each(|row| out.write_all(row.as_bytes()))
                .map_err(temporary)
        })?;
        let narrow = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        for (position, (entry, row)) in part.entries.iter().zip(&rows).enumerate() {
            self.page_rows.push(PageRow {
                order: (
                    crate::html::row_order(entry.record_count),
                    narrow(index),
                    narrow(position),
                ),
                offset,
                len: narrow(row.len()),
            });
            offset += row.len() as u64;
        }
        Ok(())
    }
}

/// Why the report files could not be rendered or written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("report JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("report CSV: {0}")]
    Csv(#[from] csv::Error),
    #[error("{path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    #[error("s3://{bucket}/{key}: {message}")]
    Upload {
        bucket: String,
        key: String,
        message: String,
    },
}

/// Renders the files of a report held in memory; `stamp` is `YYYYMMDD_HHMMSS`.
pub fn render(report: &AuditReport, stamp: &str) -> Result<ReportFiles, OutputError> {
    Ok(ReportFiles {
        json_name: format!("audit_{stamp}.json"),
        csv_name: format!("tables_summary_{stamp}.csv"),
        html_name: format!("audit_{stamp}.html"),
        json: ReportFile::write_with(|out| {
            serde_json::to_writer_pretty(&mut *out, report)?;
            out.write_all(b"\n").map_err(temporary)
        })?,
        csv: ReportFile::write_with(|out| out.write_all(&tables_csv(report)?).map_err(temporary))?,
        html: ReportFile::write_with(|out| {
            out.write_all(crate::html::render(report).as_bytes())
                .map_err(temporary)
        })?,
    })
}

/// Writes the files into `dir` (created if needed); an existing file is an error.
pub fn write_dir(dir: &Path, report: &ReportFiles) -> Result<ReportLocations, OutputError> {
    let failed = |path: &Path| {
        let path = path.display().to_string();
        move |source| OutputError::File { path, source }
    };
    std::fs::create_dir_all(dir).map_err(failed(dir))?;
    let write = |name: &str, mut bytes: &mut dyn std::io::Read| {
        let path = dir.join(name);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(failed(&path))?;
        std::io::copy(&mut bytes, &mut file).map_err(failed(&path))?;
        Ok::<_, OutputError>(path.display().to_string())
    };
    let reader = |file: &ReportFile| file.reader().map_err(failed(dir));
    Ok(ReportLocations {
        detailed_json: write(&report.json_name, &mut reader(&report.json)?)?,
        tables_csv: write(&report.csv_name, &mut reader(&report.csv)?)?,
        html: write(&report.html_name, &mut reader(&report.html)?)?,
    })
}

/// Uploads the files to `s3://bucket/prefix...`; an existing key is an error.
pub async fn write_s3(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    report: &ReportFiles,
) -> Result<ReportLocations, OutputError> {
    use aws_sdk_s3::primitives::ByteStream;
    let put = |name: &str, body: ByteStream, content_type: &'static str| {
        let key = format!("{prefix}{name}");
        let request = s3
            .put_object()
            .bucket(bucket)
            .key(&key)
            .content_type(content_type)
            .if_none_match("*")
            .body(body);
        async move {
            request.send().await.map_err(|e| OutputError::Upload {
                bucket: bucket.to_owned(),
                key: key.clone(),
                message: audit_core::aws::describe(&e),
            })?;
            Ok::<_, OutputError>(format!("s3://{bucket}/{key}"))
        }
    };
    // Each read from its temporary file as it is sent (one PUT: a report is far below 5 GB).
    let body = |file: &ReportFile, name: &str| {
        let key = format!("{prefix}{name}");
        let reader = file.reader();
        let len = file.len();
        async move {
            let failed = |message: String| OutputError::Upload {
                bucket: bucket.to_owned(),
                key: key.clone(),
                message,
            };
            let reader = reader.map_err(|e| failed(e.to_string()))?;
            ByteStream::read_from()
                .file(tokio::fs::File::from_std(reader))
                .length(aws_sdk_s3::primitives::Length::Exact(len))
                .build()
                .await
                .map_err(|e| failed(e.to_string()))
        }
    };
    Ok(ReportLocations {
        detailed_json: put(
            &report.json_name,
            body(&report.json, &report.json_name).await?,
            "application/json",
        )
        .await?,
        tables_csv: put(
            &report.csv_name,
            body(&report.csv, &report.csv_name).await?,
            "text/csv; charset=utf-8",
        )
        .await?,
        html: put(
            &report.html_name,
            body(&report.html, &report.html_name).await?,
            "text/html; charset=utf-8",
        )
        .await?,
    })
}
