//! The database structure audit: a PostgreSQL database on the throwaway cluster with the
//! versioning tables, audit columns and triggers, awkward table names, a partitioned table and
//! a 1M-row table; pg-auditor (its CLI) reports on it to a folder and to S3 on moto.

use devstack::function_binary;

/// The database the structure audit reads: the original auditor's versioning system (one family without
/// an active version, one with two), audited tables with and without the trigger, names that
/// broke the original, a partitioned table and a table of 1M rows.
const AUDITED_DATABASE: &str = r#"
CREATE FUNCTION set_audit_fields() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.updated_at := now(); RETURN NEW; END $$;
CREATE TABLE developer (id serial PRIMARY KEY, email text, display_name text,
  created_at timestamptz DEFAULT now(), updated_at timestamptz, created_by int, updated_by int);
INSERT INTO developer (email, display_name, created_by) VALUES ('system@example.org', 'System', 1), ('ada@example.org', 'Ada', 1);
CREATE TABLE version_family (id serial PRIMARY KEY, short_code text UNIQUE, label text, is_active boolean DEFAULT true,
  created_at timestamptz DEFAULT now(), updated_at timestamptz, created_by int, updated_by int);
CREATE TABLE version (id serial PRIMARY KEY, version_family_id int REFERENCES version_family(id), version_number text,
  is_active boolean, created_at timestamptz DEFAULT now(), updated_at timestamptz, created_by int, updated_by int);
CREATE TABLE domain_family_map (schema_name text DEFAULT 'public', table_name text, version_family_id int,
  created_at timestamptz DEFAULT now(), updated_at timestamptz, created_by int, updated_by int, PRIMARY KEY (schema_name, table_name));
INSERT INTO version_family (short_code, label) VALUES ('theme', 'Themes'), ('scenario', 'Scenarios'), ('geo', 'Geography');
INSERT INTO version (version_family_id, version_number, is_active) VALUES (1, '1.0', true), (2, '1.0', true), (2, '2.0', true), (3, '0.1', false);
INSERT INTO domain_family_map (table_name, version_family_id) VALUES ('theme', 1), ('scenario', 2), ('retired_table', 2);
CREATE TABLE theme (id serial PRIMARY KEY, name text, created_at timestamptz DEFAULT now(), updated_at timestamptz, created_by int, updated_by int);
CREATE TRIGGER theme_audit BEFORE INSERT OR UPDATE ON theme FOR EACH ROW EXECUTE FUNCTION set_audit_fields();
INSERT INTO theme (name, created_by) SELECT 'theme ' || g, 1 + g % 2 FROM generate_series(1, 40) g;
CREATE TABLE scenario (id serial PRIMARY KEY, name text, created_at timestamptz DEFAULT now(), updated_at timestamptz, created_by int, updated_by int);
INSERT INTO scenario (name, created_by) SELECT 'scenario ' || g, 1 FROM generate_series(1, 12) g;
CREATE TABLE "Order Lines" (id int, "Qty" int, api_token text);
INSERT INTO "Order Lines" SELECT g, g, md5(g::text) FROM generate_series(1, 25) g;
CREATE TABLE "we""ird; name" (id int);
INSERT INTO "we""ird; name" VALUES (1), (2);
CREATE TABLE measurements (id bigint, taken date NOT NULL, value numeric) PARTITION BY RANGE (taken);
CREATE TABLE measurements_2025 PARTITION OF measurements FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE measurements_2026 PARTITION OF measurements FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
INSERT INTO measurements SELECT g, date '2025-03-01' + (g % 500), g / 7.0 FROM generate_series(1, 60000) g;
CREATE TABLE readings (id bigint PRIMARY KEY, sensor int, created_at timestamptz DEFAULT now(), created_by int);
INSERT INTO readings SELECT g, g % 100, now() - g * interval '1 second', 1 + g % 4 FROM generate_series(1, 1000000) g;
CREATE TABLE seed_regions (id int, name text);
ANALYZE;
"#;

/// The original auditor's database audit: pg-auditor's CLI on a local database, to a folder and to S3.
/// Returns the reports bucket (the evidence section digests its reports).
pub async fn database_structure_audit(aws: &devstack::AwsEnv) -> Result<String, String> {
    println!("\n== Database structure audit: pg-auditor\n");
    let pg = devstack::postgres();
    let database = devstack::unique_name("demo_audit").replace('-', "_");
    println!("  creating database {database} on the local PostgreSQL (1M-row table included) ...");
    pg.psql("postgres", &format!("CREATE DATABASE {database}"))?;
    pg.psql(&database, AUDITED_DATABASE)?;
    let s3 = aws.s3_client().await;
    let bucket = devstack::unique_name("db-audit-reports");
    aws.create_bucket(&s3, &bucket).await?;
    let out = devstack::scratch_dir("pg-auditor-reports")?;
    let url = format!("{}?sslmode=disable", pg.url(&database));
    println!(
        "  $ pg-auditor --database-url {url} --out {} --s3-bucket {bucket} \\\n      --expected-versioned-tables theme,scenario,geo_area --expected-seed-tables seed_regions,theme,regions\n",
        out.display()
    );
    let status = std::process::Command::new(function_binary("pg-auditor")?)
        .envs(aws.vars())
        .args(["--database-url", &url, "--out"])
        .arg(&out)
        .args([
            "--s3-bucket",
            &bucket,
            "--expected-versioned-tables",
            "theme,scenario,geo_area",
            "--expected-seed-tables",
            "seed_regions,theme,regions",
        ])
        .status()
        .map_err(|e| format!("pg-auditor: {e}"))?;
    if !status.success() {
        return Err(format!("pg-auditor failed: {status}"));
    }
    let listed = s3
        .list_objects_v2()
        .bucket(&bucket)
        .prefix("database_audits/")
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    println!("\n  in S3:");
    for object in listed.contents() {
        println!(
            "    s3://{bucket}/{} ({} bytes)",
            object.key().unwrap_or_default(),
            object.size().unwrap_or_default()
        );
    }
    println!(
        "  open the HTML report in a browser: {}/audit_*.html",
        out.display()
    );
    Ok(bucket)
}
